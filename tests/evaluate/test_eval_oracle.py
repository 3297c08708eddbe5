"""The oracle answers our own QA exports from their scene records: a perfect score checks the contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.models import create_model
from dsr.evaluate.run import RunConfig, run_eval

qa_generate = pytest.importorskip("dsr.qa.generate")
qa_export = pytest.importorskip("dsr.qa.export")


def _record():
    from dsr.scene.build import camera_track, object_track_from_world
    from dsr.scene.frames import invert_pose, look_at_c2w, project_points, transform_points
    from dsr.scene.record import SceneRecord, VideoInfo

    n, k = 48, np.array([[400.0, 0, 320], [0, 400.0, 180], [0, 0, 1]])
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
        boxes = np.clip(np.concatenate([uv - 20, uv + 20], axis=1), 0, [639, 359, 639, 359])
        wfa = None
        if yaw is not None:
            c, si = np.cos(yaw), np.sin(yaw)
            wfa = np.stack([np.stack([c, si, 0 * c], 1), np.stack([-si, c, 0 * c], 1),
                            np.tile([0.0, 0, 1], (n, 1))], axis=2)
        tracks.append(object_track_from_world(oid, oid.split("_")[0], centers_world=centers, c2w=c2w,
                                              visible=np.ones(n, bool), boxes_xyxy=boxes, is_agent=yaw is not None,
                                              world_from_agent=wfa))
    t = np.arange(n)
    video = VideoInfo(path="video.mp4", fps=2.0, width=640, height=360, num_frames=n, duration_s=n / 2.0,
                      frame_indices=t, timestamps_s=t / 2.0)
    return SceneRecord(record_id="oracle_scene", video=video, camera=camera_track(k, c2w), objects=tuple(tracks),
                       scale_kind="metric")


def test_oracle_scores_our_qas_perfectly(tmp_path: Path) -> None:
    from dsr.scene.io import write_record

    record = _record()
    write_record(tmp_path / "scene.npz", record)
    qas = list(qa_generate.generate_record_qas(record, per_video=12, seed=1, record_path="scene.npz"))
    if not qas:
        pytest.skip("the QA generator produced no questions for this record")
    qa_export.write_qas(tmp_path / "qas.jsonl", qas)
    qa_export.write_qas(tmp_path / "qas.parquet", qas)
    for name in ("qas.jsonl", "qas.parquet"):
        ds = load_dataset(tmp_path / name, check_videos=False)
        assert {it.item_id for it in ds.items} == {q.qa_id for q in qas}
        assert all(it.record_path == str(tmp_path / "scene.npz") and it.query for it in ds.items)
        out = tmp_path / f"run-{name}"
        outcome = run_eval(ds, create_model("oracle"), out, RunConfig(), progress=False)
        assert not outcome.failures
        summary = json.loads((out / "summary.json").read_text())
        assert summary["overall"]["value"] == 1.0, summary


def test_demo_eval_report_has_table_plots_and_thumbnails(tmp_path: Path) -> None:
    from dsr.evaluate.demo import run_demo_eval
    from dsr.scene.io import write_record
    from dsr.video import write_video

    record = _record()
    write_record(tmp_path / "scene.npz", record)
    frames = [np.full((48, 64, 3), 10 * (i % 20), np.uint8) for i in range(record.video.num_frames)]
    write_video(tmp_path / "video.mp4", frames, fps=record.video.fps)
    qas = list(qa_generate.generate_record_qas(record, per_video=8, seed=2, record_path="scene.npz",
                                               video_path="video.mp4"))
    if not qas:
        pytest.skip("the QA generator produced no questions for this record")
    qa_export.write_qas(tmp_path / "qas.jsonl", qas)
    from dsr.qa.free_answer import generate_free_files

    free = []
    for fmt in ("numeric", "open"):  # the demo shows all three answer formats (issue 16)
        generate_free_files([str(tmp_path / "scene.npz")], tmp_path / f"{fmt}.jsonl", fmt, per_video=6, seed=2)
        free.append(tmp_path / f"{fmt}.jsonl")
    md, html = run_demo_eval(tmp_path / "qas.jsonl", tmp_path / "eval", progress=False, free_qas=free)
    page = html.read_text()
    assert "oracle" in page and "answer-prior" in page and "Chance (analytic)" in page
    assert page.count("data:image/png;base64,") == 2 and "data:image/jpeg;base64," in page
    text = md.read_text()
    assert "| oracle | " in text
    assert "### Numeric answers (MRA)" in text and "### Open answers (exact match)" in text
    formats = text.split("## Numeric and open answers", 1)[1].split("\n## ", 1)[0]
    assert formats.count("| oracle | 100.0") == 2  # the oracle scores 1.0 on the numeric and the open questions
