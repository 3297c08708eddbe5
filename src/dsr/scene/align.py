"""Trajectory alignment and error metrics: Umeyama Sim(3)/SE(3), ATE, RPE, timestamp association.

Poses are 4×4 camera-to-world matrices (see :mod:`dsr.scene.frames`). The metrics follow the usual
definitions of the trajectory-evaluation literature (and give the same numbers as the ``evo``
package, which the tests use as a reference):

* **ATE** (absolute trajectory error): after aligning the estimate to the reference, the Euclidean
  distance between corresponding positions.
* **Scale drift rate**: the slope over time of ln(estimated / true step length) of an aligned path, in
  natural-log units per second (:func:`scale_drift_rate`); what a record's ``camera.scale_drift_sigma``
  states the spread of.
* **RPE** (relative pose error) for a frame step Δ: ``E_i = (ref_i⁻¹ ref_{i+Δ})⁻¹ (est_i⁻¹ est_{i+Δ})``
  over consecutive pairs (0, Δ), (Δ, 2Δ), …; reported as the norm of E's translation or its rotation
  angle in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dsr.scene.frames import invert_pose, make_pose
from dsr.scene.poses import rotation_angle_deg

Alignment = Literal["sim3", "se3", "scale", "none"]


@dataclass(frozen=True)
class Sim3:
    """p ↦ scale · rotation @ p + translation."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)
    scale: float = 1.0

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points (..., 3)."""
        return self.scale * np.einsum("ij,...j->...i", self.rotation, points) + self.translation

    def apply_to_poses(self, poses: np.ndarray) -> np.ndarray:
        """Transform c2w poses (N, 4, 4): rotate orientations, transform and scale positions."""
        return make_pose(np.einsum("ij,njk->nik", self.rotation, poses[:, :3, :3]), self.apply(poses[:, :3, 3]))

    @staticmethod
    def identity() -> Sim3:
        return Sim3(np.eye(3), np.zeros(3), 1.0)


def umeyama(src: np.ndarray, dst: np.ndarray, *, with_scale: bool = True) -> Sim3:
    """Least-squares similarity (or rigid, ``with_scale=False``) transform mapping src (N,3) onto dst (N,3).

    Umeyama (1991): minimises Σ‖dst_i − (s R src_i + t)‖². Needs N ≥ 3 non-collinear points
    for a unique rotation.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"need two (N, 3) arrays of equal shape, got {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise ValueError("need at least 3 point pairs")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = 1.0
    if with_scale:
        var_src = (src_c**2).sum() / len(src)
        if var_src <= 0:
            raise ValueError("source points are all identical")
        scale = float(np.trace(np.diag(d) @ sign) / var_src)
    translation = mu_dst - scale * rotation @ mu_src
    return Sim3(rotation, translation, scale)


def align_positions(est: np.ndarray, ref: np.ndarray, alignment: Alignment = "sim3") -> Sim3:
    """The transform that best maps estimated positions (N,3) onto reference ones (N,3)."""
    if alignment == "none":
        return Sim3.identity()
    if alignment == "scale":
        # scale only, about the origin (for trajectories already in a common frame)
        s = float(np.sum(est * ref) / np.sum(est * est))
        return Sim3(np.eye(3), np.zeros(3), s)
    return umeyama(est, ref, with_scale=alignment == "sim3")


@dataclass(frozen=True)
class ErrorStats:
    """Summary of a vector of per-pose errors."""

    rmse: float
    mean: float
    median: float
    std: float
    min: float
    max: float
    sse: float
    count: int

    @staticmethod
    def of(errors: np.ndarray) -> ErrorStats:
        e = np.asarray(errors, dtype=np.float64)
        if e.size == 0:
            raise ValueError("no errors to summarise")
        return ErrorStats(
            rmse=float(np.sqrt(np.mean(e**2))), mean=float(e.mean()), median=float(np.median(e)),
            std=float(e.std()), min=float(e.min()), max=float(e.max()), sse=float(np.sum(e**2)), count=int(e.size),
        )


def ate(est_positions: np.ndarray, ref_positions: np.ndarray, alignment: Alignment = "sim3") -> tuple[ErrorStats, Sim3]:
    """Absolute trajectory error of positions (N,3) after ``alignment``; returns stats and the transform."""
    transform = align_positions(est_positions, ref_positions, alignment)
    errors = np.linalg.norm(transform.apply(est_positions) - ref_positions, axis=1)
    return ErrorStats.of(errors), transform


def path_length(positions: np.ndarray) -> float:
    """Total length of a polyline (N,3)."""
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def scale_drift_rate(est_positions: np.ndarray, ref_positions: np.ndarray, times_s: np.ndarray,
                     min_steps: int = 6) -> float | None:
    """How fast an (aligned) estimated path's scale drifts: the least-squares slope, over the steps' mid times,
    of ln(estimated / reference step length), in natural-log units per second.

    Steps whose reference length is under 2% of the median moving step are left out (a camera that barely moves
    has no scale to drift); None with fewer than ``min_steps`` steps left (a static or rotating camera)."""
    fit = scale_error_fit(est_positions, ref_positions, times_s, min_steps)
    return None if fit is None else fit[0]


def scale_error_fit(est_positions: np.ndarray, ref_positions: np.ndarray, times_s: np.ndarray,
                    min_steps: int = 6) -> tuple[float, np.ndarray] | None:
    """(drift rate, residuals): :func:`scale_drift_rate`, and each kept step's ln(estimated / reference length)
    less the fitted line, in step order (the fast part of the scale error)."""
    de = np.linalg.norm(np.diff(np.asarray(est_positions, np.float64), axis=0), axis=1)
    dr = np.linalg.norm(np.diff(np.asarray(ref_positions, np.float64), axis=0), axis=1)
    moving = dr > 0
    if moving.sum() < min_steps:
        return None
    ok = (dr > 0.02 * np.median(dr[moving])) & (de > 0)
    if ok.sum() < min_steps:
        return None
    t = np.asarray(times_s, np.float64)
    mid = (t[1:] + t[:-1])[ok] / 2.0
    logs = np.log(de[ok] / dr[ok])
    rate, offset = np.polyfit(mid - mid.mean(), logs, 1)
    return float(rate), logs - (rate * (mid - mid.mean()) + offset)


def rpe(
    est_poses: np.ndarray,
    ref_poses: np.ndarray,
    *,
    delta: int = 1,
    part: Literal["translation", "rotation_deg"] = "translation",
    alignment: Alignment = "none",
) -> ErrorStats:
    """Relative pose error over consecutive pose pairs ``delta`` frames apart.

    est_poses, ref_poses: (N, 4, 4) c2w. ``alignment`` first maps the estimate onto the reference
    (only scale matters for RPE; use "sim3" for monocular estimates).
    """
    if est_poses.shape != ref_poses.shape:
        raise ValueError(f"pose arrays differ in shape: {est_poses.shape} vs {ref_poses.shape}")
    if alignment != "none":
        est_poses = align_positions(est_poses[:, :3, 3], ref_poses[:, :3, 3], alignment).apply_to_poses(est_poses)
    ids = np.arange(0, len(est_poses), delta)
    i, j = ids[:-1], ids[1:]
    if len(i) == 0:
        raise ValueError("trajectory too short for this delta")
    rel_ref = invert_pose(ref_poses[i]) @ ref_poses[j]
    rel_est = invert_pose(est_poses[i]) @ est_poses[j]
    err = invert_pose(rel_ref) @ rel_est
    if part == "translation":
        return ErrorStats.of(np.linalg.norm(err[:, :3, 3], axis=1))
    return ErrorStats.of(rotation_angle_deg(err[:, :3, :3]))


def associate(stamps_a: np.ndarray, stamps_b: np.ndarray, max_diff: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Match each stamp of ``a`` to the nearest stamp of sorted ``b`` within ``max_diff`` seconds.

    Returns index arrays (ia, ib). Ties go to the earlier stamp of ``b``.
    """
    a = np.asarray(stamps_a, dtype=np.float64)
    b = np.asarray(stamps_b, dtype=np.float64)
    if np.any(np.diff(b) < 0):
        raise ValueError("stamps_b must be sorted")
    upper = np.clip(np.searchsorted(b, a, side="right"), 0, len(b) - 1)
    lower = upper - 1
    diff_up = b[upper] - a
    diff_low = np.where(lower >= 0, a - b[np.maximum(lower, 0)], np.inf)
    take_up = (diff_up <= max_diff) & (diff_up < diff_low)
    take_low = ~take_up & (diff_low <= max_diff) & (diff_low <= diff_up)
    in_range = (a >= b[0] - max_diff) & (a <= b[-1] + max_diff)
    keep = (take_up | take_low) & in_range
    ib = np.where(take_up, upper, lower)
    return np.flatnonzero(keep), ib[keep]


def associate_trajectories(
    stamps_ref: np.ndarray, stamps_est: np.ndarray, max_diff: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Pair poses of two trajectories by timestamp, iterating over the shorter one.

    Returns (ref_ids, est_ids) of equal length.
    """
    if len(stamps_est) > len(stamps_ref):
        ia, ib = associate(stamps_ref, stamps_est, max_diff)
        return ia, ib
    ia, ib = associate(stamps_est, stamps_ref, max_diff)
    return ib, ia
