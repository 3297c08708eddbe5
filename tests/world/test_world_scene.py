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
from dsr.world.config import WorldConfig, WorldConfigError
from dsr.world.render import intrinsics
from dsr.world.scene import ARENA_RADIUS, ROOM_HALF, SceneSpec, generate_scene


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


def _arrays(spec: SceneSpec) -> list[np.ndarray]:
    return [spec.c2w, spec.times_s] + [a for o in spec.objects for a in (o.centers, o.quats)]


def test_same_seed_same_spec_and_other_seeds_differ() -> None:
    a, b = generate_scene(WorldConfig(seed=7)), generate_scene(WorldConfig(seed=7))
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    assert (a.floor, a.walls, a.props, a.fovy_deg) == (b.floor, b.walls, b.props, b.fovy_deg)
    c = generate_scene(WorldConfig(seed=8))
    assert not np.array_equal(a.c2w, c.c2w)
    assert not np.array_equal(a.objects[0].centers, c.objects[0].centers)


def test_camera_motion_does_not_change_the_objects() -> None:
    a = generate_scene(WorldConfig(seed=3, camera_motion="static"))
    b = generate_scene(WorldConfig(seed=3, camera_motion="orbit"))
    assert all(np.array_equal(x.centers, y.centers) for x, y in zip(a.objects, b.objects, strict=True))


def _forward(c2w: np.ndarray) -> np.ndarray:
    return c2w[:, :3, 2]


def test_static_camera_never_moves() -> None:
    spec = generate_scene(WorldConfig(seed=1, camera_motion="static"))
    assert np.array_equal(spec.c2w, np.broadcast_to(spec.c2w[0], spec.c2w.shape))


def test_pan_turns_about_the_vertical_in_place() -> None:
    spec = generate_scene(WorldConfig(seed=1, camera_motion="pan"))
    c2w = spec.c2w
    assert np.array_equal(c2w[:, :3, 3], np.broadcast_to(c2w[0, :3, 3], (len(c2w), 3)))
    assert np.allclose(c2w[:, 2, 0], 0.0, atol=1e-12)  # the x axis stays horizontal: no roll
    heading = np.degrees(np.unwrap(np.arctan2(_forward(c2w)[:, 1], _forward(c2w)[:, 0])))
    assert 40.0 - 1e-6 <= abs(heading[-1] - heading[0]) <= 70.0 + 1e-6  # ±(20–35)°
    assert np.all(np.diff(heading) * np.sign(heading[-1] - heading[0]) >= -1e-9)  # one smooth sweep


def test_dolly_moves_along_the_optical_axis_without_turning() -> None:
    spec = generate_scene(WorldConfig(seed=1, camera_motion="dolly"))
    c2w = spec.c2w
    assert np.allclose(c2w[:, :3, :3], c2w[0, :3, :3], atol=1e-15)
    travel = c2w[:, :3, 3] - c2w[0, :3, 3]
    assert np.allclose(np.cross(travel, c2w[0, :3, 2]), 0.0, atol=1e-12)
    assert 0.6 - 1e-9 <= travel[-1] @ c2w[0, :3, 2] <= 1.0 + 1e-9


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
    swept = np.degrees(np.abs(np.unwrap(np.arctan2(eyes[:, 1] - spec.camera_target[1],
                                                   eyes[:, 0] - spec.camera_target[0]))[[0, -1]] @ [-1, 1]))
    assert 50.0 - 1e-6 <= swept <= 90.0 + 1e-6


def test_handheld_drifts_slowly_with_small_smooth_shake() -> None:
    cfg = WorldConfig(seed=1, camera_motion="handheld", fps=30.0)
    spec = generate_scene(cfg)
    eyes = spec.c2w[:, :3, 3]
    step = np.linalg.norm(np.diff(eyes, axis=0), axis=1)
    assert step.max() < 0.05  # < 1.5 m/s: a walk, no jumps
    assert 0.3 < np.linalg.norm(eyes[-1] - eyes[0]) < 1.2
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


@pytest.mark.parametrize("kind", ["static", "pan", "dolly", "orbit", "handheld"])
def test_zero_motion_scale_freezes_every_camera(kind: str) -> None:
    spec = generate_scene(WorldConfig(seed=2, camera_motion=kind, motion_scale=0.0))  # type: ignore[arg-type]
    assert np.allclose(spec.c2w, spec.c2w[0], atol=1e-12)


def _speeds(centers: np.ndarray, fps: float) -> np.ndarray:
    return np.linalg.norm(np.diff(centers[:, :2], axis=0), axis=1) * fps


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agents_walk_turn_stop_and_speed_up(seed: int) -> None:
    cfg = WorldConfig(seed=seed)
    for obj in generate_scene(cfg).objects:
        if not obj.is_agent:
            continue
        speed = _speeds(obj.centers, cfg.fps)
        yaw = np.unwrap(np.arctan2(obj.rotations[:, 1, 0], obj.rotations[:, 0, 0]))
        run = 1.9 if obj.kind == "person" else 1.45
        assert speed.min() < 0.05, (obj.object_id, "never stops")
        assert speed.max() > run, (obj.object_id, "never speeds up")
        assert ((speed > 0.5) & (speed < 1.5)).any(), (obj.object_id, "never walks")
        assert (np.abs(np.diff(yaw)) * cfg.fps).max() > 0.9, (obj.object_id, "never turns")


def test_balls_and_boxes_move_and_come_to_rest() -> None:
    resting = total = 0
    for seed in range(8):
        cfg = WorldConfig(seed=seed)
        for obj in generate_scene(cfg).objects:
            if obj.kind not in ("ball", "box"):
                continue
            speed = np.linalg.norm(np.diff(obj.centers, axis=0), axis=1) * cfg.fps
            assert speed.max() > 0.5
            _, rest = object_parts(obj.kind, obj.size)
            assert obj.centers[:, 2].min() >= rest - 1e-9  # never sinks into the floor
            total += 1
            resting += bool(speed[0] == 0.0 or speed[-1] == 0.0)  # kicked later, or stopped by the end
    # a few are struck again by a walker or a car and still roll at the end
    assert total >= 8 and resting >= 0.75 * total


def test_a_ball_rolls_without_slipping() -> None:
    times, _ = motion.fine_grid(200, 100.0)
    throw = motion.Throw(0.0, (2.0, 0.0, 0.0))
    pos, quat = motion.ballistic_path(times, np.array([0.0, 0.0, 0.2]), throw, rest_height=0.2, arena_radius=100.0,
                                      restitution=0.5, ground_decel=1.0, rolling_radius=0.2)
    # hand-computed: v(t) = 2 − t, so after 1.99 s the ball travelled 2·1.99 − 1.99²/2 ≈ 1.99 m (Euler steps)
    assert pos[-1, 0] == pytest.approx(2 * 1.99 - 1.99**2 / 2, abs=0.02)
    # rolling along +x turns the ball about +y by (distance travelled) / radius
    a = pos[-1, 0] / 0.2
    about_y = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    assert np.allclose(motion.quat_to_matrix(quat[-1]), about_y, atol=0.02)


def test_a_dropped_ball_bounces_lower_each_time() -> None:
    times, _ = motion.fine_grid(300, 100.0)
    pos, _ = motion.ballistic_path(times, np.array([0.0, 0.0, 0.1]), motion.Throw(0.0, (0.0, 0.0, 4.0)),
                                   rest_height=0.1, arena_radius=10.0, restitution=0.6, ground_decel=1.0,
                                   rolling_radius=0.1)
    z = pos[:, 2]
    peaks = [z[i] for i in range(1, len(z) - 1) if z[i] > z[i - 1] and z[i] >= z[i + 1] and z[i] > 0.1 + 1e-6]
    assert len(peaks) >= 2
    assert peaks[0] == pytest.approx(0.1 + 4.0**2 / (2 * motion.GRAVITY), abs=0.03)
    assert all(b < a for a, b in itertools.pairwise(peaks))
    assert z[-1] == 0.1  # at rest on the floor by the end


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), motion_kind=st.sampled_from(["static", "pan", "dolly", "orbit", "handheld"]))
def test_every_world_keeps_its_invariants(seed: int, motion_kind: str) -> None:
    cfg = WorldConfig(seed=seed, duration_s=3.0, fps=5.0, camera_motion=motion_kind)  # type: ignore[arg-type]
    spec = generate_scene(cfg)
    assert 3 <= len(spec.objects) <= 6
    assert any(o.is_agent for o in spec.objects) and not all(o.is_agent for o in spec.objects)
    assert len({o.object_id for o in spec.objects}) == len(spec.objects)
    rot = spec.c2w[:, :3, :3]
    assert np.allclose(rot @ np.swapaxes(rot, 1, 2), np.eye(3), atol=1e-9)
    eyes = spec.c2w[:, :3, 3]
    assert np.all(np.abs(eyes[:, :2]) < ROOM_HALF - 1.0)
    assert np.all(np.linalg.norm(eyes[:, :2], axis=1) > ARENA_RADIUS + 0.5)
    for obj in spec.objects:
        assert obj.centers.shape == (cfg.num_frames, 3) and np.isfinite(obj.centers).all()
        r = obj.rotations
        assert np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-9)
        if obj.is_agent:
            assert np.allclose(r[:, :, 2], [0.0, 0.0, 1.0], atol=1e-12)  # agents stay upright
        limit = ARENA_RADIUS + (0.0 if obj.kind in ("ball", "box") else 0.5)
        assert np.linalg.norm(obj.centers[:, :2], axis=1).max() <= limit + 1e-9
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


def _walker(x: float, yaw: float) -> motion.Mover:
    return motion.Mover(actions=(motion.Action("walk", 0.0, 1.2, 0.0),), start_xy=(x, 0.0), start_yaw=yaw,
                        arena_radius=50.0, accel=3.0, lookahead=0.8, max_turn_rate=2.0, radius=0.35)


def test_walkers_on_a_collision_course_avoid_each_other_and_obstacles() -> None:
    times, substeps = motion.fine_grid(60, 10.0)
    # head-on: two walkers 6 m apart walking straight at each other
    (a, _), (b, _) = motion.steer_paths(times, [_walker(-3.0, 0.0), _walker(3.0, np.pi)])
    assert np.linalg.norm(a - b, axis=1).min() > 0.7  # never closer than the two footprints
    assert a[-1, 0] > 2.0 and b[-1, 0] < -2.0  # and both got past
    # a standing obstacle (a ball at rest) in the way
    ball = np.zeros((len(times), 2))
    (c, _), = motion.steer_paths(times, [_walker(-3.0, 0.0)], [(ball, 0.3)])
    assert np.linalg.norm(c, axis=1).min() > 0.65
    # with nothing in the way the walk is straight, at the target speed after accelerating
    (d, yaw), = motion.steer_paths(times, [_walker(-3.0, 0.0)])
    assert np.allclose(d[:, 1], 0.0) and np.allclose(yaw, 0.0)
    one_second = 10 * substeps
    assert d[-1, 0] - d[-1 - one_second, 0] == pytest.approx(1.2, abs=1e-6)


def test_a_ball_bounces_off_a_standing_person() -> None:
    times, _ = motion.fine_grid(40, 10.0)
    person = motion.Blocker(np.tile([2.0, 0.0, 0.0], (len(times), 1)), half_x=0.2, half_y=0.35)
    pos, _ = motion.ballistic_path(times, np.array([0.0, 0.0, 0.2]), motion.Throw(0.0, (2.0, 0.0, 0.0)),
                                   rest_height=0.2, arena_radius=10.0, restitution=0.7, ground_decel=0.5,
                                   rolling_radius=0.2, radius=0.2, blockers=[person])
    # it never enters the person's outline (front face at x = 1.8, so the ball's centre stays ≤ 1.6) ...
    assert pos[:, 0].max() <= 1.6 + 1e-9
    assert pos[:, 0].max() > 1.55  # ... after touching it ...
    assert pos[-1, 0] < pos[:, 0].max() - 0.5  # ... and rolls back
    assert np.allclose(pos[:, 1], 0.0)
