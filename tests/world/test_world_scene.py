"""Scene generation (no rendering): config checks, determinism, camera motions, object behaviour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.scene.frames import invert_pose, project_points, transform_points
from dsr.world import motion
from dsr.world.bodies import object_parts
from dsr.world.config import CAMERA_MOTIONS, DEFAULT_DURATION_S, FOVY_DEG, WorldConfig, WorldConfigError
from dsr.world.render import intrinsics
from dsr.world.scene import (
    MOVER_MARGIN,
    PAN_DEG,
    ROOM_HALF,
    SPEED_LEVELS,
    THING_MARGIN,
    SceneSpec,
    generate_scene,
)

# Scene generation is cheap but not free at 24 s; most tests use shorter clips.
SHORT = 8.0


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"width": 33}, "width must be an even number"),
    ({"height": 8}, "height must be an even number"),
    ({"fps": 0.0}, "fps must be in"),
    ({"duration_s": 0.1, "fps": 10.0}, "at least 2"),
    ({"num_objects": 0}, "objects must be in"),
    ({"num_objects": 9}, "objects must be in"),
    ({"camera_motion": "zoom"}, "camera motion must be one of static, pan, dolly, orbit, handheld"),
    ({"seed": -1}, "seed must be"),
    ({"fovy_deg": 5.0}, "fovy must be"),
])
def test_config_rejects_bad_values_in_one_line(kwargs: dict, words: str) -> None:
    with pytest.raises(WorldConfigError, match=words) as err:
        WorldConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_default_world_is_long_enough_for_curation() -> None:
    """`dsr curate` keeps clips of 20–120 s, measured as frames / fps; a default world passes with margin."""
    from dsr.extract.curate import CurateConfig

    cfg = WorldConfig()
    assert cfg.duration_s == DEFAULT_DURATION_S
    curate = CurateConfig()
    assert curate.min_duration_s + 3.0 <= cfg.num_frames / cfg.fps <= curate.max_duration_s


def _arrays(spec: SceneSpec) -> list[np.ndarray]:
    return [spec.c2w, spec.times_s] + [a for o in spec.objects for a in (o.centers, o.quats)]


def test_same_seed_same_spec_and_other_seeds_differ() -> None:
    a, b = generate_scene(WorldConfig(seed=7, duration_s=SHORT)), generate_scene(WorldConfig(seed=7, duration_s=SHORT))
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    assert (a.floor, a.walls, a.props, a.fovy_deg) == (b.floor, b.walls, b.props, b.fovy_deg)
    assert [o.script for o in a.objects] == [o.script for o in b.objects]
    c = generate_scene(WorldConfig(seed=8, duration_s=SHORT))
    assert not np.array_equal(a.c2w, c.c2w)
    assert not np.array_equal(a.objects[0].centers, c.objects[0].centers)


def test_camera_motion_and_field_of_view_do_not_change_the_objects() -> None:
    base = generate_scene(WorldConfig(seed=3, duration_s=SHORT))
    for kwargs in ({"camera_motion": m} for m in CAMERA_MOTIONS):
        other = generate_scene(WorldConfig(seed=3, duration_s=SHORT, **kwargs))  # type: ignore[arg-type]
        assert all(np.array_equal(x.centers, y.centers) for x, y in zip(base.objects, other.objects, strict=True))
    wide = generate_scene(WorldConfig(seed=3, duration_s=SHORT, fovy_deg=70.0))
    assert all(np.array_equal(x.quats, y.quats) for x, y in zip(base.objects, wide.objects, strict=True))
    assert np.array_equal(base.c2w, wide.c2w) and wide.fovy_deg == 70.0


# --------------------------------------------------------------------------------------------------
# camera speed profiles


def test_a_move_covers_a_trapezoid_hand_computed() -> None:
    # from 1 s to 5 s at 2 units/s with 1-s ramps: area 2 · (4 − 1) = 6
    move = motion.Move(1.0, 5.0, 2.0, 1.0)
    t = np.array([0.0, 1.0, 1.5, 2.0, 3.0, 4.5, 5.0, 9.0])
    # rising: v t²/(2r) → 0.25 at 1.5 s, 1.0 at 2 s; cruising: 1 + 2·(t − 2); falling: 6 − (5 − t)²
    expected = [0.0, 0.0, 0.25, 1.0, 3.0, 5.75, 6.0, 6.0]
    assert move.travel == 6.0
    assert np.allclose(move.covered(t), expected)
    backwards = motion.Move(6.0, 8.0, -1.0, 0.0)  # a step profile, backwards: −2 units
    assert np.allclose(motion.travelled(t, [move, backwards]), [*expected[:-1], 4.0])


def test_stop_and_go_passes_through_its_spots_and_holds_still_between_moves() -> None:
    rng = np.random.default_rng(0)
    moves = motion.stop_and_go(rng, 40.0, [2.0, -1.0, 0.5], speed=(0.8, 1.2), hold=(2.0, 3.0))
    assert len(moves) == 3
    ends = np.cumsum([m.travel for m in moves])
    assert np.allclose(ends, [2.0, -1.0, 0.5])
    for a, b in itertools.pairwise(moves):
        assert 2.0 <= b.start_s - a.end_s <= 3.0
        t = np.linspace(a.end_s, b.start_s, 20)
        assert np.ptp(motion.travelled(t, moves)) < 1e-12  # standing still while holding
    assert [np.sign(m.speed) for m in moves] == [1.0, -1.0, 1.0]
    assert all(0.8 <= abs(m.speed) <= 1.2 for m in moves)
    # the clip's end cuts the profile short: moves that would start after it are dropped
    assert len(motion.stop_and_go(np.random.default_rng(0), 4.0, [2.0, -1.0, 0.5], speed=(0.8, 1.2))) == 1


def _forward(c2w: np.ndarray) -> np.ndarray:
    return c2w[:, :3, 2]


def _speed(points: np.ndarray, fps: float) -> np.ndarray:
    return np.linalg.norm(np.diff(points, axis=0), axis=1) * fps


def test_static_camera_never_moves() -> None:
    spec = generate_scene(WorldConfig(seed=1, camera_motion="static", duration_s=SHORT))
    assert np.array_equal(spec.c2w, np.broadcast_to(spec.c2w[0], spec.c2w.shape))


def test_pan_turns_about_the_vertical_in_place_back_and_forth() -> None:
    spec = generate_scene(WorldConfig(seed=1, camera_motion="pan"))
    c2w = spec.c2w
    assert np.array_equal(c2w[:, :3, 3], np.broadcast_to(c2w[0, :3, 3], (len(c2w), 3)))
    assert np.allclose(c2w[:, 2, 0], 0.0, atol=1e-12)  # the x axis stays horizontal: no roll
    heading = np.degrees(np.unwrap(np.arctan2(_forward(c2w)[:, 1], _forward(c2w)[:, 0])))
    swing = heading - heading[0]  # it starts centred on the stage
    assert PAN_DEG[0] - 1e-6 <= np.abs(swing).max() <= PAN_DEG[1] + 1e-6
    assert swing.max() > 0 > swing.min()  # both ways
    rate = np.abs(np.diff(heading))
    assert (rate < 1e-9).mean() > 0.2 and (rate > 0.3).mean() > 0.2  # holds and moves


def test_dolly_moves_along_the_optical_axis_in_and_out() -> None:
    spec = generate_scene(WorldConfig(seed=1, camera_motion="dolly"))
    c2w = spec.c2w
    assert np.allclose(c2w[:, :3, :3], c2w[0, :3, :3], atol=1e-15)
    travel = c2w[:, :3, 3] - c2w[0, :3, 3]
    assert np.allclose(np.cross(travel, c2w[0, :3, 2]), 0.0, atol=1e-12)
    along = travel @ c2w[0, :3, 2]
    assert along.min() >= -1e-9 and 0.9 - 1e-9 <= along.max() <= 1.5 + 1e-9
    assert along[-1] < along.max() - 0.3  # pushed in, then pulled back
    speed = _speed(c2w[:, :3, 3], spec.config.fps)
    assert (speed == 0).mean() > 0.3 and speed.max() > 0.6  # stop and go


def test_orbit_keeps_distance_and_looks_at_the_target() -> None:
    cfg = WorldConfig(seed=1, camera_motion="orbit")
    spec = generate_scene(cfg)
    eyes = spec.c2w[:, :3, 3]
    dist = np.linalg.norm(eyes - spec.camera_target, axis=1)
    assert np.allclose(dist, dist[0], atol=1e-9)
    assert np.allclose(eyes[:, 2], eyes[0, 2], atol=1e-12)
    K = intrinsics(spec.fovy_deg, cfg.width, cfg.height)
    uv = project_points(transform_points(invert_pose(spec.c2w), spec.camera_target), K)
    assert np.allclose(uv, [(cfg.width - 1) / 2, (cfg.height - 1) / 2], atol=1e-9)
    angle = np.degrees(np.unwrap(np.arctan2(eyes[:, 1] - spec.camera_target[1], eyes[:, 0] - spec.camera_target[0])))
    assert 35.0 <= abs(angle[-1] - angle[0]) <= 280.0
    speed = _speed(eyes, cfg.fps)
    # an operator walking round: pauses, and walking speed (0.8–1.4 m/s) in between
    assert (speed < 1e-9).mean() > 0.15 and 0.8 - 1e-6 <= speed.max() <= 1.4 + 1e-6


def test_handheld_walks_with_pauses_and_small_smooth_shake() -> None:
    cfg = WorldConfig(seed=1, camera_motion="handheld", fps=30.0)
    spec = generate_scene(cfg)
    eyes = spec.c2w[:, :3, 3]
    step = np.linalg.norm(np.diff(eyes, axis=0), axis=1)
    assert step.max() < 0.05  # < 1.5 m/s: a walk, no jumps
    assert np.ptp(eyes[:, :2], axis=0).max() > 1.0  # it walks somewhere
    speed = step * cfg.fps
    assert (speed < 0.3).mean() > 0.15  # and stands (shaking a little) in between
    accel = np.linalg.norm(np.diff(eyes, 2, axis=0), axis=1)
    assert accel.max() < 0.01  # smooth: no frame-to-frame jerks
    # the shake is visible but small: the optical axis stays within a few degrees of the target
    to_target = spec.camera_target - eyes
    angle = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", _forward(spec.c2w), to_target)
                                         / np.linalg.norm(to_target, axis=1), -1, 1)))
    assert angle.max() < 12.0
    rot_steps = np.degrees(np.arccos(np.clip((np.einsum("nij,nij->n", spec.c2w[1:, :3, :3], spec.c2w[:-1, :3, :3])
                                              - 1) / 2, -1, 1)))
    assert 0 < rot_steps.max() < 1.0


@pytest.mark.parametrize("kind", CAMERA_MOTIONS)
def test_zero_motion_scale_freezes_every_camera(kind: str) -> None:
    spec = generate_scene(WorldConfig(seed=2, camera_motion=kind, motion_scale=0.0, duration_s=SHORT))  # type: ignore[arg-type]
    assert np.allclose(spec.c2w, spec.c2w[0], atol=1e-12)


def test_the_stage_is_in_view_from_the_resting_camera() -> None:
    """Every point of the stage's rim, on the floor and 1.7 m up, projects into the image of a static
    camera at the narrowest default field of view (so objects on the stage stay in view)."""
    for seed in range(10):
        cfg = WorldConfig(seed=seed, camera_motion="static", fovy_deg=FOVY_DEG[0], duration_s=1.0)
        spec = generate_scene(cfg)
        a = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        rim = spec.stage_center + spec.stage_radius * np.column_stack([np.cos(a), np.sin(a)])
        for z in (0.0, 1.7):
            pts = np.column_stack([rim, np.full(len(rim), z)])
            cam = transform_points(invert_pose(spec.c2w[0]), pts)
            uv = project_points(cam, intrinsics(spec.fovy_deg, cfg.width, cfg.height))
            assert (cam[:, 2] > 0).all()
            assert (uv[:, 0] > -0.5).all() and (uv[:, 0] < cfg.width - 0.5).all(), seed
            assert (uv[:, 1] > -0.5).all() and (uv[:, 1] < cfg.height - 0.5).all(), seed


# --------------------------------------------------------------------------------------------------
# the objects of whole worlds


def test_speed_levels_are_distinct_under_the_comparison_rule() -> None:
    """Adjacent cruising levels differ by more than the rules' 1.2 ratio, so "faster" / "nearly the
    same" answers between two cruising movers do not hinge on a few per cent."""
    for kind, levels in SPEED_LEVELS.items():
        ranges = list(levels.values())
        for (_, hi), (lo, _) in itertools.pairwise(ranges):
            assert lo > 1.2 * hi, kind
        assert ranges[0][0] >= 1.2  # walking clears the 0.1 floor at 24 s (0.77 s steps, ~6.5 m scale)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agents_stop_go_speed_up_and_turn(seed: int) -> None:
    cfg = WorldConfig(seed=seed)
    for obj in generate_scene(cfg).objects:
        if not obj.is_agent:
            continue
        speed = _speed(obj.centers[:, :2], cfg.fps)
        yaw = np.unwrap(np.arctan2(obj.rotations[:, 1, 0], obj.rotations[:, 0, 0]))
        still = speed < 0.05
        longest = max(len(run) for run in np.split(still, np.flatnonzero(np.diff(still.astype(int))) + 1) if run[0])
        assert longest >= 10, (obj.object_id, "never stops for a second")
        assert still[-30:].mean() < 1.0 or still[:-30].mean() < 1.0
        assert speed.max() > SPEED_LEVELS[obj.kind]["run"][0] - 0.1, (obj.object_id, "never speeds up")
        walking = (speed > 0.9 * SPEED_LEVELS[obj.kind]["walk"][0]) & (speed < SPEED_LEVELS[obj.kind]["jog"][0])
        assert walking.mean() > 0.05, (obj.object_id, "never walks")
        assert (np.abs(np.diff(yaw)) * cfg.fps).max() > 0.9, (obj.object_id, "never turns")


def test_balls_and_boxes_are_kicked_again_and_again() -> None:
    total = 0
    for seed in range(8):
        cfg = WorldConfig(seed=seed)
        for obj in generate_scene(cfg).objects:
            if obj.kind not in ("ball", "box"):
                continue
            total += 1
            speed = _speed(obj.centers, cfg.fps)
            moving = speed > 0.3
            starts = np.flatnonzero(np.diff(moving.astype(int)) == 1)
            assert len(starts) >= 2, (seed, obj.object_id)  # set off at least twice
            assert speed.max() > 1.5
            _, rest = object_parts(obj.kind, obj.size)
            assert obj.centers[:, 2].min() >= rest - 1e-9  # never sinks into the floor
    assert total >= 6


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), motion_kind=st.sampled_from(CAMERA_MOTIONS))
def test_every_world_keeps_its_invariants(seed: int, motion_kind: str) -> None:
    cfg = WorldConfig(seed=seed, duration_s=4.0, fps=5.0, camera_motion=motion_kind)  # type: ignore[arg-type]
    spec = generate_scene(cfg)
    assert 3 <= len(spec.objects) <= 6
    assert any(o.is_agent for o in spec.objects) and not all(o.is_agent for o in spec.objects)
    assert len({o.object_id for o in spec.objects}) == len(spec.objects)
    assert FOVY_DEG[0] <= spec.fovy_deg <= FOVY_DEG[1]
    rot = spec.c2w[:, :3, :3]
    assert np.allclose(rot @ np.swapaxes(rot, 1, 2), np.eye(3), atol=1e-9)
    eyes = spec.c2w[:, :3, 3]
    assert np.all(np.abs(eyes[:, :2]) < ROOM_HALF - 2.0)
    assert np.all(np.linalg.norm(eyes[:, :2] - spec.stage_center, axis=1) > spec.stage_radius + 1.0)
    for obj in spec.objects:
        assert obj.centers.shape == (cfg.num_frames, 3) and np.isfinite(obj.centers).all()
        r = obj.rotations
        assert np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-9)
        if obj.is_agent:
            assert np.allclose(r[:, :, 2], [0.0, 0.0, 1.0], atol=1e-12)  # agents stay upright
        limit = spec.stage_radius + (THING_MARGIN if obj.kind in ("ball", "box") else MOVER_MARGIN)
        assert np.linalg.norm(obj.centers[:, :2] - spec.stage_center, axis=1).max() <= limit + 1e-9
        assert np.linalg.norm(obj.centers - eyes, axis=1).min() > 0.75  # the camera keeps clear


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-7.0, 7.0), min_size=3, max_size=3))
def test_quaternion_helpers_agree_with_mujoco(rotvec: list[float]) -> None:
    import mujoco

    r = np.array(rotvec)
    q = motion.quat_from_rotvec(r)
    angle = np.linalg.norm(r)
    want_q = np.zeros(4)
    if angle > 0:
        mujoco.mju_axisAngle2Quat(want_q, r / angle, angle)
    else:
        want_q[0] = 1.0
    assert np.allclose(q, want_q, atol=1e-12)
    want_m = np.zeros(9)
    mujoco.mju_quat2Mat(want_m, q)
    assert np.allclose(motion.quat_to_matrix(q), want_m.reshape(3, 3), atol=1e-12)
