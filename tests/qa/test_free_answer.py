"""Numeric and open answers (issue 16): values against hand computation and the raw ground truth, scale
handling, the CLI, the loaders, the oracle and the blind baseline, and the report."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dsr.cli import app
from dsr.qa.free_answer import (
    FreeQA,
    FreeReport,
    distance_at,
    heading_change_deg,
    mean_speed,
    numeric_qas,
    open_qas,
    recompute_value,
)
from dsr.qa.generate import generate_record_qas
from dsr.qa.query import Geometry
from dsr.qa.rules import QAConfig, make_config
from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.frames import invert_pose, look_at_c2w, project_points, transform_points
from dsr.scene.io import write_record
from dsr.scene.record import SceneRecord, VideoInfo

W, H, N, FPS = 320, 240, 21, 2.0  # 10 s at 2 frames per second


def _record(scale_kind: str = "metric", meters_per_unit: float | None = None) -> SceneRecord:
    """A static camera at (-8, 0, 1.6) looking at the origin; a walker that goes 1 m/s along +x for 5 s, then
    turns left by 90 degrees over 1 s and walks along +y; a parked car at (3, 4, 0.7); a ball rolling
    along -y at 0.5 m/s."""
    k = np.array([[250.0, 0, W / 2], [0, 250.0, H / 2], [0, 0, 1]])
    c2w = np.repeat(look_at_c2w(np.array([-8.0, 0, 1.6]), np.zeros(3))[None], N, axis=0)
    t = np.arange(N) / FPS
    walker = np.zeros((N, 3))
    yaw = np.zeros(N)
    for i, s in enumerate(t):
        if s <= 5.0:
            walker[i] = [s, 0, 0.9]
        else:
            walker[i] = [5.0, s - 5.0, 0.9]
        yaw[i] = min(max(s - 5.0, 0.0), 1.0) * math.pi / 2  # 0 until 5 s, 90 degrees from 6 s
    paths = {"walker_0": (walker, yaw), "car_1": (np.tile([3.0, 4.0, 0.7], (N, 1)), None),
             "ball_2": (np.stack([np.full(N, 1.0), 2.0 - 0.5 * t, np.full(N, 0.1)], axis=1), None)}
    tracks = []
    for oid, (centers, heading) in paths.items():
        uv = project_points(transform_points(invert_pose(c2w), centers), k)
        boxes = np.clip(np.concatenate([uv - 20, uv + 20], axis=1), 0, [W - 1, H - 1, W - 1, H - 1])
        wfa = None
        if heading is not None:
            c, s = np.cos(heading), np.sin(heading)
            wfa = np.stack([np.stack([c, s, 0 * c], 1), np.stack([-s, c, 0 * c], 1), np.tile([0.0, 0, 1], (N, 1))],
                           axis=2)
        tracks.append(object_track_from_world(oid, oid.split("_")[0], centers_world=centers, c2w=c2w,
                                              visible=np.ones(N, bool), boxes_xyxy=boxes,
                                              is_agent=heading is not None, world_from_agent=wfa))
    idx = np.arange(N)
    video = VideoInfo(path="video.mp4", fps=FPS, width=W, height=H, num_frames=N, duration_s=N / FPS,
                      frame_indices=idx, timestamps_s=idx / FPS)
    return SceneRecord(record_id=f"free-{scale_kind}", video=video, camera=camera_track(k, c2w),
                       objects=tuple(tracks), scale_kind=scale_kind, meters_per_unit=meters_per_unit)


def test_hand_computed_values() -> None:
    record = _record()
    geom = Geometry.from_record(record, QAConfig())
    assert distance_at(geom.positions, "walker_0", "car_1", 0) == pytest.approx(math.hypot(3, 4, 0.2))
    # the camera is 8 m behind the origin and 1.6 m up; the walker starts at the origin, 0.9 m up
    assert distance_at(geom.positions, "walker_0", "camera", 0) == pytest.approx(math.hypot(8, 0.7))
    # 0-4 s: 4 m in 4 s; 4-8 s: 1 m along x then 3 m along y (a path of 4 m) in 4 s
    assert mean_speed(geom.positions, "walker_0", list(range(0, 9)), record.timestamps_s) == pytest.approx(1.0)
    assert mean_speed(geom.positions, "walker_0", list(range(8, 17)), record.timestamps_s) == pytest.approx(1.0)
    # displacement over 4-8 s is the straight line (1, 3), not the path
    q = {"type": "num_disp", "targets": ["walker_0"], "frames": list(range(8, 17))}
    assert recompute_value(record, q) == pytest.approx(math.hypot(1, 3))
    # the walker turns left by 90 degrees between 5 and 6 s; the static camera sees +90
    f = np.arange(8, 17)
    assert heading_change_deg(geom.inverse_poses["camera"][f], geom.forwards["walker_0"][f]) == pytest.approx(90.0)
    # the ball rolls 0.5 m/s along -y: 2 m from 0 to 4 s
    assert recompute_value(record, {"type": "num_spd", "targets": ["ball_2"], "frames": list(range(9))}) == \
        pytest.approx(0.5)
    # the ratio: walker-car distance at 10 s over that at 0 s
    end = math.dist([5, 5, 0.9], [3, 4, 0.7])
    q = {"type": "num_dis_ratio", "targets": ["walker_0", "car_1"], "frames": [0, 20]}
    assert recompute_value(record, q) == pytest.approx(end / math.hypot(3, 4, 0.2))


def test_meters_per_unit_scales_lengths_not_ratios_or_degrees() -> None:
    record = _record(meters_per_unit=0.5)
    q = {"type": "num_dis", "targets": ["walker_0", "car_1"], "frames": [0]}
    assert recompute_value(record, q) == pytest.approx(0.5 * math.hypot(3, 4, 0.2))
    q = {"type": "num_dis_ratio", "targets": ["walker_0", "car_1"], "frames": [0, 20]}
    assert recompute_value(record, q) == pytest.approx(recompute_value(_record(), q))


def _raw_value(record: SceneRecord, qa: FreeQA) -> float:
    """The answer recomputed from the record's raw arrays with numpy alone (no dsr geometry code)."""
    def pos(who: str) -> np.ndarray:
        return record.camera.c2w[:, :3, 3] if who == "camera" else record.object(who).centers_world

    q, f = qa.query, qa.query["frames"]
    factor = record.meters_per_unit or 1.0
    if qa.type == "num_dis":
        return float(np.linalg.norm(pos(q["targets"][0])[f[0]] - pos(q["targets"][1])[f[0]])) * factor
    if qa.type == "num_dis_ratio":
        a, b = pos(q["targets"][0]), pos(q["targets"][1])
        return float(np.linalg.norm(a[f[-1]] - b[f[-1]]) / np.linalg.norm(a[f[0]] - b[f[0]]))
    p = pos(q["targets"][0])
    if qa.type == "num_disp":
        return float(np.linalg.norm(p[f[-1]] - p[f[0]])) * factor
    if qa.type == "num_spd":
        steps = np.linalg.norm(np.diff(p[f], axis=0), axis=1).sum()
        return float(steps / (record.timestamps_s[f[-1]] - record.timestamps_s[f[0]])) * factor
    # heading: the agent's world forward axis (first column) in the camera's observer frame (README: x forward =
    # the optical axis, y left = -x of OpenCV, z up = -y of OpenCV), through the camera's rotation at each frame
    forward = record.object(q["targets"][0]).orientation.world_from_agent[f][:, :, 0]
    cam = np.einsum("tji,tj->ti", record.camera.c2w[f][:, :3, :3], forward)  # R^T v: world -> OpenCV camera
    yaw = np.unwrap(np.arctan2(-cam[:, 0], cam[:, 2]))
    return float(np.degrees(yaw[-1] - yaw[0]))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_every_numeric_answer_equals_the_raw_ground_truth(seed: int) -> None:
    record = _record()
    qas = [qa for qa in numeric_qas(record, per_video=12, seed=seed) if qa.query.get("observer", "camera") == "camera"]
    assert qas
    for qa in qas:
        expected = _raw_value(record, qa)
        assert qa.answer_value == pytest.approx(expected, rel=1e-5, abs=1e-5), (qa.type, qa.query)
        assert qa.unit == {"num_dis": "m", "num_disp": "m", "num_spd": "m/s", "num_turn": "deg",
                           "num_dis_ratio": "ratio"}[qa.type]


def test_a_record_up_to_scale_gets_scale_free_numbers_only() -> None:
    report = FreeReport()
    qas = list(numeric_qas(_record("up_to_scale"), per_video=10, seed=1, report=report))
    assert qas and {qa.type for qa in qas} <= {"num_dis_ratio", "num_turn"}
    assert all(qa.scale_kind == "scale_free" for qa in qas) and report.scale_kinds == {"scale_free": len(qas)}
    metric = list(numeric_qas(_record(), per_video=10, seed=1))
    assert {"num_dis", "num_disp", "num_spd"} <= {qa.type for qa in metric}
    assert all(qa.scale_kind == "metric" for qa in metric)


def test_open_questions_are_the_template_questions_without_options() -> None:
    record = _record()
    config = make_config("paper")
    mcq = {qa.question: qa for qa in generate_record_qas(record, config, per_video=8, seed=2)}
    free = list(open_qas(record, QAConfig(), per_video=8, seed=2))
    assert free and all(qa.answer_format == "open" and qa.answer_value is None for qa in free)
    for qa in free:
        assert qa.answer_text == mcq[qa.question].answer_text and qa.rule in ("magnitude", "direction", "comparison")


def _write(tmp_path: Path) -> Path:
    folder = tmp_path / "scene"
    folder.mkdir()
    write_record(folder / "record.npz", _record())
    other = dataclasses.replace(_record(), record_id="free-metric-b")
    write_record(folder / "record_b.npz", other)
    return folder


def test_cli_then_eval_oracle_scores_one_and_the_baseline_less(tmp_path: Path) -> None:
    folder = _write(tmp_path)
    records = [str(folder / "record.npz"), str(folder / "record_b.npz")]
    runner = CliRunner()
    for fmt in ("numeric", "open"):
        out = tmp_path / f"{fmt}.jsonl"
        result = runner.invoke(app, ["qa", *records, "--out", str(out), "--answer-format", fmt, "--per-video", "8"])
        assert result.exit_code == 0, result.output
        report = json.loads(Path(f"{out}.report.json").read_text())
        assert report["qas"] == sum(1 for _ in out.open()) > 0
        for model in ("oracle", "type-prior"):
            run = tmp_path / f"run-{model}-{fmt}"
            result = runner.invoke(app, ["eval", "run", str(out), "--model", model, "--out", str(run),
                                         "--no-progress"])
            # the baseline has no prior for a type seen in one video only: those items fail (exit 1)
            assert result.exit_code in ((0,) if model == "oracle" else (0, 1)), result.output
            summary = json.loads((run / "summary.json").read_text())
            score = summary["formats"][fmt]["score"]["value"]
            if model == "oracle":
                assert score == 1.0 and f"{fmt} " in result.output
            else:
                assert 0.0 <= score < 1.0
    report_dir = tmp_path / "report"
    result = runner.invoke(app, ["eval", "report", *(str(p) for p in sorted(tmp_path.glob("run-*"))), "--out",
                                 str(report_dir), "--no-thumbnails"])
    assert result.exit_code == 0, result.output
    text = (report_dir / "report.md").read_text()
    assert "## Numeric and open answers" in text and "### Numeric answers (MRA)" in text
    assert "### Open answers (exact match)" in text and "| oracle | 100.0" in text


def test_parquet_round_trip_and_bad_format(tmp_path: Path) -> None:
    from dsr.evaluate.datasets import load_dataset

    folder = _write(tmp_path)
    runner = CliRunner()
    out = tmp_path / "numeric.parquet"
    result = runner.invoke(app, ["qa", str(folder / "record.npz"), "--out", str(out), "--answer-format", "numeric"])
    assert result.exit_code == 0, result.output
    jsonl = tmp_path / "numeric.jsonl"
    runner.invoke(app, ["qa", str(folder / "record.npz"), "--out", str(jsonl), "--answer-format", "numeric"])
    a, b = load_dataset(out, check_videos=False), load_dataset(jsonl, check_videos=False)
    assert a.format == b.format == "qa_free"
    assert [(i.item_id, i.answer_value, i.unit, i.type) for i in a.items] == \
        [(i.item_id, i.answer_value, i.unit, i.type) for i in b.items]
    bad = runner.invoke(app, ["qa", str(folder / "record.npz"), "--out", str(tmp_path / "x.jsonl"),
                              "--answer-format", "essay"])
    assert bad.exit_code != 0 and "answer-format" in str(bad.exception)


def test_train_json_carries_numeric_and_open_answers(tmp_path: Path) -> None:
    folder = _write(tmp_path)
    runner = CliRunner()
    for fmt in ("numeric", "open"):
        jsonl, train = tmp_path / f"{fmt}.jsonl", tmp_path / f"{fmt}.json"
        for out in (jsonl, train):
            result = runner.invoke(app, ["qa", str(folder / "record.npz"), "--out", str(out), "--answer-format", fmt,
                                         "--per-video", "6"])
            assert result.exit_code == 0, result.output
        native = [json.loads(line) for line in jsonl.read_text().splitlines()]
        entries = json.loads(train.read_text())  # one JSON list, not lines
        assert len(entries) == len(native) > 0
        for qa, entry in zip(native, entries, strict=True):
            human, gpt = entry["conversations"]
            assert entry["id"] == qa["qa_id"] and entry["answer_format"] == fmt
            assert human == {"from": "human", "value": "<video>\n" + qa["question"]} and "Options" not in human["value"]
            assert gpt == {"from": "gpt", "value": qa["answer_text"]}
            assert entry["answer_value"] == qa["answer_value"] and entry["unit"] == qa["unit"]
            if fmt == "numeric":  # the text is the value rounded (1 decimal for degrees, else 2)
                half_step = 0.05 if qa["unit"] == "deg" else 0.005
                assert abs(float(gpt["value"].split()[0]) - entry["answer_value"]) <= half_step + 1e-9
    bad = runner.invoke(app, ["qa", str(folder / "record.npz"), "--out", str(tmp_path / "x.csv"),
                              "--answer-format", "open"])
    assert bad.exit_code != 0 and ".json (DSR-Train)" in str(bad.exception)


def test_numeric_answers_of_a_rendered_world_equal_its_raw_ground_truth(tmp_path: Path) -> None:
    """The same check on a record that ``dsr world`` wrote (MuJoCo ground truth, metric), not a hand-built one."""
    pytest.importorskip("mujoco")
    from dsr.scene.io import read_record
    from dsr.world import WorldConfig, render_world

    render_world(WorldConfig(seed=5, camera_motion="orbit", duration_s=3.0, fps=8.0, width=160, height=120,
                             num_objects=3), tmp_path, progress=False)
    record = read_record(tmp_path / "record.npz")
    qas = [qa for qa in numeric_qas(record, per_video=40, seed=4) if qa.query.get("observer", "camera") == "camera"]
    assert len({qa.type for qa in qas}) >= 3 and all(qa.scale_kind == "metric" for qa in qas)
    for qa in qas:
        assert qa.answer_value == pytest.approx(_raw_value(record, qa), rel=1e-5, abs=1e-5), (qa.type, qa.query)
