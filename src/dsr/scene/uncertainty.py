"""Draws from a record's own stated uncertainty (schema v2, v3), for stability scores and abstention.

The error model is the one written in :class:`~dsr.scene.record.ObjectTrack`'s docstring: along the camera
ray a part shared by all frames of the object (one draw per object) plus an independent part per frame,
and an independent isotropic error across the ray. Camera centres get an isotropic error per frame
(``position_sigma``). Ground-truth records (zero sigmas) give back their own values.

Schema v3 adds a drift of the camera path's scale (``CameraTrack.scale_drift_sigma``): one draw δ per record
makes each step of the path exp(δ·(τ − τ̄)) times as long (τ the step's mid time, τ̄ their mean), and a
per-step error ε_j ~ N(0, ``scale_jitter_sigma``²/m_j) (m_j the sampled steps it spans) multiplies step j by
exp(ε_j) on top.
:func:`scale_drift_shifts` turns draws of δ into the shift of the camera centre at each frame; whatever is
measured from the camera at a frame (every extracted object centre) moves with it by the same shift.

Schema v4 adds a reset of the scale at each stop of the camera (``CameraTrack.scale_reset_bound``): the path's
stretches between stops (:func:`path_stretches`) may each be off by a factor within exp(±bound) against the
others and the objects. That is a bound, not a Gaussian: the scale after a stop is unrelated to the one before,
so consumers test an answer at the bound (:func:`stretch_scale_shift`) rather than draw.

Schema v5 adds the focal length's range (``CameraTrack.focal_range``): a monocular camera estimated under a guessed
or borrowed focal length measures every rotation by one shared wrong factor, and its path's steps, measured in the
camera's frame, turn with it. Again a range, not a Gaussian: consumers test an answer at its ends
(:func:`focal_error_motion`).
"""

from __future__ import annotations

import numpy as np

from dsr.scene.record import CameraTrack, ObjectTrack, SceneRecord

Z_90 = 1.6448536269514722  # a two-sided 90% interval of a Gaussian is ±Z_90 sigma
# a step of the camera path this short against its median moving step is the camera standing still: VO holds the
# centre exactly while it rests (a rotation-only keyframe), and no moving step of a rendered dolly comes near it
STILL_STEP_FRACTION = 0.02


def ray_frames(centers_world: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rays (T, 3) from each frame's camera centre through the centre, and a basis (T, 3, 2) of the
    plane perpendicular to them (world coordinates; NaN where the centre is unknown)."""
    ray = centers_world - c2w[:, :3, 3]
    ray = ray / np.linalg.norm(ray, axis=1, keepdims=True)
    # any vector not parallel to the ray: the camera's x axis is perpendicular to its optical axis, and the
    # ray is within the field of view, so it is never parallel to it
    helper = c2w[:, :3, 0]
    e1 = helper - np.sum(helper * ray, axis=1, keepdims=True) * ray
    e1 = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(ray, e1)
    return ray, np.stack([e1, e2], axis=2)


def sample_centers(record: SceneRecord, obj: ObjectTrack, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, T, 3) world centres drawn from the object's stated uncertainty (NaN where unknown)."""
    n = record.num_frames
    base = np.broadcast_to(obj.centers_world, (k, n, 3))
    along, across, shared = obj.center_sigma_along, obj.center_sigma_across, obj.center_sigma_shared
    if not (along.any() or across.any()):
        return base.copy()
    ray, perp = ray_frames(obj.centers_world, record.camera.c2w)
    own = np.sqrt(np.maximum(along**2 - shared**2, 0.0))
    d_along = rng.standard_normal((k, 1)) * shared[None] + rng.standard_normal((k, n)) * own[None]
    d_across = np.einsum("tij,ktj->kti", perp, rng.standard_normal((k, n, 2))) * across[None, :, None]
    return base + d_along[..., None] * ray[None] + d_across


def sample_camera_centers(record: SceneRecord, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, T, 3) camera centres drawn from ``camera.position_sigma`` (isotropic, independent per frame)."""
    cam = record.camera
    return cam.c2w[None, :, :3, 3] + rng.standard_normal((k, record.num_frames, 3)) * cam.position_sigma[None, :, None]


def scale_drift_shifts(camera_centers: np.ndarray, times_s: np.ndarray, deltas: np.ndarray,
                       step_logs: np.ndarray | None = None) -> np.ndarray:
    """(k, n, 3) shifts of the camera centres (n, 3) at increasing times (n,) under k scale drifts ``deltas``
    (k,) in natural-log units per second and, optionally, k sets of per-step log-length errors ``step_logs``
    (k, n − 1) (see the module docstring). The first centre does not move (only shifts relative to each other
    change an answer); n = 1 gives zeros."""
    centers = np.asarray(camera_centers, np.float64)
    times = np.asarray(times_s, np.float64)
    d = np.asarray(deltas, np.float64)
    out = np.zeros((len(d), len(centers), 3))
    if len(centers) < 2:
        return out
    steps = np.diff(centers, axis=0)  # (n - 1, 3)
    mid = (times[1:] + times[:-1]) / 2.0
    logs = d[:, None] * (mid - mid.mean())[None]  # (k, n - 1)
    if step_logs is not None:
        logs = logs + np.asarray(step_logs, np.float64)
    stretch = np.expm1(logs)  # step length factor − 1
    out[:, 1:] = np.cumsum(stretch[..., None] * steps[None], axis=1)
    return out


def scale_error_shifts(camera: CameraTrack, centers: np.ndarray, times_s: np.ndarray, drift_normals: np.ndarray,
                       jitter_normals: np.ndarray, step_spans: np.ndarray) -> np.ndarray:
    """(k, n, 3) shifts of the camera centres (n, 3) at ``times_s`` under the track's stated scale error, from
    standard normals: ``drift_normals`` (k,) for the drift and ``jitter_normals`` (k, n − 1) for the steps, a
    step spanning ``step_spans`` (n − 1,) sampled steps carrying ``scale_jitter_sigma`` / √span."""
    deltas = drift_normals * camera.scale_drift_sigma
    spans = np.sqrt(np.maximum(step_spans, 1))
    jitter = jitter_normals * (camera.scale_jitter_sigma / spans)[None]
    return scale_drift_shifts(centers, times_s, deltas, jitter)


def sample_scale_drift(record: SceneRecord, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, T, 3) shifts drawn from ``camera.scale_drift_sigma`` and ``camera.scale_jitter_sigma``, to add to the
    camera centres and to every centre measured from the camera (zeros when the record states neither; no draw is
    taken then)."""
    cam = record.camera
    n = record.num_frames
    if not cam.states_scale_error:
        return np.zeros((k, n, 3))
    drift = rng.standard_normal(k)
    jitter = rng.standard_normal((k, max(n - 1, 0)))
    return scale_error_shifts(cam, cam.c2w[:, :3, 3], record.timestamps_s, drift, jitter, np.ones(max(n - 1, 0)))


def path_stretches(camera_centers: np.ndarray) -> np.ndarray:
    """(T − 1,) int: the stretch of the camera path each step belongs to. Stretches are the runs of moving steps
    between stops, numbered 0, 1, … in time; a still step (at most ``STILL_STEP_FRACTION`` of the median moving
    step) is −1. A path that never moves is all −1."""
    steps = np.linalg.norm(np.diff(np.asarray(camera_centers, np.float64), axis=0), axis=1)
    moving = steps[steps > 0]
    if not len(moving):
        return np.full(len(steps), -1)
    still = steps <= STILL_STEP_FRACTION * float(np.median(moving))
    starts = ~still & np.r_[True, still[:-1]]  # the first moving step of each run
    return np.where(still, -1, np.cumsum(starts) - 1)


def stretch_scale_shift(camera_centers: np.ndarray, stretches: np.ndarray, stretch: int,
                        log_factor: float) -> np.ndarray:
    """(T, 3) shift of the camera centres when the steps of one ``stretch`` (:func:`path_stretches`) are
    exp(``log_factor``) times as long and every other step is kept: zero up to the stretch, constant after it."""
    steps = np.diff(np.asarray(camera_centers, np.float64), axis=0)
    grow = np.where(np.asarray(stretches) == stretch, np.expm1(log_factor), 0.0)
    out = np.zeros((len(steps) + 1, 3))
    out[1:] = np.cumsum(grow[:, None] * steps, axis=0)
    return out


def focal_error_motion(c2w: np.ndarray, ref: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The camera track ``c2w`` (T, 4, 4) as it would be with a focal length ``factor`` times the one it was
    estimated with: (delta (T, 3, 3), centres (T, 3)).

    Every rotation from frame ``ref`` to frame t is ``factor`` times as large about the same axis, and each step of
    the path between consecutive frames turns with the camera at its start; frame ``ref`` keeps its pose. ``delta[t]``
    is the world rotation that takes frame t's camera to its new orientation (R' = delta · R); whatever was measured
    from the camera at t moves to ``centres[t] + delta[t] · (p − c_t)``. The factor multiplies the angles (not the
    focal length's inverse): on rendered worlds VO's angles over a turn came out 0.78-0.86× the truth when it ran at
    0.77-0.85× the true focal length (docs/bench-extract.md §19).
    """
    from scipy.spatial.transform import Rotation

    c2w = np.asarray(c2w, np.float64)
    rot = c2w[:, :3, :3]
    relative = Rotation.from_matrix(rot[ref].T @ rot)  # ref's camera → frame t's, in ref's camera axes
    turned = rot[ref] @ Rotation.from_rotvec(relative.as_rotvec() * factor).as_matrix()
    delta = turned @ np.swapaxes(rot, 1, 2)
    steps = np.einsum("tij,tj->ti", delta[:-1], np.diff(c2w[:, :3, 3], axis=0))
    walked = np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
    centres = c2w[ref, :3, 3] + walked - walked[ref]
    return delta, centres
