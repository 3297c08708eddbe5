"""The estimator registry: every registered name imports lazily, declares its role, and reports availability."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest

from dsr.extract.base import ROLES, Estimator
from dsr.extract.registry import (
    ESTIMATORS,
    EstimatorError,
    create_estimator,
    estimator_class,
    estimator_status,
    list_estimators,
)


@pytest.mark.parametrize("name", list_estimators())
def test_registered_estimator_declares_itself(name: str) -> None:
    cls = estimator_class(name)
    assert issubclass(cls, Estimator)
    assert cls.name == name
    assert cls.role == name.split("/", 1)[0] and cls.role in ROLES
    ok, reason = cls.available()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    status = estimator_status(name)
    assert status.available == ok and status.role == cls.role


@pytest.mark.parametrize("name", [n for n in list_estimators() if estimator_class(n).checkpoint_env])
def test_learned_estimators_need_a_local_checkpoint(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import importlib.util

    cls = estimator_class(name)
    env = cls.checkpoint_env
    monkeypatch.delenv(env, raising=False)
    ok, reason = cls.available()
    missing = [p for p in cls.requires if importlib.util.find_spec(p) is None]
    assert not ok and (env in reason if not missing else f"{missing[0]!r} is not installed" in reason)
    with pytest.raises(EstimatorError, match="unavailable"):
        create_estimator(name)
    monkeypatch.setenv(env, str(tmp_path / "missing.pt"))
    ok, reason = cls.available()
    assert not ok and ("does not exist" in reason or missing)


def test_unknown_estimator_is_a_one_line_error() -> None:
    with pytest.raises(EstimatorError, match="unknown estimator 'camera/nope'"):
        create_estimator("camera/nope")


def test_roles_filter() -> None:
    assert set(list_estimators("camera")) == {n for n in ESTIMATORS if n.startswith("camera/")}
    assert "camera/auto" in list_estimators("camera")


def test_import_dsr_loads_no_backend() -> None:
    code = ("import sys, dsr, dsr.extract, dsr.extract.registry; "
            "print(any(m in sys.modules for m in ('cv2', 'pycolmap', 'torch', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_lists_estimators() -> None:
    out = subprocess.run([sys.executable, "-m", "dsr.cli", "estimators", "--role", "camera"], capture_output=True,
                         text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(list_estimators("camera"))
    assert any(line.startswith("yes") and "camera/vo" in line for line in lines)
    assert any(line.startswith("no") and "camera/pi3" in line for line in lines)


@pytest.mark.parametrize("name", [n for n in list_estimators("camera") if estimator_class(n).available()[0]])
def test_every_camera_takes_the_uniform_keywords(name: str) -> None:
    from dsr.extract.camera import CameraConfig

    cam = create_estimator(name, config=CameraConfig(sfm_fps=None), focal_px=321.0)
    assert cam.config.sfm_fps is None and cam.focal_px == 321.0
    # without focal_px the user's calibration in the config is the known focal
    assert create_estimator(name, config=CameraConfig(focal_px=99.0)).focal_px == 99.0


class _RecordingCamera(Estimator):
    """A camera registered at test time: proves AutoCamera builds its methods through the registry."""

    name = "camera/recording"
    role = "camera"
    built: ClassVar[list[tuple[object, object]]] = []

    def __init__(self, config: object = None, focal_px: float | None = None) -> None:
        _RecordingCamera.built.append((config, focal_px))

    def estimate(self, clip: object) -> object:
        from dsr.extract.base import Attempt, CameraEstimate

        return CameraEstimate(None, False, "recorded", "up_to_scale", (Attempt("recording", False, "recorded", 0.0),))


class _MissingCamera(_RecordingCamera):
    name = "camera/missing"
    requires = ("a_package_that_is_not_installed",)


def test_auto_camera_builds_its_methods_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from dsr.extract.camera import CameraConfig
    from dsr.extract.camera.auto import AutoCamera

    monkeypatch.setitem(ESTIMATORS, "camera/recording", f"{__name__}:_RecordingCamera")
    monkeypatch.setitem(ESTIMATORS, "camera/missing", f"{__name__}:_MissingCamera")
    _RecordingCamera.built.clear()
    config = CameraConfig(focal_px=250.0)
    est = AutoCamera(config, methods=("missing", "recording")).estimate(clip=None)  # type: ignore[arg-type]
    assert _RecordingCamera.built == [(config, 250.0)]
    assert [(a.method, a.reason) for a in est.attempts] == [
        ("missing", "package 'a_package_that_is_not_installed' is not installed"), ("recording", "recorded")]
    assert not est.trusted and est.reason.startswith("no camera method produced trusted poses")
    with pytest.raises(EstimatorError, match="unknown estimator 'camera/nope'"):
        AutoCamera(methods=("nope",)).estimate(clip=None)  # type: ignore[arg-type]
