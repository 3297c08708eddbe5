"""Seeded scene generation: WorldConfig → SceneSpec, a pure function of the config (and its seed).

A world is a square room with procedurally textured floor and walls and a few textured props by
the walls (features for structure-from-motion), moving objects on a central disk (the stage) and a
camera outside it looking in. Every pose of every frame is decided here; the renderer only draws
them, so the spec *is* the ground truth.

The stage fits in the camera's view, so objects that keep to it stay (mostly) in view. Walkers,
robots and the car follow scripts of legs (:mod:`dsr.world.dynamics`) that make the answers of
every question type vary: they stop and go, speed up and brake, cruise at distinct speeds, turn,
walk toward and away from the camera, up to and past one another, and push balls and boxes; balls
and boxes are kicked across the stage every few seconds. Leg durations (2–4.5 s) span several of
the 32 frames that questions sample, and speeds are well above the answer rules' floor.

Random streams are separate for the room, the camera's resting place (which fixes the stage), the
camera motion and each object, so that changing the camera motion or the field of view leaves the
objects' paths unchanged.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from dsr.world import dynamics, motion
from dsr.world.bodies import BODY, DARK, LIGHT, MARKER, footprint_box, footprint_radius, object_parts
from dsr.world.config import AGENT_KINDS, CAMERA_MOTIONS, FOVY_DEG, WorldConfig

ROOM_HALF = 10.0  # the room spans [-ROOM_HALF, ROOM_HALF]² metres
WALL_HEIGHT = 4.0
STAGE_OFFSET = 0.5  # the stage's centre lies this close to the room's centre
CAMERA_DISTANCE = (5.8, 6.6)  # the camera rests this far (horizontally) from the stage's centre
# The stage's radius as a fraction of the camera distance: the sine of the narrowest horizontal
# half field of view (45° vertical at 4:3 is 28.9° horizontal, sin = 0.48), less a margin, so that
# the whole disk is in view from the camera's resting place.
STAGE_FRACTION = 0.45
PAN_DEG = (10.0, 18.0)  # a pan sweeps ± this (more would carry the stage out of view)
MOVER_MARGIN = 0.5  # movers never go further than this beyond the stage's rim
THING_MARGIN = 0.4  # balls and boxes bounce back off a rim this far beyond the stage's
PROP_RADIUS = (8.2, 9.0)
MOVER_KINDS = ("person", "robot", "car")

_ROOM, _CAMERA, _OBJECTS, _PLACEMENT = 1, 2, 3, 4  # random stream ids

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class TextureSpec:
    """A MuJoCo builtin texture: ``builtin`` checker / gradient / flat, optional marks on top.

    mark "random" sprinkles ``random`` (fraction) of pixels in ``markrgb``: cheap texture noise.
    repeat: texture repeats per metre of surface.
    texels: width and height in texels; few texels make marks large enough to survive distance and
        mipmapping (a texel of a few centimetres is about a pixel across the room at 320×240).
    """

    builtin: str
    rgb1: RGB
    rgb2: RGB
    mark: str = "none"
    markrgb: RGB = (1.0, 1.0, 1.0)
    random: float = 0.0
    repeat: float = 1.0
    texels: int = 64


@dataclass(frozen=True)
class PropSpec:
    """A static textured box standing on the floor."""

    name: str
    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw: float
    texture: TextureSpec


@dataclass(frozen=True, eq=False)
class ObjectSpec:
    """One moving object and its exact path.

    size: person/robot height, ball radius, box half side, car length (metres).
    colors: RGB per colour role of :mod:`dsr.world.bodies` (body, light, dark, marker).
    skin: texture of parts with material "skin" (balls, boxes), else None.
    centers: (N, 3) world position of the body frame origin = the ground-truth centre.
    quats: (N, 4) wxyz world-from-body rotation (body x forward, y left, z up).
    script: what the object does, e.g. ("0.0s walk", "1.3s turn", ...), for people reading specs.
    """

    object_id: str
    kind: str
    class_phrase: str
    is_agent: bool
    size: float
    colors: dict[str, RGB]
    skin: TextureSpec | None
    centers: np.ndarray
    quats: np.ndarray
    script: tuple[str, ...]

    @property
    def rotations(self) -> np.ndarray:
        """(N, 3, 3) world_from_body; for agents the columns are forward, left, up."""
        return motion.quat_to_matrix(self.quats)


@dataclass(frozen=True, eq=False)
class SceneSpec:
    """Everything needed to render one world and to write its ground truth.

    times_s: (N,) frame times i / fps.  c2w: (N, 4, 4) OpenCV camera-to-world poses.
    stage_center (x, y), stage_radius: the disk the objects move on (see :class:`Placement`).
    """

    config: WorldConfig
    camera_motion: str
    fovy_deg: float
    times_s: np.ndarray
    c2w: np.ndarray
    camera_target: np.ndarray
    stage_center: np.ndarray
    stage_radius: float
    floor: TextureSpec
    walls: tuple[TextureSpec, ...]
    sky: tuple[RGB, RGB]
    props: tuple[PropSpec, ...]
    objects: tuple[ObjectSpec, ...]

    @property
    def num_frames(self) -> int:
        return len(self.times_s)


# --------------------------------------------------------------------------------------------------
# colours and textures


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(r, 4), round(g, 4), round(b, 4))


def _random_color(rng: np.random.Generator, sat: tuple[float, float] = (0.45, 0.9),
                  val: tuple[float, float] = (0.45, 0.95)) -> RGB:
    return _hsv(rng.uniform(), rng.uniform(*sat), rng.uniform(*val))


def _surface_texture(rng: np.random.Generator, repeat: tuple[float, float], texels: int) -> TextureSpec:
    """A random checker / gradient / flat texture with random-pixel marks (noise) on top."""
    builtin = str(rng.choice(["checker", "gradient", "flat"]))
    hue = rng.uniform()
    c1 = _hsv(hue, rng.uniform(0.2, 0.7), rng.uniform(0.35, 0.75))
    c2 = _hsv(hue + rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.7), rng.uniform(0.5, 0.95))
    mark = _hsv(rng.uniform(), rng.uniform(0.0, 0.5), float(rng.choice([0.1, 0.95])))
    return TextureSpec(builtin=builtin, rgb1=c1, rgb2=c2, mark="random", markrgb=mark,
                       random=float(rng.uniform(0.06, 0.14)), repeat=float(rng.uniform(*repeat)), texels=texels)


# --------------------------------------------------------------------------------------------------
# where the camera stands and where the objects move


@dataclass(frozen=True)
class Placement:
    """The camera's resting place and the stage it watches (drawn from their own random stream).

    eye, target: the camera's base position and look-at point (world, metres); every camera motion
    starts from them. stage_center (x, y) lies under the target, and the stage (a disk of
    ``stage_radius``) fits in the view of the narrowest default field of view, so that objects
    that keep to it stay (mostly) in view whatever the camera motion.
    """

    eye: np.ndarray
    target: np.ndarray
    stage_center: np.ndarray
    stage_radius: float

    @property
    def near_point(self) -> np.ndarray:
        """The stage point nearest the camera (x, y)."""
        toward = self.eye[:2] - self.stage_center
        return self.stage_center + toward / np.linalg.norm(toward) * self.stage_radius

    @property
    def far_point(self) -> np.ndarray:
        """The stage point farthest from the camera (x, y)."""
        return 2 * self.stage_center - self.near_point


def _placement(rng: np.random.Generator) -> Placement:
    r, a = STAGE_OFFSET * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    center = np.array([r * np.cos(a), r * np.sin(a)])
    azimuth = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(*CAMERA_DISTANCE)
    eye = np.array([*(center + distance * np.array([np.cos(azimuth), np.sin(azimuth)])), rng.uniform(1.4, 2.2)])
    target = np.array([*center, rng.uniform(0.5, 0.8)])
    return Placement(eye=eye, target=target, stage_center=center, stage_radius=STAGE_FRACTION * float(distance))


def _camera(config: WorldConfig, times: np.ndarray, place: Placement) -> tuple[str, float, np.ndarray]:
    """The camera's motion kind, field of view and path.

    Moving cameras move like an operator: a move, a pause, another move (:func:`motion.stop_and_go`),
    at walking speeds for orbits and handheld walks, so that the camera's own speed answers vary too.
    Each kind draws from its own random stream, so that one kind's draws never shift another's.
    """
    rng = np.random.default_rng([config.seed, _CAMERA])
    drawn_kind = str(rng.choice(CAMERA_MOTIONS))
    drawn_fovy = float(rng.uniform(*FOVY_DEG))
    kind = config.camera_motion or drawn_kind
    fovy = config.fovy_deg if config.fovy_deg is not None else drawn_fovy
    eye, target = place.eye, place.target
    d = float(config.duration_s)
    scale = config.motion_scale
    rng = np.random.default_rng([config.seed, _CAMERA, CAMERA_MOTIONS.index(kind)])
    sign = float(rng.choice([-1.0, 1.0]))
    flips = sign * np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])  # back and forth
    if kind == "static":
        return kind, fovy, motion.static_path(times, eye, target)
    if kind == "pan":
        amplitude = np.radians(rng.uniform(*PAN_DEG)) * scale
        spots = flips * amplitude * np.concatenate([[1.0], rng.uniform(0.5, 1.0, 5)])
        moves = motion.stop_and_go(rng, d, spots, speed=tuple(np.radians([6.0, 12.0])))
        return kind, fovy, motion.pan_path(motion.travelled(times, moves), eye, target)
    if kind == "dolly":
        forward = np.array([rng.uniform(0.9, 1.5), rng.uniform(0.0, 0.4)] * 3) * scale  # push in, pull back
        moves = motion.stop_and_go(rng, d, forward, speed=(0.7 * scale, 1.1 * scale))
        return kind, fovy, motion.dolly_path(motion.travelled(times, moves), eye, target)
    distance = float(np.linalg.norm((eye - target)[:2]))
    if kind == "orbit":
        steps = np.radians(rng.uniform(35.0, 70.0, 4)) * scale * sign
        moves = motion.stop_and_go(rng, d, np.cumsum(steps), speed=(0.8 / distance, 1.4 / distance))
        return kind, fovy, motion.orbit_path(motion.travelled(times, moves), eye, target)
    toward = (eye - target)[:2] / distance
    tangent = np.array([-toward[1], toward[0], 0.0])
    spots = flips * np.concatenate([rng.uniform(1.5, 2.5, 1), rng.uniform(1.0, 2.5, 5)]) * scale
    moves = motion.stop_and_go(rng, d, spots, speed=(0.7, 1.2))
    walk = motion.travelled(times, moves)[:, None] * tangent
    shake_pos = motion.random_jitter(rng, 0.03 * scale)
    shake_rot = motion.random_jitter(rng, np.radians(0.7) * scale)
    return kind, fovy, motion.handheld_path(times, walk, eye, target, shake_pos, shake_rot)


# --------------------------------------------------------------------------------------------------
# objects and their scripts


def _object_kinds(rng: np.random.Generator, count: int) -> list[str]:
    """At least one agent, and at least one non-agent when there are two objects or more; ≤ 1 car."""
    n_agents = 1 if count == 1 else int(rng.integers(1, count))
    kinds = [str(rng.choice(AGENT_KINDS, p=[0.7, 0.3])) for _ in range(n_agents)]
    things = ["ball", "box", "car"]
    for _ in range(count - n_agents):
        kind = str(rng.choice(things))
        if kind == "car":
            things.remove("car")
        kinds.append(kind)
    return kinds


def _stage_point(rng: np.random.Generator, place: Placement, fraction: float = 0.85) -> np.ndarray:
    """A uniform random point of the stage disk shrunk to ``fraction`` of its radius."""
    r = place.stage_radius * fraction * np.sqrt(rng.uniform())
    a = rng.uniform(0, 2 * np.pi)
    return place.stage_center + np.array([r * np.cos(a), r * np.sin(a)])


def _start_positions(rng: np.random.Generator, count: int, place: Placement, min_gap: float = 1.3) -> np.ndarray:
    """Rejection-sample ``count`` stage points at least ``min_gap`` apart (the gap shrinks if crowded)."""
    points: list[np.ndarray] = []
    gap = min_gap
    while len(points) < count:
        for _ in range(200):
            p = _stage_point(rng, place)
            if all(np.linalg.norm(p - q) >= gap for q in points):
                points.append(p)
                break
        else:
            gap *= 0.8
    return np.stack(points)


# Cruising speeds (m/s) a leg picks from. Adjacent levels differ by more than the rules' 1.2 ratio,
# and walking is well above the 0.1 floor: at the default 24 s a step between two of the 32 sampled
# frames lasts 0.77 s, and the scene scale (median camera distance) is about 6.5 m, so 1.3 m/s is
# 0.15 scene scales per step and 0.85 m/s would sit at the floor.
SPEED_LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    "person": {"walk": (1.25, 1.45), "jog": (1.9, 2.2), "run": (2.7, 3.1)},
    "robot": {"walk": (1.2, 1.4), "jog": (1.8, 2.1), "run": (2.6, 2.9)},
    "car": {"walk": (1.8, 2.1), "jog": (2.7, 3.1), "run": (3.8, 4.4)},
}
_LEVEL_WORDS = {"person": {"walk": "walk", "jog": "jog", "run": "run"},
                "robot": {"walk": "roll", "jog": "hurry", "run": "race"},
                "car": {"walk": "drive slowly", "jog": "drive", "run": "race"}}
# Legs a mover's script is made of, with their weights once the compulsory ones are done.
# "change" keeps the route and changes the speed only (speed up, slow down, go again after a stop).
_AGENT_LEGS = {"go": 0.2, "change": 0.2, "stop": 0.14, "approach_camera": 0.08, "leave_camera": 0.08,
               "approach": 0.1, "pass": 0.08, "push": 0.05, "turn": 0.07}
_CAR_LEGS = {"go": 0.25, "change": 0.2, "stop": 0.18, "approach_camera": 0.1, "leave_camera": 0.1, "pass": 0.1,
             "turn": 0.07}
LEG_SECONDS = (2.0, 4.5)  # a leg lasts this long, several of the 32 sampled steps ...
RUN_SECONDS = (1.5, 3.0)  # ... a run less (it crosses the stage in a second or two) ...
STOP_SECONDS = (2.0, 4.0)  # ... and a stop this long (braking in STOP_RAMP, then standing)
STOP_RAMP = (0.4, 1.2)


@dataclass(frozen=True)
class _Other:
    """Another object, as a script sees it: its simulation index and id."""

    body: int
    object_id: str
    is_thing: bool


def _mover_legs(rng: np.random.Generator, kind: str, duration: float, place: Placement,
                others: list[_Other]) -> list[dynamics.Leg]:
    """A mover's script: stop-and-go, a speed-up, a move toward or away from the camera and one
    with another object first (in random order), then random legs to the end of the clip."""
    car = kind == "car"
    levels = SPEED_LEVELS[kind]
    words = _LEVEL_WORDS[kind]
    table = _CAR_LEGS if car else _AGENT_LEGS
    names = [n for n in table if n not in ("approach", "pass", "push") or others]
    if not any(o.is_thing for o in others):
        names = [n for n in names if n != "push"]
    weights = np.array([table[n] for n in names])
    compulsory = ["stop", "run", str(rng.choice(["approach_camera", "leave_camera"]))]
    if others:
        compulsory.append("pass" if car else str(rng.choice(["approach", "pass"])))
    compulsory = [compulsory[i] for i in rng.permutation(len(compulsory))]
    if compulsory[0] == "stop":  # everyone starts at rest: a stop comes after moving
        compulsory[0], compulsory[1] = compulsory[1], compulsory[0]
    legs: list[dynamics.Leg] = []
    t = float(rng.uniform(0.0, 0.6))  # most start at once, some a moment later
    while t < duration:
        name = compulsory.pop(0) if compulsory else str(rng.choice(names, p=weights / weights.sum()))
        level = "run" if name == "run" else str(rng.choice(["walk", "jog", "run"], p=[0.55, 0.3, 0.15]))
        if name == "run":
            name = "go"
        speed = float(rng.uniform(*levels[level]))
        ramp = float(rng.uniform(1.5, 3.0) if rng.uniform() < 0.5 else rng.uniform(0.3, 0.8))
        seconds = float(rng.uniform(*(STOP_SECONDS if name == "stop" else RUN_SECONDS if level == "run"
                                      else LEG_SECONDS)))
        turn = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2))
        turn_limit = float(np.radians(rng.uniform(60.0, 150.0)))
        goal, rate = None, 0.0
        verb = words[level]
        if name == "go":
            points = tuple((float(x), float(y)) for x, y in (_stage_point(rng, place) for _ in range(3)))
            goal, text = dynamics.Goal(points=points), f"{verb} across the stage"
        elif name == "change":
            text = f"{verb} on"
        elif name == "stop":
            speed, ramp = 0.0, float(rng.uniform(*STOP_RAMP))
            look = not car and rng.uniform() < 0.5
            rate = turn if look else 0.0
            text = ("brake to a stop" if car else "stop") + (" and look around" if look else "")
        elif name in ("approach_camera", "leave_camera"):
            p = place.near_point if name == "approach_camera" else place.far_point
            p = p + rng.uniform(-0.6, 0.6, 2) - place.stage_center
            p = place.stage_center + p * min(1.0, 0.85 * place.stage_radius / np.linalg.norm(p))
            goal = dynamics.Goal(points=((float(p[0]), float(p[1])),))
            text = f"{verb} {'toward' if name == 'approach_camera' else 'away from'} the camera"
        elif name == "turn":
            rate = turn
            text = f"{verb} and turn {'left' if turn > 0 else 'right'} by {np.degrees(turn_limit):.0f}°"
        else:
            pool = [o for o in others if o.is_thing] if name == "push" else others
            other = pool[int(rng.integers(len(pool)))]
            if name == "pass":
                side = float(rng.choice([-1.0, 1.0]))
                goal = dynamics.Goal(body=other.body, side=side)
                text = f"{verb} past {other.object_id} on its {'left' if side > 0 else 'right'}"
            elif name == "approach":
                goal = dynamics.Goal(body=other.body, stop_within=float(rng.uniform(1.0, 1.4)))
                text = f"{verb} up to {other.object_id}"
            else:
                goal = dynamics.Goal(body=other.body)
                text = f"push {other.object_id}"
        legs.append(dynamics.Leg(f"{t:.1f}s {text}", t, speed, min(ramp, 0.8 * seconds), rate, turn_limit, goal))
        t += seconds
    return legs


def _kicks(rng: np.random.Generator, kind: str, duration: float, place: Placement,
           start: np.ndarray) -> list[dynamics.Kick]:
    """Kicks of a ball or shoves of a box, every few seconds, each toward a new place on the stage."""
    ball = kind == "ball"
    kicks: list[dynamics.Kick] = []
    t = float(rng.uniform(0.5, 4.0))
    last = start
    while t < duration - 1.0:
        for _ in range(50):
            p = _stage_point(rng, place, 0.8)
            if np.linalg.norm(p - last) >= (1.8 if ball else 1.2):
                break
        hop = float(rng.uniform(1.5, 3.0) if ball else rng.uniform(1.2, 2.5)) if rng.uniform() < 0.35 else 0.0
        spin = 0.0 if ball else float(rng.uniform(-4.0, 4.0))
        kicks.append(dynamics.Kick(t, toward=(float(p[0]), float(p[1])), hop=hop, spin_rate=spin))
        last = p
        t += float(rng.uniform(3.0, 6.5) if ball else rng.uniform(3.5, 7.0))
    return kicks


def _colors(rng: np.random.Generator) -> dict[str, RGB]:
    hue = rng.uniform()
    return {
        BODY: _hsv(hue, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)),
        LIGHT: _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.1, 0.3), rng.uniform(0.85, 1.0)),
        DARK: _hsv(hue, rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.25)),
        # the face marker: the complementary hue at full saturation, unmistakable against the body
        MARKER: _hsv(hue + 0.5, 1.0, 1.0),
    }


def _objects(config: WorldConfig, kinds: list[str], starts: np.ndarray, place: Placement) -> tuple[ObjectSpec, ...]:
    """Draw every object's look and script, then simulate walkers, cars, balls and boxes together."""
    grid, substeps = motion.fine_grid(config.num_frames, config.fps)
    duration = config.duration_s
    ids = [f"{kind}_{i}" for i, kind in enumerate(kinds)]
    mover_idx = [i for i, k in enumerate(kinds) if k in MOVER_KINDS]
    thing_idx = [i for i, k in enumerate(kinds) if k not in MOVER_KINDS]
    body_of = {obj: b for b, obj in enumerate(mover_idx + thing_idx)}  # simulation index of each object
    movers: list[dynamics.Mover] = []
    things: list[dynamics.Thing] = []
    looks: dict[int, tuple[float, dict[str, RGB], TextureSpec | None, tuple[str, ...]]] = {}
    cx, cy = (float(c) for c in place.stage_center)
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng([config.seed, _OBJECTS, i])
        colors = _colors(rng)
        size = float({"person": rng.uniform(1.55, 1.9), "robot": rng.uniform(1.0, 1.3), "ball": rng.uniform(0.15, 0.3),
                      "box": rng.uniform(0.2, 0.35), "car": rng.uniform(1.7, 2.1)}[kind])
        _, rest_height = object_parts(kind, size)
        start = starts[i]
        if kind in MOVER_KINDS:
            others = [_Other(body_of[j], ids[j], kinds[j] not in MOVER_KINDS) for j in range(len(kinds)) if j != i]
            legs = _mover_legs(rng, kind, duration, place, others)
            car = kind == "car"
            toward = place.stage_center - start
            heading = float(np.arctan2(toward[1], toward[0]) + rng.uniform(-1.2, 1.2) if car
                            else rng.uniform(0, 2 * np.pi))
            movers.append(dynamics.Mover(
                legs=tuple(legs), start_xy=(float(start[0]), float(start[1])), start_yaw=heading,
                stage_center=(cx, cy), stage_radius=place.stage_radius - (0.4 if car else 0.0),
                accel=4.0 if car else 3.0, lookahead=1.5 if car else 0.6, max_turn_rate=2.0 if car else 3.0,
                radius=footprint_radius(kind, size), half_x=footprint_box(kind, size)[0],
                half_y=footprint_box(kind, size)[1], min_turn_radius=1.6 if car else 0.0,
                limit_radius=place.stage_radius + MOVER_MARGIN))
            looks[i] = (size, colors, None, tuple(leg.name for leg in legs))
        else:
            ball = kind == "ball"
            kicks = _kicks(rng, kind, duration, place, start)
            things.append(dynamics.Thing(
                start=(float(start[0]), float(start[1]), rest_height), kicks=tuple(kicks), rest_height=rest_height,
                radius=size, restitution=0.7 if ball else 0.35, ground_decel=1.2 if ball else 3.0,
                rolling_radius=size if ball else None, rim_center=(cx, cy),
                rim_radius=place.stage_radius + THING_MARGIN))
            skin = TextureSpec(builtin="checker", rgb1=colors[BODY], rgb2=colors[LIGHT],
                               mark="edge" if kind == "box" else "none", markrgb=colors[DARK], repeat=1.0, texels=32)
            verb = "kicked" if ball else "shoved"
            script = tuple(f"{k.start_s:.1f}s {verb}{' up' if k.hop else ''} toward ({k.toward[0]:.1f}, "
                           f"{k.toward[1]:.1f})" for k in kicks if k.toward is not None)
            looks[i] = (size, colors, skin, script)
    mover_paths, thing_paths = dynamics.simulate(grid, movers, things)
    paths: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, (xy, yaw) in zip(mover_idx, mover_paths, strict=True):
        _, rest_height = object_parts(kinds[i], looks[i][0])
        paths[i] = (np.column_stack([xy, np.full(len(xy), rest_height)]), motion.quat_from_yaw(yaw))
    for i, (pos, quat) in zip(thing_idx, thing_paths, strict=True):
        paths[i] = (pos, quat)
    objects = []
    for i, kind in enumerate(kinds):
        size, colors, skin, script = looks[i]
        centers, quats = paths[i]
        objects.append(ObjectSpec(
            object_id=ids[i], kind=kind, class_phrase=kind, is_agent=kind in AGENT_KINDS, size=size, colors=colors,
            skin=skin, centers=centers[::substeps].copy(), quats=quats[::substeps].copy(), script=script))
    return tuple(objects)


# --------------------------------------------------------------------------------------------------


def generate_scene(config: WorldConfig) -> SceneSpec:
    """The world of ``config`` (a pure function: equal configs give equal specs)."""
    n = config.num_frames
    times = np.arange(n) / config.fps
    room = np.random.default_rng([config.seed, _ROOM])
    floor = _surface_texture(room, (0.3, 0.6), 64)
    walls = tuple(_surface_texture(room, (0.3, 0.6), 48) for _ in range(4))
    sky = (_random_color(room, (0.1, 0.4), (0.7, 0.95)), _random_color(room, (0.1, 0.4), (0.2, 0.5)))
    props = []
    for i in range(int(room.integers(4, 8))):
        a = room.uniform(0, 2 * np.pi)
        r = room.uniform(*PROP_RADIUS)
        half = (room.uniform(0.25, 0.5), room.uniform(0.25, 0.5), room.uniform(0.3, 1.2))
        props.append(PropSpec(f"prop_{i}", (r * np.cos(a), r * np.sin(a), half[2]), half,
                              float(room.uniform(0, np.pi)), _surface_texture(room, (0.8, 1.6), 16)))
    count = config.num_objects if config.num_objects is not None else int(room.integers(3, 7))
    kinds = _object_kinds(room, count)
    place = _placement(np.random.default_rng([config.seed, _PLACEMENT]))
    starts = _start_positions(room, count, place)
    camera_motion, fovy, c2w = _camera(config, times, place)
    objects = _objects(config, kinds, starts, place)
    return SceneSpec(config=config, camera_motion=camera_motion, fovy_deg=fovy, times_s=times, c2w=c2w,
                     camera_target=place.target, stage_center=place.stage_center, stage_radius=place.stage_radius,
                     floor=floor, walls=walls, sky=sky, props=tuple(props), objects=objects)
