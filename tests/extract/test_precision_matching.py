"""The precision benchmark's object matching (``benchmarks/extract_precision.py``): one-to-one by box IoU, and
pieces of one ground-truth track, seen at different times, mapped to it as well."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from extract_precision import match_by_iou

T = 10


def _obj(name: str, box: list[float], frames: range) -> SimpleNamespace:
    visible = np.zeros(T, bool)
    visible[list(frames)] = True
    boxes = np.where(visible[:, None], np.array(box, np.float64), np.nan)
    return SimpleNamespace(object_id=name, visible=visible, boxes_xyxy=boxes)


def _records(ext: list[SimpleNamespace], gt: list[SimpleNamespace]) -> tuple[SimpleNamespace, SimpleNamespace]:
    return SimpleNamespace(objects=tuple(ext), num_frames=T), SimpleNamespace(objects=tuple(gt), num_frames=T)


def test_pieces_of_one_track_seen_at_different_times_map_to_its_object() -> None:
    person = _obj("person", [100, 50, 140, 150], range(T))
    car = _obj("car", [0, 100, 60, 140], range(T))
    first = _obj("p0", [101, 50, 141, 150], range(0, 4))  # IoU 0.95 over frames 0-3
    second = _obj("p1", [100, 52, 140, 150], range(6, 10))  # IoU 0.98 over frames 6-9: matched one-to-one
    overlapping = _obj("p2", [104, 50, 144, 150], range(3, 5))  # seen with p0 at frame 3: a duplicate
    elsewhere = _obj("x", [250, 50, 290, 150], range(0, 4))  # on nothing
    ext, gt = _records([first, second, overlapping, elsewhere], [person, car])
    assert match_by_iou(ext, gt, 0.3) == {"p1": "person"}
    # p0 joins its person (never seen with p1); p2 is seen with p0 at frame 3, so it stays unmatched, as does x
    assert match_by_iou(ext, gt, 0.3, fragments=True) == {"p1": "person", "p0": "person"}


def test_a_piece_below_the_iou_threshold_is_not_mapped() -> None:
    person = _obj("person", [100, 50, 140, 150], range(T))
    loose = _obj("p0", [100, 50, 200, 250], range(0, 4))  # IoU 4000 / 20000 = 0.2
    good = _obj("p1", [100, 50, 140, 150], range(6, 10))
    ext, gt = _records([loose, good], [person])
    assert match_by_iou(ext, gt, 0.3, fragments=True) == {"p1": "person"}
