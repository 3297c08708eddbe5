"""Scripted motion helpers: quaternions, the integration time grid and the camera paths (pure numpy).

Object paths (scripted legs, speed profiles, kicks, collisions) live in :mod:`dsr.world.dynamics`.
Nothing here depends on the renderer, so the ground truth is exactly what is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dsr.scene.frames import look_at_c2w, make_pose, rotation_about_z

GRAVITY = 9.81


# --------------------------------------------------------------------------------------------------
# quaternions (w, x, y, z), as MuJoCo stores them


def quat_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) (axis × angle) → unit quaternions (..., 4)."""
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    half = 0.5 * angle
    scale = np.where(angle > 1e-12, np.sin(half) / np.where(angle > 1e-12, angle, 1.0), 0.5)
    return np.concatenate([np.cos(half), rotvec * scale], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) → rotation matrices (..., 3, 3)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


def quat_from_yaw(yaw: np.ndarray) -> np.ndarray:
    """Yaw angles (...,) about +z → quaternions (..., 4)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], axis=-1)


# --------------------------------------------------------------------------------------------------
# time


def fine_grid(num_frames: int, fps: float, max_step_s: float = 1.0 / 200.0) -> tuple[np.ndarray, int]:
    """Integration times covering frames 0..num_frames-1 and the number of steps per frame.

    Frame i is grid point ``i * substeps`` exactly, so sampling the grid needs no interpolation.
    """
    substeps = max(1, int(np.ceil((1.0 / fps) / max_step_s)))
    n = (num_frames - 1) * substeps + 1
    return np.arange(n) / (fps * substeps), substeps


# --------------------------------------------------------------------------------------------------
# camera speed profiles: an operator moves, holds still, moves again


@dataclass(frozen=True)
class Move:
    """Moving from ``start_s`` to ``end_s`` at ``speed`` (units/s; the sign is the direction), with the
    speed ramping linearly from and back to 0 over ``ramp_s`` at both ends (a trapezoid)."""

    start_s: float
    end_s: float
    speed: float
    ramp_s: float

    @property
    def travel(self) -> float:
        """Signed distance covered by the whole move: the trapezoid's area."""
        return self.speed * (self.end_s - self.start_s - self.ramp_s)

    def covered(self, t: np.ndarray) -> np.ndarray:
        """Signed distance covered by times ``t`` (0 before the move, ``travel`` after it)."""
        a, b, r, v = self.start_s, self.end_s, self.ramp_s, self.speed
        t = np.clip(np.asarray(t, dtype=np.float64), a, b)
        if r <= 0:
            return v * (t - a)
        rising = v * (t - a) ** 2 / (2 * r)
        cruising = v * (r / 2 + (t - a - r))
        falling = self.travel - v * (b - t) ** 2 / (2 * r)
        return np.where(t < a + r, rising, np.where(t < b - r, cruising, falling))


def travelled(t: np.ndarray, moves: Sequence[Move]) -> np.ndarray:
    """Position (N,) along a path at times ``t`` after ``moves`` (which must not overlap), from 0."""
    out = np.zeros(len(t))
    for m in moves:
        out += m.covered(t)
    return out


def stop_and_go(rng: np.random.Generator, duration: float, spots: Sequence[float],
                speed: tuple[float, float], ramp: tuple[float, float] = (0.4, 0.9),
                hold: tuple[float, float] = (1.5, 4.0), first_hold: tuple[float, float] = (0.5, 3.0)) -> list[Move]:
    """Moves from position 0 through the positions ``spots`` in turn, holding still between moves:
    each move at a speed drawn from ``speed`` (always positive; the direction follows the spot),
    the clip's end cutting the last one short."""
    moves: list[Move] = []
    t, here = float(rng.uniform(*first_hold)), 0.0
    for spot in spots:
        if t >= duration:
            break
        v = float(rng.uniform(*speed))
        r = float(rng.uniform(*ramp))
        distance = abs(spot - here)
        if distance == 0.0 or v == 0.0:
            continue
        moves.append(Move(t, t + distance / v + r, math.copysign(v, spot - here), r))
        t = moves[-1].end_s + float(rng.uniform(*hold))
        here = spot
    return moves


# --------------------------------------------------------------------------------------------------
# camera paths: each returns OpenCV c2w (N, 4, 4) for times t (N,)


def static_path(t: np.ndarray, eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.broadcast_to(look_at_c2w(eye, target), (len(t), 4, 4)).copy()


def pan_path(yaw: np.ndarray, eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Fixed eye; the view turns about the vertical axis by ``yaw`` (N,) radians from the target."""
    offset = target - eye
    return np.stack([look_at_c2w(eye, eye + rotation_about_z(float(a)) @ offset) for a in yaw])


def dolly_path(travel: np.ndarray, eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Fixed orientation; the camera is ``travel`` (N,) metres along its optical axis (negative = back)."""
    c2w0 = look_at_c2w(eye, target)
    return make_pose(np.broadcast_to(c2w0[:3, :3], (len(travel), 3, 3)), eye + travel[:, None] * c2w0[:3, 2])


def orbit_path(angle: np.ndarray, eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The eye circles the target's vertical axis by ``angle`` (N,) radians at constant distance and
    height, looking at the target."""
    offset = eye - target
    return np.stack([look_at_c2w(target + rotation_about_z(float(a)) @ offset, target) for a in angle])


@dataclass(frozen=True)
class Jitter:
    """Smooth random shake: per axis a sum of sinusoids (amplitudes, frequencies in Hz, phases)."""

    amplitude: np.ndarray  # (3, K)
    frequency_hz: np.ndarray  # (3, K)
    phase: np.ndarray  # (3, K)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """(N,) → (N, 3)."""
        arg = 2 * np.pi * self.frequency_hz[None] * t[:, None, None] + self.phase[None]
        return (self.amplitude[None] * np.sin(arg)).sum(axis=-1)


def random_jitter(rng: np.random.Generator, amplitude: float, components: int = 3) -> Jitter:
    amp = rng.uniform(0.5, 1.0, (3, components)) * amplitude / components * 1.6
    return Jitter(amplitude=amp, frequency_hz=rng.uniform(0.3, 1.6, (3, components)),
                  phase=rng.uniform(0, 2 * np.pi, (3, components)))


def handheld_path(t: np.ndarray, walk: np.ndarray, eye: np.ndarray, target: np.ndarray,
                  shake_pos: Jitter, shake_rot: Jitter) -> np.ndarray:
    """An operator walking: the eye at ``eye + walk`` (N, 3) plus smooth shake, looking at the target.

    ``shake_pos`` is in metres (world axes), ``shake_rot`` in radians about the camera's own x, y, z.
    """
    eyes = eye + walk + shake_pos(t)
    rot_shake = shake_rot(t)
    poses = []
    for e, r in zip(eyes, rot_shake, strict=True):
        base = look_at_c2w(e, target)
        poses.append(make_pose(base[:3, :3] @ quat_to_matrix(quat_from_rotvec(r)), e))
    return np.stack(poses)
