"""Speed of ``dsr audit`` on large question sets (target: 50,000 items in a few minutes on 2 cores).

Builds a synthetic DSR-style set — 12 template types, "(k) State." answers from each type's own
vocabulary with a skewed gold distribution (so the probes have something to fit), questions naming
objects by bounding boxes, 25 questions per video — writes it as our JSONL, then times loading,
the audit (features, the five folds, bootstrap CIs) and the report, and prints the load average.

Usage: python benchmarks/audit_speed.py [--items 50000 10000] [--folds 5] [--report]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

VOCAB = {
    "dis": ["Keep nearly constant.", "Become larger.", "Become smaller.",
            "Keep nearly constant then become larger.", "Keep nearly constant then become smaller."],
    "spd": ["Keep nearly constant.", "Become larger.", "Become smaller.",
            "Keep nearly constant then become larger.", "Keep nearly constant then become smaller."],
    "spd_comp": ["The former is faster.", "Nearly the same.", "The latter is faster."],
    "dir": [f"{a}|{b}." for a in ("Front", "Behind") for b in ("Left", "Right", "Above", "Below")]
           + ["Front.", "Behind.", "Left.", "Right."],
    "ori": [f"{a}|{b}." for a in ("Front", "Behind") for b in ("Left", "Right")] + ["Left.", "Right."],
    "dir_pred": ["Front.", "Behind.", "Left.", "Right.", "Front|Left.", "Front|Right.", "Behind|Left."],
}
TYPES = [f"{v}_{b}" for v in ("abs", "rel") for b in ("dis", "dir", "ori", "spd", "spd_comp", "dir_pred")]
CLASSES = ["person", "ball", "car", "box", "dog"]


def _box(rng: random.Random) -> str:
    x, y = rng.randrange(0, 280), rng.randrange(0, 200)
    return f"[{x},{y},{x + rng.randrange(8, 60)},{y + rng.randrange(8, 60)}]"


def make_rows(n_items: int, seed: int = 0, per_video: int = 25) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for k in range(n_items):
        qtype = TYPES[k % len(TYPES)]
        base = qtype.split("_", 1)[1]
        vocab = VOCAB[base]
        single = base == "dir_pred"

        def answer(skew: bool, vocab: list[str] = vocab, single: bool = single) -> str:
            n = 1 if single else rng.choice([1, 1, 2, 2, 3, 4, 5])
            # the gold leans towards the first states of the vocabulary, distractors do not
            pick = (lambda: vocab[min(int(rng.expovariate(1.2)), len(vocab) - 1)]) if skew else \
                (lambda: rng.choice(vocab))
            return " ".join(f"({i + 1}) {pick()}" for i in range(n))

        gold = answer(True)
        options = [gold]
        while len(options) < 4:
            d = answer(False)
            if d not in options:
                options.append(d)
        rng.shuffle(options)
        letters = "ABCD"
        t0 = rng.uniform(0, 10)
        question = (f"Between {t0:.1f}s and {t0 + rng.uniform(3, 9):.1f}s, from the perspective of "
                    f"{rng.choice(['camera', 'person with bounding box coordinates ' + _box(rng)])}, how does "
                    f"the {base.replace('_', ' ')} of {rng.choice(CLASSES)} with initial bounding box coordinates "
                    f"{_box(rng)} change?")
        rows.append({"qa_id": f"v{k // per_video}/{k}", "video_id": f"v{k // per_video}", "type": qtype,
                     "question": question, "options": dict(zip(letters, options, strict=True)),
                     "answer": letters[options.index(gold)]})
    return rows


def main() -> None:
    from dsr.evaluate.audit import audit_items, load_question_sets
    from dsr.evaluate.audit_report import write_audit_report

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--report", action="store_true", help="also time the Markdown/HTML/CSV report")
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    print(f"{'items':>7} {'load s':>7} {'audit s':>8} {'report s':>9} {'items/s':>8} {'classifier':>10} {'load avg':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.items:
            path = Path(tmp) / f"set{n}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in make_rows(n)), encoding="utf-8")
            t0 = time.perf_counter()
            qs = load_question_sets([path])
            t1 = time.perf_counter()
            result = audit_items(qs.items, folds=args.folds)
            t2 = time.perf_counter()
            if args.report:
                write_audit_report(Path(tmp) / f"rep{n}", result, qs.items)
            t3 = time.perf_counter()
            acc = result.probes["text_classifier"].overall.value
            print(f"{n:>7} {t1 - t0:>7.1f} {t2 - t1:>8.1f} {(t3 - t2) if args.report else float('nan'):>9.1f} "
                  f"{n / (t3 - t0):>8.0f} {acc:>10.3f} {os.getloadavg()[0]:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
