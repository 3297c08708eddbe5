"""Coordinate conventions and viewpoint transforms — the single place they are defined.

Conventions (every other module points here and never restates a variant):

* **Camera coordinates** are OpenCV: x right, y down, z forward (into the scene), in record units.
* **Poses** are camera-to-world 4×4 matrices, ``c2w = world_from_cam``: ``p_world = R @ p_cam + t``.
* **World** coordinates are whatever the producer chose (synthetic worlds use z up); nothing below
  assumes a world up axis.
* **Observer frame** (every answer is computed in it, as in DSR): x = forward, y = left, z = up,
  origin at the observer. For the camera, ``(x, y, z)_obs = (z, −x, −y)_opencv``. For an agent, the
  axes are its own forward / left / up (``OrientationTrack.world_from_agent`` columns).
* **Relative viewpoint** ("following the perspective of X"): frame t is expressed in the observer's
  pose *at frame t*. **Absolute viewpoint** ("from the perspective of X at t_v"): every frame is
  expressed in the observer's pose frozen at frame t_v.

Transforms are named ``<to>_from_<from>`` so that inner names cancel:
``obs_from_world = inv(world_from_obs)``; ``world_from_obs = world_from_cam @ cam_from_obs``.
All functions are pure: they return new arrays and never modify their inputs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dsr.errors import DsrError
from dsr.scene.record import SceneRecord

Viewpoint = Literal["relative", "absolute"]
CAMERA = "camera"

# Rows: observer axes (forward, left, up) written in OpenCV camera coordinates.
OBS_FROM_OPENCV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
OPENCV_FROM_OBS = OBS_FROM_OPENCV.T


def make_pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """rotation (..., 3, 3), translation (..., 3) → homogeneous (..., 4, 4)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    shape = np.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1])
    pose = np.zeros((*shape, 4, 4))
    pose[..., :3, :3] = rotation
    pose[..., :3, 3] = translation
    pose[..., 3, 3] = 1.0
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of rigid poses (..., 4, 4) without a general matrix inverse."""
    rot_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    return make_pose(rot_t, -np.einsum("...ij,...j->...i", rot_t, pose[..., :3, 3]))


def transform_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply poses (..., 4, 4) to points (..., 3) (broadcasting)."""
    return np.einsum("...ij,...j->...i", pose[..., :3, :3], points) + pose[..., :3, 3]


def rotate_vectors(pose_or_rot: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rotate direction vectors (..., 3) by the rotation part of (..., 4, 4) or (..., 3, 3)."""
    rot = pose_or_rot[..., :3, :3]
    return np.einsum("...ij,...j->...i", rot, vectors)


def rotation_about_z(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation by ``angle_rad`` about +z (yaw in a z-up world; 0 faces +x)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up_world: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """OpenCV camera-to-world pose (4, 4) at ``eye`` looking at ``target`` with ``up_world`` up."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up_world)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("view direction is parallel to the up vector")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return make_pose(np.stack([right, down, forward], axis=1), eye)


def project_points(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """OpenCV camera points (..., 3) and intrinsics (..., 3, 3) → pixel coordinates (..., 2)."""
    uvw = np.einsum("...ij,...j->...i", K, points_cam)
    return uvw[..., :2] / uvw[..., 2:3]


# --------------------------------------------------------------------------------------------------
# observers


def camera_observer_poses(c2w: np.ndarray) -> np.ndarray:
    """world_from_obs (T, 4, 4) of the camera observer, from OpenCV c2w (T, 4, 4)."""
    return make_pose(c2w[..., :3, :3] @ OPENCV_FROM_OBS, c2w[..., :3, 3])


def agent_observer_poses(centers_world: np.ndarray, world_from_agent: np.ndarray) -> np.ndarray:
    """world_from_obs (T, 4, 4) of an agent: origin at its centre, axes its forward/left/up."""
    return make_pose(world_from_agent, centers_world)


def observer_track(record: SceneRecord, observer: str) -> np.ndarray:
    """world_from_obs (T, 4, 4) of ``observer`` ("camera" or an agent's object id) at every frame.

    Frames where an agent's centre or orientation is unknown are NaN.
    """
    if observer == CAMERA:
        return camera_observer_poses(record.camera.c2w)
    obj = record.object(observer)
    if not obj.is_agent or obj.orientation is None:
        raise DsrError(f"observer {observer!r} is not an agent with an orientation")
    return agent_observer_poses(obj.centers_world, obj.orientation.world_from_agent)


def viewpoint_poses(record: SceneRecord, observer: str, viewpoint: Viewpoint, t_v: int | None = None) -> np.ndarray:
    """world_from_obs (T, 4, 4) used to express frame t: the observer's pose at t (relative) or at t_v (absolute)."""
    track = observer_track(record, observer)
    if viewpoint == "relative":
        return track
    if viewpoint != "absolute":
        raise DsrError(f"viewpoint must be 'relative' or 'absolute', got {viewpoint!r}")
    if t_v is None or not 0 <= t_v < record.num_frames:
        raise DsrError(f"absolute viewpoint needs a frame t_v in [0, {record.num_frames}), got {t_v}")
    return np.broadcast_to(track[t_v], track.shape).copy()


def positions_world(record: SceneRecord, who: str) -> np.ndarray:
    """(T, 3) world position of the camera centre or of an object's 3D centre (NaN = unknown)."""
    if who == CAMERA:
        return record.camera.c2w[:, :3, 3].copy()
    return record.object(who).centers_world.copy()


def forward_world(record: SceneRecord, who: str) -> np.ndarray:
    """(T, 3) unit forward axis in world coordinates of the camera (optical axis) or an agent."""
    if who == CAMERA:
        return record.camera.c2w[:, :3, 2].copy()
    obj = record.object(who)
    if obj.orientation is None:
        raise DsrError(f"object {who!r} has no orientation")
    return obj.orientation.world_from_agent[:, :, 0].copy()


def points_in_observer(points_world: np.ndarray, world_from_obs: np.ndarray) -> np.ndarray:
    """Points (T, 3) in world → (T, 3) in the observer frame (x forward, y left, z up)."""
    return transform_points(invert_pose(world_from_obs), points_world)


def vectors_in_observer(vectors_world: np.ndarray, world_from_obs: np.ndarray) -> np.ndarray:
    """Direction vectors (T, 3) in world → observer frame (rotation only)."""
    return np.einsum("...ji,...j->...i", world_from_obs[..., :3, :3], vectors_world)


# --------------------------------------------------------------------------------------------------
# DSR / Orient Anything angle convention


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def agent_from_cam_orient_anything(azimuth_deg: float, polar_deg: float, rotation_deg: float) -> np.ndarray:
    """DSR's agent rotation (3, 3) from Orient Anything angles (dsr-paper §6).

    Rows are the agent's forward, left and up axes in OpenCV camera coordinates, so
    ``p_agent = R @ (p_cam − c)``. Azimuth 0 faces the camera; 180 faces away.
    """
    az, pol, rot = np.radians([azimuth_deg, polar_deg, rotation_deg])
    return _rz(np.radians(270.0)) @ _rx(np.radians(90.0)) @ _ry(az) @ _rx(pol) @ _rz(rot)


def world_from_agent_from_cam(world_from_cam: np.ndarray, agent_from_cam: np.ndarray) -> np.ndarray:
    """Agent axes in world (3, 3) (columns forward/left/up) from c2w (4, 4) and an agent_from_cam rotation."""
    return world_from_cam[:3, :3] @ agent_from_cam.T
