"""Pose maths in dsr.scene.poses: rotation angles, SO(3) projection, filling and interpolating poses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.scene.frames import make_pose
from dsr.scene.poses import fill_poses, project_to_so3, rotation_angle_deg, rotation_spikes


def _about_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _about_x(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@pytest.mark.parametrize(("rot", "expected_deg"), [
    (np.eye(3), 0.0),
    (_about_z(np.pi / 2), 90.0),
    (_about_x(np.radians(30.0)), 30.0),
    (np.diag([1.0, -1.0, -1.0]), 180.0),  # a half turn about x: sin = 0, cos = -1
    (np.diag([-1.0, -1.0, 1.0]), 180.0),
    # a third of a turn about (1, 1, 1)/√3 permutes the axes: x → y → z → x
    (np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 120.0),
])
def test_rotation_angle_of_hand_computed_rotations(rot: np.ndarray, expected_deg: float) -> None:
    assert float(rotation_angle_deg(rot)) == pytest.approx(expected_deg, abs=1e-12)


@pytest.mark.parametrize("theta", [1e-9, 1e-7, 1e-5])
def test_rotation_angle_keeps_full_precision_near_zero(theta: float) -> None:
    # arccos((tr − 1) / 2) reads 1e-9 rad as exactly 0 (cos θ rounds to 1)
    assert float(rotation_angle_deg(_about_z(theta))) == pytest.approx(np.degrees(theta), rel=1e-9)


@pytest.mark.parametrize("eps", [1e-9, 1e-6, 1e-3])
def test_rotation_angle_keeps_full_precision_near_a_half_turn(eps: float) -> None:
    got = float(rotation_angle_deg(_about_x(np.pi - eps)))
    assert got == pytest.approx(180.0 - np.degrees(eps), abs=1e-9 * 180.0)
    assert got <= 180.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3), st.floats(0.0, np.pi))
def test_rotation_angle_equals_the_rotation_vector_norm(axis: list[float], angle: float) -> None:
    from scipy.spatial.transform import Rotation

    a = np.asarray(axis)
    if np.linalg.norm(a) < 1e-3:
        a = np.array([0.0, 0.0, 1.0])
    rot = Rotation.from_rotvec(a / np.linalg.norm(a) * angle).as_matrix()
    assert float(rotation_angle_deg(rot)) == pytest.approx(np.degrees(angle), abs=1e-9)


def test_rotation_angle_broadcasts_over_leading_axes() -> None:
    rots = np.stack([[_about_z(0.1), _about_x(0.2)], [np.eye(3), _about_z(-0.3)]])  # (2, 2, 3, 3)
    np.testing.assert_allclose(rotation_angle_deg(rots), np.degrees([[0.1, 0.2], [0.0, 0.3]]), atol=1e-12)


def test_project_to_so3_recovers_a_perturbed_rotation() -> None:
    rot = _about_z(0.4) @ _about_x(-0.2)
    noisy = rot + 1e-4 * np.random.default_rng(0).standard_normal((3, 3))
    proj = project_to_so3(noisy)
    np.testing.assert_allclose(proj @ proj.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(proj) == pytest.approx(1.0)
    assert float(rotation_angle_deg(proj.T @ rot)) < 0.05
    # a reflection is mapped to a proper rotation, not kept
    assert np.linalg.det(project_to_so3(np.diag([1.0, 1.0, -1.0]))) == pytest.approx(1.0)



def test_project_to_so3_of_a_stack_is_each_matrix_projected() -> None:
    rng = np.random.default_rng(1)
    stack = rng.standard_normal((4, 2, 3, 3))  # half of random matrices have det < 0: both branches run
    assert (np.linalg.det(stack) < 0).any() and (np.linalg.det(stack) > 0).any()
    out = project_to_so3(stack)
    for idx in np.ndindex(4, 2):
        np.testing.assert_allclose(out[idx], project_to_so3(stack[idx]), atol=1e-12)
        assert np.linalg.det(out[idx]) == pytest.approx(1.0)
        np.testing.assert_allclose(out[idx] @ out[idx].T, np.eye(3), atol=1e-12)

def test_fill_poses_interpolates_inside_and_copies_outside() -> None:
    c2w = np.stack([make_pose(np.eye(3), [9.0, 9.0, 9.0]), make_pose(np.eye(3), [0.0, 0.0, 0.0]),
                    make_pose(np.eye(3), [5.0, 5.0, 5.0]), make_pose(_about_z(np.pi / 2), [2.0, 0.0, 0.0]),
                    make_pose(np.eye(3), [7.0, 7.0, 7.0])])
    known = np.array([False, True, False, True, False])
    out = fill_poses(c2w, known)
    np.testing.assert_allclose(out[2, :3, 3], [1.0, 0.0, 0.0])  # halfway by index
    assert float(rotation_angle_deg(out[2, :3, :3])) == pytest.approx(45.0)  # slerp: half of 90°
    np.testing.assert_allclose(out[0], c2w[1])
    np.testing.assert_allclose(out[4], c2w[3])
    np.testing.assert_allclose(c2w[2, :3, 3], [5.0, 5.0, 5.0])  # input untouched


def _yaw(deg: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("z", np.asarray(deg, float)[:, None], degrees=True).as_matrix()


def test_rotation_spikes_finds_the_misregistered_rotation_by_hand() -> None:
    # a pan at 10 deg per step, the rotation at index 5 registered 30 deg off: its neighbours' slerps are pulled by
    # 15 deg, but only it is taken out, and without it the rest lie on the pan
    yaw = 10.0 * np.arange(12)
    yaw[5] += 30.0
    spikes = rotation_spikes(_yaw(yaw), np.arange(12.0), 4.0, 5.0, 0.25)
    np.testing.assert_array_equal(np.flatnonzero(spikes), [5])
    # uneven times: the slerp is taken at each rotation's own time, so a pan sampled unevenly has no spike
    t = np.array([0, 1, 3, 4, 7, 8, 9, 12], float)
    assert not rotation_spikes(_yaw(10.0 * t), t, 4.0, 5.0, 0.25).any()
    # a shaky camera, every rotation 5 deg off its neighbours (alternating): above 4 deg, but no more than the
    # median, so nothing is a spike
    shaky = 10.0 * np.arange(12) + np.where(np.arange(12) % 2, 2.5, -2.5)
    assert not rotation_spikes(_yaw(shaky), np.arange(12.0), 4.0, 5.0, 0.25).any()
    # the first and last rotations are judged against the extrapolation of the next two, and at most max_share
    # of them are taken out
    yaw = 10.0 * np.arange(24)
    yaw[[0, 7, 16]] += 40.0
    np.testing.assert_array_equal(np.flatnonzero(rotation_spikes(_yaw(yaw), np.arange(24.0), 4.0, 5.0, 0.25)),
                                  [0, 7, 16])
    assert rotation_spikes(_yaw(yaw), np.arange(24.0), 4.0, 5.0, 0.05).sum() == 1
    assert not rotation_spikes(_yaw(yaw[:3]), np.arange(3.0), 4.0, 5.0, 0.5).any()  # too few to tell


def test_forward_motion_share_of_hand_built_paths() -> None:
    from dsr.scene.poses import forward_motion_share

    c2w = np.tile(np.eye(4), (4, 1, 1))  # optical axis +z
    c2w[:, :3, 3] = [[0, 0, 0], [0, 0, 2], [0, 0, 3], [3, 0, 3]]  # 2 + 1 forward, then 3 sideways
    assert forward_motion_share(c2w, np.ones(4, bool)) == pytest.approx(0.5)
    assert forward_motion_share(c2w, np.array([True, True, False, True])) == pytest.approx(3 / (2 + np.hypot(3, 1)))  # steps (0,0,2), (3,0,1)
    c2w[:, :3, 3] = [[0, 0, 0], [0, 0, -1], [0, 0, -2], [0, 0, -2]]  # backwards counts as along the axis
    assert forward_motion_share(c2w, np.ones(4, bool)) == pytest.approx(1.0)
    c2w[:, :3, 3] = 0.0
    assert np.isnan(forward_motion_share(c2w, np.ones(4, bool)))
