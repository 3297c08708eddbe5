"""The paper's Table 5 in miniature on CPU: baseline / sft / addition / gsm × seeds, with controls.

Renders MuJoCo worlds, caches their frames and ground-truth geometry (the π³ stand-in), draws geometry-dependent
template questions (the default debiased generator: counterfactual options) and appearance-only questions,
trains every arm from the same starting weights with the same recipe, and scores held-out worlds by the
log-likelihood of each option (``answer_format``: the option's text by default, or its letter). See
``dsr.gsm.table5`` for the design and ``docs/bench-gsm.md`` for results.

Usage::

    MUJOCO_GL=egl nice -n 10 python benchmarks/gsm_table5.py                # full run (~150 + 30 worlds)
    MUJOCO_GL=egl python benchmarks/gsm_table5.py --smoke                    # a few minutes

Writes ``<out>/table5.json`` (every per-QA outcome) and ``<out>/table5.md`` (the tables below) and prints
them. Inputs are cached in ``--cache``; finished (arm, seed) runs in ``<out>`` are reused, so a killed run
resumes. Prints the load average beside every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def ci_text(est: tuple[float, float, float]) -> str:
    mean, lo, hi = est
    return f"{pct(mean)} [{pct(lo)}, {pct(hi)}]"


def cluster_mean(values: np.ndarray, worlds: Sequence[str], resamples: int = 2000) -> tuple[float, float, float]:
    """Mean and 95 % cluster-bootstrap CI (worlds resampled) of per-QA values."""
    from dsr.evaluate.stats import cluster_bootstrap

    values = np.asarray(values, dtype=float)
    if not len(values):
        return (float("nan"),) * 3
    micro, _, _ = cluster_bootstrap(values, list(worlds), resamples=resamples, seed=0)
    lo, hi = np.nanpercentile(micro, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


def step_progress(bar: object, task: object) -> object:
    """A Trainer callback that advances a rich progress task by one per optimizer step."""
    from transformers import TrainerCallback

    class _StepProgress(TrainerCallback):
        def on_step_end(self, *args: object, **kwargs: object) -> None:
            bar.advance(task)  # type: ignore[attr-defined]

    return _StepProgress()


def main() -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dsr.gsm.table5 import (
        APPEARANCE,
        ARMS,
        LETTERS,
        Table5Config,
        all_texts,
        build_data,
        build_tokenizer,
        option_classifier_accuracy,
        run_arm,
        text_prior_accuracy,
    )
    from dsr.gsm.tiny import unknown_tokens

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="a few-minute run (12 + 4 worlds, 40 steps)")
    ap.add_argument("--cache", type=Path, default=None, help="input cache (default out/gsm_table5[_smoke]/cache)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default out/gsm_table5[_smoke])")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a Table5Config field, e.g. --set train_worlds=60 (JSON values)")
    args = ap.parse_args()

    cfg = Table5Config.smoke() if args.smoke else Table5Config()
    if args.seeds:
        cfg = replace(cfg, seeds=tuple(args.seeds))
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    for item in args.overrides:
        key, _, value = item.partition("=")
        parsed = json.loads(value)
        cfg = replace(cfg, **{key: tuple(parsed) if isinstance(parsed, list) else parsed})
    out = args.out or Path("out") / ("gsm_table5_smoke" if args.smoke else "gsm_table5")
    cache = args.cache or out / "cache"
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    started = datetime.now(UTC)
    timings: dict[str, dict[str, float | str]] = {}

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("worlds", total=cfg.train_worlds + cfg.heldout_worlds)
        t0 = time.perf_counter()
        data = build_data(cfg, cache, progress=lambda _n, i, _t: bar.update(task, completed=i))
        timings["data"] = {"seconds": time.perf_counter() - t0, "load": load()}
        tok = build_tokenizer(data.train + data.heldout)
        unk = unknown_tokens(tok, all_texts(data.train + data.heldout))
        if unk:
            raise SystemExit(f"tokenizer leaves {unk} <unk> tokens: the questions are not covered")
        runs = [(arm, seed) for seed in cfg.seeds for arm in args.arms]
        task = bar.add_task("arms × seeds", total=len(runs))
        steps = bar.add_task("training steps", total=cfg.steps)
        results = {}
        for arm, seed in runs:
            t0 = time.perf_counter()
            bar.update(steps, completed=0, description=f"training {arm} seed {seed}")
            results[(arm, seed)] = run_arm(cfg, data, arm, seed, out, callbacks=[step_progress(bar, steps)])
            timings[f"{arm}-seed{seed}"] = {"seconds": time.perf_counter() - t0, "load": load(),
                                           "train_seconds": results[(arm, seed)].train_seconds,
                                           "eval_seconds": results[(arm, seed)].eval_seconds}
            bar.advance(task)

    held = data.heldout
    worlds = [q.world for q in held]
    types = [q.type for q in held]
    type_names = sorted(set(types), key=lambda t: (t == APPEARANCE, t))
    geo_mask = np.array([t != APPEARANCE for t in types])
    prior = text_prior_accuracy(data.train, held)
    allqa = data.train + held
    clf_all = option_classifier_accuracy(allqa)
    clf = clf_all[len(data.train):]
    letters = {L: sum(q.answer == L for q in held) for L in LETTERS}

    def row(name: str, correct: np.ndarray) -> dict:
        correct = np.asarray(correct, dtype=float)
        return {"name": name, "all": cluster_mean(correct, worlds),
                "geometry": cluster_mean(correct[geo_mask], [w for w, m in zip(worlds, geo_mask, strict=True) if m]),
                "types": {t: cluster_mean(correct[np.array(types) == t],
                                          [w for w, ty in zip(worlds, types, strict=True) if ty == t])
                          for t in type_names}}

    rows = [row("chance", np.full(len(held), 0.25)), row("text-only: text prior (fit on train)", prior),
            row("text-only: option classifier (5-fold by world)", clf)]
    per_seed = {}
    for arm in args.arms:
        conds = sorted({c for (a, _s), r in results.items() if a == arm for c in r.correct},
                       key=lambda c: (c != "main", c))
        for cond in conds:
            seeds = [s for s in cfg.seeds if (arm, s) in results]
            stacked = np.array([results[(arm, s)].correct[cond] for s in seeds], dtype=float)
            label = arm if cond == "main" else f"{arm}, {cond} geometry"
            r = row(f"{label} (mean of {len(seeds)} seeds)", stacked.mean(0))
            r["seeds"] = {s: float(np.mean(results[(arm, s)].correct[cond])) for s in seeds}
            r["seeds_geometry"] = {s: float(np.mean(np.array(results[(arm, s)].correct[cond])[geo_mask]))
                                   for s in seeds}
            rows.append(r)
            per_seed[label] = stacked

    def paired(a: str, b: str, mask: np.ndarray | None = None) -> tuple[float, float, float]:
        d = per_seed[b].mean(0) - per_seed[a].mean(0)
        m = np.ones(len(d), bool) if mask is None else mask
        return cluster_mean(d[m], [w for w, k in zip(worlds, m, strict=True) if k])

    comparisons = []
    for a, b in [("sft", "gsm"), ("sft", "addition"), ("addition", "gsm"), ("baseline", "sft"),
                 ("gsm, shuffled geometry", "gsm"), ("gsm, zeroed geometry", "gsm"),
                 ("addition, shuffled geometry", "addition"), ("addition, zeroed geometry", "addition")]:
        if a in per_seed and b in per_seed:
            comparisons.append({"a": a, "b": b, "all": paired(a, b), "geometry": paired(a, b, geo_mask),
                                "appearance": paired(a, b, ~geo_mask)})

    finished = datetime.now(UTC)
    summary = {
        "config": cfg.to_json(), "started": started.isoformat(), "finished": finished.isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_at_end": load()},
        "timings": timings, "data": {"train_qas": len(data.train), "heldout_qas": len(held),
                                     "train_worlds": cfg.train_worlds, "heldout_worlds": cfg.heldout_worlds,
                                     "heldout_per_type": {t: types.count(t) for t in type_names},
                                     "train_per_type": {t: sum(q.type == t for q in data.train) for t in type_names},
                                     "heldout_letters": letters, "vocab": len(tok), "unk_tokens": unk,
                                     "qa_failures": data.failures},
        "rows": rows, "comparisons": comparisons,
        "per_qa": {"qa_id": [q.qa_id for q in held], "type": types, "world": worlds,
                   "runs": {f"{a}-seed{s}": r.to_json() for (a, s), r in results.items()}},
    }
    (out / "table5.json").write_text(json.dumps(summary, default=str))
    md = render_markdown(summary, type_names, cfg)
    (out / "table5.md").write_text(md)
    console.print(md)


def render_markdown(summary: dict, type_names: list[str], cfg: object) -> str:
    lines = [f"Held-out: {summary['data']['heldout_qas']} QAs on {summary['data']['heldout_worlds']} worlds "
             f"({', '.join(f'{t} {n}' for t, n in summary['data']['heldout_per_type'].items())}); training: "
             f"{summary['data']['train_qas']} QAs on {summary['data']['train_worlds']} worlds. Scoring: "
             + ("log-likelihood of the letters A–D" if summary["config"]["answer_format"] == "letter" else
                "log-likelihood of each option's text as the reply (the best of four wins)")
             + ". Accuracy in %, 95 % cluster-bootstrap CI over worlds; arms averaged per QA over seeds.", ""]
    head = ["arm", "all", "geometry types", *type_names, "per seed (all)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        seeds = ", ".join(pct(v) for v in r.get("seeds", {}).values()) or "–"
        cells = [r["name"], ci_text(r["all"]), ci_text(r["geometry"]), *(ci_text(r["types"][t]) for t in type_names),
                 seeds]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (b − a, points; per-QA mean over seeds; 95 % cluster-bootstrap CI):", "",
              "| a | b | all | geometry types | appearance |", "|---|---|---|---|---|"]
    for c in summary["comparisons"]:
        lines.append(f"| {c['a']} | {c['b']} | {ci_text(c['all'])} | {ci_text(c['geometry'])} | "
                     f"{ci_text(c['appearance'])} |")
    widths = [c["all"][2] - c["all"][1] for c in summary["comparisons"] if c["a"] == "sft"]
    if widths:
        half = max(widths) / 2
        lines += ["", f"Paired CI half-width (arm vs sft, all questions): up to {100 * half:.1f} points, so a "
                  f"difference of about {100 * half * 2.8 / 1.96:.1f} points is detected with 80 % power at α = 0.05."]
    lines += ["", "Timings (s, load average 1/5/15 min at the end of each phase):", ""]
    for name, t in summary["timings"].items():
        lines.append(f"- {name}: {t['seconds']:.0f} s (load {t['load']})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
