"""Scoring a reply by the item's answer format: the one place that routes to the letter parser (mcq), the
number parser with MRA (numeric) and the sequence parser with exact match and edit similarity (open).

Every result row carries ``score`` in [0, 1]: 1/0 for a letter, MRA for a number, exact match for a
sequence (its normalised edit similarity is kept as ``edit_similarity``), and the parser's ``tier``.
``correct`` stays the multiple-choice verdict (None for the other formats), so accuracy tables read only
multiple-choice rows.
"""

from __future__ import annotations

from typing import Any

from dsr.evaluate.datasets import Item
from dsr.evaluate.numeric import mean_relative_accuracy, parse_number
from dsr.evaluate.open_answer import parse_sequence, sequence_scores
from dsr.evaluate.parse import parse_letter

# what a score means per format, for reports
SCORE_NAMES: dict[str, str] = {"mcq": "accuracy", "numeric": "MRA", "open": "exact match"}


def gold_states(item: Item) -> tuple[str, ...]:
    """An open item's reference state sequence, read from its canonical answer text."""
    parsed = parse_sequence(item.answer, item.rule or "magnitude")  # type: ignore[arg-type]
    if parsed.states is None:
        raise ValueError(f"{item.item_id}: the reference answer {item.answer!r} is not a state sequence")
    return parsed.states


def score_reply(item: Item, response: str | None) -> dict[str, Any]:
    """The parsed reply and its score, as result-row fields."""
    if item.answer_format == "numeric":
        assert item.answer_value is not None
        number = parse_number(response, item.unit or "m")
        return {"letter": None, "tier": number.tier, "invalid": number.invalid, "correct": None,
                "parsed": number.value, "score": mean_relative_accuracy(number.value, item.answer_value)}
    if item.answer_format == "open":
        sequence = parse_sequence(response, item.rule or "magnitude")  # type: ignore[arg-type]
        exact, edit = sequence_scores(sequence, gold_states(item))
        return {"letter": None, "tier": sequence.tier, "invalid": sequence.invalid, "correct": None,
                "parsed": None if sequence.states is None else list(sequence.states), "score": exact,
                "edit_similarity": edit}
    parsed = parse_letter(response, item.options)
    correct = parsed.letter == item.answer
    return {"letter": parsed.letter, "tier": parsed.tier, "invalid": parsed.letter is None, "correct": correct,
            "score": float(correct)}
