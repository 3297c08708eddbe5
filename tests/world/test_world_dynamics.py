"""The motion primitives of :mod:`dsr.world.dynamics` do what they claim, against hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dsr.world import dynamics, motion
from dsr.world.dynamics import Goal, Kick, Leg, Mover, Thing

DT = 1.0 / 200.0  # the integration step of motion.fine_grid at 10 fps


def _times(seconds: float) -> np.ndarray:
    times, _ = motion.fine_grid(round(seconds * 10) + 1, 10.0)
    assert times[1] - times[0] == pytest.approx(DT)
    return times


def _mover(*legs: Leg, xy: tuple[float, float] = (0.0, 0.0), yaw: float = 0.0, stage_radius: float = 50.0) -> Mover:
    return Mover(legs=legs, start_xy=xy, start_yaw=yaw, stage_center=(0.0, 0.0), stage_radius=stage_radius,
                 accel=3.0, lookahead=0.6, max_turn_rate=3.0, radius=0.35, half_x=0.2, half_y=0.35,
                 limit_radius=stage_radius + 0.5)


def _run(movers: list[Mover], seconds: float, things: tuple[Thing, ...] = ()):
    times = _times(seconds)
    paths, thing_paths = dynamics.simulate(times, movers, things)
    return times, paths, thing_paths


def _speed(xy: np.ndarray) -> np.ndarray:
    """Speed during each step k → k+1 (m/s)."""
    return np.linalg.norm(np.diff(xy, axis=0), axis=1) / DT


def test_ramp_speed_is_linear_then_flat() -> None:
    assert dynamics.ramp_speed(2.0, 2.0, 1.5, 0.0, 2.0) == 1.5
    assert dynamics.ramp_speed(2.5, 2.0, 1.5, 0.0, 2.0) == pytest.approx(1.125)
    assert dynamics.ramp_speed(3.0, 2.0, 1.5, 0.0, 2.0) == pytest.approx(0.75)
    assert dynamics.ramp_speed(9.0, 2.0, 1.5, 0.0, 2.0) == 0.0
    assert dynamics.ramp_speed(2.1, 2.0, 1.0, 3.0, 0.0) == 3.0  # no ramp: a step


def test_a_braking_leg_slows_linearly_to_a_stop() -> None:
    # walk at 1.5 m/s (reached after 0.5 s at 3 m/s²), then from 2 s brake to 0 over 2 s
    times, [(xy, _)], _ = _run([_mover(Leg("walk", 0.0, 1.5), Leg("brake", 2.0, 0.0, ramp_s=2.0))], 6.0)
    speed = _speed(xy)
    k = np.searchsorted(times, [1.0, 2.5, 3.0, 3.5, 4.5])
    # hand-computed: 1.5 · (1 − (t − 2) / 2) on the ramp (0.75 m/s², within the 3 m/s² limit)
    assert speed[k] == pytest.approx([1.5, 1.125, 0.75, 0.375, 0.0], abs=1e-6)
    on_ramp = speed[k[1]:k[3]]
    assert np.all(np.diff(on_ramp) < 0)  # strictly slowing
    assert np.all(speed[np.searchsorted(times, 4.0) + 1:] == 0.0)


def test_an_accelerating_leg_speeds_up_linearly() -> None:
    times, [(xy, _)], _ = _run([_mover(Leg("walk", 0.0, 1.2), Leg("run", 2.0, 3.0, ramp_s=2.0))], 5.0)
    speed = _speed(xy)
    k = np.searchsorted(times, [1.5, 3.0, 4.5])
    assert speed[k] == pytest.approx([1.2, 2.1, 3.0], abs=1e-6)  # 1.2 + 1.8 · (t − 2) / 2
    assert np.all(np.diff(speed[np.searchsorted(times, 2.0) + 1:np.searchsorted(times, 4.0)]) > 0)


def test_stop_and_go_has_a_span_of_zero_speed() -> None:
    legs = (Leg("walk", 0.0, 1.4), Leg("stop", 2.0, 0.0, ramp_s=0.5), Leg("walk", 4.0, 1.4, ramp_s=1.0))
    times, [(xy, _)], _ = _run([_mover(*legs)], 7.0)
    speed = _speed(xy)
    stopped = speed[np.searchsorted(times, 2.55):np.searchsorted(times, 4.0)]
    assert len(stopped) > 250 and np.all(stopped == 0.0)  # stands still from 2.5 s until 4 s
    k = np.searchsorted(times, [1.5, 4.5, 6.0])
    assert speed[k] == pytest.approx([1.4, 0.7, 1.4], abs=1e-6)  # and goes again: 1.4 · (t − 4) / 1


@pytest.mark.parametrize(("goal_x", "closer"), [(2.5, True), (-2.5, False)])
def test_heading_for_a_place_near_or_far_from_the_camera_changes_the_camera_distance(goal_x: float,
                                                                                      closer: bool) -> None:
    camera = np.array([6.0, 0.0])
    mover = _mover(Leg("go", 0.0, 1.4, goal=Goal(points=((goal_x, 0.0),))), yaw=np.pi / 2)
    times, [(xy, _)], _ = _run([mover], 6.0)
    dist = np.linalg.norm(xy - camera, axis=1)
    arrive = np.argmax(np.linalg.norm(xy - [goal_x, 0.0], axis=1) < dynamics.ARRIVED)
    assert arrive > 0  # it gets there
    leg = dist[np.searchsorted(times, 1.0):arrive]  # once turned toward its goal (≤ 90° at 3 rad/s)
    assert np.all(np.diff(leg) < 0) if closer else np.all(np.diff(leg) > 0)
    assert abs(dist[arrive] - abs(camera[0] - goal_x)) < dynamics.ARRIVED + 1e-9


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_passing_a_body_on_its_left_or_right(side: float) -> None:
    standing = _mover(Leg("stand", 0.0, 0.0), xy=(3.0, 0.0))
    passer = _mover(Leg("pass", 0.0, 1.4, goal=Goal(body=1, side=side)))
    _, [(xy, _), (other, _)], _ = _run([passer, standing], 6.0)
    assert np.allclose(other, [3.0, 0.0])
    alongside = np.argmin(np.abs(xy[:, 0] - 3.0))
    # the body's left as seen from the passer (walking +x) is +y: a left pass goes by at y > 0
    assert side * xy[alongside, 1] > 0.5
    assert xy[-1, 0] > 3.5  # and goes on beyond it
    assert np.linalg.norm(xy - other, axis=1).min() > 0.7  # never closer than the two footprints


def test_walking_up_to_a_body_stops_next_to_it_facing_it() -> None:
    target = _mover(Leg("stand", 0.0, 0.0), xy=(4.0, 1.0))
    walker = _mover(Leg("approach", 0.0, 1.4, goal=Goal(body=1, stop_within=1.2)), yaw=-1.0)
    _, [(xy, yaw), _], _ = _run([walker, target], 8.0)
    gap = np.linalg.norm(xy[-1] - [4.0, 1.0])
    assert 1.1 <= gap < 1.2  # it starts braking (0.33 m from 1.4 m/s at 3 m/s²) so as to stop 1.2 m away
    assert np.all(_speed(xy[-200:]) == 0.0)
    facing = math.atan2(1.0 - xy[-1, 1], 4.0 - xy[-1, 0])
    assert abs(dynamics._wrap(yaw[-1] - facing)) < np.radians(3.0)


def test_walking_into_a_box_pushes_it_along() -> None:
    box = Thing(start=(2.0, 0.0, 0.25), kicks=(), rest_height=0.25, radius=0.25, restitution=0.35,
                ground_decel=3.0, rolling_radius=None)
    pusher = _mover(Leg("push", 0.0, 1.2, goal=Goal(body=1)))
    _, [(xy, _)], [(pos, _)] = _run([pusher], 6.0, (box,))
    assert pos[0, 0] == 2.0 and pos[-1, 0] > 4.5  # pushed about as far as the pusher walked past it
    assert abs(pos[-1, 1]) < 0.5
    assert np.all(pos[:, 0] - xy[:, 0] > 0.0)  # always in front of the pusher


def test_a_kick_sends_a_thing_to_its_place() -> None:
    # along the floor: v0 = sqrt(2 · a · d) = sqrt(2 · 1.2 · 3) = 2.683 m/s, stopping 3 m away
    kick = Kick(0.5, toward=(3.0, 4.0))
    assert np.hypot(*kick.launch(0.0, 4.0, 1.2)[:2]) == pytest.approx(math.sqrt(2 * 1.2 * 3.0))
    ball = Thing(start=(0.0, 4.0, 0.2), kicks=(kick,), rest_height=0.2, radius=0.2, restitution=0.7,
                 ground_decel=1.2, rolling_radius=0.2)
    times = _times(5.0)
    pos, _ = dynamics.ballistic_path(times, ball)
    assert np.all(pos[times < 0.5] == pos[0])  # at rest until kicked
    assert pos[-1, :2] == pytest.approx([3.0, 4.0], abs=0.02)


def test_a_turn_leg_turns_by_its_limit_then_goes_straight() -> None:
    leg = Leg("turn", 0.0, 1.0, turn_rate=1.0, turn_limit=math.pi / 2)
    times, [(xy, yaw)], _ = _run([_mover(leg)], 4.0)
    assert yaw[-1] == pytest.approx(math.pi / 2, abs=1.0 * DT)
    after = times > math.pi / 2 + 0.05
    assert np.ptp(yaw[after]) == 0.0  # then straight on
    step = np.diff(xy[after], axis=0)
    assert np.allclose(step / np.linalg.norm(step, axis=1, keepdims=True), [np.cos(yaw[-1]), np.sin(yaw[-1])])


def test_a_mover_about_to_leave_its_stage_heads_back_across_it() -> None:
    _, [(xy, _)], _ = _run([_mover(Leg("walk", 0.0, 2.0), stage_radius=3.0)], 20.0)
    r = np.linalg.norm(xy, axis=1)
    assert r.max() <= 3.5 + 1e-9  # the limit radius
    assert (r < 3.0).mean() > 0.9
    crossings = np.flatnonzero(np.diff(np.sign(xy[:, 0])) != 0)
    assert len(crossings) >= 3  # back and forth across the stage


def test_walkers_step_around_each_other_and_bump_balls_out_of_their_way() -> None:
    a = _mover(Leg("walk", 0.0, 1.2, goal=Goal(points=((3.5, 0.0),))), xy=(-3.0, 0.0))
    b = _mover(Leg("walk", 0.0, 1.2, goal=Goal(points=((-3.5, 0.0),))), xy=(3.0, 0.0), yaw=np.pi)
    _, [(pa, _), (pb, _)], _ = _run([a, b], 8.0)
    assert np.linalg.norm(pa - pb, axis=1).min() > 0.7  # never closer than the two footprints
    assert pa[-1, 0] > 2.5 and pb[-1, 0] < -2.5  # and both got past
    ball = Thing(start=(0.0, 0.0, 0.3), kicks=(), rest_height=0.3, radius=0.3, restitution=0.7,
                 ground_decel=1.2, rolling_radius=0.3)
    _, [(pc, _)], [(pos, _)] = _run([a], 8.0, (ball,))
    # it walks straight on and pushes the ball ahead: the ball's centre never enters its outline (front
    # face 0.2 m ahead of its centre, ball radius 0.3 m)
    assert np.allclose(pc[:, 1], 0.0) and pos[-1, 0] > pc[-1, 0] + 0.5 - 1e-9
    assert (np.linalg.norm(pc - pos[:, :2], axis=1) >= 0.5 - 1e-9).all()
    # with nothing in the way the walk is straight
    _, [(pd, yaw)], _ = _run([a], 8.0)
    assert np.allclose(pd[:, 1], 0.0) and np.allclose(yaw, 0.0)


def test_a_ball_rolls_without_slipping() -> None:
    times, _ = motion.fine_grid(200, 100.0)
    ball = Thing(start=(0.0, 0.0, 0.2), kicks=(Kick(0.0, velocity=(2.0, 0.0, 0.0)),), rest_height=0.2, radius=0.2,
                 restitution=0.5, ground_decel=1.0, rolling_radius=0.2)
    pos, quat = dynamics.ballistic_path(times, ball)
    # hand-computed: v(t) = 2 − t, so after 1.99 s the ball travelled 2·1.99 − 1.99²/2 ≈ 1.99 m (Euler steps)
    assert pos[-1, 0] == pytest.approx(2 * 1.99 - 1.99**2 / 2, abs=0.02)
    # rolling along +x turns the ball about +y by (distance travelled) / radius
    a = pos[-1, 0] / 0.2
    about_y = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    assert np.allclose(motion.quat_to_matrix(quat[-1]), about_y, atol=0.02)


def test_a_dropped_ball_bounces_lower_each_time() -> None:
    times, _ = motion.fine_grid(300, 100.0)
    ball = Thing(start=(0.0, 0.0, 0.1), kicks=(Kick(0.0, velocity=(0.0, 0.0, 4.0)),), rest_height=0.1, radius=0.1,
                 restitution=0.6, ground_decel=1.0, rolling_radius=0.1)
    pos, _ = dynamics.ballistic_path(times, ball)
    z = pos[:, 2]
    peaks = [z[i] for i in range(1, len(z) - 1) if z[i] > z[i - 1] and z[i] >= z[i + 1] and z[i] > 0.1 + 1e-6]
    assert len(peaks) >= 2
    assert peaks[0] == pytest.approx(0.1 + 4.0**2 / (2 * dynamics.GRAVITY), abs=0.03)
    assert all(b < a for a, b in itertools.pairwise(peaks))
    assert z[-1] == 0.1  # at rest on the floor by the end


def test_a_ball_bounces_off_a_standing_person() -> None:
    times, _ = motion.fine_grid(40, 10.0)
    person = (np.tile([2.0, 0.0, 0.0], (len(times), 1)), 0.2, 0.35)
    ball = Thing(start=(0.0, 0.0, 0.2), kicks=(Kick(0.0, velocity=(2.0, 0.0, 0.0)),), rest_height=0.2, radius=0.2,
                 restitution=0.7, ground_decel=0.5, rolling_radius=0.2)
    pos, _ = dynamics.ballistic_path(times, ball, [person])
    # it never enters the person's outline (front face at x = 1.8, so the ball's centre stays ≤ 1.6) ...
    assert pos[:, 0].max() <= 1.6 + 1e-9
    assert pos[:, 0].max() > 1.55  # ... after touching it ...
    assert pos[-1, 0] < pos[:, 0].max() - 0.5  # ... and rolls back
    assert np.allclose(pos[:, 1], 0.0)
