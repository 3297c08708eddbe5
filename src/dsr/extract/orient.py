"""Agent facing from the heading of the smoothed 3D velocity (extraction.md §3.7).

Right for things that move forward (walkers, cars, animals), wrong for reversing cars or sidestepping
animals, and undefined when the agent stands still — so confidence grows with the ratio of speed to the
centre noise and is capped at 0.75 (just above DSR's 0.6 gate); slow frames get no orientation at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsr.extract.base import Estimator


@dataclass(frozen=True)
class HeadingConfig:
    smooth_frames: int = 5  # moving-average window over known centres
    min_speed_ratio: float = 2.0  # speed per frame / centre sigma below this → unknown
    max_confidence: float = 0.5  # below DSR's 0.6 gate by default: measured heading errors are large


def _smooth(x: np.ndarray, known: np.ndarray, window: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    idx = np.flatnonzero(known)
    half = window // 2
    for i in idx:
        near = idx[(idx >= i - half) & (idx <= i + half)]
        out[i] = x[near].mean(axis=0)
    return out


def velocity_heading(centers_world: np.ndarray, center_sigma: np.ndarray, timestamps_s: np.ndarray,
                     up_world: np.ndarray, config: HeadingConfig = HeadingConfig()
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame world_from_agent (T, 3, 3) (NaN = unknown), confidence (T,), sigma_deg (T,).

    centers_world (T, 3) NaN where unknown; up_world (3,) the world's up direction. The forward axis is the
    velocity projected on the ground plane (⊥ up); columns are forward, left = up × forward, up.
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
    smooth = _smooth(centers_world, known, config.smooth_frames)
    idx = np.flatnonzero(known)
    for k, i in enumerate(idx):
        lo, hi = idx[max(0, k - 1)], idx[min(len(idx) - 1, k + 1)]
        if hi == lo:
            continue
        vel = (smooth[hi] - smooth[lo]) / (timestamps_s[hi] - timestamps_s[lo])
        vel_ground = vel - (vel @ up) * up
        dt = (timestamps_s[hi] - timestamps_s[lo]) / max(1, hi - lo)
        speed_per_frame = float(np.linalg.norm(vel_ground)) * dt
        noise = max(float(np.nanmedian(center_sigma[idx])), 1e-9) / np.sqrt(config.smooth_frames)
        ratio = speed_per_frame / noise
        if ratio < config.min_speed_ratio:
            continue
        fwd = vel_ground / np.linalg.norm(vel_ground)
        left = np.cross(up, fwd)
        rot[i] = np.stack([fwd, left, np.cross(fwd, left)], axis=1)
        conf[i] = float(min(config.max_confidence, 0.5 + 0.05 * ratio))
        sig[i] = float(np.degrees(np.arctan2(1.0, ratio)))
    return rot, conf, sig


class VelocityHeading(Estimator):
    """Orientation role for non-person agents: :func:`velocity_heading`."""

    name = "orientation/velocity"
    role = "orientation"

    def __init__(self, config: HeadingConfig = HeadingConfig()) -> None:
        self.config = config
