"""``dsr extract`` end to end: good and bad inputs, per-video status, resumability, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dsr.extract.camera import CameraConfig
from dsr.extract.clip import ClipConfig
from dsr.extract.pipeline import ExtractConfig, extract_video, record_id_for, run_extract
from dsr.scene.io import read_record
from dsr.scene.record import CENTER_METHODS, SCHEMA_VERSION
from dsr.video import VideoMeta

# VO + rotation fallbacks keep these tests fast; the SfM path has its own test in test_camera.py
FAST = replace(ExtractConfig(), clip=ClipConfig(num_samples=12, dense_fps=10.0), camera_methods=("vo", "rotation"))


def test_static_camera_clip_gives_a_record(videos: dict[str, Path]) -> None:
    out = extract_video(videos["static"], FAST)
    assert out.status == "ok", out.reason
    rec = out.record
    assert rec.num_frames == 12 and rec.scale_kind == "normalized"
    assert rec.camera.valid.all() and rec.camera.source.name in {"camera/vo", "camera/rotation"}
    np.testing.assert_allclose(rec.camera.c2w[:, :3, 3], 0.0, atol=1e-9)  # a static camera stays put
    np.testing.assert_allclose(rec.camera.c2w[:, :3, :3], np.tile(np.eye(3), (12, 1, 1)), atol=0.01)
    assert len(rec.objects) >= 1
    ball = max(rec.objects, key=lambda o: o.visible.sum())
    assert ball.visible.sum() >= 6 and ball.masks is not None
    methods = {CENTER_METHODS[m] for m in ball.center_method[ball.center_method > 0]}
    assert methods <= {"size_prior"}  # no SfM, no translation: size prior normalised to median depth 1
    assert set(out.stage_seconds) >= {"decode", "cuts", "camera", "objects"}
    assert out.camera_attempts[0]["method"] == "vo" and out.camera_attempts[-1]["ok"]


@pytest.mark.parametrize(("name", "status", "reason"), [
    ("garbage", "failed", "unreadable video"),
    ("truncated", "failed", "unreadable video"),
    ("zero_frames", "failed", "unreadable video"),
    ("textureless", "skipped", "untrusted geometry"),
    ("cut", "skipped", "hard scene cut"),
    ("no_objects", "skipped", "no moving objects detected"),
])
def test_bad_inputs_get_a_status_and_no_record(videos: dict[str, Path], name: str, status: str, reason: str) -> None:
    out = extract_video(videos[name], FAST)
    assert out.status == status and out.reason.startswith(reason), out.reason
    assert out.record is None
    assert "\n" not in out.reason


def test_frames_the_packets_list_but_the_decoder_does_not_fall_back_to_decoding(
        videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A packet the decoder drops (what a damaged file can give): the packet list names one frame more than decoding
    yields. The clip loader notices, and extraction counts the frames by decoding and goes on."""
    import dsr.extract.pipeline as pipeline
    from dsr.extract.clip import load_clip
    from dsr.video import ProbeMismatch, probe, probe_packets

    listed = probe_packets(videos["static"])
    assert listed is not None and listed.num_frames == probe(videos["static"]).num_frames
    ts = np.r_[listed.timestamps_s, listed.timestamps_s[-1] + 0.1]
    phantom = replace(listed, num_frames=len(ts), timestamps_s=ts)
    with pytest.raises(ProbeMismatch, match="decoding stopped early"):
        load_clip(videos["static"], FAST.clip, phantom)
    moved = replace(listed, timestamps_s=listed.timestamps_s * 1.5)  # timestamps the decoder does not give
    with pytest.raises(ProbeMismatch, match="decoded at"):
        load_clip(videos["static"], FAST.clip, moved)
    truth = extract_video(videos["static"], FAST)
    monkeypatch.setattr(pipeline, "probe_packets", lambda path: phantom)
    out = extract_video(videos["static"], FAST)
    assert out.status == "ok", out.reason
    np.testing.assert_array_equal(out.record.video.frame_indices, truth.record.video.frame_indices)
    assert out.record.video.num_frames == truth.record.video.num_frames == listed.num_frames
    assert len(out.record.objects) == len(truth.record.objects)


def test_variable_frame_rate_keeps_true_timestamps(videos: dict[str, Path]) -> None:
    out = extract_video(videos["vfr"], replace(FAST, keep_empty=True))
    assert out.status == "ok", out.reason
    ts = out.record.timestamps_s
    # frames alternate 50 ms / 150 ms: every timestamp is a multiple of 50 ms and follows the pattern
    idx = out.record.video.frame_indices
    expected = np.array([(i // 2) * 0.2 + (0.05 if i % 2 else 0.0) for i in idx])
    np.testing.assert_allclose(ts, expected, atol=1e-3)


def test_batch_continues_reports_and_resumes(videos: dict[str, Path], tmp_path: Path) -> None:
    inputs = [videos["garbage"], videos["static"], videos["cut"]]
    seen: list[str] = []
    report = run_extract(inputs, tmp_path, FAST, progress=lambda v, o: seen.append(Path(v).name))
    assert report["videos"] == 3
    assert report["by_status"] == {"failed": 1, "ok": 1, "skipped": 1}
    assert report["by_reason"] == {"failed: unreadable video": 1, "skipped: hard scene cut": 1}
    assert set(report["stage_seconds"]) >= {"decode", "camera"}
    records = sorted(tmp_path.glob("*.npz"))
    assert [r.name for r in records] == [f"{record_id_for(videos['static'])}.npz"]
    rec = read_record(records[0])
    assert rec.record_id == record_id_for(videos["static"])
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["by_status"] == report["by_status"]
    # simulate a kill after the first two videos: drop the last marker, rerun → only that one is redone
    (tmp_path / f"{record_id_for(videos['cut'])}.done.json").unlink()
    mtime = records[0].stat().st_mtime_ns
    redone: list[str] = []
    report2 = run_extract(inputs, tmp_path, FAST, progress=lambda v, o: redone.append(o is not None))
    assert redone == [False, False, True]
    assert report2["by_status"] == report["by_status"]
    assert records[0].stat().st_mtime_ns == mtime  # the finished record was not rewritten
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files


def test_cli_extract_smoke(videos: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dsr.cli import app

    result = CliRunner().invoke(app, ["extract", str(videos["garbage"]), str(videos["static"]), "--out",
                                      str(tmp_path), "--camera", "fast", "--num-samples", "12",
                                      "--dense-fps", "10"])
    assert result.exit_code == 1, result.output  # some videos failed: dsr.cli.outcome's exit-code policy
    assert "2 videos: failed 1, ok 1" in result.output
    assert "error: 1 of 2 videos failed (unreadable video: 1)" in result.output
    bad = CliRunner().invoke(app, ["extract", str(tmp_path / "nope.mp4"), "--out", str(tmp_path)])
    assert bad.exit_code != 0
    neg = CliRunner().invoke(app, ["extract", str(videos["static"]), "--out", str(tmp_path / "f"),
                                   "--focal-px", "-5"])
    # the app raises the one-line DsrError that dsr's entry point prints and exits 2 on
    assert neg.exit_code != 0 and "--focal-px must be a positive number" in str(neg.exception)
    assert not (tmp_path / "f").exists()  # rejected before any work
    rate = CliRunner().invoke(app, ["extract", str(videos["static"]), "--out", str(tmp_path / "r"),
                                    "--max-sample-fps", "-1"])
    assert rate.exit_code != 0 and "--max-sample-fps must be >= 0" in str(rate.exception)
    assert not (tmp_path / "r").exists()
    # the learned backend needs its package and a local checkpoint; without them: one line, no work
    pi3 = CliRunner().invoke(app, ["extract", str(videos["static"]), "--out", str(tmp_path / "p"), "--backend", "pi3"],
                             env={"DSR_PI3_CKPT": ""})
    assert pi3.exit_code != 0 and "--backend pi3 is not available here" in str(pi3.exception)
    assert "\n" not in str(pi3.exception) and not (tmp_path / "p").exists()


def test_record_id_follows_the_content_not_the_folder(videos: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    a, b = tmp_path / "a", tmp_path / "b" / "deeper"
    b.mkdir(parents=True)
    a.mkdir()
    shutil.copy(videos["static"], a / "clip.mp4")
    shutil.copy(videos["static"], b / "clip.mp4")
    shutil.copy(videos["truck"], tmp_path / "clip.mp4")  # same name, other content
    assert record_id_for(a / "clip.mp4") == record_id_for(b / "clip.mp4")
    assert record_id_for(a / "clip.mp4").startswith("clip-")
    assert record_id_for(tmp_path / "clip.mp4") != record_id_for(a / "clip.mp4")
    # the record (and so the QA sample, seeded by the id) is the same wherever the video lies
    ra = extract_video(a / "clip.mp4", FAST).record
    rb = extract_video(b / "clip.mp4", FAST).record
    assert ra.record_id == rb.record_id


def test_resume_is_keyed_on_the_settings(videos: dict[str, Path], tmp_path: Path) -> None:
    vo_only = replace(FAST, camera_methods=("vo",))
    first = run_extract([videos["static"], videos["garbage"]], tmp_path, vo_only)
    assert first["config"]["extract"]["camera_methods"] == ["vo"] and len(first["config_hash"]) == 16
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["config"] == first["config"] and on_disk["config_hash"] == first["config_hash"]
    rid = record_id_for(videos["static"])
    assert read_record(tmp_path / f"{rid}.npz").camera.source.name == "camera/vo"
    # the same settings: nothing is redone
    again: list[bool] = []
    run_extract([videos["static"], videos["garbage"]], tmp_path, vo_only,
                progress=lambda v, o: again.append(o is None))
    assert again == [True, True]
    # another camera (the CLI's --camera rotation): the record is extracted again, not silently kept
    redone: list[bool] = []
    second = run_extract([videos["static"]], tmp_path, replace(FAST, camera_methods=("rotation",)),
                         progress=lambda v, o: redone.append(o is not None))
    assert redone == [True]
    assert second["config_hash"] != first["config_hash"]
    assert second["videos"] == 1 and second["stale_markers"] == 1  # the garbage file's marker is of the old run
    assert read_record(tmp_path / f"{rid}.npz").camera.source.name == "camera/rotation"


def test_a_rerun_that_writes_no_record_removes_the_old_one(videos: dict[str, Path], tmp_path: Path) -> None:
    rid = record_id_for(videos["static"])
    run_extract([videos["static"]], tmp_path, FAST)
    assert (tmp_path / f"{rid}.npz").exists()
    # settings under which the clip has no trusted camera: the old record must not outlive its settings
    strict = replace(FAST, camera_methods=("vo",), camera=replace(FAST.camera, min_track_points=10**6))
    report = run_extract([videos["static"]], tmp_path, strict)
    assert report["by_status"] == {"skipped": 1}
    assert not (tmp_path / f"{rid}.npz").exists()


def test_movers_without_a_class_are_not_agents(videos: dict[str, Path]) -> None:
    out = extract_video(videos["truck"], FAST)
    assert out.status == "ok", out.reason
    assert out.record.objects and not any(o.is_agent or o.orientation is not None for o in out.record.objects)


def test_extraction_is_deterministic_byte_for_byte(videos: dict[str, Path], tmp_path: Path) -> None:
    """Default camera chain (SfM included), twice in this process and once in another: identical record files.

    pycolmap with 2 threads took pycolmap in one run and VO in the next; OpenCV's SIFT hands its keypoints
    over in thread order, which changed VO's camera in one process of three under load."""
    import subprocess
    import sys

    # SfM before VO even on this short clip: SfM is the path under test
    config = replace(ExtractConfig(), clip=ClipConfig(num_samples=12, dense_fps=10.0),
                     camera=CameraConfig(short_clip_s=None))
    first = run_extract([videos["truck"]], tmp_path / "one", config)
    second = run_extract([videos["truck"]], tmp_path / "two", config)
    assert first["by_status"] == second["by_status"] == {"ok": 1}
    assert first["items"][0]["camera_attempts"][-1]["method"] == "pycolmap"  # the path that varied
    code = ("import sys; from dataclasses import replace; from dsr.extract.clip import ClipConfig; "
            "from dsr.extract.camera import CameraConfig; from dsr.extract.pipeline import ExtractConfig, run_extract; "
            "run_extract([sys.argv[1]], sys.argv[2], replace(ExtractConfig(), clip=ClipConfig(num_samples=12, "
            "dense_fps=10.0), camera=CameraConfig(short_clip_s=None), "
            "camera_methods=tuple(sys.argv[3].split(','))))")
    name = f"{record_id_for(videos['truck'])}.npz"
    subprocess.run([sys.executable, "-c", code, str(videos["truck"]), str(tmp_path / "three"),
                    ",".join(config.camera_methods)], check=True, timeout=300)
    data = (tmp_path / "one" / name).read_bytes()
    assert data == (tmp_path / "two" / name).read_bytes() == (tmp_path / "three" / name).read_bytes()
    # and VO on its own (SIFT matching), in-process and in another process
    vo = replace(config, camera_methods=("vo",))
    run_extract([videos["truck"]], tmp_path / "vo1", vo)
    subprocess.run([sys.executable, "-c", code, str(videos["truck"]), str(tmp_path / "vo2"), "vo"], check=True,
                   timeout=300)
    assert (tmp_path / "vo1" / name).read_bytes() == (tmp_path / "vo2" / name).read_bytes()


def test_extract_help_shows_the_box_format() -> None:
    from typer.testing import CliRunner

    from dsr.cli import app

    result = CliRunner().invoke(app, ["extract", "--help"], env={"COLUMNS": "240"}, terminal_width=240)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert '"box": [x1, y1, x2, y2]' in text.replace("│ ", "")


def test_extracted_records_carry_the_v2_uncertainty(videos: dict[str, Path]) -> None:
    from dsr.extract.lift import has_class_height
    from dsr.extract.uncertainty import (
        camera_focal_range,
        camera_scale_drift,
        camera_scale_jitter,
        camera_scale_reset,
        camera_sigmas,
        center_sigmas,
    )

    out = extract_video(videos["static"], FAST)
    rec = out.record
    assert rec.schema_version == SCHEMA_VERSION and rec.camera.trusted
    assert np.all(rec.camera.position_sigma[rec.camera.valid] > 0)
    # the camera's sigmas are the table entries of the key the outcome names (no SfM here: the method's own)
    assert out.camera_sigma_key == rec.camera.source.name
    pos, rot = camera_sigmas(out.camera_sigma_key, rec.camera.valid, FAST.uncertainty)
    np.testing.assert_allclose(rec.camera.position_sigma, pos)
    np.testing.assert_allclose(rec.camera.rotation_sigma_deg, rot)
    assert rec.camera.scale_drift_sigma == camera_scale_drift(out.camera_sigma_key, FAST.uncertainty)
    assert rec.camera.scale_jitter_sigma == camera_scale_jitter(out.camera_sigma_key, FAST.uncertainty)
    assert rec.camera.scale_reset_bound == camera_scale_reset(out.camera_sigma_key, FAST.uncertainty)
    # VO ran under the guessed focal length (rotation-only fits its own): the lenses' range over the guess
    used = next(a["stats"] for a in reversed(out.camera_attempts) if a["ok"])
    assert rec.camera.focal_range == camera_focal_range(out.camera_sigma_key, used, float(rec.camera.K[0, 0, 0]),
                                                        max(rec.video.width, rec.video.height), FAST.uncertainty)
    assert rec.camera.focal_known == (rec.camera.source.name != "camera/vo")
    for obj in rec.objects:
        k = obj.center_known
        assert np.all(obj.center_sigma_along[k] > 0) and np.all(obj.center_sigma_across[k] > 0)
        assert np.all(obj.center_sigma_shared <= obj.center_sigma_along)
        along, across, shared = center_sigmas(obj.centers_cam, obj.center_method, FAST.uncertainty,
                                              rec.camera.source.name, has_class_height(obj.class_phrase))
        np.testing.assert_allclose(obj.center_sigma_along, along)
        np.testing.assert_allclose(obj.center_sigma_across, across)
        np.testing.assert_allclose(obj.center_sigma_shared, shared)
        assert np.all((obj.confidence >= 0) & (obj.confidence <= 1)) and not obj.confidence[~obj.visible].any()


def _meta(num_frames: int, fps: float) -> VideoMeta:
    ts = np.arange(num_frames) / fps
    return VideoMeta(path="synthetic", width=64, height=48, fps=fps, num_frames=num_frames,
                     duration_s=num_frames / fps, timestamps_s=ts)


def test_short_clips_sample_at_most_max_sample_fps() -> None:
    from dsr.extract.clip import sampled_indices

    capped = ClipConfig(num_samples=32, max_sample_fps=8.0)
    # 2 s at 25 fps: 16 frames (8 per second), spread from the first frame to the last
    two_s = sampled_indices(_meta(50, 25.0), capped)
    assert len(two_s) == 16 and two_s[0] == 0 and two_s[-1] == 49 and np.all(np.diff(two_s) > 0)
    assert len(sampled_indices(_meta(600, 25.0), capped)) == 32  # 24 s: the cap does not bind
    assert len(sampled_indices(_meta(5, 25.0), capped)) == 4  # 0.2 s: never below min_frames
    assert len(sampled_indices(_meta(50, 25.0), ClipConfig(num_samples=32, max_sample_fps=None))) == 32
