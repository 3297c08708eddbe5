"""Blind-probe figures of question sets, as recorded in docs/audit.md.

For each file: items and videos, every probe's held-out accuracy with its 95% CI and its worst type,
the gold-letter χ² p-value, the lowest answer-class entropy, and the time taken (with the load
average). ``--prune`` also prunes each set and reports what it kept; ``--seeds`` re-audits with other
fold seeds to show how much the figures move with the split.

Usage: python benchmarks/audit_sets.py QAS... [--prune] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    from dsr.evaluate.audit import audit_items, load_question_sets, prune_items
    from dsr.evaluate.audit_probes import PROBE_LABELS
    from dsr.evaluate.datasets import TYPE_LABELS

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("qas", nargs="+", type=Path)
    ap.add_argument("--prune", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    for path in args.qas:
        qs = load_question_sets([path])
        for seed in args.seeds:
            t0 = time.perf_counter()
            r = audit_items(qs.items, seed=seed, problems=qs.problems)
            dt = time.perf_counter() - t0
            print(f"\n## {path} (seed {seed}): {r.n_items} items, {r.n_videos} videos, {len(r.types)} types, "
                  f"chance {100 * r.chance:.1f}%; {dt:.1f} s at load {os.getloadavg()[0]:.1f}")
            print("| probe | all [95% CI] | worst type |")
            print("|---|---|---|")
            for name, pr in r.probes.items():
                t = max(pr.per_type, key=lambda k, pr=pr: pr.per_type[k].value)
                print(f"| {PROBE_LABELS[name]} | {pr.overall.pct()} | {TYPE_LABELS.get(t, t)} {pr.per_type[t].pct()} |")
            low = min(r.types, key=lambda k: r.balance[k].normalized_entropy)
            b = r.balance[low]
            print(f"letters {r.letters.counts}, χ² p = {r.letters.p_value:.3g}; lowest answer entropy "
                  f"{TYPE_LABELS.get(low, low)} {b.normalized_entropy:.2f} ({b.classes} classes, top "
                  f"{100 * b.top_share:.0f}% '{b.top_class}'); problems {r.problems or 'none'}")
        if args.prune:
            t0 = time.perf_counter()
            pr_ = prune_items(qs.items, seed=args.seeds[0])
            dt = time.perf_counter() - t0
            after = {p: f"{100 * x.overall.value:.1f}" for p, x in pr_.after.probes.items()}
            print(f"prune: {'passed' if pr_.passed else 'NOT passed'}, kept {len(pr_.kept)} of "
                  f"{pr_.before.n_items} in {pr_.rounds} rounds ({dt:.0f} s); after: {after}; "
                  f"types kept: { {t: pr_.after.balance[t].n for t in pr_.after.types} }")


if __name__ == "__main__":
    main()
