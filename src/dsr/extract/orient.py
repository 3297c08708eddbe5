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
    # a track needs this many known centres for any heading: one full baseline each side of a frame
    # (2 · baseline_frames + 1). A setting, not a derived number, so that a change redoes extract's records
    min_known_centres: int = 5
    min_speed_ratio: float = 2.0  # displacement over the baseline / its noise below this → unknown
    # confidence = min(max_confidence, offset + slope · ratio): DSR's 0.6 gate is passed at ratio 3.75,
    # where the 1-sigma heading error atan(1 / ratio) is 15°
    confidence_offset: float = 0.45
    confidence_slope: float = 0.04
    max_confidence: float = 0.75


def velocity_heading(centers_world: np.ndarray, center_sigma: np.ndarray, timestamps_s: np.ndarray,
                     up_world: np.ndarray, config: HeadingConfig = HeadingConfig(),
                     scale_sigma: np.ndarray | None = None, camera_centers: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame world_from_agent (T, 3, 3) (NaN = unknown), confidence (T,), sigma_deg (T,).

    centers_world (T, 3) NaN where unknown, already smoothed in time (:func:`dsr.extract.lift.smooth_centers`);
    center_sigma (T,) the per-frame noise of those centres; up_world (3,) the world's up direction. The
    forward axis is the velocity between the known frames ``baseline_frames`` before and after, projected on
    the ground plane (⊥ up); columns are forward, left = up × forward, up. The heading's 1-sigma error is
    atan(noise / displacement) with the noise of a difference of two centres, √2 · sigma. A track with fewer than
    ``min_known_centres`` known centres (one full baseline each side of a frame) gets no heading.

    ``scale_sigma`` (T,): the relative 1-sigma of the depth error an object's frames share (a wrong size prior
    scales every depth alike), with ``camera_centers`` (T, 3) world. Such an error moves the centres by that
    fraction of the camera's own displacement, the other way: a moving camera makes a standing or slow object
    "walk". That displacement's noise, scale_sigma × |camera displacement over the baseline|, adds to the
    frame-to-frame noise (an orbit world gave a person 130-150° wrong headings stated at σ 5°).
    """
    n = len(centers_world)
    rot = np.full((n, 3, 3), np.nan)
    conf = np.zeros(n)
    sig = np.zeros(n)
    up = np.asarray(up_world, dtype=np.float64)
    up = up / np.linalg.norm(up)
    known = np.isfinite(centers_world).all(axis=1)
    b = max(1, config.baseline_frames)
    # a track shorter than one full baseline (b known frames before and after a frame) gives every frame the same
    # one-sided difference of its ends, and its own scatter measures nothing: on held-out worlds such 3-frame
    # tracks gave 5 of the 7 velocity headings outside their stated interval (docs/bench-extract.md §22)
    if known.sum() < max(3, config.min_known_centres):
        return rot, conf, sig
    idx = np.flatnonzero(known)
    sigmas = np.asarray(center_sigma, dtype=np.float64)[idx]
    if not np.isfinite(sigmas).any():
        return rot, conf, sig  # no noise estimate, no confidence to give
    noise = np.sqrt(2.0) * max(float(np.nanmedian(sigmas)), 1e-9)
    for k, i in enumerate(idx):
        lo, hi = idx[max(0, k - b)], idx[min(len(idx) - 1, k + b)]
        if hi == lo:
            continue
        disp = centers_world[hi] - centers_world[lo]
        disp_ground = disp - (disp @ up) * up
        step_noise = noise
        if scale_sigma is not None and camera_centers is not None:
            cam = camera_centers[hi] - camera_centers[lo]
            cam_ground = cam - (cam @ up) * up
            rel = max(float(np.nan_to_num(scale_sigma[lo])), float(np.nan_to_num(scale_sigma[hi])))
            step_noise = float(np.hypot(noise, rel * np.linalg.norm(np.nan_to_num(cam_ground))))
        ratio = float(np.linalg.norm(disp_ground)) / step_noise
        if ratio < config.min_speed_ratio:
            continue
        fwd = disp_ground / np.linalg.norm(disp_ground)
        left = np.cross(up, fwd)
        rot[i] = np.stack([fwd, left, np.cross(fwd, left)], axis=1)
        conf[i] = float(min(config.max_confidence, config.confidence_offset + config.confidence_slope * ratio))
        sig[i] = float(np.degrees(np.arctan2(1.0, ratio)))
    return rot, conf, sig


def confidence_from_sigma(sigma_deg: np.ndarray, config: HeadingConfig = HeadingConfig()) -> np.ndarray:
    """The heading confidence for a 1-σ error: the velocity rule with ratio = cot σ, so it passes DSR's 0.6
    gate exactly where σ ≤ 15°, whatever measured the heading. 0 where σ is NaN."""
    sig = np.asarray(sigma_deg, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 1.0 / np.tan(np.radians(np.clip(sig, 1e-6, 90.0)))
    conf = np.minimum(config.max_confidence, config.confidence_offset + config.confidence_slope * ratio)
    return np.where(np.isfinite(sig), np.clip(conf, 0.0, 1.0), 0.0)


def _wrap_deg(a: np.ndarray) -> np.ndarray:
    return (np.asarray(a, np.float64) + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class TorsoConfig:
    flip_deg: float = 90.0  # a torso facing more than this from where the person walks is seen front-to-back
    neighbours: int = 3  # sampled frames on each side whose velocity-resolved facing can confirm a torso
    min_sigma_deg: float = 10.0  # floor of the torso's 1-σ error (the track's own scatter can be tiny)
    unresolved_sigma_deg: float = 60.0  # a facing no walking direction or neighbour confirmed
    min_frames_for_scatter: int = 4


def fuse_torso_and_velocity(torso_forward_world: np.ndarray, velocity_rot: np.ndarray, velocity_conf: np.ndarray,
                            velocity_sigma_deg: np.ndarray, up_world: np.ndarray, heading: HeadingConfig = HeadingConfig(),
                            config: TorsoConfig = TorsoConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A person's facing per frame from the torso normal, its front/back resolved by the walking direction.

    torso_forward_world (T, 3): the torso normal in world coordinates, NaN where not measured; velocity_rot,
    velocity_conf, velocity_sigma_deg: :func:`velocity_heading`'s output; up_world (3,). Returns world_from_agent (T, 3, 3),
    confidence (T,), sigma_deg (T,) like :func:`velocity_heading`.

    1. The torso's yaw on the ground plane; where the walking direction is confident (≥ DSR's 0.6) and the torso
       faces more than ``flip_deg`` away from it, the torso was read front-to-back and is turned round (people walk
       forwards; MediaPipe's front/back is the weak part).
    2. A frame without a confident velocity is confirmed when the frames the velocity resolved among its
       neighbours (± ``neighbours`` frames) face within ``flip_deg`` of its torso, and a weaker velocity there
       does not face away from it. It is never turned round on that evidence: a person turning on the spot and a
       torso read front-to-back look the same to it, and turning frames round by their neighbours' word carried
       one wrong front through a turn (rendered people 120-170° off at a stated σ of 47-55°,
       docs/bench-extract.md §21). Such a frame stays unresolved.
    3. σ is measured on the track: the robust scatter of the yaws about their running circular median (at least
       ``min_sigma_deg``); frames neither the velocity nor its neighbours confirmed get ``unresolved_sigma_deg``.
    4. Where the torso is not measured, the velocity heading stays.
    """
    up = np.asarray(up_world, np.float64)
    up = up / np.linalg.norm(up)
    n = len(torso_forward_world)
    rot = np.array(velocity_rot, np.float64, copy=True)
    conf = np.array(velocity_conf, np.float64, copy=True)
    sig = np.array(velocity_sigma_deg, np.float64, copy=True)
    # a ground-plane basis to measure yaw in
    ref = np.array([1.0, 0, 0]) if abs(up[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = ref - (ref @ up) * up
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)

    def yaw_of(v: np.ndarray) -> float:
        return float(np.degrees(np.arctan2(v @ e2, v @ e1)))

    torso = np.asarray(torso_forward_world, np.float64)
    known = np.isfinite(torso).all(axis=1)
    flat = torso - (torso @ up)[:, None] * up
    known &= np.linalg.norm(np.nan_to_num(flat), axis=1) > 1e-6
    if not known.any():
        return rot, conf, sig
    yaw = np.full(n, np.nan)
    yaw[known] = [yaw_of(v) for v in flat[known]]
    moving = np.isfinite(velocity_rot).all(axis=(1, 2))
    walking = moving & (np.asarray(velocity_conf) >= 0.6)
    by_velocity = np.zeros(n, bool)
    for t in np.flatnonzero(known & walking):
        if abs(_wrap_deg(yaw[t] - yaw_of(velocity_rot[t][:, 0]))) > config.flip_deg:
            yaw[t] = _wrap_deg(yaw[t] + 180.0)
        by_velocity[t] = True
    resolved = by_velocity.copy()
    for t in np.flatnonzero(known & ~by_velocity):
        if moving[t] and abs(_wrap_deg(yaw[t] - yaw_of(velocity_rot[t][:, 0]))) > config.flip_deg:
            continue  # a weak walking direction says the torso faces away: which is the front is not known
        near = [u for u in range(max(0, t - config.neighbours), min(n, t + config.neighbours + 1))
                if u != t and by_velocity[u]]
        if not near:
            continue
        ref_yaw = float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(yaw[near]))))))
        resolved[t] = abs(_wrap_deg(yaw[t] - ref_yaw)) <= config.flip_deg
    # the track's own scatter about a running circular median
    idx = np.flatnonzero(known)
    resid = []
    for t in idx:
        near = idx[np.abs(idx - t) <= 2]
        med = float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(yaw[near]))))))
        resid.append(abs(_wrap_deg(yaw[t] - med)))
    scatter = 1.4826 * float(np.median(resid)) if len(idx) >= config.min_frames_for_scatter else np.nan
    base = max(config.min_sigma_deg, scatter) if np.isfinite(scatter) else 2 * config.min_sigma_deg
    for t in idx:
        fwd = np.cos(np.radians(yaw[t])) * e1 + np.sin(np.radians(yaw[t])) * e2
        left = np.cross(up, fwd)
        rot[t] = np.stack([fwd, left, up], axis=1)
        sig[t] = base if resolved[t] else max(base, config.unresolved_sigma_deg)
    conf[idx] = confidence_from_sigma(sig[idx], heading)
    return rot, conf, sig


class VelocityHeading(Estimator):
    """Orientation role for non-person agents: :func:`velocity_heading`."""

    name = "orientation/velocity"
    role = "orientation"

    def __init__(self, config: HeadingConfig = HeadingConfig()) -> None:
        self.config = config
