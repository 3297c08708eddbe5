"""How far a blind, text-only control gets on our template QAs, with and without answer-pool distractors.

Renders small worlds, generates QAs from their ground-truth records (training worlds with seed 0,
held-out worlds with seed 1), fits the ``text-prior`` baseline (the option whose text was most often
correct) on the training QAs and scores it on the held-out ones, for several values of
``QAConfig.distractor_pool_prob`` (0 = the paper's random-sequence distractors). Chance is 0.25.

Usage: MUJOCO_GL=egl python benchmarks/qa_shortcut.py [--train 6] [--heldout 2] [--per-video 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    from dsr.evaluate.base import Request
    from dsr.evaluate.datasets import load_dataset
    from dsr.evaluate.models import TextPriorModel
    from dsr.evaluate.prompt import build_prompt
    from dsr.qa.rules import QAConfig
    from dsr.qa.run import generate_files
    from dsr.world import WorldConfig, render_world

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=int, default=6)
    ap.add_argument("--heldout", type=int, default=2)
    ap.add_argument("--per-video", type=int, default=50)
    ap.add_argument("--probs", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seeds = list(range(1, args.train + args.heldout + 1))
        records = [render_world(WorldConfig(seed=s, width=160, height=120, duration_s=4.0, fps=8.0),
                                work / f"w{s}", progress=False).record_path for s in seeds]
        train_records, test_records = records[:args.train], records[args.train:]
        print(f"{args.train} training and {args.heldout} held-out worlds (160x120, 4 s at 8 fps), "
              f"{args.per_video} QAs per world; chance 0.25")
        print(f"{'pool prob':>9}  {'train':>5}  {'held-out':>8}  {'text-prior':>10}  {'fewest segments':>15}")
        for prob in args.probs:
            cfg = QAConfig(distractor_pool_prob=prob, stability_k=0)
            train_file, test_file = work / f"train{prob}.jsonl", work / f"test{prob}.jsonl"
            generate_files(train_records, train_file, cfg, per_video=args.per_video, seed=0)
            generate_files(test_records, test_file, cfg, per_video=args.per_video, seed=1)
            train = load_dataset(train_file, check_videos=False).items
            test = load_dataset(test_file, check_videos=False).items
            model = TextPriorModel(fit_items=train, leave_one_out=False)
            hits = sum(model.generate(Request(item=i, prompt=build_prompt(i, (), ()))).text == i.answer for i in test)
            fewest = sum(min(i.letters, key=lambda k: (i.options[k].count("("), k)) == i.answer for i in test)
            print(f"{prob:>9.2f}  {len(train):>5}  {len(test):>8}  {hits / len(test):>10.3f}  {fewest / len(test):>15.3f}")


if __name__ == "__main__":
    main()
