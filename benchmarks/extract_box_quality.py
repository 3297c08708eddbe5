"""How well extracted objects' boxes fit the ground truth on rendered worlds: why QAs name "objects not in GT".

Per world (``dsr.world``, rendered and extracted as in ``benchmarks/extract_precision.py``, sharing its cache)
and per extracted object: its track source, the sampled frames it is seen in, and its best ground-truth
partner by mean box IoU over the frames both see, with the ratio of their box areas (> 1: the extracted box
is larger, e.g. a mover box over a cluster; < 1: smaller, e.g. a detector box on part of a figure).

With ``--detector-geometry``, YOLO's raw person boxes on every 6th frame are compared with the GT person
boxes they overlap (IoU > 0.1): height and width ratios and where the box starts below the GT box's top.

    python benchmarks/extract_box_quality.py --worlds pan:9800 dolly:9800 [--cache out/precision]
        [--detector-geometry]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_precision import extract, render
from extract_worlds import subsample_record


def area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def object_fit(ext: Any, gt: Any) -> list[dict]:
    """Per extracted object: its best GT partner by mean IoU over shared frames, and the mean area ratio."""
    from dsr.extract.adapters import box_iou

    rows = []
    for e in ext.objects:
        best: tuple[float, str, float] = (0.0, "", float("nan"))
        for g in gt.objects:
            both = np.flatnonzero(e.visible & g.visible)
            if not len(both):
                continue
            iou = float(np.mean([box_iou(e.boxes_xyxy[t], g.boxes_xyxy[t])[0, 0] for t in both]))
            if iou > best[0]:
                ratio = float(np.mean([area(e.boxes_xyxy[t]) / max(area(g.boxes_xyxy[t]), 1.0) for t in both]))
                best = (iou, g.object_id, ratio)
        rows.append({"object": e.object_id, "source": e.track_source.name, "frames": int(e.visible.sum()),
                     "best_gt": best[1], "mean_iou": round(best[0], 3), "area_ratio": round(best[2], 2)})
    return rows


def detector_geometry(world: Path, gt: Any, step: int = 6) -> dict[str, Any]:
    """YOLO person boxes vs the GT person boxes they overlap: size ratios and top offset (fractions of GT)."""
    from dsr.extract.adapters import box_iou
    from dsr.extract.detect import YoloDetector
    from dsr.video import iter_frames_at

    detector = YoloDetector()
    wanted = gt.video.frame_indices[::step]
    h_ratio, w_ratio, top, ious = [], [], [], []
    for index, _, frame in iter_frames_at(world / "video.mp4", wanted):
        t = int(np.flatnonzero(gt.video.frame_indices == index)[0])
        people = [d for d in detector.detect(frame) if d.class_name == "person"]
        for o in gt.objects:
            if o.class_phrase != "person" or not o.visible[t]:
                continue
            g = o.boxes_xyxy[t]
            for d in people:
                iou = float(box_iou(d.box_xyxy, g)[0, 0])
                if iou > 0.1:
                    b = d.box_xyxy
                    ious.append(iou)
                    h_ratio.append((b[3] - b[1]) / (g[3] - g[1]))
                    w_ratio.append((b[2] - b[0]) / (g[2] - g[0]))
                    top.append((b[1] - g[1]) / (g[3] - g[1]))

    def q(v: list[float]) -> list[float]:
        return [round(float(x), 2) for x in np.quantile(v, [0.1, 0.5, 0.9])] if v else []

    return {"detections": len(ious), "iou_q10_50_90": q(ious), "height_ratio": q(h_ratio),
            "width_ratio": q(w_ratio), "top_offset": q(top)}


def main() -> None:
    from dsr.extract.pipeline import ExtractConfig
    from dsr.scene.io import read_record

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", nargs="+", required=True, help="motion:seed, e.g. pan:9800")
    ap.add_argument("--cache", type=Path, default=Path("out/precision"))
    ap.add_argument("--detector-geometry", action="store_true")
    args = ap.parse_args()
    for spec in args.worlds:
        motion, seed = spec.split(":")
        world = render(args.cache, motion, int(seed), None)
        ext, summary = extract(args.cache, world, ExtractConfig())
        out: dict[str, Any] = {"world": world.name, "status": summary["status"]}
        if ext is not None:
            gt_full = read_record(world / "record.npz", masks=False)
            out["objects"] = object_fit(ext, subsample_record(gt_full, ext.video.frame_indices))
            if args.detector_geometry:
                out["yolo_people"] = detector_geometry(world, gt_full)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
