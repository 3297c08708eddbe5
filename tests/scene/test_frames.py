"""Observer transforms against hand-computed cases (dsr-paper §6)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.errors import DsrError
from dsr.scene import SceneRecord, VideoInfo
from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.frames import (
    agent_from_cam_orient_anything,
    camera_observer_poses,
    forward_world,
    invert_pose,
    look_at_c2w,
    points_in_observer,
    positions_world,
    vectors_in_observer,
    viewpoint_poses,
    world_from_agent_from_cam,
)
from dsr.scene.frames import (
    rotation_about_z as yaw_rotation,
)


def test_camera_observer_hand_computed() -> None:
    # camera at (0,0,1) looking along world +y, world z up: forward=+y, left=-x, up=+z
    c2w = look_at_c2w(np.array([0.0, 0.0, 1.0]), np.array([0.0, 5.0, 1.0]))
    assert np.allclose(c2w[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]])  # columns: right, down, forward
    obs = camera_observer_poses(c2w[None])
    p = points_in_observer(np.array([[2.0, 5.0, 3.0]]), obs)
    assert np.allclose(p, [[5.0, -2.0, 2.0]])  # 5 ahead, 2 to the right, 2 above


def test_agent_observer_hand_computed() -> None:
    # agent at (1,1,0) facing world +y: left is world -x
    pose = np.eye(4)
    pose[:3, :3] = yaw_rotation(np.pi / 2)
    pose[:3, 3] = [1.0, 1.0, 0.0]
    pts = np.array([[1.0, 3.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 2.0]])
    assert np.allclose(points_in_observer(pts, np.broadcast_to(pose, (3, 4, 4))),
                       [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])


def _two_frame_record() -> SceneRecord:
    c2w = np.stack([look_at_c2w(np.array([0.0, y, 1.0]), np.array([0.0, 10.0, 1.0])) for y in (0.0, 2.0)])
    box = np.tile([0.0, 0.0, 1.0, 1.0], (2, 1))
    post = object_track_from_world("post", "post", centers_world=np.array([[0.0, 5.0, 1.0]] * 2), c2w=c2w,
                                   visible=np.ones(2, bool), boxes_xyxy=box)
    walker = object_track_from_world(
        "walker", "person", is_agent=True, centers_world=np.array([[3.0, 5.0, 1.0], [3.0, 6.0, 1.0]]), c2w=c2w,
        visible=np.ones(2, bool), boxes_xyxy=box,
        world_from_agent=np.stack([yaw_rotation(np.pi), yaw_rotation(np.pi / 2)]),  # faces -x, then +y
    )
    video = VideoInfo(path="v.mp4", fps=1.0, width=8, height=8, num_frames=2, duration_s=2.0,
                      frame_indices=np.arange(2), timestamps_s=np.arange(2.0))
    K = np.array([[4.0, 0, 4], [0, 4.0, 4], [0, 0, 1]])
    return SceneRecord("two", video, camera_track(K, c2w), (post, walker), "metric")


def test_relative_and_absolute_camera_viewpoints() -> None:
    rec = _two_frame_record()
    post = positions_world(rec, "post")
    assert np.allclose(points_in_observer(post, viewpoint_poses(rec, "camera", "relative")), [[5, 0, 0], [3, 0, 0]])
    assert np.allclose(points_in_observer(post, viewpoint_poses(rec, "camera", "absolute", 0)), [[5, 0, 0]] * 2)
    assert np.allclose(points_in_observer(post, viewpoint_poses(rec, "camera", "absolute", 1)), [[3, 0, 0]] * 2)
    # the camera's own orientation in its relative frame is always straight ahead
    fwd = vectors_in_observer(forward_world(rec, "camera"), viewpoint_poses(rec, "camera", "relative"))
    assert np.allclose(fwd, [[1, 0, 0]] * 2)


def test_relative_and_absolute_agent_viewpoints() -> None:
    rec = _two_frame_record()
    post = positions_world(rec, "post")
    # frame 0: walker at (3,5,1) facing -x: the post (0,5,1) is 3 ahead. frame 1: at (3,6,1) facing +y:
    # the post is 1 behind and 3 to the left.
    rel = points_in_observer(post, viewpoint_poses(rec, "walker", "relative"))
    assert np.allclose(rel, [[3, 0, 0], [-1, 3, 0]])
    absolute = points_in_observer(post, viewpoint_poses(rec, "walker", "absolute", 1))
    assert np.allclose(absolute, [[-1, 3, 0], [-1, 3, 0]])
    # the walker's own heading seen from its pose frozen at frame 0 turns from ahead to its right
    heading = vectors_in_observer(forward_world(rec, "walker"), viewpoint_poses(rec, "walker", "absolute", 0))
    assert np.allclose(heading, [[1, 0, 0], [0, -1, 0]])


def test_viewpoint_errors() -> None:
    rec = _two_frame_record()
    with pytest.raises(DsrError, match="not an agent"):
        viewpoint_poses(rec, "post", "relative")
    with pytest.raises(DsrError, match="t_v"):
        viewpoint_poses(rec, "camera", "absolute", 5)
    with pytest.raises(Exception, match="no object 'ghost'"):
        viewpoint_poses(rec, "ghost", "relative")


def test_agent_facing_the_camera() -> None:
    # Orient Anything azimuth 0 = the agent faces the camera (dsr-paper §6 table)
    agent_from_cam = agent_from_cam_orient_anything(0.0, 0.0, 0.0)
    assert np.allclose(agent_from_cam, [[0, 0, -1], [1, 0, 0], [0, -1, 0]])
    c2w = np.eye(4)  # camera = world
    pose = np.eye(4)
    pose[:3, :3] = world_from_agent_from_cam(c2w, agent_from_cam)
    pose[:3, 3] = [0.0, 0.0, 5.0]  # 5 m in front of the camera
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 5.0], [0.0, -1.0, 5.0]])  # camera, image-right, image-up
    got = points_in_observer(pts, np.broadcast_to(pose, (3, 4, 4)))
    # the camera is 5 ahead of the agent; the camera's right is the agent's left; image-up is up
    assert np.allclose(got, [[5, 0, 0], [0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(("az", "forward"), [(0, (0, 0, -1)), (90, (-1, 0, 0)), (180, (0, 0, 1)), (270, (1, 0, 0))])
def test_orient_anything_azimuth_table(az: float, forward: tuple[float, float, float]) -> None:
    assert np.allclose(agent_from_cam_orient_anything(az, 0, 0)[0], forward, atol=1e-12)


def test_orient_anything_polar_and_rotation_examples() -> None:
    assert np.allclose(agent_from_cam_orient_anything(0, 30, 0)[0], [0, 0.5, -np.sqrt(3) / 2])
    assert np.allclose(agent_from_cam_orient_anything(0, 0, 20)[2], [np.sin(np.radians(20)), -np.cos(np.radians(20)), 0])


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 360), st.floats(-89, 89), st.floats(-90, 90))
def test_orient_anything_closed_form(az: float, pol: float, rot: float) -> None:
    # Forward axis of the official composition Rz(270)Rx(90)Ry(az)Rx(pol)Rz(rot) at rot = 0, derived by
    # hand. (The reference's "(−sin az·cos pol, sin pol, −cos az·cos pol)" only holds when az or pol is 0.)
    a, p = np.radians(az), np.radians(pol)
    forward = agent_from_cam_orient_anything(az, pol, 0.0)[0]
    assert np.allclose(forward, [-np.sin(a), np.cos(a) * np.sin(p), -np.cos(a) * np.cos(p)])
    r = agent_from_cam_orient_anything(az, pol, rot)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=6, max_size=6))
def test_pose_inverse_round_trip(values: list[float]) -> None:
    from scipy.spatial.transform import Rotation

    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(np.array(values[:3]) / 5).as_matrix()
    pose[:3, 3] = values[3:]
    assert np.allclose(invert_pose(pose) @ pose, np.eye(4))
