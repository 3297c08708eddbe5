"""Draws from a record's stated uncertainty follow the v2 error model (along / across the ray, shared part)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dsr.scene.record import SceneRecord
from dsr.scene.uncertainty import focal_error_motion, ray_frames, sample_camera_centers, sample_centers


def test_ground_truth_draws_are_the_truth(record: SceneRecord) -> None:
    gt = dataclasses.replace(record, objects=tuple(dataclasses.replace(
        o, center_sigma_along=np.zeros(record.num_frames), center_sigma_across=np.zeros(record.num_frames))
        for o in record.objects), camera=dataclasses.replace(record.camera, position_sigma=np.zeros(record.num_frames)))
    draws = sample_centers(gt, gt.objects[0], 5, np.random.default_rng(0))
    np.testing.assert_array_equal(draws, np.broadcast_to(gt.objects[0].centers_world, draws.shape))
    np.testing.assert_array_equal(sample_camera_centers(gt, 3, np.random.default_rng(0))[1], gt.camera.c2w[:, :3, 3])


def test_draws_spread_along_and_across_the_ray_as_stated(record: SceneRecord) -> None:
    n = record.num_frames
    agent = dataclasses.replace(record.objects[0], center_sigma_along=np.full(n, 0.4),
                                center_sigma_across=np.full(n, 0.05), center_sigma_shared=np.full(n, 0.3))
    draws = sample_centers(record, agent, 20_000, np.random.default_rng(1))
    ray, perp = ray_frames(agent.centers_world, record.camera.c2w)
    d = draws - agent.centers_world[None]
    along = np.einsum("kti,ti->kt", d, ray)
    across = np.einsum("kti,tij->ktj", d, perp)
    np.testing.assert_allclose(along.std(axis=0), 0.4, rtol=0.03)
    np.testing.assert_allclose(across.std(axis=(0, 2)), 0.05, rtol=0.03)
    # the shared part correlates frames: corr(along_0, along_5) = shared² / along² = 0.5625
    assert abs(np.corrcoef(along[:, 0], along[:, 5])[0, 1] - 0.5625) < 0.03
    assert abs(np.corrcoef(across[:, 0, 0], across[:, 5, 0])[0, 1]) < 0.03
    # rays point from the camera to the object, and the basis is orthonormal to them
    np.testing.assert_allclose(np.einsum("ti,tij->tj", ray, perp), 0.0, atol=1e-12)
    assert np.all(np.einsum("ti,ti->t", ray, agent.centers_world - record.camera.c2w[:, :3, 3]) > 0)


def test_scale_drift_shifts_by_hand() -> None:
    from dsr.scene.uncertainty import scale_drift_shifts

    centres = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    times = np.array([0.0, 1.0, 2.0, 3.0])
    shifts = scale_drift_shifts(centres, times, np.array([0.0, np.log(2.0)]))
    assert shifts.shape == (2, 4, 3)
    np.testing.assert_array_equal(shifts[0], 0.0)  # no drift, no shift
    # mid times 0.5, 1.5, 2.5 (mean 1.5): the steps become 2^-1, 2^0, 2^1 times as long
    path = centres + shifts[1]
    steps = np.diff(path, axis=0)
    np.testing.assert_allclose(steps, [[0.5, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    np.testing.assert_array_equal(shifts[1, 0], 0.0)  # the first centre stays
    assert scale_drift_shifts(centres[:1], times[:1], np.ones(3)).shape == (3, 1, 3)
    # per-step errors on top: the second step also doubled, the third halved
    jittered = centres + scale_drift_shifts(centres, times, np.array([np.log(2.0)]),
                                            np.array([[0.0, np.log(2.0), -np.log(2.0)]]))[0]
    np.testing.assert_allclose(np.diff(jittered, axis=0), [[0.5, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])


def test_scale_jitter_spreads_each_step_as_stated(record: SceneRecord) -> None:
    from dsr.scene.uncertainty import sample_scale_drift

    jittery = dataclasses.replace(record, camera=dataclasses.replace(record.camera, scale_jitter_sigma=0.3))
    shifts = sample_scale_drift(jittery, 3000, np.random.default_rng(1))
    c = record.camera.c2w[:, :3, 3]
    steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
    j = int(np.argmax(steps))
    if steps[j] > 1e-9:  # the log of a step's length ratio has the stated spread
        drawn = np.linalg.norm(np.diff(c[None] + shifts, axis=1)[:, j], axis=1)
        assert np.std(np.log(drawn / steps[j])) == pytest.approx(0.3, rel=0.08)


def test_scale_drift_draws_only_when_stated(record: SceneRecord) -> None:
    from dsr.scene.uncertainty import sample_scale_drift

    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(sample_scale_drift(record, 5, rng), 0.0)
    assert rng.standard_normal() == np.random.default_rng(7).standard_normal()  # no draw was spent
    drifting = dataclasses.replace(record, camera=dataclasses.replace(record.camera, scale_drift_sigma=0.2))
    shifts = sample_scale_drift(drifting, 2000, np.random.default_rng(0))
    steps = np.linalg.norm(np.diff(record.camera.c2w[:, :3, 3], axis=0), axis=1)
    moving = np.flatnonzero(steps > 1e-9)
    if len(moving) >= 2:  # the log ratio of the last to the first moving step is δ·Δτ: its spread is 0.2·Δτ
        a, b = moving[0], moving[-1]
        path = record.camera.c2w[None, :, :3, 3] + shifts
        la = np.linalg.norm(path[:, a + 1] - path[:, a], axis=1)
        lb = np.linalg.norm(path[:, b + 1] - path[:, b], axis=1)
        ts = record.timestamps_s
        dtau = (ts[b] + ts[b + 1] - ts[a] - ts[a + 1]) / 2
        assert np.std(np.log(lb / la) - np.log(steps[b] / steps[a])) == pytest.approx(0.2 * dtau, rel=0.1)


def test_path_stretches_number_the_runs_between_stops_by_hand() -> None:
    from dsr.scene.uncertainty import path_stretches

    # steps: 1, 1, 0, 0.01 (1% of the median moving step 1: still), 2, 0, 1; a path that starts at rest
    x = np.cumsum([0.0, 0.0, 1.0, 1.0, 0.0, 0.01, 2.0, 0.0, 1.0])
    centres = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    np.testing.assert_array_equal(path_stretches(centres), [-1, 0, 0, -1, -1, 1, -1, 2])
    # 3% of the median is motion: no stop there
    x[5:] += 0.02
    np.testing.assert_array_equal(path_stretches(np.stack([x, 0 * x, 0 * x], axis=1))[3:6], [-1, 1, 1])
    assert (path_stretches(np.zeros((4, 3))) == -1).all() and path_stretches(np.zeros((1, 3))).shape == (0,)


def test_stretch_scale_shift_scales_one_stretch_by_hand() -> None:
    from dsr.scene.uncertainty import path_stretches, stretch_scale_shift

    # moves +x by 1, 1, stops, then +y by 2, 2: stretch 1 doubled moves the last two centres by +2 and +4 in y
    centres = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 0, 0], [2, 2, 0], [2, 4, 0]], float)
    stretches = path_stretches(centres)
    np.testing.assert_array_equal(stretches, [0, 0, -1, 1, 1])
    np.testing.assert_allclose(stretch_scale_shift(centres, stretches, 1, np.log(2.0)),
                               [[0, 0, 0]] * 4 + [[0, 2, 0], [0, 4, 0]])
    # stretch 0 halved: -0.5 then -1 in x, and the rest of the path comes along
    np.testing.assert_allclose(stretch_scale_shift(centres, stretches, 0, np.log(0.5))[:, 0], [0, -0.5, -1, -1, -1, -1])


def _yawing_track(yaw_deg: list[float], centres: list[list[float]]) -> np.ndarray:
    c2w = np.tile(np.eye(4), (len(yaw_deg), 1, 1))
    for t, (a, c) in enumerate(zip(yaw_deg, centres, strict=True)):
        c2w[t, :3, :3] = _rz(np.radians(a))
        c2w[t, :3, 3] = c
    return c2w


def _rz(a: float) -> np.ndarray:
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_focal_error_motion_scales_the_turns_and_turns_the_steps_by_hand() -> None:
    # a camera yawing 10° a frame, stepping +x then +y; with twice the turn from frame 0, frame t is yawed 10t° more
    c2w = _yawing_track([0.0, 10.0, 20.0], [[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    delta, centres = focal_error_motion(c2w, 0, 2.0)
    for t in range(3):
        np.testing.assert_allclose(delta[t], _rz(np.radians(10.0 * t)), atol=1e-12)
    # step 0 is measured at frame 0 (no extra turn), step 1 at frame 1 (10° more): (0, 1) -> (-sin 10°, cos 10°)
    s10, c10 = np.sin(np.radians(10)), np.cos(np.radians(10))
    np.testing.assert_allclose(centres, [[0, 0, 0], [1, 0, 0], [1 - s10, c10, 0]], atol=1e-12)
    # from frame 2 instead: frame 2 keeps its pose, the earlier ones turn back (frame t by 10·(t − 2)°)
    delta, centres = focal_error_motion(c2w, 2, 2.0)
    for t in range(3):
        np.testing.assert_allclose(delta[t], _rz(np.radians(10.0 * (t - 2))), atol=1e-12)
    s20, c20 = np.sin(np.radians(-20)), np.cos(np.radians(-20))
    step0 = np.array([c20, s20, 0.0])  # (1, 0, 0) turned by -20°
    step1 = np.array([s10, c10, 0.0])  # (0, 1, 0) turned by -10°
    np.testing.assert_allclose(centres[2], [1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(centres[1], centres[2] - step1, atol=1e-12)
    np.testing.assert_allclose(centres[0], centres[1] - step0, atol=1e-12)


def test_focal_error_motion_at_factor_one_is_the_track_itself() -> None:
    rng = np.random.default_rng(3)
    from scipy.spatial.transform import Rotation

    c2w = np.tile(np.eye(4), (12, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(rng.normal(size=(12, 3))).as_matrix()
    c2w[:, :3, 3] = rng.normal(size=(12, 3))
    for ref in (0, 5, 11):
        delta, centres = focal_error_motion(c2w, ref, 1.0)
        np.testing.assert_allclose(delta, np.tile(np.eye(3), (12, 1, 1)), atol=1e-9)
        np.testing.assert_allclose(centres, c2w[:, :3, 3], atol=1e-9)
        # any factor: the reference frame keeps its pose, and every delta is a rotation
        delta, centres = focal_error_motion(c2w, ref, 1.7)
        np.testing.assert_allclose(delta[ref], np.eye(3), atol=1e-9)
        np.testing.assert_allclose(centres[ref], c2w[ref, :3, 3], atol=1e-12)
        np.testing.assert_allclose(delta @ np.swapaxes(delta, 1, 2), np.tile(np.eye(3), (12, 1, 1)), atol=1e-9)
