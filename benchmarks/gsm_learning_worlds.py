"""GSM learning check on rendered worlds, end to end through the real commands (CPU, a few minutes).

1. ``dsr world`` renders small MuJoCo worlds (one per seed) with exact ground-truth scene records;
2. ``dsr qa`` turns the records into template QAs as DSR-Train conversation JSON, split by world seed
   (train worlds / held-out worlds);
3. ``scripts/make_tiny_gsm_checkpoints.py`` saves tiny random Qwen2.5-VL + π³ checkpoints,
   ``dsr model assemble`` builds the GSM checkpoint and ``dsr train`` fine-tunes it under strategies ``gsm``
   and ``sft`` for the same number of steps;
4. the loss curves (PNG) and held-out accuracy (one greedy answer token through the eval backend's inputs)
   are compared with chance, the training-set majority letter and two text-only heuristics.

Usage: ``python benchmarks/gsm_learning_worlds.py [--out docs/bench-gsm-worlds] [--steps 200] [--work DIR]``.
Writes ``<out>.json`` (everything, per-step losses included) and ``<out>-loss.png``; prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LETTERS = ("A", "B", "C", "D")


def run_cli(args: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Run ``dsr ARGS`` (``python -m dsr.cli``) and return its wall time; a failure stops the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dsr.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"dsr {' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


# --- data: worlds → QAs -----------------------------------------------------------------------------------


def render_worlds(seeds: Sequence[int], root: Path, *, width: int, height: int, duration: float,
                  fps: float) -> list[Path]:
    """``dsr world`` once per seed; returns the record paths."""
    records = []
    for seed in seeds:
        out = root / f"world_{seed:03d}"
        run_cli(["world", "--seed", str(seed), "--out", str(out), "--duration", str(duration), "--fps", str(fps),
                 "--width", str(width), "--height", str(height), "--quiet"])
        records.append(out / "record.npz")
    return records


def generate_qas(records: Sequence[Path], out_json: Path, *, per_video: int, seed: int) -> list[dict[str, Any]]:
    """``dsr qa`` (template questions only, no stability scoring: the worlds' ground truth is exact)."""
    run_cli(["qa", *map(str, records), "--out", str(out_json), "--per-video", str(per_video), "--seed", str(seed),
             "--stability-k", "0", "--free-form-per-video", "0"])
    return json.loads(out_json.read_text())


def options_of(human: str) -> dict[str, str]:
    """The four option texts of a DSR-Train human turn (lines "A text" after "Options:")."""
    block = human.split("\nOptions:\n", 1)[1]
    return {line[0]: line[2:].strip() for line in block.splitlines() if line[:1] in LETTERS}


def answer_of(entry: dict[str, Any]) -> str:
    return next(t["value"] for t in entry["conversations"] if t["from"] == "gpt").strip()


def human_of(entry: dict[str, Any]) -> str:
    return next(t["value"] for t in entry["conversations"] if t["from"] == "human")


# --- text-only baselines (what a reader of the question text alone can score) -----------------------------


def pick_accuracy(scores: dict[str, float], correct: str) -> float:
    """Expected accuracy of choosing the best-scoring option, ties broken uniformly at random."""
    best = max(scores.values())
    tied = [k for k, v in scores.items() if v == best]
    return (correct in tied) / len(tied)


def baselines(train: list[dict[str, Any]], heldout: list[dict[str, Any]]) -> dict[str, Any]:
    """Chance, the training majority letter, "fewest answer segments" and a train answer-text prior."""
    letters = Counter(answer_of(e) for e in train)
    majority = letters.most_common(1)[0][0]
    as_correct: Counter[str] = Counter()
    as_option: Counter[str] = Counter()
    for e in train:
        opts = options_of(human_of(e))
        as_correct[opts[answer_of(e)]] += 1
        as_option.update(opts.values())
    fewest, prior = [], []
    for e in heldout:
        opts, ans = options_of(human_of(e)), answer_of(e)
        fewest.append(pick_accuracy({k: -v.count("(") for k, v in opts.items()}, ans))
        # P(correct | this exact option text) in train, Laplace-smoothed towards 1/4
        prior.append(pick_accuracy({k: (as_correct[v] + 0.25) / (as_option[v] + 1) for k, v in opts.items()}, ans))
    return {"chance": 0.25, "majority_letter": majority,
            "majority_letter_accuracy": statistics.mean(answer_of(e) == majority for e in heldout),
            "fewest_segments_accuracy": statistics.mean(fewest), "answer_text_prior_accuracy": statistics.mean(prior),
            "train_letter_counts": dict(sorted(letters.items())),
            "heldout_letter_counts": dict(sorted(Counter(answer_of(e) for e in heldout).items()))}


# --- model: checkpoints, training, evaluation -------------------------------------------------------------


def build_checkpoint(work: Path, num_queries: int) -> Path:
    """Tiny random Qwen2.5-VL + π³ (the repo script), assembled with ``dsr model assemble``."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiny_gsm_checkpoints.py"), str(work)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"make_tiny_gsm_checkpoints.py failed: {proc.stderr.strip()[-2000:]}")
    ckpt = work / "gsm"
    run_cli(["model", "assemble", "--qwen", str(work / "qwen2_5_vl_tiny"), "--pi3", str(work / "pi3_tiny"),
             "--out", str(ckpt), "--num-queries", str(num_queries), "--pi3-heads", "4"])
    return ckpt


def train_run(ckpt: Path, data: Path, out: Path, *, strategy: str, steps: int, lr: float, batch: int,
              num_frames: int, threads: int) -> dict[str, Any]:
    """``dsr train CONFIG`` with a tiny-model learning rate for every trainable group; returns its log."""
    config = {"model": str(ckpt), "data": str(data), "output_dir": str(out), "strategy": strategy,
              "num_frames": num_frames, "learning_rate": lr, "merger_lr": lr, "gsm_lr": lr,
              "per_device_train_batch_size": batch, "gradient_accumulation_steps": 1, "num_train_epochs": 1000,
              "max_steps": steps, "warmup_ratio": 0.05, "use_cpu": True, "save_steps": 100_000,
              "logging_steps": 1, "seed": 0}
    if out.exists():  # a fresh run: `dsr train` would resume from a checkpoint-* left in the folder
        shutil.rmtree(out)
    cfg_path = out.parent / f"train_{strategy}.json"
    cfg_path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TRANSFORMERS_VERBOSITY="error")
    wall = run_cli(["train", str(cfg_path)], env=env)
    log = json.loads((out / "train_log.json").read_text())
    log["wall_s"] = wall
    return log


def letter_ids(tokenizer: Any) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(x) for x in LETTERS]
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        sys.exit("the tokenizer has no single token per answer letter")
    return ids


def evaluate(checkpoint: Path, data: Path, *, num_frames: int, limit: int | None = None) -> dict[str, Any]:
    """Greedy first answer token of each QA (what ``dsr eval`` decodes first) through the eval backend's
    inputs: free accuracy (argmax over the vocabulary), accuracy among A–D, mean NLL of the correct letter."""
    import torch
    from rich.progress import Progress

    from dsr.gsm.data import read_train_json, sample_video
    from dsr.gsm.eval_backend import GSMBackend

    backend = GSMBackend(checkpoint, max_new_tokens=1, num_frames=num_frames)
    letters = letter_ids(backend.tokenizer)
    items = read_train_json(data, limit=limit)
    free, among, nll, chosen = [], [], [], Counter()
    with Progress(transient=True) as progress, torch.no_grad():
        task = progress.add_task(f"eval {checkpoint.name}", total=len(items))
        for item in items:
            frames, interval = sample_video(item.videos[0], num_frames, item.visible_until_s)
            batch = backend.inputs(frames, item.human, interval)
            logits = backend.model(**batch).logits[0, -1].float()
            target = LETTERS.index(item.answer.strip())
            log_p = torch.log_softmax(logits, -1)
            pick = int(torch.argmax(logits[letters]))
            free.append(int(torch.argmax(logits)) == letters[target])
            among.append(pick == target)
            nll.append(-float(log_p[letters[target]]))
            chosen[LETTERS[pick]] += 1
            progress.advance(task)
    return {"items": len(items), "accuracy": statistics.mean(free), "accuracy_among_letters": statistics.mean(among),
            "answer_nll": statistics.mean(nll), "chosen_letters": dict(sorted(chosen.items()))}


# --- report -----------------------------------------------------------------------------------------------


def curve_summary(losses: list[float]) -> dict[str, Any]:
    k = max(1, len(losses) // 10)
    return {"steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1],
            "mean_first_10pct": statistics.mean(losses[:k]), "mean_last_10pct": statistics.mean(losses[-k:])}


def plot(curves: dict[str, list[float]], floor: float, out_png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, losses), style in zip(curves.items(), ("-", "--", ":", "-."), strict=False):
        steps = np.arange(1, len(losses) + 1)
        ax.plot(steps, losses, lw=0.6, alpha=0.3)
        w = max(1, len(losses) // 30)
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, lw=1.8, ls=style, color=ax.lines[-1].get_color(),
                label=f"{name} (running mean of {w})")
    ax.axhline(floor, color="k", ls=":", lw=1, label=f"{floor:.3f}: answer format learnt, letter from train prior")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.1f"))
    ax.set_xlabel("step (batch of 8 QAs)")
    ax.set_ylabel("training loss (answer tokens)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def label_tokens_per_answer(ckpt: Path) -> int:
    """Supervised tokens per QA (answer letter + ``<|im_end|>`` + what the tokenizer makes of the newline)."""
    from dsr.gsm.assemble import load_tokenizer
    from dsr.gsm.processing import encode_conversation

    enc = encode_conversation(load_tokenizer(str(ckpt)), "<video>\nWhich ?", "A", [1], geometry_tokens=0)
    return sum(label != -100 for label in enc["labels"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/bench-gsm-worlds")
    ap.add_argument("--work", default=None, help="Working folder, kept (default: a temporary one, removed).")
    ap.add_argument("--train-seeds", default="1,2,3,4,5,6,7,8,9")
    ap.add_argument("--heldout-seeds", default="10,11,12")
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--per-video", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--num-queries", type=int, default=8)
    ap.add_argument("--strategies", default="gsm,sft")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared).")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gsm_worlds_"))
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(x) for x in args.size.split("x"))
    train_seeds = [int(s) for s in args.train_seeds.split(",")]
    heldout_seeds = [int(s) for s in args.heldout_seeds.split(",")]
    timings: dict[str, float] = {}

    def step(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        print(f"[{time.perf_counter() - t_start:6.1f}s] {name}: {timings[name]:.1f}s", file=sys.stderr)

    t0 = time.perf_counter()
    worlds = work / "worlds"
    train_records = render_worlds(train_seeds, worlds, width=width, height=height, duration=args.duration, fps=args.fps)
    heldout_records = render_worlds(heldout_seeds, worlds, width=width, height=height, duration=args.duration,
                                    fps=args.fps)
    step("render worlds", t0)
    t0 = time.perf_counter()
    train_json, heldout_json = worlds / "train.json", worlds / "heldout.json"
    train_qas = generate_qas(train_records, train_json, per_video=args.per_video, seed=0)
    heldout_qas = generate_qas(heldout_records, heldout_json, per_video=args.per_video, seed=1)
    step("generate QAs", t0)
    base = baselines(train_qas, heldout_qas)

    t0 = time.perf_counter()
    ckpt = build_checkpoint(work / "ckpt", args.num_queries)
    step("tiny checkpoints + assemble", t0)
    n_label = label_tokens_per_answer(ckpt)
    counts = np.array(list(base["train_letter_counts"].values()), dtype=float)
    letter_entropy = float(-(counts / counts.sum() * np.log(counts / counts.sum())).sum())
    floor = letter_entropy / n_label  # mean loss per supervised token with the format perfect, letter from prior

    runs: dict[str, Any] = {}
    strategies = [s for s in args.strategies.split(",") if s]
    for strategy in strategies:
        t0 = time.perf_counter()
        log = train_run(ckpt, train_json, work / f"run_{strategy}", strategy=strategy, steps=args.steps, lr=args.lr,
                        batch=args.batch, num_frames=args.num_frames, threads=args.threads)
        step(f"train {strategy}", t0)
        runs[strategy] = {"curve": curve_summary(log["losses"]), "losses": [round(x, 4) for x in log["losses"]],
                          "wall_s": round(log["wall_s"], 1), "skipped": log["skipped"],
                          "trainable_parameters": log["trainable_parameters"]}

    t0 = time.perf_counter()
    evals: dict[str, Any] = {"untrained": {"heldout": evaluate(ckpt, heldout_json, num_frames=args.num_frames)}}
    for strategy in strategies:
        path = work / f"run_{strategy}"
        evals[strategy] = {"heldout": evaluate(path, heldout_json, num_frames=args.num_frames),
                           "train_sample": evaluate(path, train_json, num_frames=args.num_frames,
                                                    limit=len(heldout_qas))}
    step("evaluate", t0)

    out = Path(args.out)
    png = out.with_name(out.name + "-loss.png")
    plot({s: r["losses"] for s, r in runs.items()}, floor, png,
         f"tiny Qwen2.5-VL(+GSM) on {len(train_qas)} QAs from {len(train_seeds)} rendered worlds (CPU)")
    summary: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared, loaded), {args.threads} torch thread(s)",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work")},
        "data": {"train_worlds": train_seeds, "heldout_worlds": heldout_seeds, "train_qas": len(train_qas),
                 "heldout_qas": len(heldout_qas),
                 "train_types": dict(sorted(Counter(e["id"].split("/")[1] for e in train_qas).items()))},
        "label_tokens_per_answer": n_label, "train_letter_entropy_nats": letter_entropy,
        "format_plus_letter_prior_loss": floor, "baselines_heldout": base, "runs": runs, "eval": evals,
        "timings_s": timings, "total_s": round(time.perf_counter() - t_start, 1), "png": str(png)}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    brief = dict(summary, runs={s: {k: v for k, v in r.items() if k != "losses"} for s, r in runs.items()})
    print(json.dumps(brief, indent=2))
    if not args.work:  # worlds, checkpoints and runs are only means to the numbers above
        shutil.rmtree(work, ignore_errors=True)
    if any(math.isnan(r["curve"]["last_loss"]) for r in runs.values()):
        sys.exit("training loss is NaN")


if __name__ == "__main__":
    main()
