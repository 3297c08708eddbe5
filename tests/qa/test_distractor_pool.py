"""Answer-pool distractors on the paper preset (an earlier addition against answer-text shortcuts; off by default)."""

from __future__ import annotations

from collections import Counter

from dsr.qa.generate import RecordContext, answer_pool, generate_record_qas
from dsr.qa.rules import paper_config
from dsr.qa.schema import QA
from dsr.scene.record import SceneRecord


def _qas(record: SceneRecord, prob: float) -> list[QA]:
    cfg = paper_config(distractor_pool_prob=prob, stability_k=0)
    return list(generate_record_qas(record, cfg, per_video=60, seed=3))


def _text_correct_rate(qas: list[dict]) -> dict[str, float]:
    shown, correct = Counter(), Counter()
    for qa in qas:
        for letter, text in qa.option_map.items():
            shown[text] += 1
            correct[text] += letter == qa.answer
    return {t: correct[t] / shown[t] for t in shown if shown[t] >= 5}


def test_default_is_the_paper_procedure_and_pool_changes_only_distractors(busy_record: SceneRecord) -> None:
    paper, pooled = _qas(busy_record, 0.0), _qas(busy_record, 1.0)
    assert [q.qa_id for q in paper] == [q.qa_id for q in pooled]  # same queries, same answers
    assert [q.answer_text for q in paper] == [q.answer_text for q in pooled]
    assert any(p.options != q.options for p, q in zip(paper, pooled, strict=True))
    for qa in pooled:  # still four distinct options with the answer at the stated letter
        assert len(set(qa.options)) == 4 and qa.option_map[qa.answer] == qa.answer_text
    assert _qas(busy_record, 1.0) == pooled  # deterministic


def test_pool_holds_real_answers_of_other_queries(busy_record: SceneRecord) -> None:
    ctx = RecordContext.build(busy_record, paper_config(distractor_pool_prob=1.0, stability_k=0), seed=3)
    pool = answer_pool(ctx, "rel_dis")
    assert pool and all(isinstance(states, list) and states for states in pool)
    assert answer_pool(ctx, "rel_dis") is pool  # drawn once per record and type


def test_pool_makes_frequent_answer_texts_less_telling(busy_record: SceneRecord) -> None:
    # with paper distractors, some answer texts are right nearly every time they are shown
    paper, pooled = _text_correct_rate(_qas(busy_record, 0.0)), _text_correct_rate(_qas(busy_record, 1.0))
    assert max(paper.values()) > max(pooled.values()) or sum(paper.values()) / len(paper) > sum(
        pooled.values()) / len(pooled)
