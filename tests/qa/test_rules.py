"""Hand-computed tests of every answer rule, including values exactly at each threshold and floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsr.errors import DsrError
from dsr.qa.rules import (
    CONSTANT,
    CONSTANT_LARGER,
    CONSTANT_SMALLER,
    DIRECTION_EPS_PAPER,
    FORMER,
    LARGER,
    LATTER,
    SAME,
    SMALLER,
    QAConfig,
    answer_text,
    canonical_wording,
    comparison_answer,
    comparison_state,
    direction_label,
    format_answer,
    magnitude_answer,
    magnitude_states,
    make_config,
    merge_states,
    parity_config,
)

PAPER = QAConfig()
OFFICIAL = parity_config()


# --------------------------------------------------------------------------------------------------
# distance / speed runs


@pytest.mark.parametrize(("values", "expected"), [
    # constant run relative to the run's FIRST value: 1.0 → 1.15 → 1.19 all within [0.8, 1.2] of 1.0
    ([1.0, 1.15, 1.19], [CONSTANT]),
    # drift that is consecutive-small but leaves the band of the first value: 1.0, 1.1, 1.21
    ([1.0, 1.1, 1.21], [CONSTANT_LARGER]),
    ([1.0, 0.9, 0.79], [CONSTANT_SMALLER]),
    # exactly at the band edges stays constant (closed interval [0.8, 1.2])
    ([1.0, 1.2], [CONSTANT]),
    ([1.0, 0.8], [CONSTANT]),
    ([0.5, 0.6, 0.4], [CONSTANT]),
    # just outside: a one-step increasing / decreasing run
    ([1.0, 1.2000001], [LARGER]),
    ([1.0, 0.7999999], [SMALLER]),
    # increasing run: each consecutive ratio > 1.2
    ([1.0, 1.3, 1.7, 2.1], [LARGER]),
    # increasing stops when a consecutive ratio is <= 1.2; the next run starts at the last increasing frame
    # 1→1.5→2.0 (ratios 1.5, 1.33) then 2.0→2.1 (1.05): constant from 2.0 to the end
    ([1.0, 1.5, 2.0, 2.1, 2.2], [LARGER, CONSTANT]),
    # decreasing run, then constant from the last decreasing frame
    ([2.0, 1.5, 1.0, 0.95, 1.05], [SMALLER, CONSTANT]),
    # constant then larger; the next run starts at the breaking frame (1.5) and continues constant
    ([1.0, 1.0, 1.5, 1.6, 1.7], [CONSTANT_LARGER, CONSTANT]),
    # floors: both below 0.1 count as constant, whatever the ratio
    ([0.01, 0.09], [CONSTANT]),
    ([0.0, 0.0, 0.0], [CONSTANT]),
    ([0.05, 0.0999], [CONSTANT]),
    # exactly 0.1 is not below the floor: 0.05 → 0.1 is a ratio of 2
    ([0.05, 0.1], [LARGER]),
    # from zero to anything above the floor: infinite ratio → larger
    ([0.0, 0.5], [LARGER]),
    # decreasing stops once the value falls below the floor: 1.0 → 0.5 is smaller; 0.5 → 0.05 smaller
    # again (merged); 0.05 → 0.05 both below the floor → constant
    ([1.0, 0.5, 0.05, 0.05], [SMALLER, CONSTANT]),
    # decreasing run keeps going at exactly 0.1 (>= floor)
    ([1.0, 0.5, 0.2, 0.1], [SMALLER]),
])
def test_magnitude_runs(values: list[float], expected: list[str]) -> None:
    assert magnitude_answer(values) == expected


def test_magnitude_states_before_merging() -> None:
    # 1.0 → 0.5 → 0.05: the decreasing run stops before 0.05 (< floor), so the next run starts at 0.5
    # and is a second "smaller" that merging collapses
    assert magnitude_states([1.0, 0.5, 0.05, 0.05]) == [SMALLER, SMALLER, CONSTANT]
    assert merge_states([SMALLER, SMALLER, CONSTANT, CONSTANT, SMALLER]) == [SMALLER, CONSTANT, SMALLER]


def test_constant_floor_uses_run_first_value() -> None:
    # run starts at 0.05 (below floor); 0.08 is below the floor too; 0.3 breaks it upwards
    assert magnitude_answer([0.05, 0.08, 0.09, 0.3]) == [CONSTANT_LARGER]


def test_magnitude_rejects_bad_input() -> None:
    with pytest.raises(DsrError):
        magnitude_answer([1.0])
    with pytest.raises(DsrError):
        magnitude_answer([1.0, -0.5])
    with pytest.raises(DsrError):
        magnitude_answer([1.0, math.nan])


def test_custom_thresholds() -> None:
    cfg = QAConfig(constant_low=0.9, constant_high=1.1, floor=0.5)
    assert magnitude_answer([1.0, 1.15], cfg) == [LARGER]
    assert magnitude_answer([0.2, 0.45], cfg) == [CONSTANT]


# --------------------------------------------------------------------------------------------------
# direction labels


def test_direction_eps_default_is_cos70() -> None:
    assert pytest.approx(0.3420201433) == DIRECTION_EPS_PAPER
    assert QAConfig().direction_eps == DIRECTION_EPS_PAPER
    assert OFFICIAL.direction_eps == 0.3


@pytest.mark.parametrize(("vector", "expected"), [
    ((1, 0, 0), "Front"),
    ((-1, 0, 0), "Behind"),
    ((0, 1, 0), "Left"),
    ((0, -1, 0), "Right"),
    ((0, 0, 1), "Above"),
    ((0, 0, -1), "Below"),
    ((-1, -1, -1), "Behind|Right|Below"),
    ((1, 1, 0), "Front|Left"),
    ((0, 2, 2), "Left|Above"),
    ((5, 0, 0.1), "Front"),
])
def test_direction_labels(vector: tuple[float, float, float], expected: str) -> None:
    assert direction_label(np.array(vector, float)) == expected


def test_direction_threshold_exact_and_parity() -> None:
    # a component exactly equal to eps does not pass: (0.28, 0.96) has norm 1 exactly in floats
    assert direction_label((0.28, 0.96, 0.0), 0.28) == "Left"
    assert direction_label((-0.28, 0.96, 0.0), 0.28) == "Left"
    assert direction_label((0.2800001, 0.96, 0.0), 0.28) == "Front|Left"
    # the paper's 70° / 110°: 69.9999° passes, 70.0001° does not (either side)
    for deg, label in ((69.9999, "Front|Left"), (70.0001, "Left"), (109.9999, "Left"), (110.0001, "Behind|Left")):
        a = math.radians(deg)
        assert direction_label((math.cos(a), math.sin(a), 0.0)) == label, deg
    # x = 0.32 lies between the official 0.3 and the paper's 0.342: only the parity option labels it
    v = (0.32, math.sqrt(1 - 0.32**2), 0.0)
    assert direction_label(v, DIRECTION_EPS_PAPER) == "Left"
    assert direction_label(v, 0.3) == "Front|Left"
    # labels do not depend on the vector's length
    assert direction_label((28.0, 96.0, 0.0), 0.28) == "Left"


def test_direction_zero_vector() -> None:
    with pytest.raises(DsrError, match="zero"):
        direction_label((0.0, 0.0, 0.0))


def test_direction_answer_merges() -> None:
    vecs = np.array([[1, 1, 0], [2, 2, 0.1], [-1, 0, 0], [-1, 0.01, 0], [1, 1, 0]], float)
    assert answer_text("direction", vecs) == "(1) Front|Left. (2) Behind. (3) Front|Left."


# --------------------------------------------------------------------------------------------------
# speed comparison


@pytest.mark.parametrize(("v1", "v2", "expected"), [
    (1.2, 1.0, SAME),  # ratio exactly 1.2: not faster
    (1.2000001, 1.0, FORMER),
    (1.0, 1.2, SAME),  # ratio exactly 1/1.2: not slower
    (1.0, 1.2000001, LATTER),
    (0.09, 0.01, SAME),  # both below the floor
    (0.1, 0.01, FORMER),  # 0.1 is not below the floor
    (0.0, 0.1, LATTER),
    (0.0, 0.0, SAME),
    (0.5, 0.0, FORMER),
    (1.0, 1.0, SAME),
])
def test_comparison_state(v1: float, v2: float, expected: str) -> None:
    assert comparison_state(v1, v2) == expected


def test_comparison_answer_runs() -> None:
    speeds = np.array([[2, 1], [3, 1], [1, 1], [1, 3], [1, 3.5]], float)
    assert comparison_answer(speeds) == [FORMER, SAME, LATTER]
    assert answer_text("comparison", speeds) == "(1) The former is faster. (2) Nearly the same. (3) The latter is faster."


# --------------------------------------------------------------------------------------------------
# wording (§14 M2, M3)


def test_magnitude_wording_paper_and_official() -> None:
    states = [CONSTANT_LARGER, SMALLER, CONSTANT_SMALLER, LARGER, CONSTANT]
    assert format_answer(states, "magnitude") == (
        "(1) Keep nearly constant then become larger. (2) Become smaller. "
        "(3) Keep nearly constant then become smaller. (4) Become larger. (5) Keep nearly constant.")
    assert format_answer(states, "magnitude", "official_code") == (
        "(1) Keep nearly constant and then become larger. (2) Become smaller. "
        "(3) Keep nearly constant and then become smaller. (4) Become larger. (5) Keep nearly constant.")


def test_comparison_wording_paper_and_official() -> None:
    assert format_answer([FORMER], "comparison") == "(1) The former is faster."
    assert format_answer([SAME], "comparison") == "(1) Nearly the same."
    assert format_answer([LATTER], "comparison") == "(1) The latter is faster."
    assert format_answer([FORMER], "comparison", "official_code") == "(1) The former is always faster."
    assert format_answer([SAME], "comparison", "official_code") == "(1) Their speed is nearly the same."
    assert format_answer([LATTER], "comparison", "official_code") == "The latter is always faster."
    assert format_answer([FORMER, LATTER], "comparison", "official_code") == (
        "(1) The former is faster. (2) The latter is faster.")


def test_canonical_wording_normaliser() -> None:
    assert canonical_wording("(1) Becomes larger.") == "(1) Become larger."
    assert canonical_wording("(1) Keep nearly constant and then becomes larger.") == (
        "(1) Keep nearly constant then become larger.")
    assert canonical_wording("(1) Keep nearly constant and then become smaller.  (2) Becomes smaller.") == (
        "(1) Keep nearly constant then become smaller. (2) Become smaller.")
    assert canonical_wording("The latter is always faster.") == "(1) The latter is faster."
    assert canonical_wording("(1) Their speed is nearly the same.") == "(1) Nearly the same."


def test_config_presets_and_validation() -> None:
    assert make_config("debiased") == QAConfig() and QAConfig().preset == "debiased"
    paper = make_config("paper")
    assert (paper.preset, paper.distractors, paper.min_box_side, paper.balance_letters) == ("paper", "random", 0.0, False)
    # the presets share the paper's answer rules; only the question design differs
    rule_fields = ("constant_low", "constant_high", "floor", "speed_ratio", "direction_eps", "answer_wording",
                   "frame_policy", "min_gap", "min_frames", "max_segments")
    assert all(getattr(paper, f) == getattr(QAConfig(), f) for f in rule_fields)
    off = make_config("official_code", stability_k=0)
    assert off.answer_wording == "official_code" and off.prediction_terminal == "" and off.stability_k == 0
    assert off.frame_policy == "official_code" and off.drop_rel_spd_comp_on_retry
    with pytest.raises(DsrError):
        QAConfig(direction_eps=0.7)
    with pytest.raises(DsrError):
        QAConfig(frame_policy="weekly")  # type: ignore[arg-type]
    with pytest.raises(DsrError):
        make_config("nope")
