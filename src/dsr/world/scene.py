"""Seeded scene generation: WorldConfig → SceneSpec, a pure function of the config (and its seed).

A world is a square room with procedurally textured floor and walls and a few textured props by
the walls (features for structure-from-motion), moving objects inside a central disk (the arena),
and a camera outside the arena looking in. Every pose of every frame is decided here; the renderer
only draws them, so the spec *is* the ground truth.

Random streams are separate for the room, the camera and each object, so that changing, say, the
camera motion leaves the objects' paths unchanged.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from dsr.world import motion
from dsr.world.bodies import BODY, DARK, LIGHT, MARKER, footprint_box, footprint_radius, object_parts
from dsr.world.config import AGENT_KINDS, CAMERA_MOTIONS, WorldConfig

ROOM_HALF = 10.0  # the room spans [-ROOM_HALF, ROOM_HALF]² metres
WALL_HEIGHT = 4.0
ARENA_RADIUS = 3.5  # objects move inside this disk around the origin
CAMERA_RADIUS = (5.8, 6.8)  # the camera starts this far from the origin
# Movers never go further than this from the origin: with a dolly of at most 1 m the camera keeps
# clear of every object (a car's body reaches 1.1 m beyond its centre, but stays below the camera).
MOVER_LIMIT = ARENA_RADIUS + 0.5
PROP_RADIUS = (8.2, 9.0)

_ROOM, _CAMERA, _OBJECTS = 1, 2, 3  # random stream ids

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
    """

    config: WorldConfig
    camera_motion: str
    fovy_deg: float
    times_s: np.ndarray
    c2w: np.ndarray
    camera_target: np.ndarray
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
# camera


def _camera(config: WorldConfig, rng: np.random.Generator, times: np.ndarray) -> tuple[str, float, np.ndarray, np.ndarray]:
    kind = config.camera_motion or str(rng.choice(CAMERA_MOTIONS))
    fovy = config.fovy_deg if config.fovy_deg is not None else float(rng.uniform(38.0, 52.0))
    azimuth = rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(*CAMERA_RADIUS)
    eye = np.array([radius * np.cos(azimuth), radius * np.sin(azimuth), rng.uniform(1.4, 2.2)])
    target = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(0.5, 0.8)])  # off-centre: part of the arena is out of view
    d = float(config.duration_s)
    scale = config.motion_scale
    sign = float(rng.choice([-1.0, 1.0]))
    # Draw every parameter whatever the kind, so one kind's draws never shift another's.
    pan = np.radians(rng.uniform(20.0, 35.0)) * scale * sign
    dolly = rng.uniform(0.6, 1.0) * scale
    orbit = np.radians(rng.uniform(50.0, 90.0)) * scale * sign
    tangent = np.array([-np.sin(azimuth), np.cos(azimuth), 0.0])
    drift = tangent * rng.uniform(0.5, 1.0) * sign * scale
    shake_pos = motion.random_jitter(rng, 0.03 * scale)
    shake_rot = motion.random_jitter(rng, np.radians(0.7) * scale)
    if kind == "static":
        c2w = motion.static_path(times, eye, target)
    elif kind == "pan":
        c2w = motion.pan_path(times, d, eye, target, pan)
    elif kind == "dolly":
        c2w = motion.dolly_path(times, d, eye, target, dolly)
    elif kind == "orbit":
        c2w = motion.orbit_path(times, d, eye, target, orbit)
    else:
        c2w = motion.handheld_path(times, d, eye, target, drift, shake_pos, shake_rot)
    return kind, fovy, c2w, target


# --------------------------------------------------------------------------------------------------
# objects


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


def _start_positions(rng: np.random.Generator, count: int, min_gap: float = 1.3) -> np.ndarray:
    """Rejection-sample ``count`` points in the arena at least ``min_gap`` apart (gap shrinks if crowded)."""
    points: list[np.ndarray] = []
    gap = min_gap
    while len(points) < count:
        for _ in range(200):
            r = ARENA_RADIUS * 0.85 * np.sqrt(rng.uniform())
            a = rng.uniform(0, 2 * np.pi)
            p = np.array([r * np.cos(a), r * np.sin(a)])
            if all(np.linalg.norm(p - q) >= gap for q in points):
                points.append(p)
                break
        else:
            gap *= 0.8
    return np.stack(points)


_AGENT_MOVES = {
    # name: (speed range m/s, turn-rate range rad/s, duration range s); the four moves fit in 5.4 s
    "person": {"walk": ((0.9, 1.4), (-0.2, 0.2), (1.0, 1.5)), "turn": ((0.0, 0.4), (1.0, 2.0), (0.8, 1.2)),
               "stop": ((0.0, 0.0), (0.0, 0.0), (0.9, 1.3)), "run": ((2.0, 2.8), (-0.1, 0.1), (0.9, 1.4))},
    "robot": {"walk": ((0.6, 1.0), (-0.2, 0.2), (1.0, 1.5)), "turn": ((0.0, 0.3), (1.0, 1.8), (0.8, 1.2)),
              "stop": ((0.0, 0.0), (0.0, 0.0), (0.9, 1.3)), "run": ((1.5, 2.0), (-0.1, 0.1), (0.9, 1.4))},
    "car": {"walk": ((2.0, 3.0), (-0.1, 0.1), (1.0, 1.5)), "turn": ((1.5, 2.5), (0.6, 1.0), (0.8, 1.2)),
            "stop": ((0.0, 0.0), (0.0, 0.0), (0.9, 1.3)), "run": ((3.5, 4.5), (-0.05, 0.05), (0.9, 1.4))},
}
_MOVE_WORDS = {"car": {"walk": "drive", "run": "accelerate"}}


def _actions(rng: np.random.Generator, kind: str, duration: float) -> list[motion.Action]:
    """Walk, turn, stop and speed up (each once, in random order), then random moves to the end."""
    moves = _AGENT_MOVES[kind]
    names = list(moves)
    order = [names[i] for i in rng.permutation(len(names))]
    actions: list[motion.Action] = []
    t = 0.0
    while t < duration:
        name = order.pop(0) if order else str(rng.choice(names, p=[0.4, 0.25, 0.15, 0.2]))
        (v0, v1), (w0, w1), (d0, d1) = moves[name]
        turn = rng.uniform(w0, w1) * (rng.choice([-1.0, 1.0]) if name == "turn" else 1.0)
        word = _MOVE_WORDS.get(kind, {}).get(name, name)
        actions.append(motion.Action(word, t, float(rng.uniform(v0, v1)), float(turn)))
        t += float(rng.uniform(d0, d1))
    return actions


def _colors(rng: np.random.Generator) -> dict[str, RGB]:
    hue = rng.uniform()
    return {
        BODY: _hsv(hue, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)),
        LIGHT: _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.1, 0.3), rng.uniform(0.85, 1.0)),
        DARK: _hsv(hue, rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.25)),
        # the face marker: the complementary hue at full saturation, unmistakable against the body
        MARKER: _hsv(hue + 0.5, 1.0, 1.0),
    }


@dataclass
class _Draft:
    """An object whose random choices are made; a mover's path is filled in by the joint steering."""

    index: int
    kind: str
    size: float
    colors: dict[str, RGB]
    rest_height: float
    skin: TextureSpec | None = None
    mover: motion.Mover | None = None
    throw: motion.Throw | None = None
    start: np.ndarray | None = None
    centers: np.ndarray | None = None  # on the fine grid
    quats: np.ndarray | None = None
    script: tuple[str, ...] = ()


def _draft(rng: np.random.Generator, index: int, kind: str, start_xy: np.ndarray, config: WorldConfig) -> _Draft:
    """Draw one object's look and script (its path comes later, with everyone else's)."""
    duration = config.duration_s
    colors = _colors(rng)
    size = float({"person": rng.uniform(1.55, 1.9), "robot": rng.uniform(1.0, 1.3), "ball": rng.uniform(0.15, 0.3),
                  "box": rng.uniform(0.2, 0.35), "car": rng.uniform(1.8, 2.3)}[kind])
    _, rest_height = object_parts(kind, size)
    draft = _Draft(index, kind, size, colors, rest_height)
    if kind in ("person", "robot", "car"):
        actions = _actions(rng, kind, duration)
        heading = float(rng.uniform(0, 2 * np.pi))
        car = kind == "car"
        if car:
            # a car needs room to turn (radius 2 m): it starts nearer the middle, not facing out, and
            # steers for a smaller disk, so that it stays in the arena
            start_xy = 0.5 * start_xy
            heading = float(np.arctan2(-start_xy[1], -start_xy[0]) + rng.uniform(-1.2, 1.2))
        draft.mover = motion.Mover(
            actions=tuple(actions), start_xy=(float(start_xy[0]), float(start_xy[1])), start_yaw=heading,
            arena_radius=ARENA_RADIUS - 1.5 if car else ARENA_RADIUS, accel=4.0 if car else 3.0,
            lookahead=2.0 if car else 0.8, max_turn_rate=2.0, radius=footprint_radius(kind, size),
            min_turn_radius=2.0 if car else 0.0, edge_speed=2.0 if car else np.inf, limit_radius=MOVER_LIMIT)
        draft.script = tuple(f"{a.start_s:.1f}s {a.name}" for a in actions)
        return draft
    start = rng.choice([0.0, 1.0]) * rng.uniform(0.1, 0.45) * duration
    aim = _start_positions(rng, 1)[0]
    heading_xy = (aim - start_xy) / max(np.linalg.norm(aim - start_xy), 1e-6)
    bounce = bool(rng.uniform() < 0.6)
    if kind == "ball":
        speed, vz, spin = rng.uniform(1.2, 2.5), (rng.uniform(2.0, 3.5) if bounce else 0.0), 0.0
    else:
        speed, vz, spin = rng.uniform(1.5, 3.0), (rng.uniform(1.5, 3.0) if bounce else 0.0), rng.uniform(-4, 4)
    draft.throw = motion.Throw(float(start), (*(heading_xy * speed), vz), float(spin))
    draft.start = np.array([*start_xy, rest_height])
    draft.skin = TextureSpec(builtin="checker", rgb1=colors[BODY], rgb2=colors[LIGHT],
                             mark="edge" if kind == "box" else "none", markrgb=colors[DARK], repeat=1.0, texels=32)
    verb = ("bounces" if bounce else "rolls") if kind == "ball" else ("hops" if bounce else "slides")
    draft.script = (f"{start:.1f}s {verb}",)
    return draft


def _objects(config: WorldConfig, kinds: list[str], starts: np.ndarray) -> tuple[ObjectSpec, ...]:
    """Draft every object; steer the walkers and cars together around each other; then roll, slide and
    bounce the balls and boxes, off the floor, the arena's rim and the movers' outlines."""
    grid, substeps = motion.fine_grid(config.num_frames, config.fps)
    drafts = [_draft(np.random.default_rng([config.seed, _OBJECTS, i]), i, kind, starts[i], config)
              for i, kind in enumerate(kinds)]
    movers = [d for d in drafts if d.mover is not None]
    paths = motion.steer_paths(grid, [d.mover for d in movers if d.mover is not None])
    blockers = []
    for d, (xy, yaw) in zip(movers, paths, strict=True):
        d.centers = np.column_stack([xy, np.full(len(xy), d.rest_height)])
        d.quats = motion.quat_from_yaw(yaw)
        blockers.append(motion.Blocker(np.column_stack([xy, yaw]), *footprint_box(d.kind, d.size)))
    for d in drafts:
        if d.throw is not None and d.start is not None:
            ball = d.kind == "ball"
            d.centers, d.quats = motion.ballistic_path(
                grid, d.start, d.throw, rest_height=d.rest_height, arena_radius=ARENA_RADIUS,
                restitution=0.7 if ball else 0.35, ground_decel=1.0 if ball else 3.0,
                rolling_radius=d.size if ball else None, radius=d.size, blockers=blockers)
    objects = []
    for d in drafts:
        assert d.centers is not None and d.quats is not None  # every draft has its path by now
        objects.append(ObjectSpec(
            object_id=f"{d.kind}_{d.index}", kind=d.kind, class_phrase=d.kind, is_agent=d.kind in AGENT_KINDS,
            size=d.size, colors=d.colors, skin=d.skin, centers=d.centers[::substeps].copy(),
            quats=d.quats[::substeps].copy(), script=d.script))
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
    starts = _start_positions(room, count)

    cam_rng = np.random.default_rng([config.seed, _CAMERA])
    camera_motion, fovy, c2w, target = _camera(config, cam_rng, times)

    objects = _objects(config, kinds, starts)
    return SceneSpec(config=config, camera_motion=camera_motion, fovy_deg=fovy, times_s=times, c2w=c2w,
                     camera_target=target, floor=floor, walls=walls, sky=sky, props=tuple(props), objects=objects)
