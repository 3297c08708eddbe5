"""Estimator interfaces: the data each role consumes and produces (extraction.md §4.2).

Every estimator class declares

* ``name``: its registry key, e.g. ``"camera/pycolmap"``;
* ``role``: one of :data:`ROLES`;
* ``version``: written into the record's :class:`~dsr.scene.record.Source`;
* ``requires``: the packages (and for learned backends the checkpoint env var) it needs;
* ``available() -> (bool, reason)``: a cheap check that never loads a model or downloads anything.

Outputs carry the estimator's ``Source``, a confidence and the scale kind, so later stages never branch on
which backend ran. Conventions (OpenCV camera, c2w poses) are those of :mod:`dsr.scene.frames`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from dsr.scene.record import CameraTrack, ScaleKind, Source

ROLES: tuple[str, ...] = ("camera", "geometry", "grounding", "segmentation", "tracking", "orientation", "lifting")


@dataclass(frozen=True, eq=False)
class VideoClip:
    """Frames of one video as the estimators see them.

    frames_rgb: (T, H, W, 3) uint8, the sampled (record) frames.
    timestamps_s: (T,) float64, their presentation times.
    frame_indices: (T,) int64, their indices in the decoded video.
    dense_rgb: (D, h, w, 3) uint8, densely sampled frames for SfM/VO/flow, possibly downscaled by
        ``dense_scale`` (dense pixel = full pixel × dense_scale). Includes every sampled frame.
    dense_indices: (D,) int64 video frame indices of ``dense_rgb`` (strictly increasing).
    """

    frames_rgb: np.ndarray
    timestamps_s: np.ndarray
    frame_indices: np.ndarray
    dense_rgb: np.ndarray
    dense_indices: np.ndarray
    dense_scale: float
    fps: float

    @property
    def height(self) -> int:
        return int(self.frames_rgb.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames_rgb.shape[2])

    @property
    def sampled_in_dense(self) -> np.ndarray:
        """(T,) positions of the sampled frames inside ``dense_indices``."""
        return np.searchsorted(self.dense_indices, self.frame_indices)


@dataclass(frozen=True)
class Attempt:
    """One try of one camera method: what it was, whether its output was trusted, and why."""

    method: str
    ok: bool
    reason: str
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class SparsePoints:
    """Sparse static 3D points and where each sampled frame observed them.

    points_world: (P, 3) float64 world points (record units).
    observations: per sampled frame t, an (N_t, 3) array of (u_px, v_px, point_index) at full resolution.
    """

    points_world: np.ndarray
    observations: tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class CameraEstimate:
    """A camera role's output: the track, how it was obtained, and whether the geometry is trusted.

    ``track`` is None when no method produced usable poses; ``trusted`` is False when a track exists
    but must not be used to write a record. ``points`` holds sparse static points when the method
    triangulated any (SfM), for centre lifting and scale normalisation.
    """

    track: CameraTrack | None
    trusted: bool
    reason: str
    scale_kind: ScaleKind
    attempts: tuple[Attempt, ...]
    points: SparsePoints | None = None
    method: str = ""
    # dense per-pixel geometry at the sampled frames (π³ after DSR's post-processing): an object's centre is
    # then the mean of the points under its mask (``dense_points``), not the weight-free chain
    dense: DensePoints | None = None
    # (P, 3) world points (record units) the method triangulated without keeping where they were seen (VO):
    # not for lifting, but they tie the size prior's depths to the camera's translation scale
    # (:func:`dsr.extract.lift.floor_scale`)
    scene_points: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class DensePoints:
    """local_points (T, H, W, 3) in each sampled frame's OpenCV camera coordinates (record units), valid (T, H, W)."""

    local_points: np.ndarray
    valid: np.ndarray


class Estimator:
    """Base of every estimator: identity, requirements and a cheap availability check."""

    name: ClassVar[str] = ""
    role: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    # env var naming a local checkpoint; learned backends only (never downloaded)
    checkpoint_env: ClassVar[str | None] = None

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(True, "") when every required package imports and any checkpoint is configured."""
        for pkg in cls.requires:
            if importlib.util.find_spec(pkg) is None:
                return False, f"package {pkg!r} is not installed"
        if cls.checkpoint_env is not None:
            path = os.environ.get(cls.checkpoint_env, "")
            if not path:
                return False, f"set {cls.checkpoint_env} to a local checkpoint (weights are never downloaded)"
            if not os.path.exists(path):
                return False, f"{cls.checkpoint_env}={path} does not exist"
        return True, "ok"

    @property
    def source(self) -> Source:
        return Source(name=self.name, version=self.version)
