"""Object motion: scripted walkers and cars, kicked balls and boxes, simulated together (pure Python).

Objects are kinematic (MuJoCo mocap bodies): their poses are integrated here on a fine time grid, so
the ground truth is exactly what is rendered. Two kinds of bodies share one simulation:

* a **mover** (person, robot, car) follows a script of :class:`Leg` s. Each leg sets a target speed
  reached along a linear **ramp** (accelerate, brake, stop, cruise: :func:`ramp_speed`) and a way to
  steer: a constant turn rate (arcs, turning on the spot) or a :class:`Goal` — a place (approach or
  recede from the camera), another body to walk up to (stopping next to it) or into (pushing it),
  or a body to pass on its left or right. Near the rim of its stage disk it turns back inside, and
  it steps around other movers and resting things;
* a **thing** (ball, box) rests until a :class:`Kick` sends it somewhere, then bounces (gravity,
  restitution), slides or rolls without slipping to a stop under constant ground friction, and
  bounces off the movers' outlines, so walkers and cars push it along.

Both are integrated in one loop so that a mover can head for a thing that another mover has just
pushed. Every step is plain float arithmetic in a fixed order: equal scripts give equal paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRAVITY = 9.81
ARRIVED = 0.4  # a mover is at a place when this close (metres)
PASS_BEYOND, PASS_ASIDE = 1.6, 0.9  # where a pass leads: this far past the body and this far to its side


# --------------------------------------------------------------------------------------------------
# scripts


def ramp_speed(t: float, start_s: float, v_from: float, v_to: float, ramp_s: float) -> float:
    """The speed command of a leg at time ``t``: linear from ``v_from`` (at ``start_s``) to ``v_to``
    over ``ramp_s`` seconds, then ``v_to`` (a ramp of 0 s is a step)."""
    if ramp_s <= 0.0 or t >= start_s + ramp_s:
        return v_to
    f = max(0.0, (t - start_s) / ramp_s)
    return v_from + (v_to - v_from) * f


@dataclass(frozen=True)
class Goal:
    """Where a leg heads: a place, or another ``body`` of the simulation.

    points: candidate places (x, y); the leg heads for the one farthest from the mover when the leg
    starts (one point: a fixed place), so that a walk to "somewhere" crosses the stage. The mover
    brakes so as to stop at the place and waits there until the next leg.

    body: index into ``movers + things`` of :func:`simulate`. With ``side`` 0 the mover heads for the
    body wherever it goes and stands still once within ``stop_within`` metres of its centre; a
    ``stop_within`` of 0 walks into it (a thing is pushed along). With ``side`` +1 / −1 the mover
    passes the body on the body's left / right as seen from the mover: the place is fixed when the
    leg starts, ``PASS_BEYOND`` metres past the body and ``PASS_ASIDE`` to that side.
    """

    points: tuple[tuple[float, float], ...] = ()
    body: int | None = None
    side: float = 0.0
    stop_within: float = 0.0

    def __post_init__(self) -> None:
        if bool(self.points) == (self.body is not None):
            raise ValueError("a goal is either places or a body")


@dataclass(frozen=True)
class Leg:
    """One phase of a mover's script, from ``start_s`` until the next leg starts.

    speed: target speed (m/s), reached ``ramp_s`` seconds after the leg starts (from the speed the
    mover had then); turn_rate: rad/s (+ = left) when there is no goal, until it has turned by
    ``turn_limit`` radians; then it goes straight on. A leg with neither a goal nor a turn rate
    changes the speed only: the mover keeps heading for the goal of the leg before, if any.
    """

    name: str
    start_s: float
    speed: float
    ramp_s: float = 0.0
    turn_rate: float = 0.0
    turn_limit: float = math.inf
    goal: Goal | None = None


@dataclass(frozen=True)
class Mover:
    """A walker or a car: its script and how it moves.

    stage_center, stage_radius: the disk it keeps to: when it is about to leave it (with no goal to
    head for), it turns round and heads back across, to a point as far inside the disk as it is
    outside the inner half; it never goes further than ``limit_radius`` from the centre (it slides
    along that circle).
    accel: m/s², the most its speed changes per second (ramps slower than this are followed exactly).
    lookahead: metres ahead it checks for the rim and for others; max_turn_rate: rad/s;
    radius: its footprint for avoidance; half_x, half_y: its outline seen from above (things bounce
    off it); min_turn_radius > 0 (a car): the turn rate is at most speed / radius.
    """

    legs: tuple[Leg, ...]
    start_xy: tuple[float, float]
    start_yaw: float
    stage_center: tuple[float, float]
    stage_radius: float
    accel: float
    lookahead: float
    max_turn_rate: float
    radius: float
    half_x: float
    half_y: float
    min_turn_radius: float = 0.0
    limit_radius: float = math.inf


@dataclass(frozen=True)
class Kick:
    """At ``start_s`` a thing is launched: with ``velocity`` (m/s, world), or along the floor toward
    ``toward`` (x, y) just fast enough for friction to stop it there (``hop``: upward speed added,
    m/s); ``spin_rate``: yaw rate at launch (rad/s, boxes)."""

    start_s: float
    velocity: tuple[float, float, float] | None = None
    toward: tuple[float, float] | None = None
    hop: float = 0.0
    spin_rate: float = 0.0
    max_speed: float = 6.0

    def launch(self, px: float, py: float, ground_decel: float) -> tuple[float, float, float]:
        """The launch velocity from (px, py)."""
        if self.velocity is not None:
            return self.velocity
        assert self.toward is not None
        dx, dy = self.toward[0] - px, self.toward[1] - py
        d = math.hypot(dx, dy)
        if d < 1e-9:
            return (0.0, 0.0, self.hop)
        # slide: d = v²/(2a); while airborne for T = 2·hop/g it travels v·T without friction
        air = 2.0 * self.hop / GRAVITY
        a = ground_decel
        v = a * (-air + math.sqrt(air * air + 2.0 * d / a)) if a > 0 else self.max_speed
        v = min(v, self.max_speed)
        return (v * dx / d, v * dy / d, self.hop)


@dataclass(frozen=True)
class Thing:
    """A ball or box: where it starts, its kicks and its physics.

    rolling_radius: a ball rolls without slipping on the floor (rotation from its displacement);
    None: a box keeps upright and spins about z, the spin decaying on the floor. ``radius``: the
    disk it bounces off movers with; it bounces back off the circle of ``rim_radius`` about
    ``rim_center`` (the arena's edge).
    """

    start: tuple[float, float, float]
    kicks: tuple[Kick, ...]
    rest_height: float
    radius: float
    restitution: float
    ground_decel: float
    rolling_radius: float | None
    rim_center: tuple[float, float] = (0.0, 0.0)
    rim_radius: float = math.inf
    spin_decay: float = 2.0


# --------------------------------------------------------------------------------------------------
# the joint simulation


@dataclass
class _Outline:
    """A mover's outline at one step, as things see it: centre, yaw, half extents, velocity."""

    x: float
    y: float
    yaw: float
    half_x: float
    half_y: float
    vx: float
    vy: float


class _ThingState:
    """A thing's state, advanced one step at a time (scalar code: thousands of steps)."""

    def __init__(self, thing: Thing) -> None:
        self.thing = thing
        self.px, self.py = float(thing.start[0]), float(thing.start[1])
        self.pz = max(float(thing.start[2]), thing.rest_height)
        self.vx = self.vy = self.vz = 0.0
        self.q = (1.0, 0.0, 0.0, 0.0)
        self.wx = self.wy = self.wz = 0.0
        self.next_kick = 0

    def step(self, t: float, dt: float, outlines: Sequence[_Outline]) -> None:
        th = self.thing
        while self.next_kick < len(th.kicks) and t >= th.kicks[self.next_kick].start_s:
            kick = th.kicks[self.next_kick]
            self.vx, self.vy, self.vz = kick.launch(self.px, self.py, th.ground_decel)
            self.wz = float(kick.spin_rate)
            self.next_kick += 1
        rest = th.rest_height
        if self.pz > rest + 1e-9 or self.vz > 0:  # airborne
            self.vz -= GRAVITY * dt
        mx, my = self.vx * dt, self.vy * dt
        self.px, self.py, self.pz = self.px + mx, self.py + my, self.pz + self.vz * dt
        if self.pz < rest:
            self.pz = rest
            self.vz = -th.restitution * self.vz if abs(self.vz) > 0.6 else 0.0
        on_floor = self.pz <= rest + 1e-9 and self.vz == 0.0
        if on_floor:
            speed = math.hypot(self.vx, self.vy)
            if speed > 0:
                keep = max(0.0, speed - th.ground_decel * dt) / speed
                self.vx, self.vy = self.vx * keep, self.vy * keep
        for o in outlines:
            self._bounce_off(o)
        cx, cy = th.rim_center
        r = math.hypot(self.px - cx, self.py - cy)
        if r > th.rim_radius:  # bounce off the arena's rim back inwards
            nx, ny = (self.px - cx) / r, (self.py - cy) / r
            vn = self.vx * nx + self.vy * ny
            if vn > 0:
                self.vx -= (1 + th.restitution) * vn * nx
                self.vy -= (1 + th.restitution) * vn * ny
            self.px, self.py = cx + nx * th.rim_radius, cy + ny * th.rim_radius
        if th.rolling_radius is not None:
            if on_floor and dt > 0:  # rolling without slipping over this step's displacement: ω = up × v / r
                self.wx, self.wy, self.wz = -my / dt / th.rolling_radius, mx / dt / th.rolling_radius, 0.0
        elif on_floor:
            self.wz *= max(0.0, 1.0 - th.spin_decay * dt)
        self.q = _quat_step(self.q, self.wx * dt, self.wy * dt, self.wz * dt)

    def _bounce_off(self, o: _Outline) -> None:
        """Resolve the thing's disk against a mover's rectangle (pushed out, relative velocity reflected)."""
        radius, e = self.thing.radius, self.thing.restitution
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        lx, ly = c * (self.px - o.x) + s * (self.py - o.y), -s * (self.px - o.x) + c * (self.py - o.y)
        qx, qy = min(max(lx, -o.half_x), o.half_x), min(max(ly, -o.half_y), o.half_y)
        dx, dy = lx - qx, ly - qy
        dist = math.hypot(dx, dy)
        if dist >= radius:
            return
        if dist > 1e-9:
            nx, ny = dx / dist, dy / dist
        else:  # centre inside the rectangle: leave by the nearest side
            gaps = (o.half_x - lx, o.half_x + lx, o.half_y - ly, o.half_y + ly)
            nx, ny = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))[gaps.index(min(gaps))]
            qx = o.half_x * nx if nx else lx
            qy = o.half_y * ny if ny else ly
        lx, ly = qx + nx * radius, qy + ny * radius  # pushed out to touching
        wnx, wny = c * nx - s * ny, s * nx + c * ny  # the normal in world axes
        self.px, self.py = o.x + c * lx - s * ly, o.y + s * lx + c * ly
        vn = (self.vx - o.vx) * wnx + (self.vy - o.vy) * wny
        if vn < 0:  # approaching: reflect the relative velocity along the normal
            self.vx -= (1 + e) * vn * wnx
            self.vy -= (1 + e) * vn * wny


def _wrap(angle: float) -> float:
    """An angle in [−π, π)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class _MoverState:
    """A mover's state and the controller that turns its script into a speed and a turn rate."""

    def __init__(self, mover: Mover) -> None:
        self.m = mover
        self.x, self.y = float(mover.start_xy[0]), float(mover.start_xy[1])
        self.psi = float(mover.start_yaw)
        self.v = 0.0
        self.leg = -1
        self.leg_v0 = 0.0
        self.goal: Goal | None = None  # the goal pursued: the leg's own, or one a speed-only leg carries on
        self.goal_xy: tuple[float, float] | None = None
        self.goal_done = False
        self.parked = False  # arrived at its place: standing until the next leg
        self.detour: tuple[float, float] | None = None  # where it heads back to after nearly leaving the stage
        self.turned = 0.0  # radians turned by the leg's own turn rate
        self.bend_side: dict[int, float] = {}  # the side it steps around each body on, while in its way

    def _enter_legs(self, t: float, bodies: Sequence[tuple[float, float]]) -> None:
        legs = self.m.legs
        while self.leg + 1 < len(legs) and t >= legs[self.leg + 1].start_s:
            self.leg += 1
            self.leg_v0 = self.v
            self.turned = 0.0
            self.parked = False
            leg = legs[self.leg]
            if leg.goal is None and leg.turn_rate == 0.0 and not self.goal_done:
                continue  # a change of speed only: it keeps going where it was going
            self.goal = goal = leg.goal
            self.goal_done = False
            self.goal_xy = None
            self.detour = None
            if goal is not None and goal.points:
                self.goal_xy = max(goal.points, key=lambda p: math.hypot(p[0] - self.x, p[1] - self.y))
            elif goal is not None and goal.body is not None and goal.side != 0.0:
                bx, by = bodies[goal.body]
                ux, uy = bx - self.x, by - self.y
                d = math.hypot(ux, uy) or 1.0
                ux, uy = ux / d, uy / d
                # the body's left as seen from the mover is the mover's left: (−uy, ux)
                gx = bx + PASS_BEYOND * ux - goal.side * PASS_ASIDE * uy
                gy = by + PASS_BEYOND * uy + goal.side * PASS_ASIDE * ux
                self.goal_xy = self._inside(gx, gy, 0.9)

    def _inside(self, x: float, y: float, fraction: float) -> tuple[float, float]:
        """(x, y) pulled in to at most ``fraction`` of the stage radius from its centre."""
        cx, cy = self.m.stage_center
        r = math.hypot(x - cx, y - cy)
        limit = fraction * self.m.stage_radius
        if r <= limit:
            return (x, y)
        return (cx + (x - cx) * limit / r, cy + (y - cy) * limit / r)

    def _arrived(self, x: float, y: float) -> bool:
        """At (x, y), or just past it (it lies behind and near): a fast mover cannot circle a point."""
        dx, dy = x - self.x, y - self.y
        d = math.hypot(dx, dy)
        return d < ARRIVED or (d < 1.2 and dx * math.cos(self.psi) + dy * math.sin(self.psi) < 0)

    def control(self, t: float, dt: float, me: int, bodies: Sequence[tuple[float, float, float]]) -> float:
        """Update the speed for this step and return the turn rate; ``bodies``: (x, y, footprint radius)
        of every body (a radius < 0 marks a body not to step around).

        The mover picks a heading — toward its goal, back across the stage, or its own (turning at
        the leg's rate) — and bends it around anyone in the way: if the heading points into the cone
        where it would pass closer than its clearance to another body ahead, it takes the cone's
        nearer edge instead. It then turns toward that heading as fast as it may.
        """
        m = self.m
        self._enter_legs(t, [(b[0], b[1]) for b in bodies])
        if self.leg < 0:  # before the first leg: stand still
            self.v = max(0.0, self.v - m.accel * dt)
            return 0.0
        leg = m.legs[self.leg]
        speed = ramp_speed(t, leg.start_s, self.leg_v0, leg.speed, leg.ramp_s)
        fx, fy = math.cos(self.psi), math.sin(self.psi)
        goal = self.goal
        target: tuple[float, float] | None = None
        if goal is not None and not self.goal_done:
            if goal.body is not None and goal.side == 0.0:
                target = (bodies[goal.body][0], bodies[goal.body][1])
                brake = self.v * self.v / (2.0 * m.accel)
                if goal.stop_within > 0 and math.hypot(target[0] - self.x, target[1] - self.y) < goal.stop_within + brake:
                    speed = 0.0  # (about to be) next to it: stop there and face it
            elif self.goal_xy is not None:
                gap = math.hypot(self.goal_xy[0] - self.x, self.goal_xy[1] - self.y)
                if gap < ARRIVED + self.v * self.v / (2.0 * m.accel):
                    speed = 0.0  # (about to be) there: stop at the place ...
                if self._arrived(*self.goal_xy):
                    self.goal_done = self.parked = True  # ... and wait there for the next leg
                else:
                    target = self.goal_xy
        if self.parked:
            speed = 0.0
        cx, cy = m.stage_center
        if target is None and self.detour is not None:
            if self._arrived(*self.detour):
                self.detour = None
            else:
                target = self.detour
        if target is None and speed > 0.3:
            reach = m.lookahead + 0.5 * self.v
            if math.hypot(self.x + fx * reach - cx, self.y + fy * reach - cy) > m.stage_radius:
                # about to leave the stage: head back across it
                self.detour = self._inside(2 * cx - self.x, 2 * cy - self.y, 0.5)
                target = self.detour
        free_turn = target is None and abs(self.turned) < leg.turn_limit
        if target is not None:
            heading = math.atan2(target[1] - self.y, target[0] - self.x)
        else:
            heading = self.psi + (leg.turn_rate * dt if free_turn else 0.0)
        ignore = goal.body if goal is not None and goal.body is not None and goal.side == 0.0 else -1
        bent = False
        close: list[float] = []  # directions of bodies within the clearance
        for j, (ox, oy, radius) in enumerate(bodies):
            if j in (me, ignore) or radius < 0:
                continue
            dx, dy = ox - self.x, oy - self.y
            dist = math.hypot(dx, dy)
            clearance = m.radius + radius + 0.25
            if dist > clearance + 0.3 + 0.5 * self.v or dx * fx + dy * fy <= 0:
                continue  # far, or behind
            toward = math.atan2(dy, dx)
            if dist < clearance:
                close.append(toward)
            half = math.asin(min(1.0, clearance / dist))
            off = _wrap(heading - toward)
            if abs(off) < half:  # the heading runs into it: take the cone's nearer edge, and keep to that side
                side = self.bend_side.setdefault(j, math.copysign(1.0, off) if off != 0.0 else 1.0)
                heading = toward + side * half
                bent = True
            else:
                self.bend_side.pop(j, None)
        if any(abs(_wrap(heading - toward)) < math.pi / 3 for toward in close):
            speed = min(speed, 0.3)  # pressed against someone and still heading into them: shuffle
        if free_turn and not bent:
            rate = leg.turn_rate
            self.turned += rate * dt
        else:
            rate = min(max(3.0 * _wrap(heading - self.psi), -m.max_turn_rate), m.max_turn_rate)
        self.v += min(max(speed - self.v, -m.accel * dt), m.accel * dt)
        if m.min_turn_radius > 0:
            limit = self.v / m.min_turn_radius
            rate = min(max(rate, -limit), limit)
        return rate

    def move(self, rate: float, dt: float) -> None:
        fx, fy = math.cos(self.psi), math.sin(self.psi)
        self.psi += rate * dt
        self.x += fx * self.v * dt
        self.y += fy * self.v * dt
        cx, cy = self.m.stage_center
        r = math.hypot(self.x - cx, self.y - cy)
        if r > self.m.limit_radius:  # a safety net the steering above rarely needs
            self.x = cx + (self.x - cx) * self.m.limit_radius / r
            self.y = cy + (self.y - cy) * self.m.limit_radius / r


def simulate(times: np.ndarray, movers: Sequence[Mover], things: Sequence[Thing] = ()
             ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """Move every body through its script together on the time grid ``times`` (uniform steps).

    Returns per mover (xy (n, 2), yaw (n,)) and per thing (centres (n, 3), quaternions (n, 4) wxyz).
    Goals name bodies by index into ``list(movers) + list(things)``.
    """
    n = len(times)
    dt = float(times[1] - times[0]) if n > 1 else 0.0
    ms = [_MoverState(m) for m in movers]
    ts = [_ThingState(th) for th in things]
    mover_out = np.empty((len(ms), n, 3))
    thing_pos = np.empty((len(ts), n, 3))
    thing_quat = np.empty((len(ts), n, 4))
    for k in range(n):
        t = float(times[k])
        for i, s in enumerate(ms):
            mover_out[i, k] = (s.x, s.y, s.psi)
        for i, s in enumerate(ts):
            thing_pos[i, k] = (s.px, s.py, s.pz)
            thing_quat[i, k] = s.q
        if k == n - 1:
            break
        # what the movers see: everyone's position now; they step around one another, not around balls
        # and boxes, which they bump and push along
        bodies = [(s.x, s.y, s.m.radius) for s in ms]
        bodies += [(s.px, s.py, -1.0) for s in ts]
        rates = [s.control(t, dt, i, bodies) for i, s in enumerate(ms)]
        outlines = []
        for s, rate in zip(ms, rates, strict=True):  # everyone moves at once, from the same snapshot
            x0, y0 = s.x, s.y
            s.move(rate, dt)
            outlines.append(_Outline(s.x, s.y, s.psi, s.m.half_x, s.m.half_y,
                                     (s.x - x0) / dt if dt else 0.0, (s.y - y0) / dt if dt else 0.0))
        for s in ts:
            s.step(t, dt, outlines)
    movers_paths = [(mover_out[i, :, :2].copy(), mover_out[i, :, 2].copy()) for i in range(len(ms))]
    return movers_paths, [(thing_pos[i], thing_quat[i]) for i in range(len(ts))]


def ballistic_path(times: np.ndarray, thing: Thing, blockers: Sequence[tuple[np.ndarray, float, float]] = ()
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One thing alone, bouncing off movers whose paths are given: ``blockers`` are (path (n, 3) of
    x, y, yaw on ``times``, half_x, half_y). Returns centres (n, 3) and quaternions (n, 4)."""
    n = len(times)
    dt = float(times[1] - times[0]) if n > 1 else 0.0
    state = _ThingState(thing)
    pos, quat = np.empty((n, 3)), np.empty((n, 4))
    for k in range(n):
        pos[k] = (state.px, state.py, state.pz)
        quat[k] = state.q
        if k == n - 1:
            break
        outlines = []
        for path, hx, hy in blockers:
            x, y, yaw = (float(c) for c in path[k + 1])
            vx, vy = ((x - float(path[k, 0])) / dt, (y - float(path[k, 1])) / dt) if dt else (0.0, 0.0)
            outlines.append(_Outline(x, y, yaw, hx, hy, vx, vy))
        state.step(float(times[k]), dt, outlines)
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
