"""Fixtures for the evaluation harness: tiny real videos, a question file, a loopback chat server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsr.video import write_video

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
VLM4D = SHARED / "realdata" / "benchmarks" / "vlm4d"

TYPES = ["abs_dis", "abs_dir", "rel_dir", "abs_dir_pred", "non_temp", "rel_spd"]


@pytest.fixture(scope="session")
def vlm4d_dir() -> Path:
    if not (VLM4D / "real_mc.json").is_file():
        pytest.skip("../shared/realdata/benchmarks/vlm4d is not present")
    return VLM4D


def _moving_square(n: int, shift: int) -> list[np.ndarray]:
    frames = []
    for t in range(n):
        img = np.full((48, 64, 3), 30, np.uint8)
        x = (4 + 2 * t + shift) % 50
        img[18:30, x:x + 12] = (220, 60 + 5 * t % 190, 40)
        frames.append(img)
    return frames


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 3-second 10 fps clips, one corrupt file; ``missing.mp4`` does not exist."""
    d = tmp_path_factory.mktemp("videos")
    for k in range(3):
        write_video(d / f"vid{k}.mp4", _moving_square(30, 7 * k), fps=10)
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return d


def make_items(video_dir: Path, n_per_video: int = 4) -> list[dict[str, Any]]:
    rows = []
    videos = ["vid0", "vid1", "vid2"]
    for v, vid in enumerate(videos):
        for q in range(n_per_video):
            k = v * n_per_video + q
            rows.append({"id": f"{vid}/q{q}", "video": str(video_dir / f"{vid}.mp4"),
                         "question": f"Question {k}: where does the red square go?",
                         "options": {"A": "left", "B": "right", "C": "up", "D": "down"},
                         "answer": "ABCD"[k % 4], "type": TYPES[k % len(TYPES)]})
    rows.append({"id": "broken/q0", "video": str(video_dir / "corrupt.mp4"), "question": "Corrupt?",
                 "options": ["A. yes", "B. no"], "answer": "A", "type": "abs_dis"})
    rows.append({"id": "gone/q0", "video": str(video_dir / "missing.mp4"), "question": "Missing?",
                 "options": ["A. yes", "B. no"], "answer": "no", "type": "abs_dis"})
    return rows


@pytest.fixture()
def toy_dataset(tmp_path: Path, video_dir: Path) -> Path:
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_items(video_dir)))
    return path


@pytest.fixture()
def chat_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start ``python -m dsr.evaluate.fakeserver`` subprocesses (``dump``: folder for the request bodies);
    returns base URLs; stops them by pid."""
    procs: list[subprocess.Popen[str]] = []

    def start(latency: float = 0.0, rules: list[dict[str, Any]] | None = None, dump: Path | None = None) -> str:
        rules_file = tmp_path / f"rules{len(procs)}.json"
        rules_file.write_text(json.dumps(rules or []))
        extra = ["--dump", str(dump)] if dump is not None else []
        proc = subprocess.Popen([sys.executable, "-m", "dsr.evaluate.fakeserver", "--port", "0",
                                 "--latency", str(latency), "--rules", str(rules_file), *extra],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("PORT "), line
        return f"http://127.0.0.1:{int(line.split()[1])}/v1"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


SCENE_W, SCENE_H, SCENE_N, SCENE_FPS = 320, 180, 24, 4.0


def build_scene_record() -> Any:
    """A 6-s scene: a dollying camera, a walking person (an agent), a rolling ball and a parked car, each
    visible throughout with a 24-px box around its projected centre."""
    from dsr.scene.build import camera_track, object_track_from_world
    from dsr.scene.frames import invert_pose, look_at_c2w, project_points, transform_points
    from dsr.scene.record import SceneRecord, VideoInfo

    w, h, n = SCENE_W, SCENE_H, SCENE_N
    k = np.array([[200.0, 0, w / 2], [0, 200.0, h / 2], [0, 0, 1]])
    s = np.linspace(0, 1, n)
    cam = np.stack([-6 + s, -1 + 2 * s, 1.5 + 0 * s], axis=1)
    c2w = np.stack([look_at_c2w(p, np.zeros(3)) for p in cam])
    objects = {
        "person_0": (np.stack([2 * np.cos(3 * s), 2 * np.sin(3 * s), 0.9 + 0 * s], axis=1), 3 * s + np.pi / 2),
        "ball_0": (np.stack([1.5 - 3 * s, 1.0 + np.sin(6 * s), 0.1 + 0.5 * s], axis=1), None),
        "car_0": (np.tile([2.5, -2.0, 0.7], (n, 1)), None),
    }
    tracks = []
    for oid, (centers, yaw) in objects.items():
        uv = project_points(transform_points(invert_pose(c2w), centers), k)
        boxes = np.clip(np.concatenate([uv - 12, uv + 12], axis=1), 0, [w - 1, h - 1, w - 1, h - 1])
        wfa = None
        if yaw is not None:
            c, si = np.cos(yaw), np.sin(yaw)
            wfa = np.stack([np.stack([c, si, 0 * c], 1), np.stack([-si, c, 0 * c], 1),
                            np.tile([0.0, 0, 1], (n, 1))], axis=2)
        tracks.append(object_track_from_world(oid, oid.split("_")[0], centers_world=centers, c2w=c2w,
                                              visible=np.ones(n, bool), boxes_xyxy=boxes, is_agent=yaw is not None,
                                              world_from_agent=wfa))
    t = np.arange(n)
    video = VideoInfo(path="video.mp4", fps=SCENE_FPS, width=w, height=h, num_frames=n, duration_s=n / SCENE_FPS,
                      frame_indices=t, timestamps_s=t / SCENE_FPS)
    return SceneRecord(record_id="report_scene", video=video, camera=camera_track(k, c2w), objects=tuple(tracks),
                       scale_kind="metric")


@pytest.fixture(scope="session")
def qa_scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(folder, record): ``scene.npz``, its ``video.mp4`` (grey; the red channel is 10 × the frame number)
    and ``qas.jsonl``, 24 template QAs of our own generator with the paper's procedure, whose options leak the
    answer: the report's red flag for a text-only control needs a leak to show."""
    from dsr.qa.export import write_qas
    from dsr.qa.generate import generate_record_qas
    from dsr.qa.rules import make_config
    from dsr.scene.io import write_record

    d = tmp_path_factory.mktemp("qa_scene")
    record = build_scene_record()
    write_record(d / "scene.npz", record)
    write_video(d / "video.mp4", [np.full((SCENE_H, SCENE_W, 3), (10 * t, 128, 128), np.uint8)
                                  for t in range(SCENE_N)], SCENE_FPS)
    write_qas(d / "qas.jsonl", list(generate_record_qas(record, make_config("paper"), per_video=24, seed=3,
                                                        record_path="scene.npz")))
    return d, record
