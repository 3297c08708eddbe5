"""Do rendered worlds produce every answer class? Answer distributions of uniform random queries.

Renders worlds (or reuses them in ``--out``), then draws random structured queries on each
ground-truth record with the public QA API (``Query``, ``answer``, ``QAConfig``) and prints, per
question type: how many answers, the distribution of answer texts (classes), the top class's share,
the normalised entropy H / log(K) (K = classes seen), the share of single-segment "constant" /
"same" answers, the rule states seen across all segments, and the segment-count histogram.

The queries are *uniform*, not balanced: type, observer, targets, interval and t_v are drawn the
way the paper's sampler draws them (dsr-paper §7.4: camera in the first target slot with p = 0.5,
an interval of >= 4 of the 32 uniformly sampled frames, truncated where a target leaves the view),
so the figures measure the raw variety of the worlds, before any answer balancing by ``dsr qa``.

Usage: MUJOCO_GL=egl python benchmarks/world_dynamics.py --seeds 100-115 [--duration 24] [--json out.json]
       python benchmarks/world_dynamics.py --compare before.json after.json   (a before/after table)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

MAGNITUDE_STATES = ("constant", "constant_larger", "constant_smaller", "larger", "smaller")
COMPARISON_STATES = ("former", "same", "latter")
SINGLE_CONSTANT = ("(1) Keep nearly constant.", "(1) Nearly the same.")
MIN_GAP = 4  # sampled-frame gap of an interval (QAConfig.min_gap)
MIN_FRAMES = 4  # frames left after truncation; speed types need this many steps


def parse_seeds(text: str) -> list[int]:
    """"0-3,7" → [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        seeds += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return seeds


@dataclass(frozen=True)
class Facts:
    """What the sampler needs to know about a question type."""

    key: str
    rule: str
    num_targets: int
    absolute: bool
    prediction: bool
    per_step: bool
    agent_targets: bool
    observer_not_target: bool


def type_facts() -> dict[str, Facts]:
    """The facts of every type, from ``dsr.qa.question_types`` (or, on generator-1 checkouts that
    predate that table, from ``dsr.qa.query``), so that one script measures the before and the after."""
    try:
        from dsr.qa.question_types import TYPES
    except ImportError:  # the code before the table: a "before" run on an old checkout
        from dsr.qa import query as old

        facts = {}
        for key in old.QUESTION_TYPES:
            view, base = old.split_type(key)
            facts[key] = Facts(key, old.RULE_KIND[base], old.NUM_TARGETS[base], view == "absolute",
                               base == "dir_pred", base in ("spd", "spd_comp"), base == "ori" or key == "abs_spd",
                               view == "relative" and base in ("ori", "spd", "spd_comp", "dir_pred"))
        return facts
    return {key: Facts(key, t.rule, t.num_targets, t.is_absolute, t.is_prediction, t.per_step, t.agent_targets,
                       t.observer_not_target) for key, t in TYPES.items()}


def sample_query(record: Any, facts: Facts, frames32: list[int], agents: list[str], objects: list[str],
                 rng: random.Random) -> Any:
    """One uniform random query of a type, or a short failure reason (str)."""
    from dsr.qa.query import Query

    usable, last_visible, future = frames32[:-2], frames32[-3], frames32[-1]
    observer = "camera" if (not agents or rng.random() < 0.5) else rng.choice(agents)
    pool = list(agents) if facts.agent_targets else list(objects)
    camera_ok = True
    if not facts.absolute and facts.observer_not_target:
        pool = [p for p in pool if p != observer]  # its own speed/orientation in its own frame is constant
        camera_ok = observer != "camera"
    n = facts.num_targets
    slots: list[str | None] = [None] * n
    if camera_ok and rng.random() < 0.5:
        slots[0] = "camera"
    elif camera_ok and n == 2 and rng.random() < 0.5:
        slots[1] = "camera"
    need = sum(s is None for s in slots)
    if len(pool) < need:
        return "too_few_objects"
    picks = iter(rng.sample(pool, need))
    targets = tuple(s if s is not None else next(picks) for s in slots)
    if facts.prediction:
        frames = [last_visible, future]
    else:
        while True:
            i, j = sorted(rng.sample(range(len(usable)), 2))
            if j - i >= MIN_GAP:
                frames = usable[i:j + 1]
                break
    watched = [w for w in targets if w != "camera"]
    if not facts.absolute and observer != "camera":
        watched.append(observer)
    keep = len(frames)
    for k, t in enumerate(frames):
        if not all(record.object(w).visible[t] for w in watched):
            keep = k
            break
    need_frames = 2 if facts.prediction else MIN_FRAMES + int(facts.per_step)
    if keep < need_frames:
        return "not_visible"
    t_v = None
    if facts.absolute:
        t_v = rng.choice(usable)
        if observer != "camera" and not record.object(observer).visible[t_v]:
            return "observer_not_visible"
    return Query(type=facts.key, observer=observer, targets=targets, frames=tuple(frames[:keep]), t_v=t_v)


def entropy(counts: Counter[str], k: int | None = None) -> float:
    """Normalised entropy H / log(K), K = ``k`` or the number of classes with a count (0 if K < 2)."""
    total = sum(counts.values())
    k = k if k is not None else sum(1 for c in counts.values() if c)
    if total == 0 or k < 2:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts.values() if c)
    return h / math.log(k)


def world_stats(record: Any, queries_per_type: int, seed: int, camera_motion: str = "?") -> dict[str, Any]:
    """Per type: answer texts, states and segment counts of ``queries_per_type`` random queries."""
    import numpy as np

    from dsr.errors import DsrError
    from dsr.qa.query import Geometry, answer
    from dsr.qa.rules import QAConfig
    from dsr.video import uniform_indices

    config = QAConfig()
    geom = Geometry.from_record(record, config)
    frames32 = [int(f) for f in uniform_indices(record.num_frames, config.num_frames)]
    agents = [o.object_id for o in record.objects if o.is_agent and o.orientation is not None]
    objects = [o.object_id for o in record.objects]
    rng = random.Random(f"world-dynamics/{seed}")
    out: dict[str, Any] = {}
    for qtype, facts in type_facts().items():
        texts: Counter[str] = Counter()
        states: Counter[str] = Counter()
        segments: Counter[int] = Counter()
        failures: Counter[str] = Counter()
        for _ in range(queries_per_type):
            query = sample_query(record, facts, frames32, agents, objects, rng)
            if isinstance(query, str):
                failures[query] += 1
                continue
            try:
                ans = answer(geom, query, config)
            except DsrError as exc:
                failures[getattr(exc, "reason", "error")] += 1
                continue
            texts[ans.text] += 1
            states.update(ans.states)
            segments[ans.num_segments] += 1
        out[qtype] = {"texts": dict(texts), "states": dict(states), "segments": dict(segments),
                      "failures": dict(failures), "rule": facts.rule}
    vis = np.array([o.visible[frames32] for o in record.objects])
    sides = np.array([np.minimum(o.boxes_xyxy[frames32, 2] - o.boxes_xyxy[frames32, 0],
                                 o.boxes_xyxy[frames32, 3] - o.boxes_xyxy[frames32, 1]) for o in record.objects])
    out["_visibility"] = {"visible": float(vis.mean()), "small_box": float(np.mean(sides[vis] < 8.0)),
                          "scale": geom.scale, "camera_motion": camera_motion}
    return out


def merge(worlds: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the per-world counters into one summary per type."""
    summary: dict[str, Any] = {}
    for qtype in [k for k in worlds[0] if not k.startswith("_")]:
        acc = {key: Counter() for key in ("texts", "states", "segments", "failures")}
        for w in worlds:
            for key in acc:
                acc[key].update(w[qtype][key])
        summary[qtype] = {key: dict(c) for key, c in acc.items()} | {"rule": worlds[0][qtype]["rule"]}
    summary["_visibility"] = {key: sum(w["_visibility"][key] for w in worlds) / len(worlds)
                              for key in ("visible", "small_box", "scale")}
    motions: dict[str, list[float]] = {}
    for w in worlds:
        motions.setdefault(w["_visibility"].get("camera_motion", "?"), []).append(w["_visibility"]["visible"])
    summary["_visibility"]["by_motion"] = {m: sum(v) / len(v) for m, v in sorted(motions.items())}
    return summary


# Targets (docs/bench-world.md): under uniform random queries no type is dominated by one answer text,
# the speed types are not degenerate, every state of the magnitude and comparison rules shows up, and
# objects stay in view.
MAX_TOP_SHARE = 0.5
MIN_ENTROPY = 0.5
MAX_SINGLE_CONSTANT = {"abs_spd": 0.5, "abs_spd_comp": 0.3}
MIN_STATE_SHARE = 0.05
MIN_VISIBLE = 0.9


def check_targets(summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for each target above."""
    types = _types(summary)
    rows = [type_row(q, summary[q]) for q in types]
    out = []
    worst = max(rows, key=lambda r: r["top_share"])
    out.append((f"top class <= {MAX_TOP_SHARE} for every type", worst["top_share"] <= MAX_TOP_SHARE,
                f"max {worst['top_share']:.2f} ({worst['type']})"))
    low = min(rows, key=lambda r: r["entropy"])
    out.append((f"H/logK >= {MIN_ENTROPY} for every type", low["entropy"] >= MIN_ENTROPY,
                f"min {low['entropy']:.2f} ({low['type']})"))
    for qtype, limit in MAX_SINGLE_CONSTANT.items():
        r = type_row(qtype, summary[qtype])
        out.append((f"{qtype}: single constant/same answer <= {limit}", r["constant"] <= limit, f"{r['constant']:.2f}"))
    shares = []
    for qtype in types:
        kind = summary[qtype]["rule"]
        if kind == "direction":
            continue
        states = summary[qtype]["states"]
        total = sum(states.values()) or 1
        for s in MAGNITUDE_STATES if kind == "magnitude" else COMPARISON_STATES:
            shares.append((states.get(s, 0) / total, qtype, s))
    rare = min(shares)
    out.append((f"every magnitude/comparison state >= {MIN_STATE_SHARE:.0%} of its type's segments",
                rare[0] >= MIN_STATE_SHARE, f"rarest {rare[0]:.1%} ({rare[1]} {rare[2]})"))
    vis = summary["_visibility"]["visible"]
    out.append((f"objects visible on >= {MIN_VISIBLE:.0%} of sampled frames", vis >= MIN_VISIBLE, f"{vis:.1%}"))
    return out


def type_row(qtype: str, stats: dict[str, Any]) -> dict[str, Any]:
    """The figures of one type: n, top class and share, entropy, constant share, states, segments."""
    texts = Counter(stats["texts"])
    n = sum(texts.values())
    kind = stats["rule"]
    top, top_n = texts.most_common(1)[0] if texts else ("-", 0)
    possible = MAGNITUDE_STATES if kind == "magnitude" else COMPARISON_STATES if kind == "comparison" else ()
    states = Counter({s: int(c) for s, c in stats["states"].items()})
    segs = Counter({int(k): v for k, v in stats["segments"].items()})
    return {
        "type": qtype, "n": n, "classes": len(texts), "top": top, "top_share": top_n / n if n else 0.0,
        "entropy": entropy(texts), "constant": sum(texts[t] for t in SINGLE_CONSTANT) / n if n else 0.0,
        "states_seen": f"{sum(1 for s in possible if states[s])}/{len(possible)}" if possible else
        f"{len(states)} labels",
        "state_entropy": entropy(states, len(possible)) if possible else entropy(states),
        "segments": {k: segs[k] / n if n else 0.0 for k in (1, 2, 3, 4)} | {
            "5+": sum(v for k, v in segs.items() if k >= 5) / n if n else 0.0},
        "failed": sum(stats["failures"].values()),
    }


def _types(summary: dict[str, Any]) -> list[str]:
    return [k for k in summary if not k.startswith("_")]


def print_summary(label: str, summary: dict[str, Any]) -> None:
    vis = summary["_visibility"]
    print(f"\n== {label}: objects visible on {vis['visible']:.1%} of sampled frames; boxes with a side < 8 px: "
          f"{vis['small_box']:.1%}; mean scene scale {vis['scale']:.2f} m")
    if "by_motion" in vis:
        print("   visible by camera motion: " + ", ".join(f"{m} {v:.1%}" for m, v in vis["by_motion"].items()))
    print(f"{'type':14s} {'n':>5s} {'cls':>4s} {'top':>5s} {'H/logK':>6s} {'const':>6s} {'states':>9s} "
          f"{'H_state':>7s}  {'seg 1/2/3/4/5+':24s} {'fail':>5s}  top class")
    for qtype in _types(summary):
        r = type_row(qtype, summary[qtype])
        seg = "/".join(f"{v:.2f}" for v in r["segments"].values())
        print(f"{qtype:14s} {r['n']:5d} {r['classes']:4d} {r['top_share']:5.2f} {r['entropy']:6.2f} "
              f"{r['constant']:6.2f} {r['states_seen']:>9s} {r['state_entropy']:7.2f}  {seg:24s} {r['failed']:5d}  "
              f"{r['top'][:60]}")
    for qtype in ("abs_spd", "abs_spd_comp", "abs_dis"):
        texts = Counter(summary[qtype]["texts"])
        n = sum(texts.values())
        print(f"  {qtype} classes: " + "; ".join(f"{c / n:.0%} {t}" for t, c in texts.most_common(6)))
    for qtype in ("abs_spd", "abs_spd_comp"):
        states = summary[qtype]["states"]
        total = sum(states.values())
        print(f"  {qtype} states over all segments: "
              + ", ".join(f"{s} {states.get(s, 0) / total:.0%}" for s in (
                  MAGNITUDE_STATES if qtype == "abs_spd" else COMPARISON_STATES)))
    print("targets:")
    for name, met, measured in check_targets(summary):
        print(f"  [{'met' if met else 'MISS'}] {name}: {measured}")


def print_compare(before: dict[str, Any], after: dict[str, Any]) -> None:
    """A Markdown before/after table (top-class share, entropy, constant share) per type."""
    print(f"before: {before['label']}\nafter:  {after['label']}\n")
    print("| type | n before / after | top class before → after | H/logK before → after "
          "| single constant before → after | states seen before → after |")
    print("|---|---|---|---|---|---|")
    for qtype in _types(after["summary"]):
        b, a = type_row(qtype, before["summary"][qtype]), type_row(qtype, after["summary"][qtype])
        print(f"| {qtype} | {b['n']} / {a['n']} | {b['top_share']:.2f} → **{a['top_share']:.2f}** | "
              f"{b['entropy']:.2f} → {a['entropy']:.2f} | {b['constant']:.2f} → {a['constant']:.2f} | "
              f"{b['states_seen']} → {a['states_seen']} |")
    for key in ("visible", "small_box"):
        print(f"{key}: {before['summary']['_visibility'][key]:.3f} → {after['summary']['_visibility'][key]:.3f}")
    print()
    for (name, met_b, meas_b), (_, met_a, meas_a) in zip(check_targets(before["summary"]),
                                                         check_targets(after["summary"]), strict=True):
        print(f"| {name} | {meas_b} ({'met' if met_b else 'miss'}) | {meas_a} ({'met' if met_a else 'miss'}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="100-111", help="e.g. 0-7,20 (default 100-111)")
    parser.add_argument("--duration", type=float, default=None, help="seconds [default: WorldConfig's]")
    parser.add_argument("--camera-motion", default=None, help="one motion for every world [default: per seed]")
    parser.add_argument("--queries-per-type", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="keep rendered worlds here (reused on rerun)")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--label", default=None)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), default=None)
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        print_compare(before, after)
        return

    from dsr.world.config import GENERATOR_VERSION, WorldConfig
    from dsr.world.render import render_world

    seeds = parse_seeds(args.seeds)
    extra: dict[str, Any] = {} if args.duration is None else {"duration_s": args.duration}
    if args.camera_motion:
        extra["camera_motion"] = args.camera_motion
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, load avg "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; python {platform.python_version()}")
    label = args.label or (f"generator {GENERATOR_VERSION}, {WorldConfig(**extra).duration_s:g} s worlds, "
                           f"seeds {args.seeds}")
    worlds, frames, seconds = [], 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for seed in seeds:
            config = WorldConfig(seed=seed, **extra)
            start = time.perf_counter()
            result = render_world(config, root / f"seed{seed}", progress=False)
            if not result.reused:
                frames += result.spec.num_frames
                seconds += time.perf_counter() - start
            worlds.append(world_stats(result.record, args.queries_per_type, seed, result.spec.camera_motion))
    if seconds:
        print(f"rendered {frames} frames in {seconds:.1f} s: {frames / seconds:.1f} frames/s (full world, "
              f"{WorldConfig(**extra).width}x{WorldConfig(**extra).height})")
    summary = merge(worlds)
    print_summary(label, summary)
    if args.json:
        args.json.write_text(json.dumps({"label": label, "seeds": seeds, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
