"""Draws from a record's own stated uncertainty (schema v2), for stability scores and abstention.

The error model is the one written in :class:`~dsr.scene.record.ObjectTrack`'s docstring: along the camera
ray a part shared by all frames of the object (one draw per object) plus an independent part per frame,
and an independent isotropic error across the ray. Camera centres get an isotropic error per frame
(``position_sigma``). Ground-truth records (zero sigmas) give back their own values.
"""

from __future__ import annotations

import numpy as np

from dsr.scene.record import ObjectTrack, SceneRecord

Z_90 = 1.6448536269514722  # a two-sided 90% interval of a Gaussian is ±Z_90 sigma


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
