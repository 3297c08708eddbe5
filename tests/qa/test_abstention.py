"""Issue 11's abstention: a QA about an object tracked with low confidence, or unstable under the record's
own stated uncertainty, is dropped (and counted); ground-truth records (confidence 1, zero sigmas) are
unaffected."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dsr.qa.counterfactual import Alternative, abstain, across_camera_stop, across_focal_range, first_kept
from dsr.qa.generate import GenerationReport, RecordContext, generate_record_qas
from dsr.qa.query import QAError, Query, answer
from dsr.qa.rules import QAConfig
from dsr.scene.record import SceneRecord

from .conftest import lively_objects, make_record

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
    # abstention rejects attempts; the budget is per_video × attempts_per_qa_uncertain
    rec = _uncertain(lively_record)
    for per_qa in (1, 2):
        report = GenerationReport()
        list(generate_record_qas(rec, QAConfig(stability_k=4, attempts_per_qa=50, attempts_per_qa_uncertain=per_qa),
                                 per_video=80, seed=3, report=report))
        assert report.attempts == 80 * per_qa  # the uncertain budget binds, not attempts_per_qa's 4000
    small, large = GenerationReport(), GenerationReport()
    few = list(generate_record_qas(rec, QAConfig(stability_k=4, attempts_per_qa_uncertain=1), per_video=40, seed=3,
                                   report=small))
    many = list(generate_record_qas(rec, QAConfig(stability_k=4), per_video=40, seed=3, report=large))
    # the same draws come first, so the larger budget keeps every QA of the smaller one and adds more
    assert [qa.qa_id for qa in many[:len(few)]] == [qa.qa_id for qa in few]
    # (the doubtful ball is never the one asked: an option naming only confident tracks is; stability rejects)
    assert len(few) < len(many) <= 40 and small.failures["unstable"] > 0
    assert "low_track_confidence" not in small.failures


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
    # no track is ever fully certain (0.9 at best): only questions about the camera alone are left, and no draw
    # names an object (the types that need one are left out, counted as unaskable)
    assert strict_qas and all({qa.query.observer, *qa.query.targets} == {"camera"} for qa in strict_qas)
    assert "low_track_confidence" not in strict["failures"]
    assert {"abs_dis", "rel_dis", "abs_spd_comp"} <= set(strict["types_unaskable"])
    assert not off["types_unaskable"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["qa", str(rec_file), "--out", str(tmp_path / "bad.jsonl"), "--min-track-confidence", "1.5"])
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "min_track_confidence" in err[0] and "[0, 1]" in err[0]


def _confidence(record: SceneRecord, conf: dict[str, np.ndarray]) -> SceneRecord:
    """``_uncertain(record)`` with the given per-frame confidences for some objects."""
    rec = _uncertain(record)
    return replace(rec, objects=tuple(replace(o, confidence=np.where(o.visible, conf[o.object_id], 0.0))
                                      if o.object_id in conf else o for o in rec.objects))


def test_only_objects_tracked_confidently_long_enough_are_drawn(lively_record: SceneRecord) -> None:
    from dsr.qa.generate import frame_plan, nameable_objects

    n = lively_record.num_frames
    cfg = QAConfig()
    plan = frame_plan(lively_record, cfg)
    u = plan.usable
    run = lambda k: np.isin(np.arange(n), u[5:5 + k]).astype(float)  # noqa: E731  confident at k usable frames in a row
    ends = np.isin(np.arange(n), [plan.last_visible, plan.future]).astype(float)  # only the prediction step
    rec = _confidence(lively_record, {"person_0": run(cfg.min_frames), "dog_0": run(cfg.min_frames - 1),
                                      "ball_0": ends, "car_0": np.zeros(n)})
    assert nameable_objects(rec, plan, cfg) == ("person_0", "ball_0")
    ctx = RecordContext.build(rec, cfg)
    assert ctx.draw_objects == ("person_0", "ball_0") and ctx.draw_agents == ("person_0",)
    assert ctx.objects == ("person_0", "dog_0", "ball_0", "car_0")  # alternatives still see every object
    # ground truth (confidence 1, no sigma): every object is drawn, whatever the rule
    gt = RecordContext.build(lively_record, cfg)
    assert gt.draw_objects == gt.objects and gt.draw_agents == gt.agents


def test_no_confident_object_leaves_the_camera_questions_and_wastes_no_attempt(lively_record: SceneRecord) -> None:
    from dsr.qa.generate import askable
    from dsr.qa.question_types import TYPES

    n = lively_record.num_frames
    rec = _confidence(lively_record, {o.object_id: np.full(n, 0.2) for o in lively_record.objects})
    ctx = RecordContext.build(rec, QAConfig())
    assert ctx.draw_objects == ()
    # only an absolute question about the camera alone can be drawn: its orientation, speed, or where it goes
    assert sorted(k for k, t in TYPES.items() if askable(ctx, t)) == ["abs_dir_pred", "abs_ori", "abs_spd"]
    report = GenerationReport()
    qas = list(generate_record_qas(rec, QAConfig(stability_k=4), per_video=10, seed=1, report=report))
    assert qas and all({qa.query.observer, *qa.query.targets} == {"camera"} for qa in qas)
    assert set(report.types_unaskable) == set(TYPES) - {"abs_dir_pred", "abs_ori", "abs_spd"}
    # no attempt failed for want of an object: the camera takes the one slot it may fill
    assert not {"no_agent", "too_few_objects", "low_track_confidence"} & set(report.failures)


def _stop_and_go(bound: float, stop: bool = True) -> SceneRecord:
    """A camera that moves 0.1 per frame along x, stands still over frames 20..28 (``stop``), moves on at 0.1, and
    from frame 44 at 0.3 per frame; its path's scale resets at the stop within exp(±bound) (what VO states)."""
    n = 64
    i = np.arange(n - 1)
    steps = np.where(i >= 44, 0.3, 0.1)
    if stop:
        steps[(i >= 20) & (i < 28)] = 0.0
    cam = np.stack([-10 + np.r_[0.0, np.cumsum(steps)], np.full(n, -1.0), np.full(n, 2.0)], axis=1)
    rec = make_record(n, camera_positions=cam, objects=lively_objects(n), record_id="stop_and_go", force_visible=True)
    return replace(rec, camera=replace(rec.camera, scale_reset_bound=bound))


def test_a_length_compared_across_a_camera_stop_abstains() -> None:
    rec = _stop_and_go(4.6)
    ctx = RecordContext.build(rec, QAConfig(stability_k=0))
    assert ctx.states_uncertainty  # the reset alone makes the record an uncertain one
    rng = np.random.default_rng(0)
    # 0.8 per 8 frames before the stop, over it (0.4 + 0 + 0.4) and after it: "constant" only at one scale
    q = Query(type="abs_spd", observer="camera", targets=("camera",), frames=(8, 16, 32, 40), t_v=8)
    states = answer(rec, q).states
    assert states == ("constant",)
    reason = across_camera_stop(ctx, q, states)
    assert reason is not None and "scale resets at each stop" in reason
    with pytest.raises(QAError) as err:
        abstain(ctx, q, states, rng, defer=True)
    assert err.value.reason == "camera_stop"
    # an object's speed in a world-fixed frame moves with the camera's path too (its centre is measured from it)
    q = Query(type="abs_spd", observer="camera", targets=("ball_0",), frames=(8, 16, 32, 40), t_v=8)
    assert across_camera_stop(ctx, q, answer(rec, q).states) is not None
    # after the stop only, the speed triples: "larger" holds at the stretch's own scale only, since the record's
    # scale (the objects') is not the stretch's once the path has a stop
    q = Query(type="abs_spd", observer="camera", targets=("camera",), frames=(32, 40, 48, 56), t_v=32)
    assert answer(rec, q).states == ("larger",)
    assert across_camera_stop(ctx, q, answer(rec, q).states) is not None
    # a constant speed within the stretch is "constant" at any scale: kept
    q = Query(type="abs_spd", observer="camera", targets=("camera",), frames=(30, 34, 38, 42), t_v=30)
    assert abstain(ctx, q, answer(rec, q).states, rng, defer=True) is None
    # across the stop, but read in the camera's own frame at each time, or a distance: the shift cancels
    for q in (Query(type="rel_spd", observer="camera", targets=("ball_0",), frames=(8, 16, 32, 40)),
              Query(type="abs_dis", observer="camera", targets=("ball_0", "camera"), frames=(8, 16, 32, 40), t_v=8)):
        assert across_camera_stop(ctx, q, answer(rec, q).states) is None


def test_a_path_whose_scale_carries_across_stops_keeps_the_question() -> None:
    # the same stop on a record that states no reset (ground truth, SfM): the question stays
    rec = _stop_and_go(0.0)
    ctx = RecordContext.build(rec, QAConfig(stability_k=0))
    q = Query(type="abs_spd", observer="camera", targets=("camera",), frames=(8, 16, 32, 40), t_v=8)
    assert across_camera_stop(ctx, q, answer(rec, q).states) is None
    # a reset too small to flip the answer keeps it as well
    ctx = RecordContext.build(_stop_and_go(0.01), QAConfig(stability_k=0))
    assert across_camera_stop(ctx, q, answer(rec, q).states) is None
    # and a VO path that never stops has one scale, set together with the objects': the speed-up stays askable
    rec = _stop_and_go(4.6, stop=False)
    q = Query(type="abs_spd", observer="camera", targets=("camera",), frames=(32, 40, 48, 56), t_v=32)
    assert answer(rec, q).states == ("larger",)
    assert across_camera_stop(RecordContext.build(rec, QAConfig(stability_k=0)), q, answer(rec, q).states) is None


def _orbit(focal_range: tuple[float, float]) -> SceneRecord:
    """A camera orbiting the origin at radius 6, 2° a frame (128° in all), always looking at it; its focal length
    may be ``focal_range`` times the record's (what VO states when it guessed it)."""
    n = 64
    phi = np.radians(2.0 * np.arange(n))
    cam = np.stack([-6 * np.cos(phi), -6 * np.sin(phi), np.full(n, 1.5)], axis=1)
    rec = make_record(n, camera_positions=cam, objects=lively_objects(n), record_id="orbit", force_visible=True)
    return replace(rec, camera=replace(rec.camera, focal_range=focal_range))


def test_a_direction_read_across_a_long_turn_abstains_when_the_focal_length_was_guessed() -> None:
    rec = _orbit((0.42, 1.56))
    ctx = RecordContext.build(rec, QAConfig(stability_k=0))
    assert ctx.states_uncertainty  # the focal range alone makes the record an uncertain one
    rng = np.random.default_rng(0)
    # where the camera heads over frames 50..52, seen from frame 0: 100° of orbit later it moves sideways-back
    # against its first view; 0.42-1.56x that turn puts the heading anywhere from the side to the back
    q = Query(type="abs_dir_pred", observer="camera", targets=("camera",), frames=(50, 52), t_v=0)
    states = answer(rec, q).states
    reason = across_focal_range(ctx, q, states)
    assert reason is not None and "focal length was not measured" in reason
    with pytest.raises(QAError) as err:
        abstain(ctx, q, states, rng, defer=True)
    assert err.value.reason == "focal_unknown"
    # the same question with the focal length known (ground truth, SfM): kept
    known = RecordContext.build(_orbit((1.0, 1.0)), QAConfig(stability_k=0))
    assert across_focal_range(known, q, states) is None
    # seen from frame 50 itself there is no turn to scale: kept
    q = Query(type="abs_dir_pred", observer="camera", targets=("camera",), frames=(50, 52), t_v=50)
    assert across_focal_range(ctx, q, answer(rec, q).states) is None
    # distances from the camera are measured from it, so they turn with it: kept
    q = Query(type="abs_dis", observer="camera", targets=("ball_0", "camera"), frames=(8, 16, 32, 40), t_v=8)
    assert across_focal_range(ctx, q, answer(rec, q).states) is None


def _candidate(rec: SceneRecord, q: Query) -> Alternative:
    states = tuple(answer(rec, q).states)
    return Alternative(kind="seed", states=states, meaning=states, query=q)


def test_a_refused_option_gives_way_to_the_next_one_abstention_keeps() -> None:
    rec = _stop_and_go(4.6)
    ctx = RecordContext.build(rec, QAConfig(stability_k=0))
    rng = np.random.default_rng(0)
    across = _candidate(rec, Query(type="abs_spd", observer="camera", targets=("camera",), frames=(8, 16, 32, 40),
                                   t_v=8))  # reads across the stop: refused (test above)
    within = _candidate(rec, Query(type="abs_spd", observer="camera", targets=("camera",), frames=(30, 34, 38, 42),
                                   t_v=30))  # one stretch at one speed: kept
    after = _candidate(rec, Query(type="abs_spd", observer="camera", targets=("camera",), frames=(32, 40, 48, 56),
                                  t_v=32))  # the speed-up after the stop: refused
    assert first_kept(ctx, [across, within], 0, rng, defer=True) == (1, None)
    assert first_kept(ctx, [within, across], 0, rng, defer=True) == (0, None)
    # the search wraps round from the drawn start
    assert first_kept(ctx, [within, across, after], 1, rng, defer=True) == (0, None)
    # none kept: the drawn start's refusal, with its reason
    with pytest.raises(QAError) as err:
        first_kept(ctx, [within, across, after][1:], 1, rng, defer=True)
    assert err.value.reason == "camera_stop" and "scale resets" in str(err.value)


def test_generation_asks_only_options_abstention_keeps_on_a_stop_and_go_path() -> None:
    rec = _stop_and_go(4.6)
    report = GenerationReport()
    qas = list(generate_record_qas(rec, QAConfig(stability_k=0), per_video=12, seed=1, types=["abs_spd"],
                                   report=report))
    assert qas, dict(report.failures)
    ctx = RecordContext.build(rec, QAConfig(stability_k=0))
    for qa in qas:
        assert across_camera_stop(ctx, qa.query, tuple(answer(rec, qa.query).states)) is None
