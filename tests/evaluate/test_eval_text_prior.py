"""The text-prior baseline: exposes answer texts that are (almost) always right, without seeing videos."""

from __future__ import annotations

from pathlib import Path

from dsr.evaluate.base import Request
from dsr.evaluate.datasets import Item
from dsr.evaluate.models import TextPriorModel, create_model
from dsr.evaluate.prompt import build_prompt

CONSTANT = "(1) Keep nearly constant."


def _item(i: int, options: list[str], answer: str) -> Item:
    return Item(f"v/q{i}", "v", None, "How does it change?", dict(zip("ABCD", options, strict=True)), answer, "abs_dis")


def _ask(model: TextPriorModel, item: Item) -> str:
    return model.generate(Request(item=item, prompt=build_prompt(item, (), ()))).text


def test_picks_the_text_that_is_usually_correct() -> None:
    fit = [_item(0, ["(1) Become larger.", CONSTANT, "(1) Become smaller.", "(2) x."], "B"),
           _item(1, [CONSTANT, "(1) Become smaller.", "(1) y.", "(1) z."], "A"),
           _item(2, ["(1) w.", "(1) Become larger.", "(1) v.", CONSTANT], "D")]
    model = TextPriorModel(fit_items=fit, leave_one_out=False)
    probe = _item(9, ["(1) Become smaller.", "(1) Become larger.", "(1) q.", "(1)   keep nearly CONSTANT."], "D")
    assert _ask(model, probe) == "D"  # 3/3 correct beats texts never correct; spacing and case ignored


def test_leave_one_out_gives_an_item_no_credit_for_its_own_answer() -> None:
    unique = _item(0, ["(1) a.", "(1) b.", "(1) c.", "(1) d."], "C")  # every text seen only here
    model = TextPriorModel(fit_items=[unique])
    assert _ask(model, unique) == "A"  # all rates equal once the item itself is left out: earliest letter
    assert _ask(TextPriorModel(fit_items=[unique], leave_one_out=False), unique) == "C"  # memorised


def test_created_by_name_and_fitted_on_another_file(tmp_path: Path) -> None:
    import json

    rows = [{"id": f"t{i}", "video": "v.mp4", "video_id": "v", "question": "?", "options": {"A": "(1) x.", "B": CONSTANT,
                                                                                "C": "(1) y.", "D": "(1) z."},
             "answer": "B", "type": "rel_dis"} for i in range(3)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = create_model(f"text-prior:{path}")
    assert isinstance(model, TextPriorModel) and not model.leave_one_out and len(model.fit_items) == 3
    assert _ask(model, _item(5, [CONSTANT, "(1) x.", "(1) y.", "(1) z."], "A")) == "A"
