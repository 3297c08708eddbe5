"""The item page's media plan: boxes and times parsed from real questions, frames, the quantity plot."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsr.review.media import MediaCache, build_view, parse_boxes, parse_times, quantity_png, rule_check
from dsr.scene.io import read_record

from .scene import read_rows


def test_parse_boxes_and_times_on_paper_wording() -> None:
    q = ("Between 1.0s and 3.5s, from the perspective of person with bounding box coordinates [10,20,30,40] at 2.0s, "
         "how does the distance between camera and red ball with initial bounding box coordinates [5,6,70,80] change?")
    boxes = parse_boxes(q)
    assert [(b.label, b.role, b.box_xyxy) for b in boxes] == [
        ("person", "observer", (10.0, 20.0, 30.0, 40.0)), ("red ball", "initial", (5.0, 6.0, 70.0, 80.0))]
    assert parse_times(q) == {"ts": 1.0, "te": 3.5, "tv": 2.0}
    pred = "Following the perspective of dog with final bounding box coordinates [1,2,3,4], predict the moving direction of camera."
    assert [(b.label, b.role) for b in parse_boxes(pred)] == [("dog", "final")]
    assert parse_times(pred) == {}
    assert parse_boxes("How many cars are there?") == []


def test_boxes_lie_on_the_recorded_objects(qa_dir: Path) -> None:
    """Every box parsed from a generated question is the record's box of that object at the reference frame."""
    record = read_record(qa_dir / "scene0" / "record.npz")
    cache = MediaCache()
    checked = 0
    for qa in read_rows(qa_dir / "qas.jsonl"):
        info, error = cache.video_info(str(qa_dir / qa["video_path"]))
        assert error is None and info is not None
        view = build_view(qa["question"], qa, qa["visible_until_s"], info)
        assert len(view.boxes) == qa["question"].count("bounding box coordinates"), qa["question"]
        query = qa["query"]
        for box in view.boxes:
            assert box.frame is not None
            # which record object has exactly this (truncated) box at the reference frame?
            found = [o.object_id for o in record.objects
                     if np.array_equal(np.floor(o.boxes_xyxy[box.frame]), np.asarray(box.box_xyxy))]
            assert found, (qa["qa_id"], box)
            assert set(found) & ({query["observer"], *query["targets"]}), (qa["qa_id"], box, found)
            checked += 1
        if qa["visible_until_s"] is not None:
            assert view.start_s == 0.0 and view.end_s == qa["frames"]["timestamps_s"][-1]
            assert view.end_s > qa["visible_until_s"]
        else:
            assert (view.start_s, view.end_s) == (qa["frames"]["timestamps_s"][0], qa["frames"]["timestamps_s"][-1])
        assert all(0 <= f < record.num_frames for f, _ in view.strip) and len(view.strip) >= 2
    assert checked >= 16


def test_rule_check_rederives_every_generated_answer(qa_dir: Path) -> None:
    kinds = set()
    for qa in read_rows(qa_dir / "qas.jsonl"):
        check = rule_check(qa, qa["answer_text"])
        assert check is not None and check.matches, (qa["qa_id"], check)
        kinds.add(check.kind)
        # a different option is not what the rule derives
        other = next(k for k in qa["options"] if k != qa["answer"])
        assert rule_check(qa, qa["options"][other]).matches is False  # type: ignore[union-attr]
    assert kinds == {"magnitude", "direction", "comparison"}
    assert rule_check({"question": "x"}, "y") is None


@pytest.mark.parametrize("rule", ["magnitude", "direction", "comparison"])
def test_quantity_plot_per_rule(qa_dir: Path, rule: str) -> None:
    qa = next(q for q in read_rows(qa_dir / "qas.jsonl") if q["quantity"]["rule"] == rule)
    png = quantity_png(qa, qa["answer_text"])
    assert png is not None
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (640, 360)
    assert np.asarray(img.convert("L")).std() > 5  # something is drawn
    assert quantity_png({"quantity": {"rule": rule, "values": []}}, "x") is None


def test_frames_decode_to_the_video_content(qa_dir: Path) -> None:
    """The JPEG of a reference frame shows the object's colour inside its box."""
    qa = next(q for q in read_rows(qa_dir / "qas.jsonl") if "initial bounding box" in q["question"])
    cache = MediaCache()
    video = str(qa_dir / qa["video_path"])
    info, _ = cache.video_info(video)
    view = build_view(qa["question"], qa, qa["visible_until_s"], info)
    box = next(b for b in view.boxes if b.role == "initial")
    jpeg = cache.frame_jpeg(("t", 1), video, view.frames, box.frame)  # type: ignore[arg-type]
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    x1, y1, x2, y2 = (int(v) for v in box.box_xyxy)
    inside = rgb[(y1 + y2) // 2, (x1 + x2) // 2]
    assert np.abs(inside - 90).max() > 40  # not the grey background
    assert cache.video_info(str(qa_dir / "missing.mp4"))[1] == "video not found: missing.mp4"
