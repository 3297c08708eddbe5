"""Fit the uncertainty model of ``dsr.extract.uncertainty`` to errors measured on rendered worlds.

Input: the JSON of ``benchmarks/extract_precision.py --raw-uncertainty --json FILE`` run on the *fitting*
seeds (never the seeds coverage is reported on). Each constant is the one that puts 90% of the fitting errors
inside ±1.645 σ on worlds it has not seen: a quantile of |error| / scale, divided by 1.645. Errors are heavy-tailed and correlated within a clip, so the tuning worlds' own 90% quantile covers less
than 90% of a new world's errors; the script prints each table's leave-one-clip-out coverage (every clip
judged by the constants fitted on the others), which is what picks the quantile. The shared fraction of the along-ray
error is the share of its variance that is common to an object's frames (between-object variance of the
per-object mean over the total). Track confidence: logistic regression of "IoU ≥ 0.5 with the object's
ground truth" on the raw per-frame score and ln(track length), per track source (objects matching no ground
truth count as wrong at every frame). Prints the tables to paste into ``src/dsr/extract/uncertainty.py``.

    python benchmarks/extract_calibrate.py out/fit.json [--min-samples 30] [--quantile Q]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dsr.extract.uncertainty import lookup, sigma_keys

Z90 = 1.6448536269514722


def abs_quantile(values: list[float] | np.ndarray, quantile: float = 0.9) -> float:
    return float(np.quantile(np.abs(np.asarray(values, dtype=np.float64)), quantile))


def center_keys(r: dict) -> tuple[str, ...]:
    """A centre sample's sigma keys, most specific first (as the extractor looks them up)."""
    return sigma_keys(r["method"], r["camera"], r["class_known"])


def camera_keys(r: dict) -> tuple[str, ...]:
    """The sample's own sigma key (``camera/pycolmap/tight`` or ``camera/pycolmap``: each pycolmap table is fitted on
    its own clips, as the extractor applies them; runs older than the key have the method), and ``default``."""
    return r.get("key", r["method"]), "default"


def per_key(rows: list[dict], keys_of: Callable[[dict], tuple[str, ...]], value: Callable[[dict], Any],
            min_samples: int, quantile: float = 0.9) -> dict[str, float]:
    """{key: ``quantile`` of |value(row)| / 1.645} for every key of :func:`center_keys` / :func:`camera_keys`
    (``default``: all rows) with at least ``min_samples`` values; a row's sigma is its first key present."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        vals = np.atleast_1d(value(r)).tolist()
        for k in keys_of(r):
            groups[k].extend(vals)
    return {k: round(abs_quantile(vals, quantile) / Z90, 4) for k, vals in sorted(groups.items())
            if len(vals) >= min_samples or k == "default"}


def loco_coverage(rows: list[dict], keys_of: Callable[[dict], tuple[str, ...]], value: Callable[[dict], Any],
                  min_samples: int, quantile: float) -> float:
    """Share of each clip's |value| inside ±1.645 σ of the table fitted (:func:`per_key`) on the other clips."""
    inside = total = 0
    for held in sorted({r["clip"] for r in rows}):
        table = per_key([r for r in rows if r["clip"] != held], keys_of, value, min_samples, quantile)
        for r in rows:
            if r["clip"] == held:
                vals = np.abs(np.atleast_1d(value(r)))
                inside += int(np.sum(vals <= Z90 * lookup(table, keys_of(r)) + 1e-12))
                total += len(vals)
    return inside / total if total else float("nan")


def shared_fraction(rows: list[dict], min_samples: int) -> dict[str, float]:
    """Per sigma key: between-object share of the variance of the relative along-ray error."""
    out: dict[str, float] = {}
    by_key: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        for k in center_keys(r):
            by_key[k].append(r)
    for key, sel in sorted(by_key.items()):
        if len(sel) < min_samples and key != "default":
            continue
        rel = np.array([r["along"] / r["depth"] for r in sel])
        objs: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r, v in zip(sel, rel, strict=True):
            objs[(r["clip"], r["object"])].append(v)
        means = np.concatenate([np.full(len(v), np.mean(v)) for v in objs.values()])
        total = float(np.mean(rel**2))
        out[key] = round(float(np.clip(np.mean(means**2) / total, 0.0, 1.0)), 3) if total > 0 else 0.0
    return out


def heading_floor(rows: list[dict], factor: float, step_deg: float = 5.0) -> float:
    """The smallest multiple of ``step_deg`` that, added in quadrature to ``factor`` times the raw heading sigmas of
    ``rows`` (``error_deg``, ``sigma_deg``), puts at least 90% of their errors inside ±1.645 σ (0 for none)."""
    err = np.array([r["error_deg"] for r in rows], np.float64)
    sig = factor * np.array([r["sigma_deg"] for r in rows], np.float64)
    if not len(err):
        return 0.0
    floor = 0.0
    while floor < 180.0 and np.mean(err <= Z90 * np.hypot(sig, floor)) < 0.9:
        floor += step_deg
    return floor


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
        if w_score < 0:
            # a better raw score cannot mean a worse track: a negative slope is a quirk of the fitting domain
            # (YOLO on stylised rendered people) that would invert the order on real video, so the score is dropped
            model = LogisticRegression(C=10.0).fit(x[:, 1:], y)
            w_score, (w_len,), bias = 0.0, model.coef_[0], model.intercept_[0]
        out[source] = (round(float(w_score), 3), round(float(w_len), 3), round(float(bias), 3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--min-samples", type=int, default=30)
    ap.add_argument("--min-clips", type=int, default=5, help="clips a camera key needs for its own scale-drift sigma")
    ap.add_argument("--quantile", type=float, default=None,
                    help="one quantile of the tuning errors put at 1.645 sigma for every table (default: per table, "
                         "the smallest of 0.90, 0.91, ..., 0.99 whose leave-one-clip-out coverage is >= 90%%)")
    args = ap.parse_args()
    samples: dict[str, list[dict]] = defaultdict(list)
    for path in args.runs:
        data = json.loads(path.read_text())
        unc = data["summary"]["uncertainty"]
        # centre and camera errors do not depend on the sigmas; track scores and heading sigmas must be raw
        if not (unc.get("raw") or (unc.get("heading_factor") == 1.0 and not unc.get("heading_floor_deg")
                                   and not unc.get("track_confidence"))):
            raise SystemExit(f"{path}: its track scores or heading sigmas are calibrated: run with --raw-uncertainty")
        for k, v in data["samples"].items():
            samples[k].extend(v)
    center, camera = samples["center"], samples["camera"]
    # (rows, keys, value) per sigma table; camera lengths in record units: the alignment's scale maps them to GT ones
    tables = {
        "_ALONG_REL": (center, center_keys, lambda r: r["along"] / r["depth"]),
        "_ACROSS_REL": (center, center_keys, lambda r: np.asarray(r["across"]) / r["depth"]),
        "_CAMERA_POSITION": (camera, camera_keys, lambda r: np.asarray(r["error"]) / r["scale"]),
        "_CAMERA_ROTATION_DEG": (camera, camera_keys, lambda r: r["rotation_error_deg"]),
    }
    # one sample per clip: the drift of its camera path's scale (benchmarks/extract_precision.py path_scale_drift)
    drift = samples["camera_drift"]
    tables["_CAMERA_SCALE_DRIFT"] = (drift, camera_keys, lambda r: r["slope_per_s"])
    # per step: the change between consecutive steps' fast scale errors is the difference of two jitters
    tables["_CAMERA_SCALE_JITTER"] = (samples["camera_jitter"], camera_keys, lambda r: r["step_change"] / np.sqrt(2.0))
    grid = [args.quantile] if args.quantile is not None else [round(0.90 + 0.01 * i, 2) for i in range(10)]
    fit: dict = {}
    chosen: dict[str, dict[str, float]] = {}
    for name, (rows, keys_of, value) in tables.items():
        least = args.min_clips if name == "_CAMERA_SCALE_DRIFT" else args.min_samples
        for q in grid:  # errors cluster by clip: a new clip needs a higher quantile of the others' errors
            loco = loco_coverage(rows, keys_of, value, least, q)
            if loco >= 0.9 or q == grid[-1]:
                break
        chosen[name] = {"quantile": q, "leave_one_clip_out_coverage": round(loco, 3)}
        fit[name] = per_key(rows, keys_of, value, least, q)
    print(json.dumps(chosen))
    fit["_SHARED_FRAC"] = shared_fraction(center, args.min_samples)
    fit["_TRACK_CONFIDENCE"] = logistic_models(samples["track"], args.min_samples)
    heading = samples["heading"]
    ratios = [h["error_deg"] / h["sigma_deg"] for h in heading if h["sigma_deg"] > 0]
    q_heading = args.quantile or 0.93
    fit["heading_factor"] = round(abs_quantile(ratios, q_heading) / Z90, 3) if len(ratios) >= args.min_samples else 1.0
    fit["heading_floor_deg"] = heading_floor(heading, fit["heading_factor"])
    counts = {k: len(v) for k, v in samples.items()}
    print(json.dumps({"samples": counts}))
    for name, table in fit.items():
        print(f"{name} = {table!r}")


if __name__ == "__main__":
    main()
