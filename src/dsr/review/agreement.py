"""Inter-annotator agreement and the generator's label precision as measured by people.

Labels (see :func:`dsr.review.decisions.label_of`): the letter a reviewer holds right, or "reject";
flags are not judgements and are left out.

* **Cohen's κ** (scikit-learn's ``cohen_kappa_score``) when a question type's multiply-labelled items
  were all labelled by the same two reviewers.
* **Fleiss' κ** otherwise, in the form that allows a different number of raters per item:
  ``P_i = Σ_j n_ij (n_ij − 1) / (n_i (n_i − 1))``, ``P̄ = mean_i P_i``, ``p_j = Σ_i n_ij / Σ_i n_i``,
  ``P_e = Σ_j p_j²``, ``κ = (P̄ − P_e) / (1 − P_e)``. With equal rater counts it is Fleiss (1971)
  exactly (checked against statsmodels in the tests). Items with fewer than two labels carry no
  agreement information and are skipped.
* **Label precision**: of the items with a final verdict (agreed or resolved by an admin), the share
  whose right letter is the generator's; a rejected item counts against it. 95% Wilson interval.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ of an (items, categories) count table; rows may have different totals (≥ 2 each).

    Returns NaN when chance agreement is 1 (every label the same category: κ is undefined).
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or len(table) == 0:
        raise ValueError("counts must be a non-empty (items, categories) table")
    n_i = table.sum(axis=1)
    if np.any(n_i < 2):
        raise ValueError("every item needs at least two labels")
    p_i = (table * (table - 1.0)).sum(axis=1) / (n_i * (n_i - 1.0))
    p_bar = float(p_i.mean())
    p_j = table.sum(axis=0) / n_i.sum()
    p_e = float((p_j ** 2).sum())
    if p_e >= 1.0 - 1e-12:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def cohen_kappa(labels_a: Sequence[str], labels_b: Sequence[str]) -> float:
    """Cohen's κ of two raters' labels on the same items (NaN when undefined: one category only)."""
    if len(labels_a) != len(labels_b) or not labels_a:
        raise ValueError("Cohen's kappa needs two equally long, non-empty label lists")
    if len(set(labels_a) | set(labels_b)) < 2:
        return math.nan
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(list(labels_a), list(labels_b)))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (NaNs when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Agreement:
    """Agreement of one group of items (a question type, or all)."""

    items: int  # items with at least two labels
    labels: int
    raters: int
    method: str | None  # "cohen", "fleiss", or None (no item with two labels)
    kappa: float | None
    observed: float | None  # mean share of agreeing rater pairs per item


def agreement(labels_by_item: Mapping[Any, Mapping[str, str]]) -> Agreement:
    """κ over items labelled by at least two raters. labels_by_item: item → {rater: label}."""
    multi = {k: v for k, v in labels_by_item.items() if len(v) >= 2}
    if not multi:
        return Agreement(0, 0, 0, None, None, None)
    raters = sorted({r for v in multi.values() for r in v})
    categories = sorted({lbl for v in multi.values() for lbl in v.values()})
    table = np.zeros((len(multi), len(categories)))
    index = {c: j for j, c in enumerate(categories)}
    for i, labels in enumerate(multi.values()):
        for lbl in labels.values():
            table[i, index[lbl]] += 1
    n_i = table.sum(axis=1)
    observed = float(((table * (table - 1)).sum(axis=1) / (n_i * (n_i - 1))).mean())
    if len(raters) == 2:
        a, b = raters
        kappa = cohen_kappa([v[a] for v in multi.values()], [v[b] for v in multi.values()])
        method = "cohen"
    else:
        kappa = fleiss_kappa(table)
        method = "fleiss"
    return Agreement(items=len(multi), labels=int(table.sum()), raters=len(raters), method=method,
                     kappa=None if math.isnan(kappa) else kappa, observed=observed)


@dataclass(frozen=True)
class Precision:
    """How often people agree with the generator's answer on one group of items."""

    judged: int  # items with a final verdict
    agree: int  # … whose right letter is the generator's
    rejected: int
    changed: int  # … whose right letter is another one
    text_edited: int  # … kept with edited question or option text
    precision: float | None
    ci: tuple[float, float] | None
    decisions: int  # individual non-flag decisions
    decisions_agree: int


@dataclass
class ReviewStats:
    """Everything the stats page shows, per question type and overall ("all")."""

    agreement: dict[str, Agreement] = field(default_factory=dict)
    precision: dict[str, Precision] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    reject_reasons: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    reviewers: dict[str, int] = field(default_factory=dict)  # name → decisions

    def to_json(self) -> dict[str, Any]:
        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and math.isnan(x) else x

        return {
            "agreement": {t: {k: clean(v) for k, v in a.__dict__.items()} for t, a in self.agreement.items()},
            "precision": {t: {k: (list(v) if isinstance(v, tuple) else clean(v)) for k, v in p.__dict__.items()}
                          for t, p in self.precision.items()},
            "statuses": {t: dict(c) for t, c in self.statuses.items()},
            "reject_reasons": dict(self.reject_reasons), "actions": dict(self.actions), "reviewers": self.reviewers,
        }


def compute_stats(engine: Any, *, min_reviewers: int = 1) -> ReviewStats:
    """Agreement, label precision and status counts of the whole review database."""
    from sqlalchemy import select

    from dsr.review.db import Decision, Item, Resolution, User, read_session
    from dsr.review.decisions import ItemText, item_outcome, label_of, status_of
    from dsr.review.store import verdict_of

    stats = ReviewStats()
    with read_session(engine) as session:
        items = {r.id: r for r in session.execute(select(Item.id, Item.type, Item.question, Item.options,
                                                          Item.answer))}
        names = dict(session.execute(select(User.id, User.name)).all())
        decisions: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        for row in session.scalars(select(Decision).order_by(Decision.id)):
            decisions[row.item_pk].append((names.get(row.user_id, str(row.user_id)), verdict_of(row)))
        resolutions = {row.item_pk: verdict_of(row) for row in session.scalars(select(Resolution))}

    labels: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    per_type: dict[str, dict[str, int]] = defaultdict(Counter)
    reviewer_counts: Counter[str] = Counter()
    for pk, item in items.items():
        text = ItemText(item.question, dict(item.options), item.answer)
        verdicts = decisions.get(pk, [])
        for who, verdict in verdicts:
            reviewer_counts[who] += 1
            stats.actions[verdict.action] += 1
            if verdict.action == "reject" and verdict.reason:
                stats.reject_reasons[verdict.reason] += 1
        item_labels = {who: lbl for who, v in verdicts if (lbl := label_of(v)) is not None}
        for group in (item.type, "all"):
            labels[group][pk] = item_labels
        outcome = item_outcome(text, [v for _, v in verdicts], resolutions.get(pk), min_reviewers=min_reviewers)
        for group in (item.type, "all"):
            stats.statuses.setdefault(group, Counter())[outcome.status] += 1
            counts = per_type[group]
            for _, v in verdicts:
                if (lbl := label_of(v)) is not None:
                    counts["decisions"] += 1
                    counts["decisions_agree"] += int(lbl == item.answer)
            if outcome.verdict is not None:
                counts["judged"] += 1
                final = label_of(outcome.verdict)
                if final == "reject":
                    counts["rejected"] += 1
                elif final == item.answer:
                    counts["agree"] += 1
                else:
                    counts["changed"] += 1
                if final not in (None, "reject") and status_of(outcome.verdict, text) == "edited" and (
                        outcome.verdict.question is not None or outcome.verdict.options is not None):
                    counts["text_edited"] += 1
    groups = [*sorted(t for t in labels if t != "all"), "all"]
    for group in groups:
        stats.agreement[group] = agreement(labels[group])
        c = per_type[group]
        judged, agree = c["judged"], c["agree"]
        stats.precision[group] = Precision(
            judged=judged, agree=agree, rejected=c["rejected"], changed=c["changed"], text_edited=c["text_edited"],
            precision=agree / judged if judged else None, ci=wilson_interval(agree, judged) if judged else None,
            decisions=c["decisions"], decisions_agree=c["decisions_agree"])
    stats.reviewers = dict(sorted(reviewer_counts.items()))
    return stats
