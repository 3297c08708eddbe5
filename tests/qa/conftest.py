"""Hand-made scene records for the qa tests (built with dsr.scene.build, no renderer)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.frames import invert_pose, look_at_c2w, project_points, transform_points
from dsr.scene.record import SceneRecord, VideoInfo

WIDTH, HEIGHT = 640, 360
K = np.array([[400.0, 0.0, 320.0], [0.0, 400.0, 180.0], [0.0, 0.0, 1.0]])


def yaw_axes(yaw_rad: np.ndarray) -> np.ndarray:
    """(T, 3, 3) world_from_agent for agents facing ``yaw`` in the world xy-plane, z up."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    fwd = np.stack([c, s, np.zeros_like(c)], axis=1)
    left = np.stack([-s, c, np.zeros_like(c)], axis=1)
    up = np.tile([0.0, 0.0, 1.0], (len(c), 1))
    return np.stack([fwd, left, up], axis=2)


def boxes_for(centers_world: np.ndarray, c2w: np.ndarray, half_size: float = 0.3,
              near: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Projected boxes (T, 4) and visibility (T,) of a sphere-ish object of radius ``half_size``, seen in
    front of the ``near`` plane (a rescaled record passes both rescaled)."""
    cam = transform_points(invert_pose(c2w), centers_world)
    uv = project_points(cam, K)
    r = 400.0 * half_size / np.maximum(cam[:, 2], 1e-5 * near)
    boxes = np.stack([uv[:, 0] - r, uv[:, 1] - r, uv[:, 0] + r, uv[:, 1] + r], axis=1)
    visible = (cam[:, 2] > near) & (uv[:, 0] > 0) & (uv[:, 0] < WIDTH) & (uv[:, 1] > 0) & (uv[:, 1] < HEIGHT)
    boxes = np.clip(boxes, [0, 0, 0, 0], [WIDTH - 1, HEIGHT - 1, WIDTH - 1, HEIGHT - 1])
    return boxes, visible


def make_record(
    num_frames: int = 64,
    fps: float = 2.0,
    *,
    camera_positions: np.ndarray | None = None,
    look_target: np.ndarray | None = None,
    objects: dict[str, dict] | None = None,
    record_id: str = "scene",
    scale: float = 1.0,
    scale_kind: str = "metric",
    force_visible: bool = False,
) -> SceneRecord:
    """A record with a camera (default: static at (-6, 0, 1.5) looking at the origin) and objects.

    objects: id → {"class": str, "centers": (T, 3), "agent": bool, "yaw": (T,) rad, "conf": (T,)}.
    Every length is multiplied by ``scale``.
    """
    t = np.arange(num_frames)
    if camera_positions is None:
        camera_positions = np.tile([-6.0, 0.0, 1.5], (num_frames, 1))
    target = np.zeros(3) if look_target is None else look_target
    c2w = np.stack([look_at_c2w(p, target) for p in camera_positions])
    c2w[:, :3, 3] *= scale
    tracks = []
    for oid, spec in (objects or {}).items():
        centers = np.asarray(spec["centers"], dtype=np.float64) * scale
        boxes, visible = boxes_for(centers, c2w, 0.3 * scale, 0.1 * scale)
        if "boxes" in spec:
            boxes = np.asarray(spec["boxes"], dtype=np.float64)
        if force_visible:
            visible = np.ones(num_frames, bool)
        if "visible" in spec:
            visible = np.asarray(spec["visible"], bool)
        wfa = yaw_axes(np.asarray(spec["yaw"])) if spec.get("agent") else None
        tracks.append(object_track_from_world(
            oid, spec["class"], centers_world=centers, c2w=c2w, visible=visible, boxes_xyxy=boxes,
            is_agent=bool(spec.get("agent")), world_from_agent=wfa,
            orientation_confidence=spec.get("conf"),
        ))
    video = VideoInfo(path="video.mp4", fps=fps, width=WIDTH, height=HEIGHT, num_frames=num_frames,
                      duration_s=num_frames / fps, frame_indices=t, timestamps_s=t / fps)
    return SceneRecord(record_id=record_id, video=video, camera=camera_track(K, c2w), objects=tuple(tracks),
                       scale_kind=scale_kind)


def busy_objects(num_frames: int) -> dict[str, dict]:
    """Two walking agents, a rolling ball, a parked car: enough variety for every type."""
    s = np.linspace(0.0, 1.0, num_frames)
    return {
        "person_0": {"class": "person", "agent": True,
                     "centers": np.stack([2 * np.cos(3 * s), 2 * np.sin(3 * s), 0.9 + 0 * s], axis=1),
                     "yaw": 3 * s + np.pi / 2},
        "dog_0": {"class": "dog", "agent": True,
                  "centers": np.stack([-1 + 3 * s ** 2, -1.5 + 2 * s, 0.3 + 0 * s], axis=1),
                  "yaw": np.arctan2(2.0 + 0 * s, 6 * s + 1e-3)},
        "ball_0": {"class": "ball", "centers": np.stack([1.5 - 3 * s, 1.0 + np.sin(6 * s), 0.1 + 0.5 * s], axis=1)},
        "car_0": {"class": "car", "centers": np.tile([2.5, -2.0, 0.7], (num_frames, 1))},
    }


@pytest.fixture
def busy_record() -> SceneRecord:
    n = 64
    s = np.linspace(0, 1, n)
    cam = np.stack([-6 + 1.0 * s, -1.0 + 2.0 * s, 1.5 + 0 * s], axis=1)
    return make_record(n, camera_positions=cam, objects=busy_objects(n), record_id="busy")


@pytest.fixture
def record_factory() -> Callable[..., SceneRecord]:
    return make_record


def _heading(centers: np.ndarray) -> np.ndarray:
    d = np.gradient(centers, axis=0)
    return np.unwrap(np.arctan2(d[:, 1], d[:, 0]))


def lively_objects(num_frames: int) -> dict[str, dict]:
    """Movers whose speeds, distances and directions change (stop and go, approach and recede,
    turns, a bounce): every question type has several different answers on it."""
    s = np.linspace(0.0, 1.0, num_frames)
    u = 2 * np.pi * s
    theta = 2 * u + 1.5 * np.sin(3 * u)  # a walker on a circle, speeding up, slowing, turning back
    person = np.stack([4 * np.cos(theta), 4 * np.sin(theta), np.full(num_frames, 0.9)], axis=1)
    dog = np.stack([6 * np.cos(u), 3 * np.sin(2 * u), np.full(num_frames, 0.3)], axis=1)
    ball = np.stack([-3 + 6 * s, 2 * np.sin(5 * u), 0.2 + 2 * np.abs(np.sin(4 * u))], axis=1)
    car = np.stack([np.full(num_frames, 3.0), -6 + 12 * (s - np.sin(4 * u) / (4 * 2 * np.pi)),
                    np.full(num_frames, 0.7)], axis=1)  # stop and go: its speed falls to 0 four times
    return {
        "person_0": {"class": "person", "agent": True, "centers": person, "yaw": _heading(person)},
        "dog_0": {"class": "dog", "agent": True, "centers": dog, "yaw": _heading(dog)},
        "ball_0": {"class": "ball", "centers": ball},
        "car_0": {"class": "car", "agent": True, "centers": car, "yaw": _heading(car) + 0.2 * np.sin(3 * u)},
    }


@pytest.fixture(scope="module")
def lively_record() -> SceneRecord:
    n = 64
    s = np.linspace(0, 1, n)
    cam = np.stack([-10 + 2.0 * s, -1.0 + 2.0 * s, 2.0 + 0 * s], axis=1)
    return make_record(n, camera_positions=cam, objects=lively_objects(n), record_id="lively", force_visible=True)
