"""Scores and uncertainty from per-item results: accuracy (micro, per type, macro), chance, CIs, bias.

Inputs are plain per-item arrays, so every function is pure and testable by hand:

* ``correct``: (N,) bool — INVALID replies count as wrong; failed items (no reply) are excluded
  before these functions are called and reported separately.
* ``video_ids``: (N,) str — the cluster of each item. Confidence intervals resample **videos** with
  replacement (cluster bootstrap), because questions on one video are not independent
  (``evaluation.md`` §4); the generator is seeded and the resample count is reported.
* ``types``: (N,) str — the question type; columns follow Table 4's order (``TYPE_ORDER``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dsr.evaluate.datasets import TYPE_ORDER

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A proportion with a 95% interval. ``n`` items on ``n_clusters`` videos."""

    value: float
    lo: float
    hi: float
    n: int
    n_clusters: int = 0

    def pct(self, digits: int = 1) -> str:
        if not np.isfinite(self.value):
            return "–"
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return f"{100 * self.value:.{digits}f} [n/a]"
        return f"{100 * self.value:.{digits}f} [{100 * self.lo:.{digits}f}, {100 * self.hi:.{digits}f}]"


@dataclass(frozen=True)
class Summary:
    """Everything the report needs about one run's scored items."""

    overall: Estimate
    macro: Estimate
    per_type: dict[str, Estimate]
    chance: float
    caa: float  # chance-adjusted accuracy (acc − chance) / (1 − chance)
    invalid_rate: float
    invalid_per_type: dict[str, float]
    letter_bias: dict[str, dict[str, int]]  # gold letter → predicted letter (or "INVALID") → count
    bias_chi2_p: float
    tiers: dict[str, int]
    resamples: int
    seed: int
    circular: Estimate | None = None
    extra: dict[str, float] = field(default_factory=dict)


def ordered_types(types: Sequence[str]) -> list[str]:
    """Types present, Table 4 order first, then any others sorted."""
    present = set(types)
    return [t for t in TYPE_ORDER if t in present] + sorted(present - set(TYPE_ORDER))


def chance_level(n_options: Sequence[int]) -> float:
    """Expected accuracy of uniform guessing: mean of 1/n_i."""
    n = np.asarray(n_options, dtype=float)
    return float(np.mean(1.0 / n)) if len(n) else float("nan")


def chance_adjusted(acc: float, chance: float) -> float:
    """(acc − chance)/(1 − chance): 0 at chance, 1 when perfect (SITE's CAA for equal option counts)."""
    return (acc - chance) / (1.0 - chance) if chance < 1 else float("nan")


def _cluster_index(video_ids: Sequence[str]) -> tuple[np.ndarray, int]:
    uniq, inverse = np.unique(np.asarray(video_ids, dtype=object).astype(str), return_inverse=True)
    return inverse, len(uniq)


def _cluster_weights(n_clusters: int, resamples: int, seed: int) -> np.ndarray:
    """(B, V) how often each video is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=resamples)


def _percentile_ci(samples: np.ndarray, n_clusters: int = 2) -> tuple[float, float]:
    """2.5 and 97.5 percentiles; NaN when there are fewer than two videos (no spread to resample)."""
    samples = samples[np.isfinite(samples)]
    if not len(samples) or n_clusters < 2:
        return float("nan"), float("nan")
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


def cluster_bootstrap(values: np.ndarray, video_ids: Sequence[str], groups: Sequence[str] | None = None,
                      *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
                      ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Bootstrap distributions of the mean of ``values`` resampling videos.

    Returns (micro (B,), per group {g: (B,)}, macro (B,) = mean over groups present in a resample).
    """
    values = np.asarray(values, dtype=float)
    inv, n_vid = _cluster_index(video_ids)
    w = _cluster_weights(n_vid, resamples, seed).astype(float)  # (B, V)
    sums = np.bincount(inv, weights=values, minlength=n_vid)
    counts = np.bincount(inv, minlength=n_vid).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        micro = (w @ sums) / (w @ counts)
        per: dict[str, np.ndarray] = {}
        if groups is not None:
            g = np.asarray(groups, dtype=object).astype(str)
            for name in ordered_types(list(g)):
                mask = g == name
                s = np.bincount(inv[mask], weights=values[mask], minlength=n_vid)
                c = np.bincount(inv[mask], minlength=n_vid).astype(float)
                per[name] = (w @ s) / (w @ c)
        macro = np.nanmean(np.stack(list(per.values())), axis=0) if per else micro
    return micro, per, macro


def estimate(values: np.ndarray, video_ids: Sequence[str], *, resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> Estimate:
    values = np.asarray(values, dtype=float)
    if not len(values):
        return Estimate(float("nan"), float("nan"), float("nan"), 0, 0)
    micro, _, _ = cluster_bootstrap(values, video_ids, resamples=resamples, seed=seed)
    lo, hi = _percentile_ci(micro, len(set(video_ids)))
    return Estimate(float(values.mean()), lo, hi, len(values), len(set(video_ids)))


def letter_bias(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, dict[str, int]]:
    """Counts gold letter → predicted letter (``INVALID`` for no letter)."""
    table: dict[str, dict[str, int]] = {}
    for g, p in zip(gold, pred, strict=True):
        row = table.setdefault(g, {})
        key = p or "INVALID"
        row[key] = row.get(key, 0) + 1
    return {g: dict(sorted(r.items())) for g, r in sorted(table.items())}


def bias_chi2(gold: Sequence[str], pred: Sequence[str | None]) -> float:
    """p-value of a chi-square test that valid predicted letters follow the gold letter distribution."""
    from scipy.stats import chisquare

    letters = sorted(set(gold))
    valid = [p for p in pred if p in letters]
    if len(valid) < 5 or len(letters) < 2:
        return float("nan")
    g = np.array([sum(1 for x in gold if x == k) for k in letters], dtype=float)
    obs = np.array([sum(1 for x in valid if x == k) for k in letters], dtype=float)
    exp = g / g.sum() * obs.sum()
    keep = exp > 0
    return float(chisquare(obs[keep], exp[keep]).pvalue)


def summarize(correct: Sequence[bool], video_ids: Sequence[str], types: Sequence[str],
              n_options: Sequence[int], gold: Sequence[str], pred: Sequence[str | None],
              tiers: Sequence[str], *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
              base_ids: Sequence[str] | None = None) -> Summary:
    """Score one run. ``base_ids`` (item ids without rotation suffix) enables circular accuracy."""
    x = np.asarray(correct, dtype=float)
    types_l = [str(t) for t in types]
    micro, per, macro = cluster_bootstrap(x, video_ids, types_l, resamples=resamples, seed=seed)
    t_arr = np.asarray(types_l, dtype=object)
    vid_arr = np.asarray(video_ids, dtype=object)
    per_type: dict[str, Estimate] = {}
    for name, dist in per.items():
        mask = t_arr == name
        n_vid = len(set(vid_arr[mask]))
        lo, hi = _percentile_ci(dist, n_vid)
        per_type[name] = Estimate(float(x[mask].mean()), lo, hi, int(mask.sum()), n_vid)
    n = len(x)
    n_videos = len(set(video_ids))
    overall = Estimate(float(x.mean()) if n else float("nan"), *_percentile_ci(micro, n_videos), n, n_videos)
    macro_value = float(np.mean([e.value for e in per_type.values()])) if per_type else float("nan")
    macro_est = Estimate(macro_value, *_percentile_ci(macro, n_videos), n, n_videos)
    chance = chance_level(n_options)
    invalid = np.array([p is None for p in pred], dtype=bool)
    inv_per = {name: float(invalid[t_arr == name].mean()) for name in per_type}
    tier_counts: dict[str, int] = {}
    for t in tiers:
        tier_counts[t] = tier_counts.get(t, 0) + 1
    circ = None
    if base_ids is not None and len(set(base_ids)) < len(base_ids):
        circ = circular_estimate(x, base_ids, video_ids, resamples=resamples, seed=seed)
    return Summary(overall=overall, macro=macro_est, per_type=per_type, chance=chance,
                   caa=chance_adjusted(overall.value, chance), invalid_rate=float(invalid.mean()) if n else 0.0,
                   invalid_per_type=inv_per, letter_bias=letter_bias(gold, pred),
                   bias_chi2_p=bias_chi2(gold, pred), tiers=tier_counts, resamples=resamples, seed=seed,
                   circular=circ)


def circular_estimate(correct: np.ndarray, base_ids: Sequence[str], video_ids: Sequence[str], *,
                      resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """Accuracy where a question counts only if every option rotation of it is answered right."""
    all_right: dict[str, bool] = {}
    video_of: dict[str, str] = {}
    for c, b, v in zip(correct, base_ids, video_ids, strict=True):
        all_right[b] = all_right.get(b, True) and bool(c)
        video_of[b] = v
    keys = list(all_right)
    return estimate(np.array([all_right[k] for k in keys], dtype=float), [video_of[k] for k in keys],
                    resamples=resamples, seed=seed)


# ---------------------------------------------------------------------------------------------- paired


@dataclass(frozen=True)
class Paired:
    """Run B minus run A on the items both scored. ``b_only``: B right, A wrong (McNemar's c)."""

    n: int
    acc_a: float
    acc_b: float
    diff: float
    lo: float
    hi: float
    a_only: int
    b_only: int
    both: int
    neither: int
    mcnemar_p: float
    mcnemar_test: str


def mcnemar(a_only: int, b_only: int) -> tuple[float, str]:
    """Two-sided McNemar p-value: exact binomial when discordant pairs < 25, else χ² with continuity."""
    from scipy.stats import binomtest, chi2

    k = a_only + b_only
    if k == 0:
        return 1.0, "exact"
    if k < 25:
        return float(binomtest(min(a_only, b_only), k, 0.5).pvalue), "exact"
    stat = (abs(a_only - b_only) - 1) ** 2 / k
    return float(chi2.sf(stat, 1)), "chi2_cc"


def paired(correct_a: Sequence[bool], correct_b: Sequence[bool], video_ids: Sequence[str], *,
           resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Paired:
    """Paired cluster-bootstrap CI of acc_B − acc_A and McNemar's test, on aligned items."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if not len(a):
        nan = float("nan")
        return Paired(0, nan, nan, nan, nan, nan, 0, 0, 0, 0, nan, "none")
    d = b.astype(float) - a.astype(float)
    micro, _, _ = cluster_bootstrap(d, video_ids, resamples=resamples, seed=seed)
    lo, hi = _percentile_ci(micro, len(set(video_ids)))
    a_only = int((a & ~b).sum())
    b_only = int((b & ~a).sum())
    p, test = mcnemar(a_only, b_only)
    return Paired(n=len(a), acc_a=float(a.mean()), acc_b=float(b.mean()), diff=float(d.mean()), lo=lo, hi=hi,
                  a_only=a_only, b_only=b_only, both=int((a & b).sum()), neither=int((~a & ~b).sum()),
                  mcnemar_p=p, mcnemar_test=test)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for k successes in n (used as a check on the bootstrap)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half
