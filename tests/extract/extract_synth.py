"""A small numpy ray-caster for extraction tests: a textured room, a moving textured ball, exact GT.

World: z up; floor z = 0, walls at x = ±4 and y = 8, ceiling z = 3. Camera poses are OpenCV c2w built
with :func:`dsr.scene.frames.look_at_c2w`. Textures are blurred random noise (plenty of SIFT/LK
features), deterministic per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsr.scene.frames import look_at_c2w


@dataclass(frozen=True)
class SynthClip:
    frames: np.ndarray  # (N, H, W, 3) uint8
    c2w: np.ndarray  # (N, 4, 4) OpenCV camera-to-world
    K: np.ndarray  # (3, 3)
    ball_world: np.ndarray  # (N, 3) ball centre
    fps: float


def _texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    tex = np.zeros((size, size))
    for sigma, weight in ((1.0, 0.5), (3.0, 1.0), (8.0, 1.0)):
        tex += weight * gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap") * sigma
    tex = (tex - tex.min()) / (np.ptp(tex) + 1e-9)
    return tex


def _lookup(tex: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    n = tex.shape[0]
    iu = np.floor(np.nan_to_num(u * scale, posinf=0.0, neginf=0.0)).astype(np.int64) % n
    iv = np.floor(np.nan_to_num(v * scale, posinf=0.0, neginf=0.0)).astype(np.int64) % n
    return tex[iv, iu]


def render(c2w: np.ndarray, K: np.ndarray, hw: tuple[int, int], ball: np.ndarray | None, *, textured: bool = True,
           seed: int = 0, ball_radius: float = 0.45) -> np.ndarray:
    """One frame (H, W, 3) uint8 seen from ``c2w`` (4, 4); ``ball`` (3,) centre or None."""
    h, w = hw
    rng = np.random.default_rng(seed)
    texs = [_texture(rng) for _ in range(4)]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    d = rays_cam @ c2w[:3, :3].T
    o = c2w[:3, 3]
    best_t = np.full((h, w), np.inf)
    shade = np.zeros((h, w))
    tint = np.zeros((h, w, 3))
    # planes: (axis, value, texture index, in-plane axes, tint)
    planes = [(2, 0.0, 0, (0, 1), (0.9, 0.8, 0.6)), (2, 3.0, 1, (0, 1), (0.8, 0.8, 0.9)),
              (0, -4.0, 2, (1, 2), (0.6, 0.9, 0.7)), (0, 4.0, 2, (1, 2), (0.7, 0.7, 0.9)),
              (1, 8.0, 3, (0, 2), (0.9, 0.9, 0.9)), (1, -8.0, 3, (0, 2), (0.9, 0.7, 0.7))]
    for axis, value, ti, (a1, a2), col in planes:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - o[axis]) / d[..., axis]
        hit = (t > 1e-6) & (t < best_t)
        p = o + t[..., None] * d
        val = _lookup(texs[ti], p[..., a1], p[..., a2], 40.0) if textured else np.full((h, w), 0.5)
        best_t = np.where(hit, t, best_t)
        shade = np.where(hit, val, shade)
        tint = np.where(hit[..., None], np.array(col), tint)
    if ball is not None:
        oc = o - ball
        b = np.einsum("hwc,c->hw", d, oc)
        a = np.einsum("hwc,hwc->hw", d, d)
        c = oc @ oc - ball_radius**2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        hit = (disc > 0) & (t > 1e-6) & (t < best_t)
        p = o + t[..., None] * d - ball
        lon = np.arctan2(p[..., 1], p[..., 0])
        lat = np.arcsin(np.clip(p[..., 2] / ball_radius, -1, 1))
        val = _lookup(texs[1], lon, lat, 60.0) if textured else np.full((h, w), 0.5)
        shade = np.where(hit, 0.3 + 0.7 * val, shade)
        tint = np.where(hit[..., None], np.array([1.0, 0.35, 0.3]), tint)
    img = (0.15 + 0.85 * shade)[..., None] * tint
    if not textured:
        img = img + rng.normal(0, 0.004, img.shape)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def make_clip(n: int = 30, hw: tuple[int, int] = (180, 240), fps: float = 10.0, *, camera: str = "truck",
              ball: bool = True, textured: bool = True, seed: int = 0) -> SynthClip:
    """Camera motions: 'truck' (sideways + slight forward), 'pan' (rotate in place), 'static'."""
    h, w = hw
    f = 0.9 * w
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    s = np.linspace(0.0, 1.0, n)
    poses = []
    for k in s:
        if camera == "truck":
            # sideways and forward while turning towards a fixed point (rotation constrains the focal)
            eye = np.array([-1.5 + 3.0 * k, -3.0 + 0.8 * k, 1.5])
            target = np.array([0.0, 4.0, 0.6])
        elif camera == "pan":
            eye = np.array([0.0, -3.0, 1.5])
            ang = np.radians(-12 + 24 * k)
            target = eye + np.array([np.sin(ang), np.cos(ang), -0.15])
        elif camera == "static":
            eye = np.array([0.0, -3.0, 1.5])
            target = eye + np.array([0.0, 1.0, -0.15])
        else:
            raise ValueError(camera)
        poses.append(look_at_c2w(eye, target))
    c2w = np.stack(poses)
    ball_pos = np.stack([np.array([1.2 - 2.4 * k, 2.5 - 2.0 * k, 0.45]) for k in s])
    frames = np.stack([render(c2w[i], K, hw, ball_pos[i] if ball else None, textured=textured, seed=seed)
                       for i in range(n)])
    return SynthClip(frames=frames, c2w=c2w, K=K, ball_world=ball_pos, fps=fps)
