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
