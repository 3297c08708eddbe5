"""Property tests (hypothesis): time reversal, swapping objects, static scenes, scale invariance."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsr.qa.generate import GenerationReport, generate_record_qas
from dsr.qa.query import Query, answer
from dsr.qa.question_types import TYPES
from dsr.qa.rules import (
    DIRECTION_EPS_PAPER,
    FORMER,
    LARGER,
    LATTER,
    SMALLER,
    QAConfig,
    comparison_answer,
    direction_label,
    magnitude_answer,
    paper_config,
)

from .conftest import make_record

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIRROR = {"Front": "Behind", "Behind": "Front", "Left": "Right", "Right": "Left", "Above": "Below", "Below": "Above"}


def mirror(label: str) -> str:
    return "|".join(MIRROR[p] for p in label.split("|"))


@FAST
@given(start=st.floats(0.1, 10.0), ratios=st.lists(st.floats(1.26, 3.0), min_size=1, max_size=20))
def test_reversing_a_growing_distance_flips_larger_and_smaller(start: float, ratios: list[float]) -> None:
    # every consecutive ratio > 1.25 forwards is < 0.8 backwards, and all values stay >= the 0.1 floor
    d = start * np.cumprod([1.0, *ratios])
    assert magnitude_answer(d) == [LARGER]
    assert magnitude_answer(d[::-1]) == [SMALLER]


@FAST
@given(speeds=st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 5.0)), min_size=1, max_size=30))
def test_swapping_speed_comparison_objects_swaps_former_and_latter(speeds: list[tuple[float, float]]) -> None:
    pairs = np.array(speeds)
    swap = {FORMER: LATTER, LATTER: FORMER}
    assert comparison_answer(pairs[:, ::-1]) == [swap.get(s, s) for s in comparison_answer(pairs)]


@FAST
@given(v=st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-5, 5)).filter(lambda t: np.linalg.norm(t) > 1e-3))
def test_opposite_vectors_get_mirrored_labels(v: tuple[float, float, float]) -> None:
    assert direction_label(-np.array(v)) == mirror(direction_label(np.array(v)))


def _walker_record(seed: int, *, reverse: bool = False, scale: float = 1.0, n: int = 40):
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.15, (n, 3)) + rng.normal(0.0, 0.2, 3)
    centers = np.array([1.0, 0.0, 0.8]) + np.cumsum(steps, axis=0)
    yaw = np.cumsum(rng.normal(0.0, 0.2, n))
    cam = np.array([-6.0, 0.0, 1.5]) + np.cumsum(rng.normal(0.0, 0.05, (n, 3)), axis=0)
    objects = {
        "walker": {"class": "person", "agent": True, "centers": centers, "yaw": yaw},
        "ball": {"class": "ball", "centers": centers[::-1] * np.array([0.5, -1.0, 1.0])},
    }
    if reverse:
        cam = cam[::-1]
        objects = {k: {**v, "centers": v["centers"][::-1], **({"yaw": v["yaw"][::-1]} if "yaw" in v else {})}
                   for k, v in objects.items()}
    return make_record(n, camera_positions=cam, objects=objects, force_visible=True, scale=scale)


@FAST
@given(seed=st.integers(0, 10_000), a=st.integers(0, 30), gap=st.integers(1, 9), tv=st.integers(0, 39),
       observer=st.sampled_from(["camera", "walker"]), target=st.sampled_from(["ball", "walker", "camera"]))
def test_reversing_time_flips_direction_prediction(seed: int, a: int, gap: int, tv: int, observer: str,
                                                   target: str) -> None:
    n = 40
    fwd, rev = _walker_record(seed), _walker_record(seed, reverse=True)
    b = a + gap
    q_fwd = Query(type="abs_dir_pred", observer=observer, targets=(target,), frames=(a, b), t_v=tv)
    q_rev = Query(type="abs_dir_pred", observer=observer, targets=(target,), frames=(n - 1 - b, n - 1 - a),
                  t_v=n - 1 - tv)
    cfg = QAConfig()
    ans_f, ans_r = answer(fwd, q_fwd, cfg), answer(rev, q_rev, cfg)
    np.testing.assert_allclose(ans_r.values, -ans_f.values, atol=1e-9)
    # skip knife-edge vectors where rounding could move a component across ±eps
    unit = ans_f.values[0] / np.linalg.norm(ans_f.values[0])
    if np.min(np.abs(np.abs(unit) - cfg.direction_eps)) > 1e-9:
        assert ans_r.states == tuple(mirror(s) for s in ans_f.states)
    # and the distance the object covers grows in one direction of time while it shrinks in the other
    if "Front" in ans_f.states[0]:
        assert "Behind" in ans_r.states[0]


@FAST
@given(seed=st.integers(0, 10_000), a=st.integers(0, 20), length=st.integers(3, 19),
       observer=st.sampled_from(["camera", "walker"]), viewpoint=st.sampled_from(["rel", "abs"]))
def test_swapping_objects_in_speed_comparison(seed: int, a: int, length: int, observer: str, viewpoint: str) -> None:
    rec = _walker_record(seed)
    frames = tuple(range(a, a + length + 1))
    t_v = None if viewpoint == "rel" else 5
    targets = ("ball", "camera") if observer == "walker" and viewpoint == "rel" else ("ball", "walker")
    q1 = Query(type=f"{viewpoint}_spd_comp", observer=observer, targets=targets, frames=frames, t_v=t_v)
    q2 = Query(type=f"{viewpoint}_spd_comp", observer=observer, targets=targets[::-1], frames=frames, t_v=t_v)
    swap = {FORMER: LATTER, LATTER: FORMER}
    s1, s2 = answer(rec, q1).states, answer(rec, q2).states
    assert s2 == tuple(swap.get(s, s) for s in s1)
    text1 = answer(rec, q1).text
    assert answer(rec, q2).text == text1.replace("former", "@").replace("latter", "former").replace("@", "latter")


@FAST
@given(positions=st.lists(st.tuples(st.floats(-4, 4), st.floats(-4, 4), st.floats(0, 2)), min_size=2, max_size=4),
       yaw=st.floats(-3.0, 3.0), seed=st.integers(0, 1000))
def test_static_scene_keeps_everything_nearly_constant(positions: list[tuple[float, float, float]], yaw: float,
                                                       seed: int) -> None:
    n = 40
    objects = {f"o{i}": {"class": f"thing{i}", "centers": np.tile(p, (n, 1))} for i, p in enumerate(positions)}
    objects["o0"].update(agent=True, yaw=np.full(n, yaw))
    rec = make_record(n, objects=objects, force_visible=True)
    magnitudes = ("abs_dis", "rel_dis", "abs_spd", "rel_spd", "abs_spd_comp", "rel_spd_comp")
    qas = list(generate_record_qas(rec, paper_config(stability_k=0), per_video=30, seed=seed, types=magnitudes))
    assert qas
    for qa in qas:
        expected = "(1) Nearly the same." if TYPES[qa.type].rule == "comparison" else "(1) Keep nearly constant."
        assert qa.answer_text == expected, qa.question
    # the debiased design asks nothing here: every alternative says the same, so no set of four
    # different real answers exists
    report = GenerationReport()
    assert not list(generate_record_qas(rec, QAConfig(stability_k=0), per_video=30, seed=seed, types=magnitudes,
                                        report=report))
    assert report.failures["few_alternatives"] > 0


@FAST
# powers of two rescale exactly in floating point; other factors round, and a value that lands on a
# rule's threshold can then tip (seed 473 at scale 0.01 did), which says nothing about the rules
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([2.0**-7, 0.5, 4.0, 1024.0]))
def test_uniform_rescaling_does_not_change_answers(seed: int, scale: float) -> None:
    cfg = QAConfig(stability_k=0)
    base = list(generate_record_qas(_walker_record(seed), cfg, per_video=12, seed=seed))
    scaled = list(generate_record_qas(_walker_record(seed, scale=scale), cfg, per_video=12, seed=seed))
    assert [q.answer_text for q in base] == [q.answer_text for q in scaled]
    assert [q.question for q in base] == [q.question for q in scaled]


@FAST
@given(values=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=40), limit=st.integers(1, 10))
def test_distractor_prefix_segmentation_matches_the_full_rule(values: list[float], limit: int) -> None:
    full = magnitude_answer(values)
    prefix = magnitude_answer(values, max_merged=limit)
    assert prefix == full[:len(prefix)]
    assert len(prefix) >= min(len(full), limit + 1)


@FAST
@given(vectors=st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-5, 5)), min_size=1, max_size=20),
       eps=st.sampled_from([0.3, DIRECTION_EPS_PAPER, 0.28]))
def test_direction_code_paths_agree(vectors: list[tuple[float, float, float]], eps: float) -> None:
    from dsr.qa.rules import direction_codes

    v = np.array(vectors)
    if np.any(np.linalg.norm(v, axis=1) == 0):
        return
    big = np.tile(v, (100, 1))  # > 64 vectors: the vectorised path
    np.testing.assert_array_equal(direction_codes(big, eps), np.tile(direction_codes(v, eps), 100))


@FAST
@given(start=st.floats(1.0, 3.0), ratio=st.floats(1.3, 1.6), n=st.integers(4, 9),
       viewpoint=st.sampled_from(["rel", "abs"]))
def test_reversing_a_recorded_walk_away_flips_larger_and_smaller(start: float, ratio: float, n: int,
                                                                 viewpoint: str) -> None:
    # an object walking straight away from a static camera, its distance growing by `ratio` per frame
    d = start * ratio ** np.arange(n)
    centers = np.stack([-6.0 + d, np.zeros(n), np.full(n, 1.5)], axis=1)  # camera at (-6, 0, 1.5)
    fwd = make_record(n, objects={"o": {"class": "o", "centers": centers}}, force_visible=True)
    rev = make_record(n, objects={"o": {"class": "o", "centers": centers[::-1]}}, force_visible=True)
    t_v = None if viewpoint == "rel" else 0
    q = Query(type=f"{viewpoint}_dis", observer="camera", targets=("camera", "o"), frames=tuple(range(n)), t_v=t_v)
    assert answer(fwd, q).states == (LARGER,)
    assert answer(rev, q).states == (SMALLER,)
