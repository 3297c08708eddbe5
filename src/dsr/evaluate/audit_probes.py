"""Blind probes: how far a reader who sees only the text of a question set gets.

Every probe sees an item's question, option texts, letters and type, never the video. Fitted probes
are scored **out of fold**: the set's videos are split into K groups (``sklearn.model_selection.
GroupKFold``, shuffled with a fixed seed), each probe is fitted on K−1 groups and scored on the one
held out, so no video lends its questions to both sides.

Probes (:data:`PROBES`):

* ``letter_prior`` — the most frequent gold letter of the item's type in the fitting folds;
* ``text_prior`` — the option whose normalised text was most often correct in the fitting folds,
  rate ``(correct + 1) / (shown + 2)`` (the rule of ``dsr.evaluate.models.TextPriorModel``);
* ``fewest_segments`` — the option with the fewest "(k)" segments (no fitting);
* ``shortest_option`` — the option with the fewest characters (no fitting);
* ``text_classifier`` — a logistic regression over features of each option *in context* (below),
  fitted on K−1 folds; the option with the highest score is the pick, and the softmax of the
  item's option scores gives the held-out probability of the gold option.

Ties count fractionally: a probe whose best score is shared by ``m`` options, one of them gold, earns
``1/m`` — the expected accuracy of breaking the tie uniformly at random — so a probe never gains
from a fixed tie-break order (e.g. "first letter" on a letter-biased set).

Classifier features of option j of item i (all hashed into one sparse space, plus dense columns):

* the option's words and word bigrams, its "(k)" segments ("states"), first and last state and
  state transitions, character 3-grams of its opening; each also conjoined with the item's type;
* its letter, and its letter conjoined with the type (a letter prior);
* how it compares with the item's other options: rank of its length in characters, words and
  segments, whether it is the unique shortest/longest/fewest/most, its similarity to the others
  (the medoid and the odd one out), how many of its states no other option has, how many options
  share its first or last state — each conjoined with the type;
* overlap of its words with the question's words;
* the question's distinctive words (those in under half of the type's questions: object classes,
  observers) crossed with the option's states or words;
* out-of-fold target encodings: how often its text was correct (overall and within the type), how
  often its first state and its segment count were correct within the type — computed for fitting
  rows by an inner grouped K-fold, so a row never sees its own label.

Dense columns are standardised on the fitting rows and enter both globally and conjoined with the
type. The logistic regression (L2, ``C`` = :data:`CLASSIFIER_C`) treats each option as one binary
example (gold or not).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from dsr.evaluate.datasets import Item

PROBES: tuple[str, ...] = ("letter_prior", "text_prior", "fewest_segments", "shortest_option", "text_classifier")
RULE_PROBES: tuple[str, ...] = PROBES[:4]
CLASSIFIER = "text_classifier"
PROBE_LABELS: dict[str, str] = {
    "letter_prior": "letter prior", "text_prior": "text prior", "fewest_segments": "fewest segments",
    "shortest_option": "shortest option", "text_classifier": "k-fold text classifier",
}
DEFAULT_FOLDS = 5
CLASSIFIER_C = 0.5
HASH_FEATURES = 2 ** 20

_SEGMENT = re.compile(r"\(\d+\)")
_WORD = re.compile(r"[a-z]+")
_STOP = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "during", "for", "from",
    "how", "in", "is", "it", "its", "of", "on", "or", "the", "this", "that", "to", "was", "what",
    "which", "who", "with", "will", "would", "video",
])


# ---------------------------------------------------------------------------------------------- items


@dataclass(frozen=True)
class OptionTable:
    """The options of N items flattened into M rows, item by item in letter order.

    start: (N + 1,) int — rows of item i are ``start[i]:start[i+1]``; item: (M,) int — item of each row;
    pos: (M,) int — the row's place among its item's options; gold: (M,) bool; gold_pos: (N,) int.
    """

    start: np.ndarray
    item: np.ndarray
    pos: np.ndarray
    gold: np.ndarray
    gold_pos: np.ndarray
    letters: list[str]
    texts: list[str]

    @classmethod
    def of(cls, items: Sequence[Item]) -> OptionTable:
        sizes = np.array([len(it.options) for it in items], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(sizes)])
        letters = [k for it in items for k in it.options]
        texts = [v for it in items for v in it.options.values()]
        gold_pos = np.array([list(it.options).index(it.answer) for it in items], dtype=np.int64)
        item = np.repeat(np.arange(len(items)), sizes)
        pos = np.arange(len(texts)) - start[item]
        gold = pos == gold_pos[item]
        return cls(start, item, pos, gold, gold_pos, letters, texts)

    @property
    def n_options(self) -> np.ndarray:
        return np.diff(self.start)


def option_key(text: str) -> str:
    """The normalised text an option is counted under (case and spacing ignored)."""
    return " ".join(text.lower().split())


def segments(text: str) -> list[str]:
    """The "(k) State." segments of an option as normalised states; an unnumbered option is one segment."""
    parts = [p for p in _SEGMENT.split(text) if p.strip()] if _SEGMENT.search(text) else [text]
    return [option_key(p).rstrip(".").strip() for p in parts]


def segment_count(text: str) -> int:
    """Number of "(k)" markers (0 for an option without them)."""
    return len(_SEGMENT.findall(text))


def credit_of(scores: np.ndarray, table: OptionTable) -> tuple[np.ndarray, np.ndarray]:
    """Per item: expected correctness of picking the best-scoring option with ties broken uniformly,
    and the first best option's place. scores: (M,) float, higher is better (NaN = no opinion)."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    best = np.maximum.reduceat(s, table.start[:-1])
    tied = s >= best[table.item] - 1e-12 * np.maximum(1.0, np.abs(best[table.item]))
    n_tied = np.add.reduceat(tied.astype(float), table.start[:-1])
    gold_tied = np.add.reduceat((tied & table.gold).astype(float), table.start[:-1])
    first = np.full(len(best), -1, dtype=np.int64)
    rows = np.flatnonzero(tied)[::-1]
    first[table.item[rows]] = table.pos[rows]
    return gold_tied / n_tied, first


def softmax_gold(scores: np.ndarray, table: OptionTable) -> np.ndarray:
    """(N,) probability of the gold option under a softmax of each item's option scores."""
    best = np.maximum.reduceat(scores, table.start[:-1])
    e = np.exp(scores - best[table.item])
    return e[table.gold] / np.add.reduceat(e, table.start[:-1])


# ---------------------------------------------------------------------------------------------- folds


def group_folds(video_ids: Sequence[str], k: int, seed: int) -> np.ndarray:
    """(N,) fold of each item: K groups of whole videos (shuffled, seeded), ``-1`` if < 2 videos."""
    from sklearn.model_selection import GroupKFold

    vids = np.asarray(video_ids, dtype=object).astype(str)
    n_groups = len(set(vids))
    k = min(k, n_groups)
    folds = np.full(len(vids), -1, dtype=np.int64)
    if k < 2:
        return folds
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(vids)), groups=vids)):
        folds[test] = f
    return folds


def _codes(keys: Sequence[str]) -> np.ndarray:
    _, inverse = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def _rate(codes: np.ndarray, gold: np.ndarray, fit_rows: np.ndarray, at_rows: np.ndarray,
          prior: float, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed rate ``(correct + strength·prior)/(shown + strength)`` of each code, counted on
    ``fit_rows`` and read at ``at_rows``; also the count shown."""
    size = int(codes.max()) + 1 if len(codes) else 1
    shown = np.bincount(codes[fit_rows], minlength=size).astype(float)
    right = np.bincount(codes[fit_rows], weights=gold[fit_rows].astype(float), minlength=size)
    c = codes[at_rows]
    return (right[c] + strength * prior) / (shown[c] + strength), shown[c]


# ---------------------------------------------------------------------------------------------- rule probes


def rule_scores(table: OptionTable) -> dict[str, np.ndarray]:
    """(M,) option scores of the probes that need no fitting (higher = picked)."""
    chars = np.array([len(t.strip()) for t in table.texts], dtype=float)
    segs = np.array([segment_count(t) for t in table.texts], dtype=float)
    return {"fewest_segments": -segs, "shortest_option": -chars}


def letter_prior_scores(type_codes: np.ndarray, table: OptionTable, fit: np.ndarray,
                        test_rows: np.ndarray) -> np.ndarray:
    """Scores of the ``test_rows`` options: how often their letter was gold among the ``fit`` items of
    the same type (all fitting items when the type has none). type_codes: (N,) int."""
    letter_codes = _codes(table.letters)
    counts = np.zeros((int(type_codes.max()) + 1, int(letter_codes.max()) + 1))
    gold_rows = table.start[:-1][fit] + table.gold_pos[fit]
    np.add.at(counts, (type_codes[fit], letter_codes[gold_rows]), 1.0)
    overall = counts.sum(axis=0)
    t = type_codes[table.item[test_rows]]
    lc = letter_codes[test_rows]
    return np.where(counts.sum(axis=1)[t] > 0, counts[t, lc], overall[lc])


def text_prior_scores(table: OptionTable, text_codes: np.ndarray, fit: np.ndarray,
                      test_rows: np.ndarray) -> np.ndarray:
    """Scores of the ``test_rows`` options: (correct + 1)/(shown + 2) of their text in the ``fit`` items."""
    rate, _ = _rate(text_codes, table.gold, _rows_of(fit, table), test_rows, 0.5, 2.0)
    return rate


# ---------------------------------------------------------------------------------------------- features


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class _TextTokens:
    """Context-free tokens of one option text, computed once per distinct text."""

    tokens: tuple[str, ...]  # words, bigrams, states, transitions, char 3-grams
    typed: tuple[str, ...]  # the subset conjoined with the type
    units: tuple[str, ...]  # states (several segments) or words (one), crossed with question words
    words: frozenset[str]
    states: tuple[str, ...]


def _text_tokens(text: str) -> _TextTokens:
    words = _words(_SEGMENT.sub(" ", text))
    states = segments(text)
    toks = [f"w:{w}" for w in words] + [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    state_toks = [f"s:{s}" for s in states]
    toks += [*state_toks, f"s0:{states[0]}", f"sL:{states[-1]}"]
    toks += [f"ss:{a}>{b}" for a, b in itertools.pairwise(states)]
    head = option_key(text)[:24]
    toks += [f"c:{head[i:i + 3]}" for i in range(max(0, len(head) - 2))]
    typed = [f"w:{w}" for w in set(words)] + state_toks + [f"s0:{states[0]}", f"sL:{states[-1]}"]
    units = tuple(dict.fromkeys(states)) if len(states) > 1 else tuple(dict.fromkeys(words))[:8]
    return _TextTokens(tuple(toks), tuple(typed), units[:6], frozenset(words), tuple(states))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation of a few numbers (numpy's overhead dominates at n = 4)."""
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


def _rank(values: list[float]) -> list[int]:
    """Dense rank (0 = smallest) of each value among the item's options."""
    order = sorted(set(values))
    return [order.index(v) for v in values]


def _unique_extreme(values: list[float], v: float, lowest: bool) -> bool:
    target = min(values) if lowest else max(values)
    return v == target and values.count(target) == 1


def _similarity(a: tuple[str, ...], b: tuple[str, ...], wa: frozenset[str], wb: frozenset[str]) -> float:
    """Mean of word-set Jaccard and positional state agreement of two options."""
    jac = len(wa & wb) / max(1, len(wa | wb))
    pos = sum(x == y for x, y in zip(a, b, strict=False)) / max(len(a), len(b))
    return 0.5 * (jac + pos)


DENSE_NAMES = ("log_chars", "log_words", "segments", "chars_z", "segments_z", "mean_sim", "max_sim",
               "q_overlap", "own_states")


@dataclass(frozen=True)
class OptionFeatures:
    """Classifier inputs for every option row (see the module docstring).

    hashed: (M, HASH_FEATURES) CSR; dense: (M, len(DENSE_NAMES)); type_code: (M,) int;
    encode_keys: name → (M,) int codes for the out-of-fold target encodings.
    """

    hashed: sparse.csr_matrix
    dense: np.ndarray
    type_code: np.ndarray
    n_types: int
    encode_keys: dict[str, np.ndarray]


def option_features(items: Sequence[Item], table: OptionTable,
                    progress: Callable[[int], None] | None = None) -> OptionFeatures:
    """Build the classifier's features once for the whole set (row order of ``table``)."""
    from sklearn.feature_extraction import FeatureHasher

    cache: dict[str, _TextTokens] = {}
    types = [it.type for it in items]
    # question words in under half of the type's questions: the parts that vary (objects, observers)
    q_words = [frozenset(w for w in _words(it.question) if len(w) > 2 and w not in _STOP) for it in items]
    per_type_n = Counter(types)
    df: Counter[tuple[str, str]] = Counter()
    for t, ws in zip(types, q_words, strict=True):
        df.update((t, w) for w in ws)
    distinct_q = [sorted(w for w in ws if df[(t, w)] < 0.5 * per_type_n[t] or per_type_n[t] < 4)[:10]
                  for t, ws in zip(types, q_words, strict=True)]

    ctx_tokens: list[list[str]] = []
    text_keys: list[str] = []
    dense = np.zeros((len(table.texts), len(DENSE_NAMES)))
    enc_text, enc_type_text, enc_first, enc_segs = [], [], [], []
    for i, it in enumerate(items):
        t = it.type
        texts = list(it.options.values())
        toks = [cache.get(x) or cache.setdefault(x, _text_tokens(x)) for x in texts]
        chars = [float(len(x.strip())) for x in texts]
        nwords = [float(len(tk.words)) for tk in toks]
        segs = [float(segment_count(x)) for x in texts]
        n = len(texts)
        sims = np.zeros((n, n))
        for a in range(n):
            for b in range(a + 1, n):
                sims[a, b] = sims[b, a] = _similarity(toks[a].states, toks[b].states, toks[a].words, toks[b].words)
        mean_sim = sims.sum(axis=1) / max(1, n - 1)
        sim_rank = _rank([-float(s) for s in mean_sim])
        state_sets = [set(tk.states) for tk in toks]
        first_states = [tk.states[0] for tk in toks]
        last_states = [tk.states[-1] for tk in toks]
        c_rank, w_rank, s_rank = _rank(chars), _rank(nwords), _rank(segs)
        c_mean, c_sd = _mean_sd(chars)
        s_mean, s_sd = _mean_sd(segs)
        c_sd, s_sd = c_sd + 1.0, s_sd + 0.5
        qset = q_words[i]
        for j, (x, tk) in enumerate(zip(texts, toks, strict=True)):
            own = len(state_sets[j] - set().union(*(state_sets[:j] + state_sets[j + 1:]))) if n > 1 else 0
            rel = [f"lr:{c_rank[j]}", f"wr:{w_rank[j]}", f"sr:{s_rank[j]}", f"mr:{sim_rank[j]}",
                   f"sn:{min(int(segs[j]), 8)}", f"own:{min(own, 3)}",
                   f"f0:{first_states.count(first_states[j]) - 1}", f"fL:{last_states.count(last_states[j]) - 1}",
                   f"qo:{min(len(tk.words & qset), 3)}"]
            for name, vals, v, low in (("cmin", chars, chars[j], True), ("cmax", chars, chars[j], False),
                                       ("smin", segs, segs[j], True), ("smax", segs, segs[j], False),
                                       ("med", [-float(s) for s in mean_sim], -float(mean_sim[j]), True),
                                       ("odd", [-float(s) for s in mean_sim], -float(mean_sim[j]), False)):
                if _unique_extreme(vals, v, low):
                    rel.append(f"u:{name}")
            letter = table.letters[table.start[i] + j]
            ctx = [*rel, f"L:{letter}"]
            ctx_tokens.append([*ctx, *(f"{t}|{z}" for z in ctx), *(f"q:{q}|{u}" for q in distinct_q[i] for u in tk.units)])
            text_keys.append(f"{t}\x00{x}")
            dense[table.start[i] + j] = (
                np.log1p(chars[j]), np.log1p(nwords[j]), segs[j], (chars[j] - c_mean) / c_sd,
                (segs[j] - s_mean) / s_sd, mean_sim[j], sims[j].max() if n > 1 else 0.0,
                len(tk.words & qset) / max(1, len(tk.words)), float(own))
            key = option_key(x)
            enc_text.append(key)
            enc_type_text.append(f"{t}|{key}")
            enc_first.append(f"{t}|{tk.states[0]}")
            enc_segs.append(f"{t}|{int(segs[j])}")
        if progress is not None and (i % 256 == 255 or i == len(items) - 1):
            progress(i % 256 + 1)  # every 256 items: a bar update costs more than an item
    hasher = FeatureHasher(n_features=HASH_FEATURES, input_type="string", alternate_sign=False)
    context = hasher.transform(ctx_tokens).tocsr()
    context.data = np.minimum(context.data, 1.0)  # presence, not counts
    # text tokens depend only on (type, text): hash each distinct pair once
    uniq, inv = np.unique(np.asarray(text_keys, dtype=object).astype(str), return_inverse=True)
    per_text = []
    for key in uniq:
        t, x = key.split("\x00", 1)
        tk = cache[x]
        per_text.append([*tk.tokens, *(f"{t}|{z}" for z in tk.typed)])
    text = hasher.transform(per_text).tocsr()
    text.data = np.minimum(text.data, 1.0)
    blocks = [context, text[inv]]
    hashed = sparse.hstack(blocks, format="csr")
    type_code = _codes(types)[table.item]
    keys = {"text": _codes(enc_text), "type_text": _codes(enc_type_text), "type_first": _codes(enc_first),
            "type_segments": _codes(enc_segs)}
    return OptionFeatures(hashed, dense, type_code, int(type_code.max()) + 1 if len(type_code) else 1, keys)


def _encodings(feats: OptionFeatures, gold: np.ndarray, fit_rows: np.ndarray, at_rows: np.ndarray,
               inner: Sequence[tuple[np.ndarray, np.ndarray]] | None) -> np.ndarray:
    """Target-encoding columns (logit of rate, log count) for ``at_rows``; with ``inner`` folds the
    ``fit_rows`` themselves are encoded out of fold (``inner`` = (fit part, encoded part) pairs)."""
    prior = float(gold[fit_rows].mean()) if len(fit_rows) else 0.25
    cols = []
    for codes in feats.encode_keys.values():
        if inner is None:
            rate, shown = _rate(codes, gold, fit_rows, at_rows, prior, 2.0)
        else:
            rate = np.full(len(at_rows), prior)
            shown = np.zeros(len(at_rows))
            order = np.argsort(at_rows)
            for part_fit, part_at in inner:
                r, s = _rate(codes, gold, part_fit, part_at, prior, 2.0)
                idx = order[np.searchsorted(at_rows[order], part_at)]
                rate[idx], shown[idx] = r, s
        rate = np.clip(rate, 1e-3, 1 - 1e-3)
        cols += [np.log(rate / (1 - rate)), np.log1p(shown)]
    return np.column_stack(cols)


def _rows_of(items_idx: np.ndarray, table: OptionTable) -> np.ndarray:
    sizes = table.n_options[items_idx]
    starts = table.start[:-1][items_idx]
    return (np.repeat(starts - np.cumsum(np.concatenate([[0], sizes[:-1]])), sizes)
            + np.arange(int(sizes.sum()))).astype(np.int64)


def classifier_scores(feats: OptionFeatures, table: OptionTable, video_ids: np.ndarray, fit: np.ndarray,
                      test: np.ndarray, *, seed: int, inner_folds: int = 5, c: float = CLASSIFIER_C) -> np.ndarray:
    """Fit on the options of ``fit`` items, return the decision scores of the options of ``test`` items
    (in the row order of ``_rows_of(test)``)."""
    from sklearn.linear_model import LogisticRegression

    fit_rows, test_rows = _rows_of(fit, table), _rows_of(test, table)
    gold = table.gold
    inner_item_folds = group_folds(video_ids[fit], inner_folds, seed + 1)
    inner = None
    if inner_item_folds.max() >= 1:
        inner = []
        for f in range(int(inner_item_folds.max()) + 1):
            part_at = _rows_of(fit[inner_item_folds == f], table)
            part_fit = _rows_of(fit[inner_item_folds != f], table)
            inner.append((part_fit, part_at))
    enc_fit = _encodings(feats, gold, fit_rows, fit_rows, inner) if inner else \
        _encodings(feats, gold, fit_rows, fit_rows, None) * 0.0
    enc_test = _encodings(feats, gold, fit_rows, test_rows, None)
    dense_fit = np.hstack([feats.dense[fit_rows], enc_fit])
    dense_test = np.hstack([feats.dense[test_rows], enc_test])
    mu, sd = dense_fit.mean(axis=0), dense_fit.std(axis=0) + 1e-6
    # keep hashed columns seen in at least two fitting rows: a feature of one row can only memorise
    # its label, and the solver's cost grows with the number of columns
    hashed_fit = feats.hashed[fit_rows]
    keep = np.flatnonzero(np.bincount(hashed_fit.indices, minlength=hashed_fit.shape[1]) >= 2)

    def design(rows: np.ndarray, dense: np.ndarray) -> sparse.csr_matrix:
        z = (dense - mu) / sd
        d = z.shape[1]
        typed = sparse.csr_matrix(
            (z.ravel(), (np.repeat(np.arange(len(rows)), d),
                         (feats.type_code[rows][:, None] * d + np.arange(d)).ravel())),
            shape=(len(rows), feats.n_types * d))
        return sparse.hstack([feats.hashed[rows][:, keep], sparse.csr_matrix(z), typed], format="csr")

    y = gold[fit_rows]
    if y.all() or not y.any():
        return np.zeros(len(test_rows))
    model = LogisticRegression(C=c, solver="liblinear", tol=1e-2, max_iter=200, random_state=seed)
    model.fit(design(fit_rows, dense_fit), y)
    return model.decision_function(design(test_rows, dense_test))


# ---------------------------------------------------------------------------------------------- driver

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class ProbeRun:
    """Every probe's held-out result on N items.

    folds: (N,) int — the item's held-out fold (negative: not scored — fewer than two videos, or fit-only);
    credit: probe → (N,) float in [0, 1], expected correctness (ties fractional; NaN = not scored);
    pick: probe → (N,) int, place of the (first) option picked (-1 = none);
    p_gold: (N,) the classifier's held-out probability of the gold option (NaN = not scored).
    """

    folds: np.ndarray
    k: int
    credit: dict[str, np.ndarray]
    pick: dict[str, np.ndarray]
    p_gold: np.ndarray


def run_probes(items: Sequence[Item], *, folds: int = DEFAULT_FOLDS, seed: int = 0,
               progress: Progress | None = None, classifier_c: float = CLASSIFIER_C,
               fold_of: np.ndarray | None = None) -> ProbeRun:
    """Score every probe of :data:`PROBES` on ``items`` (each needs ≥ 2 options and a gold among them).

    fold_of: (N,) int, an explicit fold per item instead of the grouped K-fold; an item with a
    negative fold is only ever fitted on, never scored (its fitted probes' credit is NaN) — e.g. all
    of one set with fold -1 and another set with fold 0 scores the second set with probes fitted on
    the first.
    """
    table = OptionTable.of(items)
    n = len(items)
    video_ids = np.asarray([it.video_id for it in items], dtype=object).astype(str)
    type_codes = _codes([it.type for it in items]) if n else np.zeros(0, dtype=np.int64)
    if fold_of is None:
        fold_of = group_folds(video_ids, folds, seed) if n else np.zeros(0, dtype=np.int64)
    scored_folds = sorted(int(f) for f in set(fold_of.tolist()) if f >= 0)
    k = len(scored_folds) if len(scored_folds) >= 2 or (fold_of < 0).any() else 0
    credit: dict[str, np.ndarray] = {}
    pick: dict[str, np.ndarray] = {}
    for name, scores in rule_scores(table).items():
        credit[name], pick[name] = credit_of(scores, table)

    done = [0]

    def tick(phase: str, total: int) -> Callable[[int], None]:
        def step(m: int) -> None:
            done[0] += m
            if progress is not None:
                progress(phase, done[0], total)
        done[0] = 0
        return step

    feats = option_features(items, table, tick("features", n)) if k else None
    fitted = {"letter_prior": np.full(len(table.texts), np.nan), "text_prior": np.full(len(table.texts), np.nan),
              CLASSIFIER: np.full(len(table.texts), np.nan)}
    text_codes = feats.encode_keys["text"] if feats is not None else None
    step = tick("folds", k)
    for f in scored_folds if k else []:
        test = np.flatnonzero(fold_of == f)
        fit = np.flatnonzero(fold_of != f)
        rows = _rows_of(test, table)
        fitted["letter_prior"][rows] = letter_prior_scores(type_codes, table, fit, rows)
        fitted["text_prior"][rows] = text_prior_scores(table, text_codes, fit, rows)
        fitted[CLASSIFIER][rows] = classifier_scores(feats, table, video_ids, fit, test, seed=seed + f,
                                                     c=classifier_c)
        step(1)
    p_gold = np.full(n, np.nan)
    unscored = fold_of < 0 if k else np.ones(n, dtype=bool)
    for name, scores in fitted.items():
        credit[name], pick[name] = credit_of(scores, table)
        credit[name][unscored] = np.nan
        pick[name][unscored] = -1
    if k:
        p_gold = softmax_gold(np.nan_to_num(fitted[CLASSIFIER]), table)
        p_gold[unscored] = np.nan
    return ProbeRun(folds=fold_of, k=k, credit={p: credit[p] for p in PROBES},
                    pick={p: pick[p] for p in PROBES}, p_gold=p_gold)
