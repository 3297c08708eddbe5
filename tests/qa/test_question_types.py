"""The question-type table: every fact it states is checked on generated QAs, type by type."""

from __future__ import annotations

import re
import string

import numpy as np
import pytest

from dsr.qa.generate import generate_record_qas
from dsr.qa.query import QAError, Query, answer, type_row
from dsr.qa.question_types import (
    NON_TEMPLATE,
    QUESTION_TYPES,
    TYPE_LABELS,
    TYPES,
    QuestionType,
    UnknownTypeError,
    is_prediction,
    question_type,
)
from dsr.qa.rules import QAConfig, answer_text
from dsr.qa.schema import QA
from dsr.scene.frames import CAMERA
from dsr.scene.record import SceneRecord

ROWS = list(TYPES.values())


@pytest.fixture(scope="module")
def busy(lively_record: SceneRecord) -> SceneRecord:
    return lively_record


@pytest.fixture(scope="module")
def per_type(busy: SceneRecord) -> dict[str, list[QA]]:
    out: dict[str, list[QA]] = {}
    for qa in generate_record_qas(busy, QAConfig(stability_k=0), per_video=240, seed=5):
        out.setdefault(qa.type, []).append(qa)
    return out


def test_table_keys_labels_and_order() -> None:
    assert tuple(TYPES) == QUESTION_TYPES and len(TYPES) == 12
    assert QUESTION_TYPES[:6] == tuple(f"abs_{b}" for b in ("dis", "dir", "ori", "spd", "spd_comp", "dir_pred"))
    # 12 template types, the free-form key and the 5 numeric types (issue 16), each with its own label
    assert len(set(TYPE_LABELS.values())) == len(TYPE_LABELS) == 18 and TYPE_LABELS[NON_TEMPLATE] == "NonTemp"
    assert TYPE_LABELS["num_turn"] == "NumTurn"
    assert TYPE_LABELS["rel_spd_comp"] == "RelSpdC" and TYPE_LABELS["abs_dir_pred"] == "AbsDirP"
    with pytest.raises(UnknownTypeError, match="unknown question type 'sideways'"):
        question_type("sideways")
    assert not is_prediction("vlm4d_left_right") and is_prediction("rel_dir_pred")


def test_evaluate_reads_the_same_table() -> None:
    from dsr.evaluate import datasets

    assert (*QUESTION_TYPES, NON_TEMPLATE) == datasets.TYPE_ORDER
    assert datasets.TYPE_LABELS is TYPE_LABELS


@pytest.mark.parametrize("qt", ROWS, ids=[r.key for r in ROWS])
def test_template_fields_follow_the_row(qt: QuestionType) -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(qt.template) if name}
    assert ("obj2" in fields) == (qt.num_targets == 2)
    assert ("tv" in fields) == qt.is_absolute
    assert ({"ts", "te"} <= fields) == (not qt.is_prediction)
    assert ("end" in fields) == qt.is_prediction
    assert qt.key == f"{qt.viewpoint[:3]}_{qt.base}" and type_row(qt.key) is qt


@pytest.mark.parametrize("qt", ROWS, ids=[r.key for r in ROWS])
def test_generated_qas_follow_the_row(qt: QuestionType, busy: SceneRecord, per_type: dict[str, list[QA]]) -> None:
    qas = per_type[qt.key]
    assert len(qas) >= 5
    agents = {o.object_id for o in busy.objects if o.is_agent}
    for qa in qas:
        q = qa.query
        assert len(q.targets) == qt.num_targets and (q.t_v is not None) == qt.is_absolute
        assert qa.quantity.name == qt.quantity and qa.quantity.rule == qt.rule
        assert answer_text(qt.rule, qa.quantity.values) == qa.answer_text
        values = np.asarray(qa.quantity.values)
        assert len(values) == len(q.frames) - int(qt.per_step)
        if qt.is_prediction:
            assert len(q.frames) == 2 and qa.visible_until_s is not None and "Between" not in qa.question
        else:
            assert len(q.frames) >= qt.min_query_frames and qa.visible_until_s is None
            assert re.match(r"Between \d+\.\ds and \d+\.\ds, ", qa.question)
        if qt.agent_targets:
            assert all(t == CAMERA or t in agents for t in q.targets)
        if qt.observer_not_target:
            assert q.observer not in q.targets
        if qt.observer_from_slot and q.observer != CAMERA:
            assert q.observer in agents


@pytest.mark.parametrize("qt", [r for r in ROWS if r.observer_invariant], ids=lambda r: r.key)
def test_observer_invariant_types_ignore_the_observer(qt: QuestionType, busy: SceneRecord,
                                                      per_type: dict[str, list[QA]]) -> None:
    observers = [CAMERA, *(o.object_id for o in busy.objects if o.is_agent)]
    checked = 0
    for qa in per_type[qt.key]:
        q = qa.query
        for other in observers:
            if other in q.targets:
                continue
            for t_v in ([q.t_v, 0, busy.num_frames - 1] if qt.is_absolute else [None]):
                alt = Query(type=q.type, observer=other, targets=q.targets, frames=q.frames, t_v=t_v)
                try:
                    got = answer(busy, alt).text
                except QAError:
                    continue
                assert got == qa.answer_text
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize("qt", [r for r in ROWS if not r.observer_invariant], ids=lambda r: r.key)
def test_observer_dependent_types_do_depend_on_it(qt: QuestionType, busy: SceneRecord,
                                                  per_type: dict[str, list[QA]]) -> None:
    # the converse of the invariance: somewhere on the busy record another observer changes the answer
    observers = [CAMERA, *(o.object_id for o in busy.objects if o.is_agent)]
    for qa in per_type[qt.key]:
        q = qa.query
        for other in observers:
            if other == q.observer or (qt.observer_not_target and other in q.targets):
                continue
            alt = Query(type=q.type, observer=other, targets=q.targets, frames=q.frames, t_v=q.t_v)
            try:
                if answer(busy, alt).text != qa.answer_text:
                    return
            except QAError:
                continue
    pytest.fail(f"no observer changed any {qt.key} answer")
