"""A small scene for the review tests: a record, a video showing its objects, and real generated QAs.

The video draws each object as a filled rectangle at its projected box, so a box in a question
really lies on its object in the served frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dsr.qa.rules import make_config
from dsr.qa.run import generate_files
from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.frames import invert_pose, look_at_c2w, project_points, transform_points
from dsr.scene.io import write_record
from dsr.scene.record import SceneRecord, VideoInfo
from dsr.video import write_video

WIDTH, HEIGHT, FPS, FRAMES = 320, 192, 4.0, 24
K = np.array([[200.0, 0.0, 160.0], [0.0, 200.0, 96.0], [0.0, 0.0, 1.0]])
COLOURS = {"person_0": (220, 60, 40), "dog_0": (40, 160, 60), "ball_0": (240, 200, 30), "car_0": (60, 90, 220)}


def _yaw_axes(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    fwd = np.stack([c, s, 0 * c], axis=1)
    left = np.stack([-s, c, 0 * c], axis=1)
    up = np.tile([0.0, 0.0, 1.0], (len(c), 1))
    return np.stack([fwd, left, up], axis=2)


def _objects(n: int) -> dict[str, dict[str, Any]]:
    s = np.linspace(0.0, 1.0, n)
    return {
        "person_0": {"class": "person", "agent": True, "yaw": 3 * s + np.pi / 2,
                     "centers": np.stack([2 * np.cos(3 * s), 2 * np.sin(3 * s), 0.9 + 0 * s], axis=1)},
        "dog_0": {"class": "dog", "agent": True, "yaw": np.arctan2(2.0 + 0 * s, 6 * s + 1e-3),
                  "centers": np.stack([-1 + 3 * s ** 2, -1.5 + 2 * s, 0.3 + 0 * s], axis=1)},
        "ball_0": {"class": "ball", "centers": np.stack([1.5 - 3 * s, 1.0 + np.sin(6 * s), 0.1 + 0.5 * s], axis=1)},
        "car_0": {"class": "car", "centers": np.tile([2.5, -2.0, 0.7], (n, 1))},
    }


def make_scene(folder: Path, record_id: str = "scene0") -> tuple[Path, SceneRecord]:
    """Write ``folder/record.npz`` and ``folder/video.mp4``; returns the record path and the record."""
    n = FRAMES
    s = np.linspace(0, 1, n)
    eye = np.stack([-6 + 1.0 * s, -1.0 + 2.0 * s, 1.5 + 0 * s], axis=1)
    c2w = np.stack([look_at_c2w(p, np.zeros(3)) for p in eye])
    tracks = []
    boxes_of: dict[str, np.ndarray] = {}
    for oid, spec in _objects(n).items():
        cam = transform_points(invert_pose(c2w), spec["centers"])
        uv = project_points(cam, K)
        r = 200.0 * 0.3 / np.maximum(cam[:, 2], 1e-6)
        boxes = np.stack([uv[:, 0] - r, uv[:, 1] - r, uv[:, 0] + r, uv[:, 1] + r], axis=1)
        boxes = np.clip(boxes, 0, [WIDTH - 1, HEIGHT - 1, WIDTH - 1, HEIGHT - 1])
        boxes_of[oid] = boxes
        tracks.append(object_track_from_world(
            oid, spec["class"], centers_world=spec["centers"], c2w=c2w, visible=np.ones(n, bool),
            boxes_xyxy=boxes, is_agent=bool(spec.get("agent")),
            world_from_agent=_yaw_axes(spec["yaw"]) if spec.get("agent") else None))
    t = np.arange(n)
    video = VideoInfo(path="video.mp4", fps=FPS, width=WIDTH, height=HEIGHT, num_frames=n, duration_s=n / FPS,
                      frame_indices=t, timestamps_s=t / FPS)
    record = SceneRecord(record_id=record_id, video=video, camera=camera_track(K, c2w), objects=tuple(tracks),
                         scale_kind="metric")
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for k in range(n):
        img = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        for oid, boxes in boxes_of.items():
            x1, y1, x2, y2 = boxes[k].astype(int)
            img[y1:y2 + 1, x1:x2 + 1] = COLOURS[oid]
        frames.append(img)
    write_video(folder / "video.mp4", frames, fps=FPS)
    return write_record(folder / "record.npz", record), record


def make_qas(folder: Path, per_video: int = 16, seed: int = 0) -> Path:
    """A real QA export (JSONL) of one scene, with quantities, frames and stability."""
    record_path, _ = make_scene(folder / "scene0")
    out = folder / "qas.jsonl"
    # the paper's procedure: a 6-s toy scene has too few counterfactual alternatives for the debiased default to
    # ask every rule kind, and these tests are about reviewing, not about option design
    generate_files([record_path], out, make_config("paper", stability_k=4), per_video=per_video, seed=seed)
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
