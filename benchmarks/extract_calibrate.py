"""Fit the uncertainty model of ``dsr.extract.uncertainty`` to errors measured on rendered worlds.

Input: the JSON of ``benchmarks/extract_precision.py --raw-uncertainty --json FILE`` run on the *fitting*
seeds (never the seeds coverage is reported on). Each constant is the one that puts 90% of the fitting errors
inside ±1.645 σ on worlds it has not seen: the ``--quantile`` (default 0.93) of |error| / scale, divided by
1.645. Errors are heavy-tailed and correlated within a clip, so the tuning worlds' own 90% quantile covers less
than 90% of a new world's errors; the script prints each table's leave-one-clip-out coverage (every clip
judged by the constants fitted on the others), which is what picks the quantile. The shared fraction of the along-ray
error is the share of its variance that is common to an object's frames (between-object variance of the
per-object mean over the total). Track confidence: logistic regression of "IoU ≥ 0.5 with the object's
ground truth" on the raw per-frame score and ln(track length), per track source (objects matching no ground
truth count as wrong at every frame). Prints the tables to paste into ``src/dsr/extract/uncertainty.py``.

    python benchmarks/extract_calibrate.py out/fit.json [--min-samples 40]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

Z90 = 1.6448536269514722


def q90(values: list[float] | np.ndarray, quantile: float = 0.9) -> float:
    return float(np.quantile(np.abs(np.asarray(values, dtype=np.float64)), quantile))


def per_key(rows: list[dict], key: str, value, min_samples: int, quantile: float = 0.9) -> dict[str, float]:
    """{key value or "default": ``quantile`` of |value(row)| / 1.645}, keys with too few samples pooled."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        groups[r[key]].extend(np.atleast_1d(value(r)).tolist())
    pooled = [v for vals in groups.values() for v in vals]
    out = {"default": round(q90(pooled, quantile) / Z90, 4)} if pooled else {}
    for k, vals in sorted(groups.items()):
        if len(vals) >= min_samples:
            out[k] = round(q90(vals, quantile) / Z90, 4)
    return out


def loco_coverage(rows: list[dict], key: str, value, min_samples: int, quantile: float) -> float:
    """Share of each clip's |value| inside ±1.645 σ of the table fitted (:func:`per_key`) on the other clips."""
    inside = total = 0
    for held in sorted({r["clip"] for r in rows}):
        table = per_key([r for r in rows if r["clip"] != held], key, value, min_samples, quantile)
        for r in rows:
            if r["clip"] == held:
                sigma = table.get(r[key], table.get("default", 0.0))
                vals = np.abs(np.atleast_1d(value(r)))
                inside += int(np.sum(vals <= Z90 * sigma + 1e-12))
                total += len(vals)
    return inside / total if total else float("nan")


def shared_fraction(rows: list[dict], min_samples: int) -> dict[str, float]:
    """Per centre method: between-object share of the variance of the relative along-ray error."""
    out: dict[str, float] = {}
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    by_method["default"] = rows
    for method, sel in sorted(by_method.items()):
        if len(sel) < min_samples:
            continue
        rel = np.array([r["along"] / r["depth"] for r in sel])
        objs: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r, v in zip(sel, rel, strict=True):
            objs[(r["clip"], r["object"])].append(v)
        means = np.concatenate([np.full(len(v), np.mean(v)) for v in objs.values()])
        total = float(np.mean(rel**2))
        out[method] = round(float(np.clip(np.mean(means**2) / total, 0.0, 1.0)), 3) if total > 0 else 0.0
    return out


def logistic_models(rows: list[dict], min_samples: int) -> dict[str, tuple[float, float, float]]:
    """Per track source: (w_score, w_len, bias) of P(IoU >= 0.5) on the raw score and ln(track length)."""
    from sklearn.linear_model import LogisticRegression

    length: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        length[(r["clip"], r["object"])] += 1
    out = {}
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    for source, sel in sorted(by_source.items()):
        y = np.array([r["iou"] >= 0.5 for r in sel])
        if len(sel) < min_samples or y.all() or not y.any():
            continue
        x = np.array([[r["confidence"], np.log(length[(r["clip"], r["object"])])] for r in sel])
        model = LogisticRegression(C=10.0).fit(x, y)
        (w_score, w_len), bias = model.coef_[0], model.intercept_[0]
        out[source] = (round(float(w_score), 3), round(float(w_len), 3), round(float(bias), 3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--min-samples", type=int, default=40)
    ap.add_argument("--quantile", type=float, default=0.93,
                    help="quantile of the tuning errors put at 1.645 sigma (0.93: leave-one-clip-out coverage ~90%%)")
    args = ap.parse_args()
    samples: dict[str, list[dict]] = defaultdict(list)
    for path in args.runs:
        data = json.loads(path.read_text())
        if not data["summary"]["uncertainty"].get("raw"):
            raise SystemExit(f"{path}: not a --raw-uncertainty run")
        for k, v in data["samples"].items():
            samples[k].extend(v)
    center, camera = samples["center"], samples["camera"]
    # (rows, value) per sigma table; camera lengths in record units: the alignment's scale maps them to GT ones
    tables = {
        "_ALONG_REL": (center, lambda r: r["along"] / r["depth"]),
        "_ACROSS_REL": (center, lambda r: np.asarray(r["across"]) / r["depth"]),
        "_CAMERA_POSITION": (camera, lambda r: np.asarray(r["error"]) / r["scale"]),
        "_CAMERA_ROTATION_DEG": (camera, lambda r: r["rotation_error_deg"]),
    }
    fit: dict = {name: per_key(rows, "method", value, args.min_samples, args.quantile)
                 for name, (rows, value) in tables.items()}
    fit["_SHARED_FRAC"] = shared_fraction(center, args.min_samples)
    fit["_TRACK_CONFIDENCE"] = logistic_models(samples["track"], args.min_samples)
    loco = {name: round(loco_coverage(rows, "method", value, args.min_samples, args.quantile), 3)
            for name, (rows, value) in tables.items()}
    print(json.dumps({"quantile": args.quantile, "leave_one_clip_out_coverage": loco}))
    heading = samples["heading"]
    ratios = [h["error_deg"] / h["sigma_deg"] for h in heading if h["sigma_deg"] > 0]
    fit["heading_factor"] = round(q90(ratios, args.quantile) / Z90, 3) if len(ratios) >= args.min_samples else 1.0
    counts = {k: len(v) for k, v in samples.items()}
    print(json.dumps({"samples": counts}))
    for name, table in fit.items():
        print(f"{name} = {table!r}")


if __name__ == "__main__":
    main()
