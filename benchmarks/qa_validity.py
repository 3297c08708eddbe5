"""Can a reader who sees only the text answer our questions? Blind probes on QAs from rendered worlds.

Renders worlds (cached in ``--work``), generates QAs with each preset (default: ``paper`` and the
default ``debiased``) at each ``--per-video`` budget, and scores blind probes that never see a video:

* rule probes — letter prior (the most frequent correct letter of the training folds, per type),
  text prior (per type, the option text most often correct in the training folds), fewest segments,
  shortest option, and the two opposites (most segments, longest option): a design that only moved
  the shortcut to the other end would show there;
* a k-fold text-only classifier: per option, features of the question and the option (word n-grams
  crossed with the question's words, segment counts and their ranks within the question, state
  counts, the option's similarity to the other three, how often its text was right in the training
  folds, the question's times, boxes and classes as numbers …), scored by a logistic regression and
  by gradient-boosted trees; the probe's answer is the option with the highest score, and we report
  the better of the two models (adversarially).

Every probe is fitted on k − 1 folds and scored on the held-out fold; folds are grouped by world, so
no world is in both. Ties in the rule probes give fractional credit (the expectation of a random
tie-break). Also: the correct letters' χ² test (overall and per type), each type's answer-class
entropy (bits) and distinct answers, and QAs per world.

Usage: MUJOCO_GL=egl python benchmarks/qa_validity.py [--seeds 2000-2011] [--per-video 10 100]
       [--presets paper debiased] [--work DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

LETTERS = "ABCD"
_SEG = re.compile(r"\(\d+\)\s*")
_BOX = re.compile(r"\[(\d+),(\d+),(\d+),(\d+)\]")
_TIME = re.compile(r"(\d+(?:\.\d+)?)s\b")
_WORD = re.compile(r"[a-z]+|\(\d+\)")
_CLASS_BEFORE_BOX = re.compile(r"([a-z_ ]+?) with (?:initial |final )?bounding box")
STATE_WORDS = ("front", "behind", "left", "right", "above", "below", "constant", "larger", "smaller", "former",
               "same", "latter")


@dataclass(frozen=True)
class Item:
    """One question as a blind reader sees it. answer: index 0–3 of the correct option."""

    group: str
    type: str
    question: str
    options: tuple[str, ...]
    answer: int


def segments(text: str) -> list[str]:
    """"(1) Front|Left. (2) Behind." → ["front|left", "behind"] (an unnumbered text is one segment)."""
    parts = [p.strip().rstrip(".").lower() for p in _SEG.split(text) if p.strip()]
    return parts or [text.strip().lower()]


def load_items(path: Path) -> list[Item]:
    items = []
    for line in path.read_text().splitlines():
        qa = json.loads(line)
        opts = tuple(qa["options"][x] for x in LETTERS)
        items.append(Item(group=qa["video_id"], type=qa["type"], question=qa["question"], options=opts,
                          answer=LETTERS.index(qa["answer"])))
    return items


def folds(items: Sequence[Item], k: int) -> list[np.ndarray]:
    """k groups of item indices, whole worlds per fold (largest first, greedy balance)."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([it.group for it in items])
    k = min(k, len(set(groups)))
    return [test for _, test in GroupKFold(n_splits=k).split(np.zeros(len(items)), groups=groups)]


# ------------------------------------------------------------------------------------------ rule probes


def _credit(scores: Sequence[float], answer: int) -> float:
    """1/ties if the answer is among the arg-max of ``scores``, else 0."""
    best = max(scores)
    winners = [i for i, s in enumerate(scores) if s == best]
    return 1.0 / len(winners) if answer in winners else 0.0


def rule_probes(items: Sequence[Item], test_folds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per item, the credit of each rule probe on its held-out fold."""
    n = len(items)
    out = {name: np.zeros(n) for name in ("letter_prior", "text_prior", "fewest_segments", "shortest_option",
                                          "most_segments", "longest_option")}
    for test in test_folds:
        train = np.setdiff1d(np.arange(n), test)
        letters: dict[str, Counter[int]] = defaultdict(Counter)
        shown: Counter[tuple[str, str]] = Counter()
        right: Counter[tuple[str, str]] = Counter()
        for i in train:
            it = items[i]
            letters[it.type][it.answer] += 1
            for j, o in enumerate(it.options):
                shown[(it.type, o)] += 1
                right[(it.type, o)] += j == it.answer
        for i in test:
            it = items[i]
            lc = letters.get(it.type, Counter())
            out["letter_prior"][i] = _credit([lc.get(j, 0) for j in range(4)], it.answer)
            rate = [(right[(it.type, o)] + 0.25) / (shown[(it.type, o)] + 1.0) for o in it.options]
            out["text_prior"][i] = _credit(rate, it.answer)
            nseg = [len(segments(o)) for o in it.options]
            nchar = [len(o) for o in it.options]
            out["fewest_segments"][i] = _credit([-x for x in nseg], it.answer)
            out["shortest_option"][i] = _credit([-x for x in nchar], it.answer)
            out["most_segments"][i] = _credit(nseg, it.answer)
            out["longest_option"][i] = _credit(nchar, it.answer)
    return out


# ------------------------------------------------------------------------------------------ classifier


def question_facts(q: str) -> dict[str, float]:
    """Numbers a text reader can take from a question: times, boxes, camera roles."""
    ql = q.lower()
    times = [float(t) for t in _TIME.findall(ql)]
    boxes = [tuple(int(v) for v in b) for b in _BOX.findall(ql)]
    f: dict[str, float] = {"n_times": len(times), "n_boxes": len(boxes)}
    if "between" in ql and len(times) >= 2:
        f["t_start"], f["t_end"] = times[0], times[1]
        f["duration"] = times[1] - times[0]
        if len(times) >= 3:
            f["t_view_minus_start"] = times[2] - times[0]
    elif times:
        f["t_view"] = times[0]
    f["observer_camera"] = float("perspective of camera" in ql)
    m = re.search(r"(distance between|direction of|orientation of|speed of|speed between|moving direction of) (.*)",
                  ql)
    tail = m.group(2) if m else ""
    f["target1_camera"] = float(tail.startswith("camera"))
    f["target2_camera"] = float(bool(re.search(r"(and|to) camera\b", tail)))
    for k, b in enumerate(boxes[:3]):
        x1, y1, x2, y2 = b
        f[f"box{k}_cx"], f[f"box{k}_cy"] = (x1 + x2) / 2, (y1 + y2) / 2
        f[f"box{k}_w"], f[f"box{k}_h"] = x2 - x1, y2 - y1
    if len(boxes) >= 2:
        (a1, b1, a2, b2), (c1, d1, c2, d2) = boxes[-2], boxes[-1]
        f["last_two_dx"] = (a1 + a2 - c1 - c2) / 2
        f["last_two_dy"] = (b1 + b2 - d1 - d2) / 2
    return f


def question_tokens(q: str) -> list[str]:
    ql = q.lower()
    words = [w for w in _WORD.findall(ql) if not w.startswith("(")]
    toks = [f"q:{w}" for w in words]
    toks += [f"q:{a}_{b}" for a, b in itertools.pairwise(words)]
    toks += [f"qcls:{c.strip().split()[-1]}" for c in _CLASS_BEFORE_BOX.findall(ql)]
    facts = question_facts(q)
    for name in ("duration", "t_start", "t_view_minus_start"):
        if name in facts:
            toks.append(f"q{name}:{int(facts[name])}")
    for k in range(3):
        if f"box{k}_cx" in facts:
            toks.append(f"qbox{k}x:{int(facts[f'box{k}_cx'] // 40)}")
            toks.append(f"qbox{k}y:{int(facts[f'box{k}_cy'] // 40)}")
    return toks


def option_tokens(o: str) -> list[str]:
    segs = segments(o)
    toks = [f"s:{s}" for s in segs] + [f"n:{len(segs)}", f"first:{segs[0]}", f"last:{segs[-1]}"]
    toks += [f"ss:{a}>{b}" for a, b in itertools.pairwise(segs)]
    toks += [f"w:{w}" for w in _WORD.findall(o.lower()) if not w.startswith("(")]
    return toks


def _similarity(a: list[str], b: list[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / max(1, len(sa | sb))


def option_numbers(it: Item, j: int) -> dict[str, float]:
    segs = [segments(o) for o in it.options]
    nseg = np.array([len(s) for s in segs], float)
    nchar = np.array([len(o) for o in it.options], float)
    mine = segs[j]
    others = [segs[k] for k in range(4) if k != j]
    f = {"nseg": nseg[j], "nchar": nchar[j],
         "nseg_rank": float((nseg < nseg[j]).sum() + 0.5 * ((nseg == nseg[j]).sum() - 1)),
         "nchar_rank": float((nchar < nchar[j]).sum() + 0.5 * ((nchar == nchar[j]).sum() - 1)),
         "nseg_minus_mean": nseg[j] - (nseg.sum() - nseg[j]) / 3,
         "nchar_minus_mean": nchar[j] - (nchar.sum() - nchar[j]) / 3,
         "sim_mean": float(np.mean([_similarity(mine, o) for o in others])),
         "sim_max": float(max(_similarity(mine, o) for o in others)),
         "share_first": float(sum(o[0] == mine[0] for o in others)),
         "share_last": float(sum(o[-1] == mine[-1] for o in others)),
         "prefix_of_other": float(any(o[:len(mine)] == mine for o in others if len(o) > len(mine))),
         "has_prefix_other": float(any(mine[:len(o)] == o for o in others if len(o) < len(mine))),
         "letter": float(j)}
    low = it.options[j].lower()
    for w in STATE_WORDS:
        f[f"count_{w}"] = float(low.count(w))
        f[f"in_question_{w}"] = float(w in it.question.lower() and w in low)
    return f


def classifier_probe(items: Sequence[Item], test_folds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per item, held-out credit of a logistic regression (hashed crossed n-grams) and of boosted trees
    (numbers + the training folds' text rates) that score each option; the probe picks the best option."""
    from scipy.sparse import hstack
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import LogisticRegression

    n = len(items)
    types = sorted({it.type for it in items})
    rows_tok, rows_num, y, owner = [], [], [], []
    qfacts = [question_facts(it.question) for it in items]
    fact_names = sorted({k for f in qfacts for k in f})
    for i, it in enumerate(items):
        qt = question_tokens(it.question)
        for j, o in enumerate(it.options):
            ot = option_tokens(o)
            toks = ot + [f"{it.type}|{t}" for t in ot]
            toks += [f"{a}|{b}" for a in qt for b in ot if not b.startswith("w:")]
            rows_tok.append(toks)
            num = option_numbers(it, j)
            num.update({f"q_{k}": qfacts[i].get(k, -1.0) for k in fact_names})
            num["type"] = float(types.index(it.type))
            rows_num.append(num)
            y.append(int(j == it.answer))
            owner.append(i)
    hasher = FeatureHasher(n_features=2**18, input_type="string", alternate_sign=False)
    x_tok = hasher.transform(rows_tok).tocsr()
    num_names = sorted(rows_num[0])
    x_num = np.array([[r.get(k, -1.0) for k in num_names] for r in rows_num])
    y_arr, owner_arr = np.array(y), np.array(owner)
    logit, trees = np.zeros(n), np.zeros(n)
    for test in test_folds:
        test_set = set(test.tolist())
        is_test = np.array([o in test_set for o in owner_arr])
        # the training folds' text rates (target encoding, fitted on the training folds only)
        shown: Counter[tuple[str, str]] = Counter()
        right: Counter[tuple[str, str]] = Counter()
        for r in np.flatnonzero(~is_test):
            it = items[owner_arr[r]]
            o = it.options[r % 4]
            shown[(it.type, o)] += 1
            right[(it.type, o)] += y_arr[r]
        rate = np.array([(right[(items[owner_arr[r]].type, items[owner_arr[r]].options[r % 4])] + 0.25)
                         / (shown[(items[owner_arr[r]].type, items[owner_arr[r]].options[r % 4])] + 1.0)
                         for r in range(len(y_arr))])
        seen = np.array([shown[(items[owner_arr[r]].type, items[owner_arr[r]].options[r % 4])]
                         for r in range(len(y_arr))], float)
        x_dense = np.column_stack([x_num, rate, np.log1p(seen)])
        lr = LogisticRegression(C=1.0, max_iter=2000)
        scale = x_dense.std(axis=0) + 1e-9
        x_lr = hstack([x_tok, (x_dense - x_dense.mean(axis=0)) / scale]).tocsr()
        lr.fit(x_lr[~is_test], y_arr[~is_test])
        gb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08, max_leaf_nodes=15,
                                            l2_regularization=1.0, random_state=0)
        gb.fit(x_dense[~is_test], y_arr[~is_test])
        p_lr = lr.predict_proba(x_lr[is_test])[:, 1]
        p_gb = gb.predict_proba(x_dense[is_test])[:, 1]
        rows = np.flatnonzero(is_test)
        for probs, target in ((p_lr, logit), (p_gb, trees)):
            by_item: dict[int, list[float]] = defaultdict(lambda: [0.0] * 4)
            for r, p in zip(rows, probs, strict=True):
                by_item[int(owner_arr[r])][r % 4] = float(p)
            for i, scores in by_item.items():
                target[i] = _credit(scores, items[i].answer)
    return {"classifier_logistic": logit, "classifier_trees": trees}


# ------------------------------------------------------------------------------------------ summaries


def chi2_p(counts: Sequence[int]) -> float | None:
    from scipy.stats import chisquare

    return float(chisquare(list(counts)).pvalue) if sum(counts) else None


def entropy_bits(counter: Counter[str]) -> float:
    total = sum(counter.values())
    return float(-sum(c / total * math.log2(c / total) for c in counter.values() if c)) if total else 0.0


def evaluate(items: Sequence[Item], k: int) -> dict:
    test_folds = folds(items, k)
    credits = rule_probes(items, test_folds) | classifier_probe(items, test_folds)
    # adversarial: per fold, the better of the two models on that fold's items
    best = np.zeros(len(items))
    for test in test_folds:
        a, b = credits["classifier_logistic"][test].mean(), credits["classifier_trees"][test].mean()
        best[test] = credits["classifier_logistic"][test] if a >= b else credits["classifier_trees"][test]
    credits["classifier"] = best
    types = sorted({it.type for it in items})
    per_type = {}
    for t in types:
        idx = np.array([i for i, it in enumerate(items) if it.type == t])
        answers = Counter(items[i].options[items[i].answer] for i in idx)
        nseg = Counter(str(len(segments(items[i].options[items[i].answer]))) for i in idx)
        letters = [sum(items[i].answer == j for i in idx) for j in range(4)]
        per_type[t] = {"n": len(idx), **{name: float(c[idx].mean()) for name, c in credits.items()},
                       "letters": letters, "letters_p": chi2_p(letters),
                       "answer_entropy_bits": entropy_bits(answers), "distinct_answers": len(answers),
                       "top_answer_share": answers.most_common(1)[0][1] / len(idx),
                       "segment_entropy_bits": entropy_bits(nseg)}
    letters = [sum(it.answer == j for it in items) for j in range(4)]
    per_world = Counter(it.group for it in items)
    overall = {"n": len(items), **{name: float(c.mean()) for name, c in credits.items()}, "letters": letters,
               "letters_p": chi2_p(letters), "worlds": len(per_world), "qas_per_world_min": min(per_world.values()),
               "qas_per_world_median": float(np.median(list(per_world.values())))}
    return {"overall": overall, "per_type": per_type}


PROBES = ("classifier", "letter_prior", "text_prior", "fewest_segments", "shortest_option", "most_segments",
          "longest_option")


def print_result(name: str, res: dict) -> None:
    o = res["overall"]
    print(f"\n## {name}: {o['n']} QAs from {o['worlds']} worlds (per world: min {o['qas_per_world_min']}, "
          f"median {o['qas_per_world_median']:g}); letters {o['letters']} χ² p={o['letters_p']:.3f}")
    head = ["type", "n", *PROBES, "H(ans) bits", "distinct", "top share", "letters p"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for t, r in {**res["per_type"], "overall": {**o, "answer_entropy_bits": math.nan, "distinct_answers": "",
                                                "top_answer_share": math.nan}}.items():
        cells = [t, str(r["n"]), *[f"{r[p]:.3f}" for p in PROBES], f"{r['answer_entropy_bits']:.2f}",
                 str(r["distinct_answers"]), f"{r['top_answer_share']:.2f}",
                 "" if r["letters_p"] is None else f"{r['letters_p']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    worst = max((r[p], t, p) for t, r in res["per_type"].items() for p in PROBES)
    print(f"worst per-type probe: {worst[2]} on {worst[1]} = {worst[0]:.3f}; "
          f"worst overall probe: {max(PROBES, key=lambda p: o[p])} = {max(o[p] for p in PROBES):.3f}")


def parse_seeds(spec: Sequence[str]) -> list[int]:
    out: list[int] = []
    for s in spec:
        if "-" in s:
            a, b = s.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", nargs="+", default=["2000-2011"], help="world seeds (ranges a-b allowed)")
    ap.add_argument("--duration", type=float, default=None, help="world length in s (default: the worlds' default)")
    ap.add_argument("--per-video", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--presets", nargs="+", default=["paper", "debiased"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--stability-k", type=int, default=None, help="override the preset's (default: keep it)")
    ap.add_argument("--work", type=Path, default=None, help="folder to cache rendered worlds (default: temporary)")
    ap.add_argument("--qas", type=Path, nargs="*", default=[], help="score these QA files (JSONL) instead")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    results: dict[str, dict] = {}
    if args.qas:
        for path in args.qas:
            res = evaluate(load_items(path), args.folds)
            print_result(str(path), res)
            results[str(path)] = res
    else:
        from dsr.qa.rules import make_config
        from dsr.qa.run import generate_files
        from dsr.world import WorldConfig, render_world

        seeds = parse_seeds(args.seeds)
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            records = []
            t0 = time.perf_counter()
            for s in seeds:
                folder = work / f"w{s}"
                if not (folder / "record.npz").exists():
                    cfg = WorldConfig(seed=s) if args.duration is None else WorldConfig(seed=s, duration_s=args.duration)
                    render_world(cfg, folder, progress=False)
                records.append(folder / "record.npz")
            length = "default length" if args.duration is None else f"{args.duration:g} s"
            print(f"{len(records)} worlds (seeds {seeds[0]}..{seeds[-1]}, {length}) ready in "
                  f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")
            for preset in args.presets:
                overrides = {} if args.stability_k is None else {"stability_k": args.stability_k}
                config = make_config(preset, **overrides)
                for per_video in args.per_video:
                    out = work / f"qas-{preset}-{per_video}.jsonl"
                    t1 = time.perf_counter()
                    generate_files(records, out, config, per_video=per_video, seed=0)
                    gen_s = time.perf_counter() - t1
                    res = evaluate(load_items(out), args.folds)
                    res["generation_s"] = gen_s
                    name = f"{preset}, --per-video {per_video}"
                    print_result(name, res)
                    print(f"generation: {gen_s:.1f} s")
                    results[name] = res
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
