"""Cohen's and Fleiss' κ and the Wilson interval against hand-computed values and reference libraries."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.review.agreement import agreement, cohen_kappa, fleiss_kappa, wilson_interval


def test_cohen_kappa_by_hand() -> None:
    # p_o = 5/6; marginals A 3/6·2/6, B 2/6·3/6, reject 1/6·1/6 → p_e = 13/36; κ = (30−13)/(36−13) = 17/23
    a = ["A", "A", "B", "B", "reject", "A"]
    b = ["A", "B", "B", "B", "reject", "A"]
    assert cohen_kappa(a, b) == pytest.approx(17 / 23, abs=1e-12)
    assert math.isnan(cohen_kappa(["A", "A"], ["A", "A"]))  # one category: undefined


def test_fleiss_kappa_with_unequal_raters_by_hand() -> None:
    # items: AAA (P=1), AB (P=0), BB-reject (P=1/3), reject-reject (P=1) → P̄ = 7/12
    # label shares over 10 labels: A .4, B .3, reject .3 → P_e = .34; κ = (7/12 − .34)/.66 = 73/198
    table = np.array([[3, 0, 0], [1, 1, 0], [0, 2, 1], [0, 0, 2]])
    assert fleiss_kappa(table) == pytest.approx(73 / 198, abs=1e-12)
    assert math.isnan(fleiss_kappa(np.array([[2, 0], [3, 0]])))
    with pytest.raises(ValueError, match="two labels"):
        fleiss_kappa(np.array([[1, 0], [2, 0]]))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(2, 4), st.integers(3, 12), st.randoms(use_true_random=False))
def test_fleiss_matches_statsmodels_with_equal_raters(raters: int, categories: int, items: int, rnd) -> None:
    statsmodels = pytest.importorskip("statsmodels.stats.inter_rater")
    table = np.zeros((items, categories))
    for i in range(items):
        for _ in range(raters):
            table[i, rnd.randrange(categories)] += 1
    ours = fleiss_kappa(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # statsmodels divides 0/0 when one category holds all
        theirs = statsmodels.fleiss_kappa(table, method="fleiss")
    if math.isnan(ours):
        assert not np.isfinite(theirs) or table.sum(axis=0).max() == table.sum()
    else:
        assert ours == pytest.approx(theirs, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["A", "B", "C", "reject"]), min_size=2, max_size=30), st.data())
def test_agreement_properties(labels: list[str], data) -> None:
    # identical labels from every rater → κ = 1 whenever more than one category occurs
    by_item = {i: {"r1": lbl, "r2": lbl, "r3": lbl} for i, lbl in enumerate(labels)}
    result = agreement(by_item)
    assert result.observed == pytest.approx(1.0)
    if len(set(labels)) > 1:
        assert result.kappa == pytest.approx(1.0) and result.method == "fleiss"
    # renaming the categories changes nothing
    names = {"A": "x", "B": "y", "C": "z", "reject": "w"}
    other = {i: {"r1": lbl, "r2": data.draw(st.sampled_from(["A", "B", "C", "reject"]))} for i, lbl in enumerate(labels)}
    renamed = {i: {r: names[v] for r, v in d.items()} for i, d in other.items()}
    k1, k2 = agreement(other).kappa, agreement(renamed).kappa
    assert (k1 is None and k2 is None) or k1 == pytest.approx(k2)
    assert agreement(other).method == "cohen"


def test_agreement_skips_single_labels_and_uses_cohen_for_two_raters() -> None:
    by_item = {1: {"alice": "A", "bob": "A"}, 2: {"alice": "B", "bob": "C"}, 3: {"alice": "B"}, 4: {}}
    result = agreement(by_item)
    assert (result.items, result.labels, result.raters, result.method) == (2, 4, 2, "cohen")
    assert result.kappa == pytest.approx(cohen_kappa(["A", "B"], ["A", "C"]))
    assert result.observed == pytest.approx(0.5)
    assert agreement({1: {"alice": "A"}}).method is None


def test_wilson_interval_by_hand() -> None:
    # 8/10, z = 1.96: centre (0.8 + z²/20)/(1 + z²/10), half-width z·sqrt(0.016 + z²/400)/(1 + z²/10)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    low, high = wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(centre - half, abs=1e-9), pytest.approx(centre + half, abs=1e-9))
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
