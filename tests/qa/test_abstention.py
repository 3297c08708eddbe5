"""Issue 11's abstention: a QA about an object tracked with low confidence, or unstable under the record's
own stated uncertainty, is dropped (and counted); ground-truth records (confidence 1, zero sigmas) are
unaffected."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dsr.qa.counterfactual import abstain
from dsr.qa.generate import GenerationReport, RecordContext, generate_record_qas
from dsr.qa.query import QAError, Query, answer
from dsr.qa.rules import QAConfig
from dsr.scene.record import SceneRecord

# frames 10..17 of the ball: confidence 0.3 (a doubtful stretch); elsewhere 0.9
LOW = slice(10, 18)


def _uncertain(record: SceneRecord, sigma: float = 1e-3) -> SceneRecord:
    """``record`` as an extraction would state it: the ball doubtful over LOW, tiny nonzero centre sigmas."""
    objs = []
    for o in record.objects:
        conf = np.where(o.visible, 0.9, 0.0)
        if o.object_id == "ball_0":
            conf[LOW] = np.where(o.visible[LOW], 0.3, 0.0)
        along = np.where(o.center_known, sigma, 0.0)
        objs.append(replace(o, confidence=conf, center_sigma_along=along, center_sigma_across=along.copy()))
    return replace(record, objects=tuple(objs))


def _ball_query(frames: tuple[int, ...]) -> Query:
    return Query(type="rel_spd", observer="camera", targets=("ball_0",), frames=frames)


def test_drops_a_qa_naming_an_object_tracked_below_the_threshold(lively_record: SceneRecord) -> None:
    cfg = QAConfig(stability_k=0)  # the track check alone
    ctx = RecordContext.build(_uncertain(lively_record), cfg)
    assert ctx.states_uncertainty
    rng = np.random.default_rng(0)
    # frames 8, 12, 16, 20: 12 and 16 lie in LOW, so the ball's minimum confidence is 0.3 < 0.5
    q = _ball_query((8, 12, 16, 20))
    states = answer(ctx.record, q).states
    with pytest.raises(QAError) as err:
        abstain(ctx, q, states, rng, defer=True)
    assert err.value.reason == "low_track_confidence"
    # frames 20..32: all at 0.9 >= 0.5, kept
    q = _ball_query((20, 24, 28, 32))
    assert abstain(ctx, q, answer(ctx.record, q).states, rng, defer=True) is None
    # the camera is not a track: a camera-only query never fails the check
    q = Query(type="abs_spd", observer="camera", targets=("camera",), frames=(8, 12, 16, 20), t_v=8)
    assert abstain(ctx, q, answer(ctx.record, q).states, rng, defer=True) is None


def test_low_confidence_on_a_record_with_zero_sigmas_is_not_abstention(lively_record: SceneRecord) -> None:
    # the same confidences but no stated uncertainty (the ground-truth convention): nothing is dropped
    rec = _uncertain(lively_record, sigma=0.0)
    ctx = RecordContext.build(rec, QAConfig(stability_k=0))
    assert not ctx.states_uncertainty
    q = _ball_query((8, 12, 16, 20))
    assert abstain(ctx, q, answer(rec, q).states, np.random.default_rng(0), defer=True) is None


def test_generation_counts_the_drops_and_emits_only_confident_stable_qas(lively_record: SceneRecord) -> None:
    rec = _uncertain(lively_record)
    report = GenerationReport()
    qas = list(generate_record_qas(rec, QAConfig(stability_k=8), per_video=120, seed=3, report=report))
    assert qas and report.failures["low_track_confidence"] > 0
    conf = {o.object_id: o.confidence for o in rec.objects}
    for qa in qas:
        q = qa.query
        frames = list(q.frames) + ([q.t_v] if q.t_v is not None else [])
        for who in (q.observer, *q.targets):
            if who != "camera":
                assert conf[who][frames].min() >= 0.5
        # the stability threshold of an uncertain record was applied inline
        assert qa.stability is not None and qa.stability >= 0.8


@pytest.mark.parametrize("seed", [0, 1])
def test_ground_truth_records_are_unaffected(lively_record: SceneRecord, seed: int) -> None:
    # strictest abstention vs none: on a ground-truth record the QAs are the same (config keys aside)
    def emitted(cfg: QAConfig) -> list[tuple]:
        return [(qa.qa_id, qa.question, qa.options, qa.answer, qa.stability)
                for qa in generate_record_qas(lively_record, cfg, per_video=60, seed=seed)]

    off = emitted(QAConfig(stability_k=4, min_track_confidence=0.0, min_stability_uncertain=0.0))
    on = emitted(QAConfig(stability_k=4, min_track_confidence=1.0, min_stability_uncertain=1.0))
    assert off == on and len(off) == 60


def test_an_uncertain_record_gets_the_larger_attempt_budget(lively_record: SceneRecord) -> None:
    # the doubtful ball makes abstention reject attempts; the budget is per_video × attempts_per_qa_uncertain
    rec = _uncertain(lively_record)
    for per_qa in (1, 3):
        report = GenerationReport()
        list(generate_record_qas(rec, QAConfig(stability_k=4, attempts_per_qa=50, attempts_per_qa_uncertain=per_qa),
                                 per_video=40, seed=3, report=report))
        assert report.attempts == 40 * per_qa  # the uncertain budget binds, not attempts_per_qa's 2000
    small, large = GenerationReport(), GenerationReport()
    few = list(generate_record_qas(rec, QAConfig(stability_k=4, attempts_per_qa_uncertain=1), per_video=40, seed=3,
                                   report=small))
    many = list(generate_record_qas(rec, QAConfig(stability_k=4), per_video=40, seed=3, report=large))
    # the same draws come first, so the larger budget keeps every QA of the smaller one and adds more
    assert [qa.qa_id for qa in many[:len(few)]] == [qa.qa_id for qa in few]
    assert len(few) < len(many) <= 40 and small.failures["low_track_confidence"] > 0


def test_a_ground_truth_record_keeps_the_plain_budget(lively_record: SceneRecord) -> None:
    report = GenerationReport()
    list(generate_record_qas(lively_record, QAConfig(stability_k=0, attempts_per_qa=1, attempts_per_qa_uncertain=500),
                             per_video=30, seed=0, report=report))
    assert report.attempts == 30


def test_cli_flags_set_and_turn_off_abstention(lively_record: SceneRecord, tmp_path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dsr.cli import main
    from dsr.qa.export import read_jsonl
    from dsr.scene.io import write_record

    rec_file = tmp_path / "extracted.npz"
    write_record(rec_file, _uncertain(lively_record))

    def run(name: str, *flags: str) -> tuple[dict, list]:
        out = tmp_path / f"{name}.jsonl"
        main(["qa", str(rec_file), "--out", str(out), "--per-video", "60", "--stability-k", "4", "--seed", "3",
              *flags])
        return json.loads((tmp_path / f"{name}.jsonl.report.json").read_text()), list(read_jsonl(out))

    default, _ = run("default")
    assert default["failures"].get("low_track_confidence", 0) > 0
    off, off_qas = run("off", "--min-track-confidence", "0", "--min-stability-uncertain", "0")
    assert "low_track_confidence" not in off["failures"] and "unstable" not in off["failures"]
    assert len(off_qas) == 60 and all(qa.generator.config["min_track_confidence"] == 0.0 for qa in off_qas)
    strict, strict_qas = run("strict", "--min-track-confidence", "1", "--min-stability-uncertain", "1")
    # no track is ever fully certain (0.9 at best): only questions about the camera alone are left
    assert len(strict_qas) < len(off_qas) and strict["failures"]["low_track_confidence"] > 0
    assert all({qa.query.observer, *qa.query.targets} == {"camera"} for qa in strict_qas)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["qa", str(rec_file), "--out", str(tmp_path / "bad.jsonl"), "--min-track-confidence", "1.5"])
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "min_track_confidence" in err[0] and "[0, 1]" in err[0]
