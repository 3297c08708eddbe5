"""The heading floor of ``benchmarks/extract_calibrate.py``: the smallest step that brings coverage to 90%."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from extract_calibrate import heading_floor


def _rows(pairs: list[tuple[float, float]]) -> list[dict]:
    return [{"error_deg": e, "sigma_deg": s} for e, s in pairs]


def test_heading_floor_is_zero_when_the_factor_already_covers() -> None:
    rows = _rows([(10.0, 10.0)] * 10)  # 10 <= 1.645 · 2 · 10
    assert heading_floor(rows, factor=2.0) == 0.0
    assert heading_floor([], factor=2.0) == 0.0


def test_heading_floor_is_the_smallest_step_covering_nine_in_ten() -> None:
    # nine errors of 10° at raw sigma 5° (factor 1: 8.2° bound) and one of 100°. The nine need
    # hypot(5, f) >= 10 / 1.645 = 6.08, so f >= 3.46: the 5° step. The tenth is allowed to stay outside
    rows = _rows([(10.0, 5.0)] * 9 + [(100.0, 5.0)])
    assert heading_floor(rows, factor=1.0) == 5.0
    # with two of the ten far off, 90% needs one of them: hypot(5, f) >= 100 / 1.645 = 60.8, so f >= 60.6 -> 65
    rows = _rows([(10.0, 5.0)] * 8 + [(100.0, 5.0)] * 2)
    assert heading_floor(rows, factor=1.0) == 65.0
