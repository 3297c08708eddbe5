"""Validity audit of a multiple-choice question set: what can be answered without the video.

Offline, no model. Stable API::

    from dsr.evaluate.audit import audit_items, load_question_sets

    qs = load_question_sets(["qas.jsonl"])            # any format dsr.evaluate.datasets reads
    result = audit_items(qs.items, folds=5, seed=0)   # -> AuditResult
    result.probes["text_classifier"].overall.value    # held-out accuracy of the k-fold text probe
    result.probes["shortest_option"].per_type["abs_dis"]   # an Estimate (value, lo, hi, n, n_clusters)
    result.max_probe()                                # (probe, accuracy) of the best blind probe overall
    result.worst_type()                               # (probe, type, accuracy) of the best blind probe per type
    result.letters.p_value                            # χ² test of gold letters against uniform
    result.balance["abs_spd"].normalized_entropy      # answer-class entropy of a type, 0..1
    result.items[0].bias_score                        # per item: held-out probability of the gold option

The probes (letter prior, text prior, fewest segments, shortest option, a k-fold text-only
classifier) are defined in :mod:`dsr.evaluate.audit_probes`; fitted ones are scored out of fold,
with folds grouped by video. Accuracies carry 95% intervals from the cluster bootstrap over videos of
:mod:`dsr.evaluate.stats`. :func:`prune_items` greedily removes the most biased items until every
probe, re-fitted on what is left, is within a margin of chance. Reports (Markdown, HTML, CSV) are
written by :mod:`dsr.evaluate.audit_report`.

K (``folds``) defaults to 5: each fit sees 80% of the videos, which keeps the probe close to what it
would learn from the whole set, at five fits per audit; fewer videos than K lower K to the number of
videos, and a set on one video gets no fitted probe (reported as not scored).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsr.evaluate.audit_probes import (
    CLASSIFIER,
    DEFAULT_FOLDS,
    PROBES,
    Progress,
    option_key,
    run_probes,
    segment_count,
)
from dsr.evaluate.datasets import DatasetError, Finding, Item, detect_format, lint, load_dataset
from dsr.evaluate.stats import (
    DEFAULT_RESAMPLES,
    Estimate,
    _percentile_ci,
    chance_level,
    cluster_bootstrap,
    ordered_types,
)

__all__ = [
    "PROBES", "AuditResult", "ItemScore", "LetterTest", "LoadedSet", "ProbeResult", "PruneResult",
    "TypeBalance", "audit_items", "load_question_sets", "prune_items",
]


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ProbeResult:
    """One probe's held-out accuracy, overall and per type (95% cluster-bootstrap intervals)."""

    name: str
    overall: Estimate
    per_type: dict[str, Estimate]


@dataclass(frozen=True)
class TypeBalance:
    """How the gold answers of one type spread over answer classes (the gold option's normalised text).

    entropy_bits: Shannon entropy of the class shares; normalized_entropy: entropy / log2(classes)
    (1 = every class equally often, 0 = a single class); segments_entropy_bits: the same over the gold
    answers' "(k)" segment counts.
    """

    n: int
    classes: int
    top_class: str
    top_share: float
    entropy_bits: float
    normalized_entropy: float
    segments_entropy_bits: float
    letters: dict[str, int]
    letter_p: float


@dataclass(frozen=True)
class LetterTest:
    """Gold letters against the uniform share each item's option count implies (χ² goodness of fit)."""

    counts: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float


@dataclass(frozen=True)
class ItemScore:
    """One item's exposure to the probes.

    bias_score: the k-fold classifier's held-out probability of the gold option (chance ≈ 1/options;
    NaN when not scored); credit: probe → expected correctness (ties fractional); probes_right: probes
    whose credit exceeds 0.5.
    """

    item_id: str
    video_id: str
    type: str
    gold: str
    n_options: int
    bias_score: float
    credit: dict[str, float]
    probes_right: tuple[str, ...]

    @property
    def probe_fraction(self) -> float:
        return len(self.probes_right) / len(PROBES)


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit measured on one item set (see the module docstring)."""

    n_items: int
    n_videos: int
    types: list[str]
    chance: float
    chance_per_type: dict[str, float]
    folds: int
    seed: int
    resamples: int
    probes: dict[str, ProbeResult]
    letters: LetterTest
    balance: dict[str, TypeBalance]
    items: tuple[ItemScore, ...]
    problems: dict[str, int] = field(default_factory=dict)

    def max_probe(self) -> tuple[str, float]:
        """The blind probe with the highest overall accuracy, and that accuracy."""
        scored = [(p, r.overall.value) for p, r in self.probes.items() if np.isfinite(r.overall.value)]
        return max(scored, key=lambda x: x[1]) if scored else ("", float("nan"))

    def worst_type(self) -> tuple[str, str, float]:
        """(probe, type, accuracy) of the highest per-type accuracy of any probe."""
        cells = [(p, t, e.value) for p, r in self.probes.items() for t, e in r.per_type.items()
                 if np.isfinite(e.value)]
        return max(cells, key=lambda x: x[2]) if cells else ("", "", float("nan"))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (without the per-item table)."""

        def est(e: Estimate) -> dict[str, Any]:
            return {"value": _finite(e.value), "lo": _finite(e.lo), "hi": _finite(e.hi), "n": e.n,
                    "n_videos": e.n_clusters}

        return {
            "n_items": self.n_items, "n_videos": self.n_videos, "types": self.types, "chance": self.chance,
            "chance_per_type": self.chance_per_type, "folds": self.folds, "seed": self.seed,
            "resamples": self.resamples,
            "probes": {p: {"overall": est(r.overall), "per_type": {t: est(e) for t, e in r.per_type.items()}}
                       for p, r in self.probes.items()},
            "letters": {"counts": self.letters.counts, "expected": self.letters.expected,
                        "chi2": _finite(self.letters.chi2), "p_value": _finite(self.letters.p_value)},
            "balance": {t: {k: (_finite(v) if isinstance(v, float) else v) for k, v in vars(b).items()}
                        for t, b in self.balance.items()},
            "problems": self.problems,
        }


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


# ---------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedSet:
    """Items read from one or more question files, with what could not be used.

    origin: (file index, row index in that file) per item (row -1: the loader does not expose rows);
    files: (path, format) per file; problems: per-item problem code → count (items kept or dropped, as
    the code says: ``bad_row``, ``malformed_json``, ``answer_not_in_options``, ``duplicate_id`` drop the
    item; lint warnings such as ``duplicate_options`` keep it); examples: one message per code.
    """

    items: tuple[Item, ...]
    origin: tuple[tuple[int, int], ...]
    files: tuple[tuple[str, str], ...]
    problems: dict[str, int]
    examples: dict[str, str]


# formats read row by row here, so that a bad row is counted instead of failing the whole file
_ROW_FORMATS = ("qa_jsonl", "plain", "vlm4d")


def _tolerant_rows(path: Path, problems: Counter[str], examples: dict[str, str]) -> list[dict[str, Any] | None]:
    """Rows of a JSON list or JSON Lines file; a malformed line becomes None (counted)."""
    from dsr.evaluate.datasets import _read_records

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    if is_json_document(path, text):
        return list(_read_records(path))
    rows: list[dict[str, Any] | None] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row = None
            examples.setdefault("malformed_json", f"{path}: line {n}: {exc.msg}")
        if row is not None and not isinstance(row, dict):
            row = None
            examples.setdefault("malformed_json", f"{path}: line {n}: not a JSON object")
        if row is None:
            problems["malformed_json"] += 1
        rows.append(row)
    return rows


def is_json_document(path: Path, text: str) -> bool:
    """True for one JSON document (a list, or an object holding ``items``/``data``), False for JSON
    Lines — the rule of ``datasets._read_records``."""
    stripped = text.lstrip()
    return stripped.startswith("[") or (stripped.startswith("{") and path.suffix == ".json"
                                         and "\n{" not in stripped)


def _format_of(path: Path, format: str) -> str:
    if format != "auto":
        return format
    try:
        return detect_format(path)
    except DatasetError:
        if path.suffix in (".jsonl", ".json"):
            return "plain"  # malformed lines are counted row by row
        raise


def load_question_sets(paths: Sequence[str | Path], *, format: str = "auto") -> LoadedSet:
    """Read question files with the loaders of :mod:`dsr.evaluate.datasets`, counting bad rows.

    A file that cannot be read at all raises :class:`DatasetError` (one line). Rows of JSON formats
    that are malformed, lack a field or have an answer outside the options are counted and skipped;
    a repeated item id keeps its first row. Ids that clash between files get the file's stem as prefix.
    """
    from dsr.evaluate.datasets import _item_from_row

    items: list[Item] = []
    origin: list[tuple[int, int]] = []
    files: list[tuple[str, str]] = []
    problems: Counter[str] = Counter()
    examples: dict[str, str] = {}
    seen_ids: set[str] = set()
    for f_idx, raw in enumerate(paths):
        path = Path(raw)
        if not path.is_file():
            raise DatasetError(f"{path}: question file not found")
        fmt = _format_of(path, format)
        findings: list[Finding] = []
        file_items: list[tuple[Item, int]] = []
        if fmt in _ROW_FORMATS:
            for n, row in enumerate(_tolerant_rows(path, problems, examples)):
                if row is None:
                    continue
                try:
                    it = _item_from_row(row, n + 1, path, None, findings)
                except (DatasetError, TypeError, ValueError, AttributeError) as exc:
                    problems["bad_row"] += 1
                    examples.setdefault("bad_row", str(exc).splitlines()[0])
                    continue
                if it is not None:
                    file_items.append((it, n))
        else:
            ds = load_dataset(path, format=fmt, check_videos=False)
            findings = [f for f in ds.findings if f.item_id]
            file_items = [(it, -1) for it in ds.items]
        local: set[str] = set()
        kept: list[tuple[Item, int]] = []
        for it, n in file_items:
            if it.item_id in local:
                problems["duplicate_id"] += 1
                examples.setdefault("duplicate_id", f"{path}: item id {it.item_id!r} repeated; first kept")
                continue
            local.add(it.item_id)
            kept.append((it, n))
        if not kept:
            raise DatasetError(f"{path}: no usable items")
        for it, n in kept:
            if it.item_id in seen_ids:
                it = _with_id(it, f"{path.stem}:{it.item_id}")
            seen_ids.add(it.item_id)
            items.append(it)
            origin.append((f_idx, n))
        for fnd in [*findings, *lint([it for it, _ in kept], check_videos=False)]:
            if fnd.item_id:  # item-level findings only (the lint's file-level info lines are not problems)
                problems[fnd.code] += 1
                examples.setdefault(fnd.code, f"{fnd.item_id}: {fnd.message}")
        files.append((str(path), fmt))
    return LoadedSet(tuple(items), tuple(origin), tuple(files), dict(problems), examples)


def _with_id(item: Item, item_id: str) -> Item:
    import dataclasses

    return dataclasses.replace(item, item_id=item_id)


# ---------------------------------------------------------------------------------------------- audit


def _entropy_bits(counts: Sequence[int]) -> float:
    c = np.asarray([x for x in counts if x > 0], dtype=float)
    if not len(c):
        return float("nan")
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum() + 0.0)


def letter_test(items: Sequence[Item]) -> LetterTest:
    """χ² goodness of fit of the gold letters against uniform over each item's letters."""
    from scipy.stats import chisquare

    counts: Counter[str] = Counter(it.answer for it in items)
    expected: Counter[str] = Counter()
    for it in items:
        for k in it.options:
            expected[k] += 1.0 / len(it.options)
    letters = sorted(expected)
    obs = np.array([counts.get(k, 0) for k in letters], dtype=float)
    exp = np.array([expected[k] for k in letters], dtype=float)
    if len(letters) < 2 or obs.sum() < 1:
        chi2, p = float("nan"), float("nan")
    else:
        exp = exp * obs.sum() / exp.sum()
        res = chisquare(obs, exp)
        chi2, p = float(res.statistic), float(res.pvalue)
    return LetterTest({k: int(counts.get(k, 0)) for k in letters}, {k: float(expected[k]) for k in letters},
                      chi2, p)


def type_balance(items: Sequence[Item]) -> TypeBalance:
    classes = Counter(option_key(it.options[it.answer]) for it in items)
    segs = Counter(segment_count(it.options[it.answer]) for it in items)
    h = _entropy_bits(list(classes.values()))
    top, top_n = classes.most_common(1)[0]
    letters = letter_test(items)
    return TypeBalance(n=len(items), classes=len(classes), top_class=top, top_share=top_n / len(items),
                       entropy_bits=h, normalized_entropy=h / math.log2(len(classes)) if len(classes) > 1 else 0.0,
                       segments_entropy_bits=_entropy_bits(list(segs.values())), letters=letters.counts,
                       letter_p=letters.p_value)


def usable(items: Sequence[Item]) -> tuple[list[Item], dict[str, int]]:
    """Items a probe can score (≥ 2 options, gold among them), and the others counted by reason."""
    keep, dropped = [], Counter()
    for it in items:
        if len(it.options) < 2:
            dropped["too_few_options"] += 1
        elif it.answer not in it.options:
            dropped["answer_not_in_options"] += 1
        else:
            keep.append(it)
    return keep, dict(dropped)


def audit_items(items: Sequence[Item], *, folds: int = DEFAULT_FOLDS, seed: int = 0,
                resamples: int = DEFAULT_RESAMPLES, progress: Progress | None = None,
                problems: dict[str, int] | None = None) -> AuditResult:
    """Run every blind probe on ``items`` and measure letter and answer balance.

    folds: K of the grouped K-fold (by video); seed: fold assignment and bootstrap; resamples:
    bootstrap resamples for the intervals. Items with fewer than two options are left out and counted
    in ``problems``.
    """
    kept, dropped = usable(items)
    if not kept:
        raise DatasetError("no item has two or more options with the gold among them")
    run = run_probes(kept, folds=folds, seed=seed, progress=progress)
    vids = [it.video_id for it in kept]
    types = [it.type for it in kept]
    t_arr = np.asarray(types, dtype=object)
    v_arr = np.asarray(vids, dtype=object)
    order = ordered_types(types)
    n_videos = len(set(vids))
    n_opts = [len(it.options) for it in kept]
    probes: dict[str, ProbeResult] = {}
    for name in PROBES:
        values = run.credit[name]
        if not np.isfinite(values).all():
            nan = Estimate(float("nan"), float("nan"), float("nan"), 0, 0)
            probes[name] = ProbeResult(name, nan, {t: nan for t in order})
            continue
        micro, per, _ = cluster_bootstrap(values, vids, types, resamples=resamples, seed=seed)
        per_type = {}
        for t in order:
            mask = t_arr == t
            nv = len(set(v_arr[mask]))
            per_type[t] = Estimate(float(values[mask].mean()), *_percentile_ci(per[t], nv), int(mask.sum()), nv)
        probes[name] = ProbeResult(name, Estimate(float(values.mean()), *_percentile_ci(micro, n_videos),
                                                  len(values), n_videos), per_type)
    by_type: dict[str, list[Item]] = {}
    for it in kept:
        by_type.setdefault(it.type, []).append(it)
    scores = []
    for i, it in enumerate(kept):
        credit = {p: float(run.credit[p][i]) for p in PROBES}
        scores.append(ItemScore(item_id=it.item_id, video_id=it.video_id, type=it.type, gold=it.answer,
                                n_options=len(it.options), bias_score=float(run.p_gold[i]), credit=credit,
                                probes_right=tuple(p for p in PROBES if credit[p] > 0.5)))
    all_problems = Counter(problems or {})
    all_problems.update(dropped)
    return AuditResult(
        n_items=len(kept), n_videos=n_videos, types=order, chance=chance_level(n_opts),
        chance_per_type={t: chance_level([len(x.options) for x in by_type[t]]) for t in order},
        folds=run.k, seed=seed, resamples=resamples, probes=probes, letters=letter_test(kept),
        balance={t: type_balance(by_type[t]) for t in order}, items=tuple(scores), problems=dict(all_problems))


# ---------------------------------------------------------------------------------------------- prune


@dataclass(frozen=True)
class Removal:
    """One item the pruning removed: in which round, its bias score then, and the probes that had it."""

    item_id: str
    type: str
    round: int
    bias_score: float
    probes_right: tuple[str, ...]


@dataclass(frozen=True)
class PruneResult:
    """The kept items, what was removed and why, and the audit of the kept set (re-fitted)."""

    kept: tuple[Item, ...]
    removed: tuple[Removal, ...]
    before: AuditResult
    after: AuditResult
    rounds: int
    margin: float
    passed: bool


def _offending(result: AuditResult, margin: float) -> dict[str, float]:
    """Probes more than ``margin`` above chance overall → their excess over chance."""
    return {p: r.overall.value - result.chance for p, r in result.probes.items()
            if np.isfinite(r.overall.value) and r.overall.value - result.chance > margin}


def avoid_reader(accuracy: float, chance: float) -> float:
    """Accuracy of a reader who avoids a probe's pick and guesses among the other options:
    (1 − a)/(n − 1) for n options, written with chance c = 1/n as (1 − a)·c/(1 − c)."""
    return (1.0 - accuracy) * chance / (1.0 - chance) if chance < 1 else float("nan")


def _avoidable(result: AuditResult, margin: float) -> dict[str, float]:
    """Probes so far *below* chance that avoiding their pick beats chance by more than ``margin``."""
    return {p: avoid_reader(r.overall.value, result.chance) - result.chance for p, r in result.probes.items()
            if np.isfinite(r.overall.value) and avoid_reader(r.overall.value, result.chance) - result.chance > margin}


def prune_items(items: Sequence[Item], *, margin: float = 0.03, folds: int = DEFAULT_FOLDS, seed: int = 0,
                resamples: int = 500, max_rounds: int = 60, restore_trials: int = 12, step: float = 0.25,
                progress: Progress | None = None, before: AuditResult | None = None) -> PruneResult:
    """Greedily drop the most biased items until no probe, re-fitted on what is left, scores more
    than ``margin`` above chance overall; then put back the least biased of the dropped items while
    that still holds.

    **Removal.** Each round audits the current set and looks only at the *offending* probes (more than
    ``margin`` above chance): removing items that a probe already at chance gets right would only
    teach the next fit the opposite shortcut. It estimates how many items the worst excess needs
    removed if they were all items that probe gets right (``n·(excess − margin)/(1 − chance −
    margin)``), takes ``step`` of that (at least one), shares the removals among types in proportion
    to each type's excess items (``n_t·max(0, worst offending probe on t − chance_t − margin)``), so
    unbiased types keep their items, and removes within a type the items the offending probes rely
    on most (the sum of their credit on the item; the classifier counts with its held-out probability
    of the gold option). Rounds use fresh folds (seed + round), so the removals do not fit one split;
    a set that passes is re-checked with ``seed``, the verdict's folds.

    **Restoring.** To keep as many items as possible, dropped items then go back in batches, least
    biased first (by their score in the first audit); a batch stays only if no probe offends, a refused
    batch is halved, for at most ``restore_trials`` audits.

    **Verdict.** ``passed``: no reader that uses a probe beats chance by more than ``margin`` — neither
    one that takes the probe's pick (accuracy a ≤ chance + margin) nor one that avoids it and guesses
    among the other options (:func:`avoid_reader`, (1 − a)/(n − 1) ≤ chance + margin; for four
    options a ≥ 16% at a 3-point margin). Greedy removal keeps what the probes got wrong, so a re-fitted
    probe can end *below* chance (measured in ``docs/audit.md``); far enough below, that is a shortcut
    too, and the set does not pass.

    Stops when fewer than 2 videos or 8 items are left, or after ``max_rounds`` removal rounds.
    """
    order = {it.item_id: k for k, it in enumerate(items)}
    by_id = {it.item_id: it for it in items}
    current = list(usable(items)[0])
    first = before or audit_items(current, folds=folds, seed=seed, resamples=resamples)
    result = first
    removed: list[Removal] = []
    rounds = 0
    while rounds < max_rounds:
        offending = _offending(result, margin)
        under = {} if offending else _avoidable(result, margin)
        if not offending and not under:
            if result.seed == seed:
                break
            result = audit_items(current, folds=folds, seed=seed, resamples=resamples)
            continue
        if len(current) < 8 or result.n_videos < 2:
            break
        rounds += 1
        n = len(current)
        c = result.chance
        if offending:
            need = n * (max(offending.values()) - margin) / max(1e-6, 1.0 - c - margin)
        else:  # remove items the below-chance probes get wrong, until avoiding them is no shortcut
            floor = 1.0 - (c + margin) * (1.0 - c) / c  # the accuracy at which avoid_reader = c + margin
            lowest = min(result.probes[p].overall.value for p in under)
            need = n * max(0.0, 1.0 - lowest / max(1e-6, floor))
        budget = max(1, math.ceil(step * need))
        weights = {}
        for t in result.types:
            ct = result.chance_per_type[t]
            if offending:
                worst = max(result.probes[p].per_type[t].value for p in offending) - ct
            else:
                worst = max(avoid_reader(result.probes[p].per_type[t].value, ct) for p in under) - ct
            weights[t] = result.balance[t].n * max(0.0, worst - margin)
        total_w = sum(weights.values())
        if total_w <= 0:  # no single type offends, only their sum: share by size
            weights = {t: float(result.balance[t].n) for t in result.types}
            total_w = float(sum(weights.values()))
        quota = {t: round(budget * w / total_w) for t, w in weights.items()}
        if sum(quota.values()) == 0:
            quota[max(weights, key=lambda t: weights[t])] = 1

        def reliance(s: ItemScore, offending: dict[str, float] = offending, under: dict[str, float] = under
                     ) -> float:
            if offending:  # what the probes above chance get right
                return sum(_nan0(s.bias_score) if p == CLASSIFIER else s.credit[p] for p in offending)
            # what the probes below chance get wrong
            return sum(1.0 - (_nan0(s.bias_score) if p == CLASSIFIER else s.credit[p]) for p in under)

        drop: set[str] = set()
        for t, q in quota.items():
            cands = sorted((s for s in result.items if s.type == t), key=lambda s: (-reliance(s), s.item_id))
            for s in cands[:q]:
                drop.add(s.item_id)
                why = tuple(p for p in s.probes_right if p in offending) if offending else \
                    tuple(f"avoid:{p}" for p in under if p not in s.probes_right)
                removed.append(Removal(s.item_id, t, rounds, s.bias_score, why))
        current = [it for it in current if it.item_id not in drop]
        if progress is not None:
            progress("prune", rounds, max_rounds)
        if len(current) < 2:
            break
        result = audit_items(current, folds=folds, seed=seed + rounds, resamples=resamples)
    if (not _offending(result, margin) and not _avoidable(result, margin) and result.n_videos >= 2
            and result.seed == seed and removed):
        # put back the least biased dropped items (by the first audit) while nothing offends
        first_bias = {s.item_id: _nan0(s.bias_score) + s.probe_fraction for s in first.items}
        pool = sorted((by_id[r.item_id] for r in removed), key=lambda it: (first_bias.get(it.item_id, 0.0),
                                                                           it.item_id))
        batch = max(1, len(current) // 10)
        for trial in range(restore_trials):
            if not pool or batch < 1:
                break
            back = {it.item_id for it in pool[:batch]}
            candidate = sorted([*current, *pool[:batch]], key=lambda it: order[it.item_id])
            trial_result = audit_items(candidate, folds=folds, seed=seed, resamples=resamples)
            if progress is not None:
                progress("restore", trial + 1, restore_trials)
            if _offending(trial_result, margin) or _avoidable(trial_result, margin):
                batch //= 2
                continue
            current, result, pool = candidate, trial_result, pool[batch:]
            removed = [r for r in removed if r.item_id not in back]
    passed = (not _offending(result, margin) and not _avoidable(result, margin) and result.n_videos >= 2
              and result.seed == seed and bool(np.isfinite(result.probes[CLASSIFIER].overall.value)))
    return PruneResult(tuple(current), tuple(removed), first, result, rounds, margin, passed)


def _nan0(v: float) -> float:
    return 0.0 if not np.isfinite(v) else float(v)
