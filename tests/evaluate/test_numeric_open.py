"""The number parser, MRA and the open-answer sequence parser: hand-computed edge cases, adversarial
corpora (two values or two sequences are invalid, never guessed) and round-trip properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsr.evaluate.numeric import MRA_TOLERANCES, mean_relative_accuracy, parse_number
from dsr.evaluate.open_answer import expand_states, parse_sequence, sequence_scores
from dsr.qa.rules import DIRECTION_LABELS, format_answer

# ---- MRA -----------------------------------------------------------------------------------------

MRA_CASES = [
    (1.0, 1.0, 1.0),  # exact
    (1.04, 1.0, 1.0),  # error 0.04 < every tolerance (the smallest is 0.05)
    (1.07, 1.0, 0.9),  # 0.07: fails only 0.05 → 9/10
    (1.32, 1.0, 0.4),  # 0.32: passes 0.50, 0.45, 0.40, 0.35 → 4/10
    (1.5, 1.0, 0.0),  # 0.5 is not < 0.5 (strict)
    (0.6, 1.0, 0.2),  # 0.4: passes 0.50, 0.45 → 2/10
    (0.0, 0.0, 1.0),  # zero target: exact zero is right ...
    (0.001, 0.0, 0.0),  # ... anything else is not (relative error undefined)
    (-30.0, -30.0, 1.0),  # negative targets compare by |y|
    (30.0, -30.0, 0.0),  # wrong sign: error 2
    (1e300, 1.0, 0.0),  # huge
    (1.04e6, 1e6, 1.0),  # a huge target: the error is relative, 0.04
    (1.2e9, 1e9, 0.6),  # 0.2: passes 0.50 … 0.25 (6 tolerances), not 0.20 (strict)
    (float("inf"), 1.0, 0.0),
    (float("nan"), 1.0, 0.0),
    (None, 2.0, 0.0),  # no number in the reply
]


@pytest.mark.parametrize(("pred", "target", "expected"), MRA_CASES)
def test_mra_hand_computed(pred: float | None, target: float, expected: float) -> None:
    assert mean_relative_accuracy(pred, target) == pytest.approx(expected)


def test_mra_ten_percent_error_passes_eight_thresholds() -> None:
    # |−27 − (−30)| / 30 = 0.1: passes 0.50 … 0.15 (8 tolerances), not 0.10 (strict) nor 0.05
    assert mean_relative_accuracy(-27.0, -30.0) == pytest.approx(0.8)
    assert len(MRA_TOLERANCES) == 10 and MRA_TOLERANCES[0] == 0.5 and MRA_TOLERANCES[-1] == 0.05


def test_mra_with_a_reply_in_centimetres() -> None:
    parsed = parse_number("I'd say 250 cm.", "m")
    assert parsed.value == pytest.approx(2.5) and parsed.unit_seen == "cm"
    assert mean_relative_accuracy(parsed.value, 2.5) == 1.0
    assert mean_relative_accuracy(parse_number("250", "m").value, 2.5) == 0.0  # bare 250 read as metres


@pytest.mark.parametrize(("reply", "unit", "target", "expected"), [
    ("2500 mm", "m", 2.5, 1.0),
    ("about 0.0025 km", "m", 2.5, 1.0),
    ("3 km", "m", 2.5, 0.0),  # 1199 times too far
    ("9 km/h", "m/s", 2.5, 1.0),
    ("10 km/h", "m/s", 2.5, 0.8),  # 2.78 m/s: error 0.111 passes 0.50 … 0.15 (8), not 0.10 or 0.05
    ("0.5 rad", "deg", 28.6479, 1.0),
])
def test_mra_with_replies_in_other_units(reply: str, unit: str, target: float, expected: float) -> None:
    assert mean_relative_accuracy(parse_number(reply, unit).value, target) == pytest.approx(expected)


@given(st.floats(0.01, 1e4), st.floats(0.01, 1e4))
def test_mra_is_in_unit_interval_and_one_at_the_target(pred: float, target: float) -> None:
    assert 0.0 <= mean_relative_accuracy(pred, target) <= 1.0
    assert mean_relative_accuracy(target, target) == 1.0


# ---- number parser: an adversarial corpus (reply, unit, expected value or None) ------------------

NUMBER_CORPUS = [
    ("3.5", "m", 3.5),
    ("about 3.5 m", "m", 3.5),
    ("approximately 3.5 meters.", "m", 3.5),
    ("Roughly 350 cm", "m", 3.5),
    ("3500 mm", "m", 3.5),
    ("Answer: 3.5 metres", "m", 3.5),
    ("The final answer is 4 m.", "m", 4.0),
    ("<answer>4.2</answer>", "m", 4.2),
    ("\\boxed{4.2 m}", "m", 4.2),
    ("**2.0 m**", "m", 2.0),
    ("It is 3.5 m (350 cm) away.", "m", 3.5),  # two numbers, one quantity
    ("The car moved 3.5 m in 2 seconds.", "m", 3.5),  # time is context
    ("three and a half metres", "m", 3.5),
    ("twelve", "m", 12.0),
    ("two point five meters", "m", 2.5),
    ("one hundred and five", "m", 105.0),
    ("10 ft", "m", 3.048),
    ("1,250.5 m", "m", 1250.5),
    ("3,5 m", "m", 3.5),  # decimal comma
    ("(1) The distance is 5 m.", "m", 5.0),  # enumeration is not a number
    ("Step 1: look. Step 2: it is 6 m.", "m", 6.0),
    ("I think 2 m. Final answer: 2.5 m", "m", 2.5),  # the final answer decides
    ("<think>maybe 7 m</think> 5 m", "m", 5.0),  # reasoning is removed
    ("5.", "m", 5.0),
    ("2.5 m/s", "m/s", 2.5),
    ("9 km/h", "m/s", 2.5),
    ("It goes at 250 cm/s", "m/s", 2.5),
    ("-30 degrees", "deg", -30.0),
    ("minus 30°", "deg", -30.0),
    ("−45°", "deg", -45.0),  # unicode minus
    ("about 90 degrees", "deg", 90.0),
    ("0.5 rad", "deg", math.degrees(0.5)),
    ("1.5x", "ratio", 1.5),
    ("1.5 times farther", "ratio", 1.5),
    ("150%", "ratio", 1.5),
    # invalid: two values, ranges, hedges with numbers, wrong dimension, nothing
    ("3 or 4 m", "m", None),
    ("between 2 and 3 m", "m", None),
    ("The answer is 3 m, not 4 m.", "m", None),
    ("2-3 m", "m", None),
    ("It took 4 seconds", "m", None),
    ("No idea.", "m", None),
    ("", "m", None),
    ("1. 4 m\n2. 5 m", "m", None),
    ("three or four meters", "m", None),
    ("<answer>3 m or 4 m</answer>", "m", None),
    ("Answer: 2 m. Answer: 3 m.", "m", None),
]


@pytest.mark.parametrize(("reply", "unit", "expected"), NUMBER_CORPUS)
def test_number_corpus(reply: str, unit: str, expected: float | None) -> None:
    parsed = parse_number(reply, unit)
    if expected is None:
        assert parsed.value is None and parsed.tier == "invalid", parsed
        assert parsed.reason
    else:
        assert parsed.value == pytest.approx(expected), parsed
        assert parsed.tier != "invalid"


def test_number_corpus_is_at_least_40_and_records_tiers() -> None:
    assert len(NUMBER_CORPUS) >= 40
    assert parse_number("<answer>1</answer>").tier == "tag"
    assert parse_number("Answer: 1 m").tier == "phrase"
    assert parse_number("1 m").tier == "single"
    assert parse_number("one metre").tier == "words"


@given(st.floats(0.001, 1e5, allow_nan=False), st.sampled_from([("m", 1.0), ("cm", 100.0), ("km", 0.001)]))
def test_number_round_trip_in_any_length_unit(value: float, unit_factor: tuple[str, float]) -> None:
    unit, factor = unit_factor
    text = f"The distance is about {value * factor:.10g} {unit}."
    assert parse_number(text, "m").value == pytest.approx(value, rel=1e-5, abs=1e-6)


@given(st.floats(0.5, 1e4), st.floats(0.5, 1e4))
def test_two_different_values_are_invalid(a: float, b: float) -> None:
    if not math.isclose(round(a, 2), round(b, 2)):
        assert parse_number(f"maybe {a:.2f} m, maybe {b:.2f} m", "m").value is None


def test_unknown_unit_is_an_error() -> None:
    from dsr.errors import DsrError

    with pytest.raises(DsrError, match="unknown answer unit"):
        parse_number("3", "furlong")


# ---- open answers: an adversarial corpus (reply, rule kind, expected expanded states or None) -------

SEQUENCE_CORPUS = [
    ("(1) Keep nearly constant then become larger. (2) Become smaller.", "magnitude",
     ("constant", "larger", "smaller")),
    ("(1) Keep nearly constant and then become larger.", "magnitude", ("constant", "larger")),
    ("(1) Become larger.", "magnitude", ("larger",)),
    ("The distance first stays the same, then increases, and finally decreases.", "magnitude",
     ("constant", "larger", "smaller")),
    ("It increases.", "magnitude", ("larger",)),
    ("It gets larger because the car drives away.", "magnitude", ("larger",)),
    ("1. constant\n2. grows", "magnitude", ("constant", "larger")),
    ("1) shrinks 2) stays the same", "magnitude", ("smaller", "constant")),
    ("The speed doesn't change.", "magnitude", ("constant",)),
    ("more or less constant", "magnitude", ("constant",)),
    ("It speeds up, then slows down.", "magnitude", ("larger", "smaller")),
    ("increasing -> decreasing -> increasing", "magnitude", ("larger", "smaller", "larger")),
    ("Answer: becomes smaller", "magnitude", ("smaller",)),
    ("<think>it could increase</think>It decreases.", "magnitude", ("smaller",)),
    ("KEEP NEARLY CONSTANT.", "magnitude", ("constant",)),
    ("The gap grows; after that it remains steady.", "magnitude", ("larger", "constant")),
    ("(1) The former is faster. (2) Nearly the same.", "comparison", ("former", "same")),
    ("(1) The former is always faster.", "comparison", ("former",)),
    ("The latter is always faster.", "comparison", ("latter",)),
    ("The second object is faster.", "comparison", ("latter",)),
    ("The first is slower, then they move at the same speed.", "comparison", ("latter", "same")),
    ("They are about the same.", "comparison", ("same",)),
    ("(1) Front|Left. (2) Left.", "direction", ("Front|Left", "Left")),
    ("in front and to the left, then to the left", "direction", ("Front|Left", "Left")),
    ("Behind|Right|Below.", "direction", ("Behind|Right|Below",)),
    ("It moves left → right", "direction", ("Left", "Right")),
    ("<think>maybe left</think> Answer: front-right", "direction", ("Front|Right",)),
    ("Ahead.", "direction", ("Front",)),
    ("It is below and behind the camera.", "direction", ("Behind|Below",)),
    # invalid: hedges, contradictions, two sequences, nothing readable
    ("increases or decreases", "magnitude", None),
    ("It either grows or shrinks.", "magnitude", None),
    ("Maybe it increases.", "magnitude", None),
    ("(1) Become larger. (1) Become smaller.", "magnitude", None),
    ("(1) Become larger. (3) Become smaller.", "magnitude", None),
    ("Answer: larger. Answer: smaller.", "magnitude", None),
    ("No idea", "magnitude", None),
    ("", "magnitude", None),
    ("front and behind", "direction", None),
    ("left or right", "direction", None),
    ("It moves somewhere.", "direction", None),
    ("Which is faster? I cannot tell.", "comparison", None),
    ("The former or the latter is faster.", "comparison", None),
    ("It increases. Alternatively, it decreases.", "magnitude", None),
]


@pytest.mark.parametrize(("reply", "kind", "expected"), SEQUENCE_CORPUS)
def test_sequence_corpus(reply: str, kind: str, expected: tuple[str, ...] | None) -> None:
    parsed = parse_sequence(reply, kind)  # type: ignore[arg-type]
    assert parsed.states == expected, parsed
    assert (parsed.tier == "invalid") == (expected is None)


def test_sequence_corpus_is_at_least_40_and_tiers() -> None:
    assert len(SEQUENCE_CORPUS) >= 40
    assert parse_sequence("(1) Become larger.", "magnitude").tier == "canonical"
    assert parse_sequence("(1) it grows", "magnitude").tier == "numbered"
    assert parse_sequence("it grows", "magnitude").tier == "sequence"


_MAGNITUDE = ("constant", "constant_larger", "constant_smaller", "larger", "smaller")


@given(st.lists(st.sampled_from(_MAGNITUDE), min_size=1, max_size=6), st.sampled_from(["paper", "official_code"]))
def test_our_wording_reads_back_exactly(states: list[str], wording: str) -> None:
    from dsr.qa.rules import merge_states

    states = merge_states(states)
    parsed = parse_sequence(format_answer(states, "magnitude", wording), "magnitude")
    assert parsed.tier == "canonical" and parsed.states == expand_states(states)
    assert sequence_scores(parsed, states) == (1.0, 1.0)


@given(st.lists(st.sampled_from([x for x in DIRECTION_LABELS if x]), min_size=1, max_size=5))
def test_direction_labels_read_back(labels: list[str]) -> None:
    from dsr.qa.rules import merge_states

    labels = merge_states(labels)
    assert parse_sequence(format_answer(labels, "direction"), "direction").states == tuple(labels)


def test_sequence_scores_hand_computed() -> None:
    gold = ["constant_larger", "smaller"]  # expanded: constant, larger, smaller
    assert sequence_scores(parse_sequence("stays the same then grows then shrinks", "magnitude"), gold) == (1.0, 1.0)
    exact, similarity = sequence_scores(parse_sequence("grows then shrinks", "magnitude"), gold)
    assert exact == 0.0 and similarity == pytest.approx(1 - 1 / 3)  # one deletion of three
    assert sequence_scores(parse_sequence("no idea", "magnitude"), gold) == (0.0, 0.0)
