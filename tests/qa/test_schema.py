"""The typed QA: JSON round trips, older files, and one-line errors for objects that break the contract."""

from __future__ import annotations

import json

import pytest

from dsr.qa.export import NATIVE_FIELDS
from dsr.qa.generate import generate_record_qas
from dsr.qa.rules import make_config
from dsr.qa.schema import QA, QASchemaError

from .conftest import busy_objects, make_record


@pytest.fixture(scope="module")
def qas() -> list[QA]:
    rec = make_record(48, objects=busy_objects(48), record_id="r")
    return list(generate_record_qas(rec, make_config("paper", stability_k=2), per_video=24, seed=4))


def test_round_trip_through_json_text(qas: list[QA]) -> None:
    for qa in qas:
        obj = json.loads(json.dumps(qa.to_json()))
        assert QA.from_json(obj) == qa
        assert list(obj) == list(NATIVE_FIELDS)  # the paper preset writes exactly the QA_EXPORT fields
        assert obj["options"] == dict(zip("ABCD", qa.options, strict=True))


def test_reads_files_written_before_the_additive_fields(qas: list[QA]) -> None:
    obj = qas[0].to_json()
    del obj["frames"]["record_indices"], obj["query"]["frames"]
    old = QA.from_json(obj)
    assert old.frames.record_indices == old.frames.indices
    assert old.query.frames == tuple(range(obj["query"]["frame_start"], obj["query"]["frame_end"] + 1))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda o: o.pop("question"), "not a QA object (KeyError: 'question')"),
    (lambda o: o.update(answer="E"), "answer must be a letter A-D"),
    (lambda o: o.update(answer_text="(1) Something else."), "answer_text is not the text of option"),
    (lambda o: o["options"].pop("D"), "not a QA object"),
])
def test_contract_violations_are_one_line(qas: list[QA], edit, message: str) -> None:
    obj = json.loads(json.dumps(qas[0].to_json()))
    edit(obj)
    with pytest.raises(QASchemaError) as err:
        QA.from_json(obj)
    assert message in str(err.value) and "\n" not in str(err.value)
