"""Statistics: hand-computed accuracies, chance, CAA, McNemar, and bootstrap invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.evaluate.stats import (
    chance_adjusted,
    chance_level,
    cluster_bootstrap,
    mcnemar,
    ordered_types,
    paired,
    summarize,
    wilson,
)


def _summary(correct, videos, types, pred=None, **kw):
    n = len(correct)
    gold = ["A"] * n
    pred = pred if pred is not None else ["A" if c else "B" for c in correct]
    return summarize(correct, videos, types, [4] * n, gold, pred, ["last_line"] * n, resamples=500, **kw)


def test_micro_macro_and_table_order() -> None:
    # abs_dis: 3/4 right; rel_dir: 0/1; non_temp: 1/1 → micro 4/6, macro (0.75 + 0 + 1)/3
    correct = [1, 1, 1, 0, 0, 1]
    types = ["non_temp", "abs_dis", "abs_dis", "abs_dis", "rel_dir", "abs_dis"]
    s = _summary(correct, ["v1", "v1", "v2", "v3", "v3", "v4"], types)
    assert s.overall.value == pytest.approx(4 / 6)
    assert s.macro.value == pytest.approx((0.75 + 0.0 + 1.0) / 3)
    assert list(s.per_type) == ["abs_dis", "rel_dir", "non_temp"]
    assert s.per_type["abs_dis"].n == 4 and s.per_type["abs_dis"].n_clusters == 4
    assert s.chance == 0.25 and s.caa == pytest.approx((4 / 6 - 0.25) / 0.75)


def test_chance_with_mixed_option_counts() -> None:
    assert chance_level([4, 2, 4]) == pytest.approx((0.25 + 0.5 + 0.25) / 3)
    assert chance_adjusted(0.25, 0.25) == 0 and chance_adjusted(1.0, 0.25) == 1


def test_ordered_types_puts_table4_first() -> None:
    assert ordered_types(["zz", "non_temp", "abs_dis", "rel_spd_comp", "aa"]) == [
        "abs_dis", "rel_spd_comp", "non_temp", "aa", "zz"]


def test_invalid_and_letter_bias() -> None:
    s = _summary([1, 0, 0, 0], ["a", "b", "c", "d"], ["abs_dis"] * 4, pred=["A", None, "C", "C"])
    assert s.invalid_rate == 0.25
    assert s.letter_bias == {"A": {"A": 1, "C": 2, "INVALID": 1}}


def test_bootstrap_is_seeded_and_clusters_by_video() -> None:
    rng = np.random.default_rng(1)
    x = rng.random(300) < 0.6
    # one video holding everything: resampling videos cannot move the estimate
    micro, _, _ = cluster_bootstrap(x.astype(float), ["v"] * 300, resamples=200)
    assert np.allclose(micro, x.mean())
    vids = [f"v{i // 10}" for i in range(300)]
    a = _summary(x.tolist(), vids, ["abs_dis"] * 300)
    b = _summary(x.tolist(), vids, ["abs_dis"] * 300)
    assert (a.overall.lo, a.overall.hi) == (b.overall.lo, b.overall.hi)
    c = _summary(x.tolist(), vids, ["abs_dis"] * 300, seed=5)
    assert (c.overall.lo, c.overall.hi) != (a.overall.lo, a.overall.hi)
    # with independent items the bootstrap interval is close to Wilson's
    lo, hi = wilson(int(x.sum()), 300)
    ind = _summary(x.tolist(), [str(i) for i in range(300)], ["abs_dis"] * 300)
    assert abs(ind.overall.lo - lo) < 0.02 and abs(ind.overall.hi - hi) < 0.02


def test_clustered_ci_is_wider_when_videos_are_homogeneous() -> None:
    # 30 videos × 10 questions, every question on a video answered alike (ICC = 1)
    per_video = np.array([1] * 15 + [0] * 15)
    x = np.repeat(per_video, 10)
    clustered = _summary(x.tolist(), [f"v{i // 10}" for i in range(300)], ["abs_dis"] * 300)
    independent = _summary(x.tolist(), [str(i) for i in range(300)], ["abs_dis"] * 300)
    width = clustered.overall.hi - clustered.overall.lo
    assert width > 2 * (independent.overall.hi - independent.overall.lo)


def test_circular_counts_all_rotations() -> None:
    correct = [1, 1, 1, 1, 1, 0, 1, 1]
    base = ["q1"] * 4 + ["q2"] * 4
    s = _summary(correct, ["v1"] * 4 + ["v2"] * 4, ["abs_dis"] * 8, base_ids=base)
    assert s.overall.value == pytest.approx(7 / 8)
    assert s.circular is not None and s.circular.value == 0.5 and s.circular.n == 2


def test_mcnemar_hand_values() -> None:
    # exact: b=1, c=9 → 2 * P(X <= 1 | n=10, p=.5) = 2 * 11/1024
    p, test = mcnemar(1, 9)
    assert test == "exact" and p == pytest.approx(22 / 1024)
    assert mcnemar(0, 0) == (1.0, "exact")
    # chi-square with continuity correction: b=10, c=30 → (|10-30|-1)^2/40 = 9.025
    from scipy.stats import chi2

    p, test = mcnemar(10, 30)
    assert test == "chi2_cc" and p == pytest.approx(chi2.sf(9.025, 1))


def test_paired_difference() -> None:
    a = [1, 1, 0, 0, 1, 0, 1, 0]
    b = [1, 0, 1, 1, 1, 1, 1, 0]
    res = paired(a, b, [f"v{i}" for i in range(8)], resamples=500)
    assert (res.both, res.a_only, res.b_only, res.neither) == (3, 1, 3, 1)
    assert res.diff == pytest.approx(2 / 8) and res.lo <= res.diff <= res.hi


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(1, 8))
def test_interval_brackets_the_estimate(correct: list[bool], videos: int) -> None:
    vids = [f"v{i % videos}" for i in range(len(correct))]
    s = _summary(correct, vids, ["abs_dis"] * len(correct))
    if len(set(vids)) < 2:  # one video: nothing to resample, so no interval is claimed
        assert np.isnan(s.overall.lo) and s.overall.pct().endswith("[n/a]")
    else:
        assert 0 <= s.overall.lo <= s.overall.value + 1e-12 and s.overall.value - 1e-12 <= s.overall.hi <= 1
