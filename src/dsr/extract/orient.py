"""Agent facing from the heading of the smoothed 3D velocity (extraction.md §3.7).

Right for things that move forward (walkers, cars, animals), wrong for reversing cars or sidestepping
animals, and undefined when the agent stands still — so confidence grows with the ratio of the displacement
to the centre noise and is capped at 0.75 (just above DSR's 0.6 gate); slow frames get no orientation at
all. The noise is measured on the track itself (the scatter of the raw centres about their smoothed curve),
not taken from the lifting chain's a-priori sigmas, which are deliberately conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsr.extract.base import Estimator


@dataclass(frozen=True)
class HeadingConfig:
    baseline_frames: int = 2  # velocity from the known frames this many steps before and after
    min_speed_ratio: float = 2.0  # displacement over the baseline / its noise below this → unknown
    # confidence = min(max_confidence, offset + slope · ratio): DSR's 0.6 gate is passed at ratio 3.75,
    # where the 1-sigma heading error atan(1 / ratio) is 15°
    confidence_offset: float = 0.45
    confidence_slope: float = 0.04
    max_confidence: float = 0.75


def velocity_heading(centers_world: np.ndarray, center_sigma: np.ndarray, timestamps_s: np.ndarray,
                     up_world: np.ndarray, config: HeadingConfig = HeadingConfig()
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame world_from_agent (T, 3, 3) (NaN = unknown), confidence (T,), sigma_deg (T,).

    centers_world (T, 3) NaN where unknown, already smoothed in time (:func:`dsr.extract.lift.smooth_centers`);
    center_sigma (T,) the per-frame noise of those centres; up_world (3,) the world's up direction. The
    forward axis is the velocity between the known frames ``baseline_frames`` before and after, projected on
    the ground plane (⊥ up); columns are forward, left = up × forward, up. The heading's 1-sigma error is
    atan(noise / displacement) with the noise of a difference of two centres, √2 · sigma.
    """
    n = len(centers_world)
    rot = np.full((n, 3, 3), np.nan)
    conf = np.zeros(n)
    sig = np.zeros(n)
    up = np.asarray(up_world, dtype=np.float64)
    up = up / np.linalg.norm(up)
    known = np.isfinite(centers_world).all(axis=1)
    if known.sum() < 3:
        return rot, conf, sig
    idx = np.flatnonzero(known)
    sigmas = np.asarray(center_sigma, dtype=np.float64)[idx]
    if not np.isfinite(sigmas).any():
        return rot, conf, sig  # no noise estimate, no confidence to give
    noise = np.sqrt(2.0) * max(float(np.nanmedian(sigmas)), 1e-9)
    b = max(1, config.baseline_frames)
    for k, i in enumerate(idx):
        lo, hi = idx[max(0, k - b)], idx[min(len(idx) - 1, k + b)]
        if hi == lo:
            continue
        disp = centers_world[hi] - centers_world[lo]
        disp_ground = disp - (disp @ up) * up
        ratio = float(np.linalg.norm(disp_ground)) / noise
        if ratio < config.min_speed_ratio:
            continue
        fwd = disp_ground / np.linalg.norm(disp_ground)
        left = np.cross(up, fwd)
        rot[i] = np.stack([fwd, left, np.cross(fwd, left)], axis=1)
        conf[i] = float(min(config.max_confidence, config.confidence_offset + config.confidence_slope * ratio))
        sig[i] = float(np.degrees(np.arctan2(1.0, ratio)))
    return rot, conf, sig


class VelocityHeading(Estimator):
    """Orientation role for non-person agents: :func:`velocity_heading`."""

    name = "orientation/velocity"
    role = "orientation"

    def __init__(self, config: HeadingConfig = HeadingConfig()) -> None:
        self.config = config
