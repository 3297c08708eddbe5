"""Scripted motion: camera paths and object paths as pure functions of time and parameters.

Objects are kinematic (MuJoCo mocap bodies): their poses are integrated here on a fine time grid,
with simple closed-form physics for balls and boxes (gravity, bounces with restitution, friction,
rolling without slipping), and steering controllers for agents and cars. Nothing depends on the
renderer, so the ground truth is exactly what is rendered.
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
# camera paths: each returns OpenCV c2w (N, 4, 4) for times t (N,) over a clip of duration d


def _ease(t: np.ndarray, d: float) -> np.ndarray:
    """0 → 1 with zero velocity at both ends (half cosine)."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(t / d, 0.0, 1.0)))


def static_path(t: np.ndarray, eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.broadcast_to(look_at_c2w(eye, target), (len(t), 4, 4)).copy()


def pan_path(t: np.ndarray, d: float, eye: np.ndarray, target: np.ndarray, amplitude_rad: float) -> np.ndarray:
    """Fixed eye; the view sweeps about the vertical axis from −amplitude to +amplitude."""
    yaw = amplitude_rad * (2.0 * _ease(t, d) - 1.0)
    offset = target - eye
    return np.stack([look_at_c2w(eye, eye + rotation_about_z(float(a)) @ offset) for a in yaw])


def dolly_path(t: np.ndarray, d: float, eye: np.ndarray, target: np.ndarray, distance: float) -> np.ndarray:
    """Fixed orientation; the camera moves ``distance`` along its optical axis (negative = backwards)."""
    c2w0 = look_at_c2w(eye, target)
    travel = distance * _ease(t, d)
    return make_pose(np.broadcast_to(c2w0[:3, :3], (len(t), 3, 3)), eye + travel[:, None] * c2w0[:3, 2])


def orbit_path(t: np.ndarray, d: float, eye: np.ndarray, target: np.ndarray, sweep_rad: float) -> np.ndarray:
    """The eye circles the target's vertical axis at constant distance and height, looking at it."""
    angle = sweep_rad * _ease(t, d)
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


def handheld_path(t: np.ndarray, d: float, eye: np.ndarray, target: np.ndarray, drift: np.ndarray,
                  shake_pos: Jitter, shake_rot: Jitter) -> np.ndarray:
    """A slow walk along ``drift`` (metres over the clip) looking at the target, plus smooth shake.

    ``shake_pos`` is in metres (world axes), ``shake_rot`` in radians about the camera's own x, y, z.
    """
    frac = _ease(t, d)
    eyes = eye + frac[:, None] * drift + shake_pos(t)
    rot_shake = shake_rot(t)
    poses = []
    for e, f, r in zip(eyes, frac, rot_shake, strict=True):
        base = look_at_c2w(e, target + f * drift)
        poses.append(make_pose(base[:3, :3] @ quat_to_matrix(quat_from_rotvec(r)), e))
    return np.stack(poses)


# --------------------------------------------------------------------------------------------------
# object paths, integrated on the fine grid


@dataclass(frozen=True)
class Action:
    """A scripted behaviour from ``start_s`` on: target speed (m/s) and turn rate (rad/s)."""

    name: str
    start_s: float
    speed: float
    turn_rate: float


@dataclass(frozen=True)
class Mover:
    """A walker or a car: its script and how it moves.

    Speed follows the current action's target with limited ``accel``; near the edge of the disk of
    ``arena_radius`` it slows to ``edge_speed`` and turns back toward the centre; ``min_turn_radius``
    > 0 (a car) limits the turn rate to speed / radius; ``radius`` is its footprint for avoidance.
    It never goes further than ``limit_radius`` from the origin (it slides along that circle instead).
    """

    actions: tuple[Action, ...]
    start_xy: tuple[float, float]
    start_yaw: float
    arena_radius: float
    accel: float
    lookahead: float
    max_turn_rate: float
    radius: float
    min_turn_radius: float = 0.0
    edge_speed: float = math.inf
    limit_radius: float = math.inf


def steer_paths(times: np.ndarray, movers: Sequence[Mover],
                obstacles: Sequence[tuple[np.ndarray, float]] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
    """Move every mover through its actions together, so that they can avoid one another.

    ``obstacles`` are scripted paths on the same time grid, (n, 2) with a footprint radius (balls,
    boxes). When another mover or an obstacle is on a collision course close ahead, a mover turns away
    from it and brakes if very close; staying in the arena wins over avoidance. Returns per mover
    positions (n, 2) and yaw (n,).
    """
    # plain floats: this loop runs thousands of steps on scalars, where numpy's overhead dominates
    n, count = len(times), len(movers)
    dt = float(times[1] - times[0]) if n > 1 else 0.0
    out = np.empty((count, n, 3))
    x = [float(m.start_xy[0]) for m in movers]
    y = [float(m.start_xy[1]) for m in movers]
    psi = [float(m.start_yaw) for m in movers]
    v = [0.0] * count
    act = [0] * count
    for k in range(n):
        others = [(x[j], y[j], movers[j].radius) for j in range(count)]
        others += [(float(path[k, 0]), float(path[k, 1]), radius) for path, radius in obstacles]
        rates = [0.0] * count
        for i, m in enumerate(movers):
            out[i, k] = (x[i], y[i], psi[i])
            while act[i] + 1 < len(m.actions) and times[k] >= m.actions[act[i] + 1].start_s:
                act[i] += 1
            action = m.actions[act[i]]
            fx, fy = math.cos(psi[i]), math.sin(psi[i])
            speed, rate = action.speed, action.turn_rate
            reach = m.lookahead + v[i]
            if math.hypot(x[i] + fx * reach, y[i] + fy * reach) > m.arena_radius:
                # heading out of the arena: slow down and turn toward the centre, the short way round
                rate = m.max_turn_rate if fx * -y[i] - fy * -x[i] >= 0 else -m.max_turn_rate
                speed = min(speed, m.edge_speed)
            if math.hypot(x[i], y[i]) < m.arena_radius - 0.5:
                for j, (ox, oy, radius) in enumerate(others):
                    if j == i:
                        continue
                    dx, dy = ox - x[i], oy - y[i]
                    ahead, side = fx * dx + fy * dy, fx * dy - fy * dx
                    clearance = m.radius + radius + 0.25
                    if 0 < ahead < clearance + 0.5 + v[i] and abs(side) < clearance:  # on a collision course
                        rate = -m.max_turn_rate if side > 0 else m.max_turn_rate
                        if math.hypot(dx, dy) < clearance + 0.2:
                            speed = min(speed, 0.3)
                        break
            v[i] += min(max(speed - v[i], -m.accel * dt), m.accel * dt)
            if m.min_turn_radius > 0:
                limit = v[i] / m.min_turn_radius
                rate = min(max(rate, -limit), limit)
            rates[i] = rate
        for i in range(count):  # everyone moves at once, from the same snapshot
            fx, fy = math.cos(psi[i]), math.sin(psi[i])
            psi[i] += rates[i] * dt
            x[i] += fx * v[i] * dt
            y[i] += fy * v[i] * dt
            r = math.hypot(x[i], y[i])
            if r > movers[i].limit_radius:  # a safety net the steering above rarely needs
                x[i], y[i] = x[i] * movers[i].limit_radius / r, y[i] * movers[i].limit_radius / r
    return [(out[i, :, :2].copy(), out[i, :, 2].copy()) for i in range(count)]


@dataclass(frozen=True)
class Throw:
    """A ball or box at rest until ``start_s``, then launched with ``velocity`` (m/s, world)."""

    start_s: float
    velocity: tuple[float, float, float]
    spin_rate: float = 0.0  # yaw rate (rad/s) at launch; boxes only


@dataclass(frozen=True)
class Blocker:
    """A moving upright rectangle that balls and boxes bounce off: a mover's outline seen from above.

    path: (n, 3) x, y, yaw on the integration grid; half_x, half_y: half extents along its forward
    and left axes.
    """

    path: np.ndarray
    half_x: float
    half_y: float


def ballistic_path(times: np.ndarray, start: np.ndarray, throw: Throw, *, rest_height: float,
                   arena_radius: float, restitution: float, ground_decel: float, rolling_radius: float | None,
                   spin_decay: float = 2.0, radius: float = 0.0,
                   blockers: Sequence[Blocker] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Bounce, slide or roll to a stop: gravity, restitution at the floor, constant ground friction.

    ``rolling_radius``: a ball rolls without slipping on the floor (rotation from its displacement);
    None: a box keeps upright and spins about z, its spin decaying on the floor.
    ``blockers``: movers it bounces off (as a disk of ``radius`` against their outlines), pushed
    along when they walk into it. Returns centres (n, 3) and orientations (n, 4) wxyz.
    """
    n = len(times)
    dt = float(times[1] - times[0]) if n > 1 else 0.0
    pos = np.empty((n, 3))
    quat = np.empty((n, 4))
    px, py, pz = float(start[0]), float(start[1]), max(float(start[2]), rest_height)
    vx = vy = vz = 0.0
    q = (1.0, 0.0, 0.0, 0.0)
    wx = wy = wz = 0.0  # angular velocity, world frame
    launched = False
    for k in range(n):
        pos[k] = (px, py, pz)
        quat[k] = q
        if not launched and times[k] >= throw.start_s:
            vx, vy, vz = (float(c) for c in throw.velocity)
            wz = float(throw.spin_rate)
            launched = True
        if pz > rest_height + 1e-9 or vz > 0:  # airborne
            vz -= GRAVITY * dt
        mx, my = vx * dt, vy * dt
        px, py, pz = px + mx, py + my, pz + vz * dt
        if pz < rest_height:
            pz = rest_height
            vz = -restitution * vz if abs(vz) > 0.6 else 0.0
        on_floor = pz <= rest_height + 1e-9 and vz == 0.0
        if on_floor:
            speed = math.hypot(vx, vy)
            if speed > 0:
                keep = max(0.0, speed - ground_decel * dt) / speed
                vx, vy = vx * keep, vy * keep
        for blocker in blockers:
            px, py, vx, vy = _bounce_off(blocker, min(k + 1, n - 1), dt, px, py, vx, vy, radius, restitution)
        r = math.hypot(px, py)
        if r > arena_radius:  # bounce off the arena's rim back inwards
            nx, ny = px / r, py / r
            vn = vx * nx + vy * ny
            if vn > 0:
                vx, vy = vx - (1 + restitution) * vn * nx, vy - (1 + restitution) * vn * ny
            px, py = nx * arena_radius, ny * arena_radius
        if rolling_radius is not None:
            if on_floor and dt > 0:  # rolling without slipping over this step's displacement: ω = up × v / r
                wx, wy, wz = -my / dt / rolling_radius, mx / dt / rolling_radius, 0.0
        elif on_floor:
            wz *= max(0.0, 1.0 - spin_decay * dt)
        q = _quat_step(q, wx * dt, wy * dt, wz * dt)
    return pos, quat


def _quat_step(q: tuple[float, float, float, float], rx: float, ry: float, rz: float) -> tuple[float, float, float, float]:
    """exp(rotation vector r) ⊗ q, renormalised (scalar code for the integrators)."""
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle < 1e-15:
        return q
    s = math.sin(0.5 * angle) / angle
    aw, ax, ay, az = math.cos(0.5 * angle), rx * s, ry * s, rz * s
    bw, bx, by, bz = q
    w = aw * bw - ax * bx - ay * by - az * bz
    x = aw * bx + ax * bw + ay * bz - az * by
    y = aw * by - ax * bz + ay * bw + az * bx
    z = aw * bz + ax * by - ay * bx + az * bw
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    return (w / norm, x / norm, y / norm, z / norm)


def _bounce_off(blocker: Blocker, k: int, dt: float, px: float, py: float, vx: float, vy: float, radius: float,
                restitution: float) -> tuple[float, float, float, float]:
    """Resolve a disk (centre p, velocity v) against a blocker's rectangle at grid step k."""
    bx, by, yaw = (float(c) for c in blocker.path[k])
    c, s = math.cos(yaw), math.sin(yaw)
    lx, ly = c * (px - bx) + s * (py - by), -s * (px - bx) + c * (py - by)  # disk centre in blocker frame
    qx, qy = min(max(lx, -blocker.half_x), blocker.half_x), min(max(ly, -blocker.half_y), blocker.half_y)
    dx, dy = lx - qx, ly - qy
    dist = math.hypot(dx, dy)
    if dist >= radius:
        return px, py, vx, vy
    if dist > 1e-9:
        nx, ny = dx / dist, dy / dist
    else:  # centre inside the rectangle: leave by the nearest side
        gaps = (blocker.half_x - lx, blocker.half_x + lx, blocker.half_y - ly, blocker.half_y + ly)
        nx, ny = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))[gaps.index(min(gaps))]
        qx, qy = lx, ly
        qx = blocker.half_x * nx if nx else qx
        qy = blocker.half_y * ny if ny else qy
    lx, ly = qx + nx * radius, qy + ny * radius  # pushed out to touching
    wnx, wny = c * nx - s * ny, s * nx + c * ny  # the normal in world axes
    px, py = bx + c * lx - s * ly, by + s * lx + c * ly
    prev = blocker.path[k - 1] if k > 0 else blocker.path[k]
    mvx, mvy = ((bx - float(prev[0])) / dt, (by - float(prev[1])) / dt) if dt > 0 else (0.0, 0.0)
    vn = (vx - mvx) * wnx + (vy - mvy) * wny
    if vn < 0:  # approaching: reflect the relative velocity along the normal
        vx, vy = vx - (1 + restitution) * vn * wnx, vy - (1 + restitution) * vn * wny
    return px, py, vx, vy
