"""Verdict validation and item outcomes (pure logic)."""

from __future__ import annotations

import pytest

from dsr.review.decisions import (
    ItemText,
    Verdict,
    VerdictError,
    check_verdict,
    item_outcome,
    label_of,
    status_of,
)

ITEM = ItemText(question="Between 1.0s and 3.0s, how does the distance change?",
                options={"A": "(1) Become larger.", "B": "(1) Keep nearly constant.", "C": "(1) Become smaller.",
                         "D": "(1) Keep nearly constant then become larger."}, answer="B")


def test_accept_keeps_the_generator_answer() -> None:
    v = check_verdict(Verdict("accept"), ITEM)
    assert v == Verdict("accept", answer="B")
    assert label_of(v) == "B" and status_of(v, ITEM) == "accepted"
    with pytest.raises(VerdictError, match="change_answer"):
        check_verdict(Verdict("accept", answer="C"), ITEM)


def test_change_answer_must_name_another_option() -> None:
    assert check_verdict(Verdict("change_answer", answer="C"), ITEM).answer == "C"
    with pytest.raises(VerdictError, match="accept instead"):
        check_verdict(Verdict("change_answer", answer="B"), ITEM)
    with pytest.raises(VerdictError, match="one of A, B, C, D"):
        check_verdict(Verdict("change_answer", answer="E"), ITEM)
    assert status_of(Verdict("change_answer", answer="C"), ITEM) == "edited"


def test_edit_drops_unchanged_text_and_validates_options() -> None:
    with pytest.raises(VerdictError, match="nothing was edited"):
        check_verdict(Verdict("edit", question=ITEM.question + "  ", options=dict(ITEM.options)), ITEM)
    edited = check_verdict(Verdict("edit", question="Between 1.0s and 3.0s, how does the gap change?"), ITEM)
    assert edited.question == "Between 1.0s and 3.0s, how does the gap change?" and edited.options is None
    assert edited.answer == "B" and status_of(edited, ITEM) == "edited" and label_of(edited) == "B"
    opts = {**ITEM.options, "A": "(1) Become larger then smaller."}
    with_opts = check_verdict(Verdict("edit", options=opts, answer="A"), ITEM)
    assert with_opts.options == opts and with_opts.question is None and with_opts.answer == "A"
    with pytest.raises(VerdictError, match="same text"):
        check_verdict(Verdict("edit", options={**ITEM.options, "A": ITEM.options["B"].upper()}), ITEM)
    with pytest.raises(VerdictError, match="letters"):
        check_verdict(Verdict("edit", options={"A": "x", "B": "y"}), ITEM)
    with pytest.raises(VerdictError, match="empty"):
        check_verdict(Verdict("edit", question="   "), ITEM)
    with pytest.raises(VerdictError, match="control characters"):
        check_verdict(Verdict("edit", question="a\x00b"), ITEM)


def test_reject_needs_a_listed_reason_and_other_needs_a_note() -> None:
    assert check_verdict(Verdict("reject", reason="wrong_object"), ITEM).reason == "wrong_object"
    with pytest.raises(VerdictError, match="needs a reason"):
        check_verdict(Verdict("reject", reason="because"), ITEM)
    with pytest.raises(VerdictError, match="needs a note"):
        check_verdict(Verdict("reject", reason="other"), ITEM)
    assert label_of(Verdict("reject", reason="other", note="x")) == "reject"


def test_flag_is_not_a_judgement_and_cannot_resolve() -> None:
    v = check_verdict(Verdict("flag", note="unsure about the dog"), ITEM)
    assert label_of(v) is None
    with pytest.raises(VerdictError, match="cannot be a flag"):
        check_verdict(Verdict("flag"), ITEM, resolution=True)
    with pytest.raises(VerdictError, match="unknown action"):
        check_verdict(Verdict("approve"), ITEM)
    with pytest.raises(VerdictError, match="no edited text"):
        check_verdict(Verdict("accept", question="x"), ITEM)


def test_outcomes() -> None:
    accept = Verdict("accept", answer="B")
    change_c = Verdict("change_answer", answer="C")
    assert item_outcome(ITEM, []).status == "pending"
    assert item_outcome(ITEM, [accept], min_reviewers=2).status == "needs_review"
    assert item_outcome(ITEM, [accept, accept]).status == "accepted"
    assert item_outcome(ITEM, [accept, change_c]).status == "disagreement"
    assert item_outcome(ITEM, [change_c, change_c]).status == "edited"
    # two rejects agree whatever their reasons
    assert item_outcome(ITEM, [Verdict("reject", reason="wrong_object"),
                               Verdict("reject", reason="not_visible")]).status == "rejected"
    assert item_outcome(ITEM, [accept, Verdict("flag")]).status == "flagged"
    # an edit and a plain accept keep different questions: a disagreement
    edit = Verdict("edit", answer="B", question="Another wording?")
    assert item_outcome(ITEM, [accept, edit]).status == "disagreement"
    # the resolution overrides
    resolved = item_outcome(ITEM, [accept, change_c], change_c)
    assert resolved.status == "edited" and resolved.resolved and resolved.verdict == change_c
    assert resolved.labels == ("B", "C")
