"""Ground-truth geometry as GSM input: a stand-in for π³ on rendered worlds (the miniature Table 5).

π³ turns frames into per-pixel 3D points. On a MuJoCo world we know them exactly: render the depth of the
sampled frames, take each 14×14 patch's nearest surface (its 10th-percentile depth: objects in these small
renders often cover less than half a patch, and a median would report the floor behind them), lift the patch
centre with the camera's intrinsics and
pose into world coordinates, and describe each patch by fixed Fourier features of its world XYZ and depth (in
units of the scene scale that the question rules use, ``dsr.qa.query.scene_scale``) plus the frame's camera
pose. The GSM reads these through ``gsm_feature_source="precomputed"``: the experiment tests the mechanism
(question-conditioned selection of geometry), not π³.

Layout (what ``geometry_features`` expects): per frame, per patch in row-major order, (T·gh·gw, C) float32.
Conventions: ``dsr.scene.frames`` (OpenCV camera, camera-to-world poses, pixel centres at integers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Fourier frequencies in cycles per scene-scale unit: 1/4 … 8.
FREQUENCIES = tuple(2.0**k / 4.0 for k in range(6))
#: Depths beyond this many scene scales (the sky) are clamped to it.
MAX_DEPTH = 4.0
#: The depth that stands for a patch: this percentile of its pixels' depths (the nearest surface in it).
PATCH_PERCENTILE = 10.0
#: Bump when the features change (cache file names carry it).
FEATURES_VERSION = 2
#: Per-patch feature width: (x, y, z, depth) × (sin, cos) × 6 bands + the 4 raw values + camera position (3) and
#: rotation (9).
FEATURE_DIM = 4 * 2 * len(FREQUENCIES) + 4 + 12


def render_depth(spec: Any, frames: Sequence[int]) -> np.ndarray:
    """(T, H, W) float32 z-depth in metres (distance along the optical axis) of ``frames`` of a world spec."""
    from dsr.world.render import WorldModel

    world = WorldModel(spec)
    out = []
    try:
        for frame in frames:
            world.pose(int(frame))
            world.renderer.update_scene(world.data, camera=world.camera_id)
            world.renderer.enable_depth_rendering()
            try:
                out.append(np.asarray(world.renderer.render(), dtype=np.float32))
            finally:
                world.renderer.disable_depth_rendering()
    finally:
        world.close()
    return np.stack(out)


def patch_points(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, *, patch: int = 14,
                 max_depth: float = np.inf, percentile: float = PATCH_PERCENTILE) -> tuple[np.ndarray, np.ndarray]:
    """Per patch, the ``percentile`` of its depths and the world point at that depth on the ray through its
    centre pixel.

    depth: (T, H, W) z-depth, H and W multiples of ``patch``; K: (T, 3, 3); c2w: (T, 4, 4) OpenCV.
    Returns (points_world (T, gh, gw, 3), depth (T, gh, gw)), depths clamped to ``max_depth``.
    """
    t, h, w = depth.shape
    if h % patch or w % patch:
        raise ValueError(f"depth maps {h}×{w} are not whole {patch}-pixel patches")
    gh, gw = h // patch, w // patch
    blocks = depth.reshape(t, gh, patch, gw, patch).transpose(0, 1, 3, 2, 4).reshape(t, gh, gw, -1)
    d = np.percentile(blocks, percentile, axis=-1)
    d = np.minimum(d, max_depth)
    u = np.arange(gw) * patch + (patch - 1) / 2  # patch centres in pixel coordinates
    v = np.arange(gh) * patch + (patch - 1) / 2
    uu, vv = np.meshgrid(u, v)  # (gh, gw)
    pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1)  # (gh, gw, 3)
    rays = np.einsum("tij,hwj->thwi", np.linalg.inv(K), pix)  # (T, gh, gw, 3), z = 1
    cam = rays * d[..., None]
    world = np.einsum("tij,thwj->thwi", c2w[:, :3, :3], cam) + c2w[:, None, None, :3, 3]
    return world, d


def fourier(values: np.ndarray, frequencies: Sequence[float] = FREQUENCIES) -> np.ndarray:
    """(..., n) → (..., n · 2 · len(frequencies)): sin and cos of 2π·f·v for each value and frequency."""
    angles = 2 * np.pi * values[..., :, None] * np.asarray(frequencies)  # (..., n, F)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).reshape(*values.shape[:-1], -1)


def geometry_features(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, scale: float, *,
                      patch: int = 14) -> np.ndarray:
    """(T·gh·gw, FEATURE_DIM) float32 per-patch features of one video (rows: frame, then patch row-major).

    depth (T, H, W) metres, K (T, 3, 3), c2w (T, 4, 4); lengths are divided by ``scale`` (the scene scale).
    """
    points, d = patch_points(depth / scale, K, _scaled(c2w, scale), patch=patch, max_depth=MAX_DEPTH)
    t, gh, gw = d.shape
    values = np.concatenate([points, d[..., None]], axis=-1)  # (T, gh, gw, 4)
    camera = np.concatenate([c2w[:, :3, 3] / scale, c2w[:, :3, :3].reshape(t, 9)], axis=-1)  # (T, 12)
    camera = np.broadcast_to(camera[:, None, None], (t, gh, gw, 12))
    feats = np.concatenate([fourier(values), np.clip(values, -MAX_DEPTH, MAX_DEPTH) / MAX_DEPTH, camera], axis=-1)
    return feats.reshape(t * gh * gw, FEATURE_DIM).astype(np.float32)


def _scaled(c2w: np.ndarray, scale: float) -> np.ndarray:
    out = c2w.copy()
    out[:, :3, 3] /= scale
    return out
