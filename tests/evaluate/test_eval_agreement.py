"""Ground truth vs extracted records (issue 15, item 20): the same questions asked of both, objects mapped
by box IoU and frames by time, agreement per type."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsr.evaluate.agreement import (
    agreement_per_type,
    check_labels,
    frame_map,
    match_objects,
    records_by_video,
)
from dsr.evaluate.datasets import load_dataset
from dsr.scene.io import write_record


def _items(qa_scene: tuple[Path, Any]) -> list[Any]:
    return load_dataset(qa_scene[0] / "qas.jsonl").items


def _extracted(tmp_path: Path, record: Any, video: Path, name: str = "ext.npz") -> dict[str, Path]:
    """``record`` written as if ``dsr extract`` had made it from ``video``."""
    record = dataclasses.replace(record, video=dataclasses.replace(record.video, path=str(video)))
    return records_by_video([write_record(tmp_path / name, record)])


def _renamed(record: Any, drop: str | None = None) -> Any:
    """Tracks renamed the way an extraction names them (mover_k), in reverse order, optionally one dropped."""
    objects = [dataclasses.replace(o, object_id=f"mover_{k}", class_phrase="moving object")
               for k, o in enumerate(record.objects) if o.object_id != drop]
    return dataclasses.replace(record, objects=tuple(reversed(objects)))


def test_frame_map_by_time_hand_checked() -> None:
    from types import SimpleNamespace

    gt = SimpleNamespace(timestamps_s=np.arange(24) / 4.0)  # 24 frames at 4 fps: t = 0, 0.25, ...
    ext = SimpleNamespace(timestamps_s=np.arange(0, 24, 2) / 4.0)  # every other frame: t = 0, 0.5, ...
    fmap = frame_map(gt, ext)  # type: ignore[arg-type]
    assert fmap[0] == 0 and fmap[2] == 1 and fmap[22] == 11 and fmap[23] == 11  # 0.25 s off = half a step
    assert set(frame_map(gt, ext, tolerance=0.25)) == set(range(0, 24, 2))  # type: ignore[arg-type]
    late = SimpleNamespace(timestamps_s=np.arange(0, 24, 2) / 4.0 + 2.0)  # starts 2 s later
    assert min(frame_map(gt, late)) == 7  # type: ignore[arg-type]  # 1.75 s: half a step before 2 s


def test_the_same_record_agrees_on_every_question(qa_scene: tuple[Path, Any], tmp_path: Path) -> None:
    d, gt = qa_scene
    checks = check_labels(_items(qa_scene), _extracted(tmp_path, _renamed(gt), d / "video.mp4"))
    assert checks and all(c.agree and c.reason is None for c in checks), [c for c in checks if not c.agree][:3]
    total = agreement_per_type(checks)[-1]
    assert (total.type, total.n, total.agree, total.rate) == ("all", len(checks), len(checks), 1.0)


def test_a_lost_or_misplaced_object_is_a_disagreement_with_its_reason(qa_scene: tuple[Path, Any],
                                                                     tmp_path: Path) -> None:
    d, gt = qa_scene
    items = _items(qa_scene)
    names = [{it.query["observer"], *it.query["targets"]} for it in items]
    checks = check_labels(items, _extracted(tmp_path, _renamed(gt, drop="ball_0"), d / "video.mp4"))
    for c, named in zip(checks, names, strict=True):
        assert (c.reason == "object_unmatched") == ("ball_0" in named) and c.agree == ("ball_0" not in named)
    # the car's track drawn 100 px away from the car: no overlap, so no match
    moved = dataclasses.replace(gt, objects=tuple(
        dataclasses.replace(o, boxes_xyxy=o.boxes_xyxy + np.array([100.0, 0, 100.0, 0])) if o.object_id == "car_0" else o
        for o in gt.objects))
    assert "car_0" not in match_objects(gt, moved, frame_map(gt, moved))
    assert match_objects(gt, moved, frame_map(gt, moved))["ball_0"] == ("ball_0", pytest.approx(1.0))
    checks = check_labels(items, _extracted(tmp_path, moved, d / "video.mp4", "moved.npz"))
    assert {c.reason for c, named in zip(checks, names, strict=True) if "car_0" in named} == {"object_unmatched"}
    per = {a.type: a for a in agreement_per_type(checks)}
    assert per["all"].reasons.get("object_unmatched", 0) == sum("car_0" in n for n in names)


def test_a_video_without_extraction(qa_scene: tuple[Path, Any]) -> None:
    checks = check_labels(_items(qa_scene), {})
    assert checks and {c.reason for c in checks} == {"no_extraction"} and not any(c.agree for c in checks)


def test_the_report_shows_agreement_per_type(qa_scene: tuple[Path, Any], tmp_path: Path) -> None:
    from dsr.evaluate.models import create_model
    from dsr.evaluate.report import write_report
    from dsr.evaluate.run import RunConfig, run_eval

    d, gt = qa_scene
    items = _items(qa_scene)
    checks = check_labels(items, _extracted(tmp_path, _renamed(gt, drop="ball_0"), d / "video.mp4"))
    ds = load_dataset(d / "qas.jsonl")
    run_eval(ds, create_model("oracle"), tmp_path / "oracle", RunConfig(), progress=False)
    md, html = write_report([tmp_path / "oracle"], tmp_path / "rep", resamples=100, label_checks=checks,
                            thumbnails=False)
    text = md.read_text()
    agree = sum(c.agree for c in checks)
    assert "## Ground truth vs extracted records" in text
    assert f"Same answer on {agree} of {len(checks)} questions" in text
    assert f"| all |  | {len(checks)} | {agree} |" in text
    assert (tmp_path / "rep" / "agreement.png").read_bytes()[:4] == b"\x89PNG"
    assert html.read_text().count("data:image/png;base64,") == 3  # per type, agreement, letter bias


def test_the_demo_step_prints_and_saves_agreement(qa_scene: tuple[Path, Any], tmp_path: Path) -> None:
    import io
    import json

    from rich.console import Console

    from dsr.demo import _compare_labels

    d, gt = qa_scene
    ext = dataclasses.replace(_renamed(gt, drop="ball_0"), video=dataclasses.replace(gt.video, path=str(d / "video.mp4")))
    path = write_record(tmp_path / "ext.npz", ext)
    buf = io.StringIO()
    checks = _compare_labels(d / "qas.jsonl", [path], tmp_path / "agreement.json", Console(file=buf, width=200))
    saved = json.loads((tmp_path / "agreement.json").read_text())
    total = saved["per_type"][-1]
    assert total["type"] == "all" and total["n"] == len(checks) and total["agree"] == sum(c.agree for c in checks)
    assert len(saved["questions"]) == len(checks) and "same answer from the extracted record" in buf.getvalue()
