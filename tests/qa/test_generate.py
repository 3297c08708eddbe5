"""Sampling, recomputation from exported quantities, failure reasons, frame policies, stability."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dsr.qa.generate import (
    GenerationReport,
    frame_plan,
    generate_record_qas,
    parse_types,
    type_weights,
)
from dsr.qa.query import (
    QAError,
    Query,
    answer,
    check_query,
    scene_scale,
)
from dsr.qa.question_types import QUESTION_TYPES, TYPES
from dsr.qa.rules import QAConfig, answer_text, paper_config, parity_config
from dsr.scene.record import SceneRecord

from .conftest import busy_objects, make_record

PAPER = paper_config()  # this file tests the paper's sampling procedure (§7.4, §7.6)
NO_STAB = paper_config(stability_k=0)


@pytest.fixture(scope="module")
def busy_qas(request: pytest.FixtureRequest) -> tuple[SceneRecord, list[dict], GenerationReport]:
    n = 64
    s = np.linspace(0, 1, n)
    cam = np.stack([-6 + 1.0 * s, -1.0 + 2.0 * s, 1.5 + 0 * s], axis=1)
    rec = make_record(n, camera_positions=cam, objects=busy_objects(n), record_id="busy")
    report = GenerationReport()
    qas = [qa.to_json() for qa in generate_record_qas(rec, paper_config(stability_k=3), per_video=400, seed=7,
                                                       report=report)]
    return rec, qas, report


def test_all_twelve_types_generated(busy_qas: tuple) -> None:
    _, qas, report = busy_qas
    assert len(qas) == 400
    assert {q["type"] for q in qas} == set(QUESTION_TYPES)
    assert sum(report.made.values()) == 400
    assert report.attempts == 400 + sum(report.failures.values())


def test_answers_recompute_from_record_and_from_exported_quantities(busy_qas: tuple) -> None:
    rec, qas, _ = busy_qas
    for qa in qas:
        q = json.loads(json.dumps(qa))  # as read back from a file
        kind = TYPES[q["type"]].rule
        assert q["quantity"]["rule"] == kind
        # (1) from the exported per-frame quantity alone, with the rules
        assert answer_text(kind, q["quantity"]["values"]) == q["answer_text"], q["qa_id"]
        # (2) from the record and the structured query
        again = answer(rec, Query.from_json(q["query"]))
        assert again.text == q["answer_text"]
        assert q["options"][q["answer"]] == q["answer_text"]


def test_exported_distance_is_independent_geometry(busy_qas: tuple) -> None:
    rec, qas, _ = busy_qas
    scale = scene_scale(rec)
    pos = {o.object_id: o.centers_world for o in rec.objects} | {"camera": rec.camera.c2w[:, :3, 3]}
    checked = 0
    for qa in qas:
        if qa["type"].endswith("_dis"):
            a, b = qa["query"]["targets"]
            f = qa["frames"]["record_indices"]
            expect = np.linalg.norm(pos[a][f] - pos[b][f], axis=1) / scale
            np.testing.assert_allclose(qa["quantity"]["values"], expect, rtol=1e-12)
            checked += 1
    assert checked > 10


def test_options_distinct_and_distractor_lengths(busy_qas: tuple) -> None:
    _, qas, _ = busy_qas
    seg = re.compile(r"\((\d+)\) ")
    for qa in qas:
        texts = list(qa["options"].values())
        assert len(set(texts)) == 4 and sorted(qa["options"]) == ["A", "B", "C", "D"]
        n = len(seg.findall(qa["answer_text"]))
        assert 1 <= n <= 15
        for letter, text in qa["options"].items():
            if letter != qa["answer"]:
                assert 1 <= len(seg.findall(text)) <= n + 3, (n, text)


def test_letters_balanced(busy_qas: tuple) -> None:
    _, _, report = busy_qas
    bal = report.letter_balance()
    assert sum(bal["counts"].values()) == 400
    assert bal["p_value"] > 0.001, bal


def test_qa_fields_follow_the_export_contract(busy_qas: tuple) -> None:
    rec, qas, _ = busy_qas
    for qa in qas[:50]:
        assert re.fullmatch(r"busy/[a-z_]+/[0-9a-f]{12}", qa["qa_id"]) and qa["qa_id"].split("/")[1] == qa["type"]
        assert qa["source"] == "template" and qa["video_id"] == "busy"
        q = qa["query"]
        assert set(q) >= {"type", "observer", "viewpoint", "t_v", "targets", "frame_start", "frame_end"}
        assert q["frame_start"] == qa["frames"]["record_indices"][0] and q["frame_end"] == qa["frames"]["record_indices"][-1]
        assert qa["frames"]["timestamps_s"] == rec.timestamps_s[qa["frames"]["record_indices"]].tolist()
        assert 0.0 <= qa["stability"] <= 1.0
        assert qa["generator"]["config"]["direction_eps"] == pytest.approx(0.342, abs=1e-3)
        if qa["type"].endswith("dir_pred"):
            assert qa["visible_until_s"] is not None
            assert qa["frames"]["timestamps_s"][0] < qa["visible_until_s"] < qa["frames"]["timestamps_s"][1]
        else:
            assert qa["visible_until_s"] is None
    assert len({q["qa_id"] for q in qas}) == len(qas)


def test_deterministic_by_seed() -> None:
    n = 40
    rec = make_record(n, objects=busy_objects(n))
    a = list(generate_record_qas(rec, NO_STAB, per_video=30, seed=3))
    b = list(generate_record_qas(rec, NO_STAB, per_video=30, seed=3))
    c = list(generate_record_qas(rec, NO_STAB, per_video=30, seed=4))
    assert a == b
    assert [q.qa_id for q in a] != [q.qa_id for q in c]


def test_type_weights_inverse_frequency() -> None:
    w = type_weights({"a": 0, "b": 2, "c": 5})
    # (Σ + K)/(count + 1) = 10/1, 10/3, 10/6
    np.testing.assert_allclose(w, np.array([10, 10 / 3, 10 / 6]) / (10 + 10 / 3 + 10 / 6))


def test_parse_types() -> None:
    assert parse_types("all") == QUESTION_TYPES
    assert parse_types("dis") == ("abs_dis", "rel_dis")
    assert parse_types("rel") == tuple(t for t in QUESTION_TYPES if t.startswith("rel_"))
    with pytest.raises(Exception, match="unknown question type"):
        parse_types("abs_colour")


# --------------------------------------------------------------------------------------------------
# failure reasons: nothing is dropped silently


def test_truncation_on_lost_visibility() -> None:
    n = 64
    objs = busy_objects(n)
    vis = np.ones(n, bool)
    vis[20:] = False
    objs["ball_0"]["visible"] = vis
    rec = make_record(n, objects=objs, force_visible=True)
    report = GenerationReport()
    qas = list(generate_record_qas(rec, NO_STAB, per_video=200, seed=1, report=report,
                                   types=("abs_spd", "rel_spd", "abs_dis", "rel_dis", "abs_dir", "rel_dir")))
    with_ball = [q for q in qas if "ball_0" in q.query.targets]
    assert with_ball and all(max(q.query.frames) < 20 for q in with_ball)
    assert report.truncated > 0
    assert report.failures["too_few_visible_frames"] > 0


def test_orientation_confidence_truncates() -> None:
    n = 64
    conf = np.ones(n)
    conf[10:] = 0.59
    objs = {"p": {"class": "person", "agent": True, "centers": np.tile([1.0, 0.0, 0.9], (n, 1)),
                  "yaw": np.linspace(0, 3, n), "conf": conf}}
    rec = make_record(n, objects=objs, force_visible=True)
    report = GenerationReport()
    qas = list(generate_record_qas(rec, NO_STAB, per_video=50, seed=2, report=report, types=("abs_ori", "rel_ori")))
    assert all(max(q.query.frames) < 10 for q in qas if q.query.targets == ("p",))
    assert report.failures["orientation_confidence"] > 0


def test_no_agent_and_too_many_segments_are_counted() -> None:
    n = 32  # uniform32 keeps every frame
    t = np.arange(n)
    zigzag = np.stack([1.0 + 2.0 * (t % 2), 0 * t, 0.5 + 0 * t], axis=1).astype(float)  # x = 1 ↔ 3 every frame
    # distance to b alternates 2 ↔ 4: one segment per step, > 15 on long intervals
    objs = {"a": {"class": "ball", "centers": zigzag}, "b": {"class": "box", "centers": np.tile([-1.0, 0, 0.5], (n, 1))}}
    rec = make_record(n, objects=objs, force_visible=True)
    report = GenerationReport()
    list(generate_record_qas(rec, NO_STAB, per_video=40, seed=0, report=report, types=("abs_ori", "abs_dis")))
    assert report.failures["too_many_segments"] > 0
    assert report.failures["no_agent"] > 0
    assert report.to_json()["failed_attempts"] == sum(report.failures.values())


def test_degenerate_zero_motion_prediction_is_counted() -> None:
    n = 40
    objs = {"box": {"class": "box", "centers": np.tile([1.0, 0.0, 0.5], (n, 1))}}
    rec = make_record(n, objects=objs, force_visible=True)
    report = GenerationReport()
    list(generate_record_qas(rec, NO_STAB, per_video=5, seed=0, report=report, types=("abs_dir_pred",)))
    assert report.failures["zero_vector"] > 0


def test_min_stability_filters_and_counts() -> None:
    n = 64
    rec = make_record(n, objects=busy_objects(n))
    report = GenerationReport()
    cfg = paper_config(stability_k=10, min_stability=1.0, stability_position_floor=0.05)
    qas = list(generate_record_qas(rec, cfg, per_video=40, seed=5, report=report))
    assert all(q.stability == 1.0 for q in qas)
    assert report.failures["unstable"] > 0


def test_stability_of_clear_and_knife_edge_answers() -> None:
    n = 12
    # distance to the camera grows from 5 to exactly 6 = 1.2 × 5: knife edge of the constant band
    edge = np.stack([np.linspace(-1.0, 0.0, n), np.zeros(n), np.full(n, 1.5)], axis=1)
    far = np.stack([np.linspace(-1.0, 6.0, n), np.zeros(n), np.full(n, 1.5)], axis=1)
    rec = make_record(n, objects={"e": {"class": "e", "centers": edge}, "f": {"class": "f", "centers": far}},
                      force_visible=True)
    from dsr.qa.query import Geometry, stability

    cfg = QAConfig(normalization="none")
    geom = Geometry.from_record(rec, cfg)
    rng = np.random.default_rng(0)
    q_edge = Query(type="rel_dis", observer="camera", targets=("camera", "e"), frames=(0, n - 1))
    q_far = Query(type="rel_dis", observer="camera", targets=("camera", "f"), frames=(0, n - 1))
    a_edge, a_far = answer(geom, q_edge, cfg), answer(geom, q_far, cfg)
    assert a_edge.values[-1] / a_edge.values[0] == pytest.approx(1.2)
    assert stability(geom, q_far, a_far.states, cfg, rng, k=50) == 1.0
    s = stability(geom, q_edge, a_edge.states, cfg, rng, k=50)
    assert 0.1 < s < 0.9


# --------------------------------------------------------------------------------------------------
# frame policies


def test_uniform32_frame_plan() -> None:
    rec = make_record(64, fps=2.0)
    plan = frame_plan(rec, QAConfig())
    idx = np.round(np.linspace(0, 63, 32)).astype(int)
    assert plan.usable.tolist() == idx[:30].tolist()
    assert (plan.last_visible, plan.future) == (idx[29], idx[31])
    assert plan.visible_until_s == pytest.approx(idx[29] / 2.0 + 0.25)
    assert frame_plan(rec, parity_config()).usable.tolist() == plan.usable.tolist()


def test_fps1_frame_plan_hides_the_final_second() -> None:
    rec = make_record(64, fps=4.0)  # 0 .. 15.75 s
    plan = frame_plan(rec, QAConfig(frame_policy="fps1"))
    ts = rec.timestamps_s
    assert ts[plan.usable].tolist() == [float(x) for x in range(15)]  # 0 s … 14 s (≤ 15.75 − 1)
    assert plan.future == 63 and ts[plan.last_visible] == 14.0
    assert plan.visible_until_s == pytest.approx(14.125)


def test_clip_too_short_is_a_record_failure() -> None:
    rec = make_record(5, fps=1.0)  # 0..4 s: 4 usable frames at 1 FPS
    report = GenerationReport()
    assert list(generate_record_qas(rec, QAConfig(frame_policy="fps1"), report=report)) == []
    assert report.records_failed["clip_too_short"] == 1


# --------------------------------------------------------------------------------------------------
# bad queries: one-line errors


@pytest.mark.parametrize(("query", "reason", "text"), [
    (Query("abs_dis", "camera", ("nobody", "camera"), (0, 5), 2), "missing_object", "'nobody' is not an object"),
    (Query("rel_dir", "ghost", ("p", "camera"), (0, 5)), "missing_object", "observer 'ghost'"),
    (Query("rel_dis", "camera", ("p", "camera"), (10, 99)), "interval_outside_clip", "outside the clip"),
    (Query("abs_spd", "camera", ("p",), (0, 1, 2, 3)), "interval_outside_clip", "needs t_v"),
    (Query("rel_ori", "box", ("p",), (0, 1, 2)), "observer_not_agent", "not an agent"),
    (Query("rel_ori", "camera", ("box",), (0, 1, 2)), "target_not_agent", "no orientation"),
    (Query("rel_dis", "camera", ("p",), (0, 1, 2)), "invalid_query", "needs 2 target"),
    (Query("rel_spd", "camera", ("p",), (0, 1)), "too_few_frames", "at least 3 frames"),
    (Query("abs_dir_pred", "camera", ("p",), (0, 1, 2), 0), "invalid_query", "exactly 2 frames"),
])
def test_bad_queries_raise_one_line(query: Query, reason: str, text: str) -> None:
    n = 20
    rec = make_record(n, objects={"p": {"class": "person", "agent": True, "centers": np.tile([1, 0, 1.0], (n, 1)),
                                        "yaw": np.zeros(n)},
                                  "box": {"class": "box", "centers": np.tile([2, 0, 0.5], (n, 1))}})
    with pytest.raises(QAError) as err:
        check_query(rec, query)
    assert err.value.reason == reason
    assert text in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------------
# options and parity


def test_distractor_length_ranges() -> None:
    import random

    from dsr.qa.templates import distractor_length

    rng = random.Random(0)
    assert {distractor_length(5, 20, rng) for _ in range(400)} == set(range(2, 9))  # [N−3, N+3]
    assert {distractor_length(1, 20, rng) for _ in range(400)} == set(range(1, 5))  # [1, N+3]
    assert {distractor_length(5, 4, rng) for _ in range(400)} == {2, 3, 4}  # capped by M
    assert {distractor_length(8, 4, rng) for _ in range(400)} == {1, 2, 3, 4}  # M <= N−3: lower bound 1


def test_options_letter_uniform_and_answer_placed() -> None:
    import random

    from dsr.qa.templates import make_options

    rng, py = np.random.default_rng(1), random.Random(1)
    letters = []
    for _ in range(800):
        opts, letter, _ = make_options(["larger"], TYPES["abs_dis"], 12, QAConfig(), rng, py)
        assert opts["ABCD".index(letter)] == "(1) Become larger." and len(set(opts)) == 4
        letters.append(letter)
    from scipy.stats import chisquare

    assert chisquare([letters.count(x) for x in "ABCD"]).pvalue > 0.001


def test_parity_preset_end_to_end() -> None:
    n = 64
    rec = make_record(n, objects=busy_objects(n))
    report = GenerationReport()
    qas = list(generate_record_qas(rec, parity_config(stability_k=0), per_video=150, seed=2, report=report))
    pred = [q for q in qas if TYPES[q.type].is_prediction]
    assert pred and all(not q.question.endswith(".") for q in pred)
    texts = " ".join(t for q in qas for t in q.options)
    assert "and then become" in texts and "then become larger." in texts
    assert all(q.generator.config["direction_eps"] == 0.3 for q in qas)
    assert all(q.generator.config["parity"] == "official_code" for q in qas)
    # M8: rel_spd_comp QAs whose distractors needed a retry are dropped (and counted), others kept
    report = GenerationReport()
    kept = list(generate_record_qas(rec, parity_config(stability_k=0), per_video=40, seed=3, report=report,
                                    types=("rel_spd_comp",)))
    assert report.failures["parity_rel_spd_comp_retry"] > 0 and kept
    report = GenerationReport()
    list(generate_record_qas(rec, NO_STAB, per_video=40, seed=3, report=report, types=("rel_spd_comp",)))
    assert report.failures["parity_rel_spd_comp_retry"] == 0


def test_fps1_policy_end_to_end() -> None:
    n = 120
    rec = make_record(n, fps=10.0, objects=busy_objects(n))  # 12 s → 1 FPS frames at 0 … 10 s usable
    qas = list(generate_record_qas(rec, paper_config(frame_policy="fps1", stability_k=0), per_video=60, seed=0))
    ts = rec.timestamps_s
    for q in qas:
        times = list(q.frames.timestamps_s)
        if TYPES[q.type].is_prediction:
            assert times == [10.0, ts[-1]] and q.visible_until_s == pytest.approx(10.05)
        else:
            assert all(t <= ts[-1] - 1.0 and float(t).is_integer() for t in times)


def test_box_iou_and_overlapping_prediction_observer() -> None:
    from dsr.qa.generate import box_iou

    assert box_iou(np.array([0.0, 0, 10, 10]), np.array([5.0, 0, 15, 10])) == pytest.approx(50 / 150)
    assert box_iou(np.array([0.0, 0, 10, 10]), np.array([20.0, 20, 30, 30])) == 0.0
    n = 40
    box = np.tile([100.0, 100.0, 160.0, 200.0], (n, 1))
    s = np.linspace(0, 1, n)[:, None]
    objs = {"p": {"class": "person", "agent": True, "centers": np.hstack([1 + 0 * s, 0 * s, 0.9 + 0 * s]),
                  "yaw": np.zeros(n), "boxes": box},
            "q": {"class": "dog", "centers": np.hstack([1.2 + s, 0.1 + 0 * s, 0.3 + 0 * s]), "boxes": box + 5}}
    rec = make_record(n, objects=objs, force_visible=True)
    report = GenerationReport()
    qas = list(generate_record_qas(rec, NO_STAB, per_video=20, seed=0, report=report, types=("rel_dir_pred",)))
    assert report.failures["observer_target_overlap"] > 0
    assert all(q.query.observer == "camera" or "camera" in q.query.targets for q in qas)


@pytest.mark.parametrize("counts", [[10, 10, 10, 10], [12, 8, 10, 10], [40, 2, 3, 5], [1, 0, 0, 0], [300, 250, 260, 190]])
def test_letter_test_matches_scipy(counts: list[int]) -> None:
    from scipy.stats import chisquare

    from dsr.qa.generate import _letter_test

    ref = chisquare(counts)
    got = _letter_test(counts)
    assert got["chi2"] == pytest.approx(float(ref.statistic), rel=1e-12)
    assert got["p_value"] == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)


def test_camera_scale_drift_unsettles_camera_speed_but_not_camera_to_object_distance() -> None:
    """A camera that speeds up from 1 to 2 m/s: its speed "becomes larger", clear under per-frame noise, but a
    stated drift of the path's scale of 0.3 per second (7 s of path) can make it anything. The distance from the
    camera to an object is measured from the camera, so the same drift leaves it alone."""
    import dataclasses

    from dsr.qa.query import Geometry, stability

    n = 15  # 0 .. 7 s at 2 fps
    t = np.arange(n) / 2.0
    x = np.where(t < 3.5, t, 3.5 + 2.0 * (t - 3.5)) - 6.0
    cam = np.stack([x, np.zeros(n), np.full(n, 1.5)], axis=1)
    box = np.stack([np.linspace(4.0, 8.0, n), np.full(n, 1.0), np.full(n, 0.5)], axis=1)
    rec = make_record(n, camera_positions=cam, look_target=np.array([20.0, 0.0, 1.5]),
                      objects={"box": {"class": "box", "centers": box}}, force_visible=True)
    cfg = QAConfig(normalization="none")
    speed = Query(type="abs_spd", observer="camera", targets=("camera",), frames=tuple(range(n)), t_v=0)
    dist = Query(type="abs_dis", observer="camera", targets=("camera", "box"), frames=tuple(range(n)), t_v=0)
    steady = Geometry.from_record(rec, cfg)
    a_speed, a_dist = answer(steady, speed, cfg), answer(steady, dist, cfg)
    # per frame step: 0.5 m for 3.5 s, then 1 m; the merged states read "steady, then jumps larger, then steady"
    assert tuple(a_speed.states) == ("constant_larger", "constant")
    assert stability(steady, speed, a_speed.states, cfg, np.random.default_rng(0), k=200) == 1.0
    drifting = Geometry.from_record(dataclasses.replace(
        rec, camera=dataclasses.replace(rec.camera, scale_drift_sigma=0.3)), cfg)
    assert stability(drifting, speed, a_speed.states, cfg, np.random.default_rng(0), k=200) < 0.8
    assert stability(drifting, dist, a_dist.states, cfg, np.random.default_rng(0), k=200) == \
        stability(steady, dist, a_dist.states, cfg, np.random.default_rng(0), k=200)
    # a per-step scale error (VO re-estimates its scale at every step) unsettles it too, and the distance again not
    jittery = Geometry.from_record(dataclasses.replace(
        rec, camera=dataclasses.replace(rec.camera, scale_jitter_sigma=0.6)), cfg)
    assert stability(jittery, speed, a_speed.states, cfg, np.random.default_rng(0), k=200) < 0.8
    assert stability(jittery, dist, a_dist.states, cfg, np.random.default_rng(0), k=200) == \
        stability(steady, dist, a_dist.states, cfg, np.random.default_rng(0), k=200)
