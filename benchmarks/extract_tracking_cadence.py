"""Tracking cadence and YOLO input size against the DAVIS-2016 GT masks (issue 11, docs/bench-extract.md §5.2).

Per clip and variant: YOLO + the dense tracker (``detect_and_track``) and the objects read at the sampled frames
(``sampled_objects``); the GT box of each sampled frame is the bounding box of its DAVIS mask. ``main_iou``: the
object whose boxes overlap the GT best, mean IoU over the sampled frames with a GT mask (one identity over the
clip); ``any_iou``: per frame the best object, averaged. Variants: ``default`` (every frame tracked up to 12 s,
YOLO at ``detect_fps`` and median flow between), ``every`` (YOLO on every tracking frame, 416 px input),
``10fps`` (10 fps + the sampled frames), ``320`` (320 px input), ``10fps320`` (both); the last three detect
on every tracking frame. ``10det``, ``8fps`` and ``6fps``: the default's scheme with YOLO at those rates; ``352``: the default
with a 352-px input. ``f32`` and ``bf16``: the default's scheme with OpenVINO's arithmetic pinned to either.

    python benchmarks/extract_tracking_cadence.py default,every ../shared/realdata/davis2016_val/mp4/*.mp4
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = REPO / ".." / "shared" / "realdata" / "davis2016_val" / "Annotations"


def main() -> None:
    import cv2

    from dsr.extract.adapters import box_iou
    from dsr.extract.clip import ClipConfig, load_clip
    from dsr.extract.detected import DetectGroundingConfig, detect_and_track, sampled_objects

    base = DetectGroundingConfig()
    every = replace(base, tracking=replace(base.tracking, detect_fps=None))
    ten = replace(every, tracking=replace(every.tracking, every_frame_s=0.0))
    small = replace(base.detector, input_size=320)
    variants = {"default": base, "every": every, "10fps": ten, "320": replace(every, detector=small),
                "10fps320": replace(ten, detector=small),
                # YOLO at a lower detection rate, median flow between (the default's scheme)
                "10det": replace(base, tracking=replace(base.tracking, detect_fps=10.0)),
                "8fps": replace(base, tracking=replace(base.tracking, detect_fps=8.0)),
                "6fps": replace(base, tracking=replace(base.tracking, detect_fps=6.0)),
                "352": replace(base, detector=replace(base.detector, input_size=352)),
                "f32": replace(base, detector=replace(base.detector, precision="f32")),
                "bf16": replace(base, detector=replace(base.detector, precision="bf16"))}
    names = sys.argv[1].split(",")
    for path in sys.argv[2:]:
        clip, meta = load_clip(path, ClipConfig())
        stem = Path(path).stem
        gt: list[np.ndarray | None] = []
        for f in clip.frame_indices:
            mask = cv2.imread(str(ANNOTATIONS / stem / f"{f:05d}.png"), cv2.IMREAD_GRAYSCALE)
            ys, xs = np.nonzero(mask > 0) if mask is not None else (np.zeros(0), np.zeros(0))
            gt.append(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float) if len(xs) else None)
        has = np.array([g is not None for g in gt])
        row: dict = {"clip": stem}
        for name in names:
            cfg = variants[name]
            wall, cpu = time.perf_counter(), time.process_time()
            result = detect_and_track(clip, path, meta.timestamps_s, cfg)
            objects = sampled_objects(result, clip, cfg)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            ious = np.zeros((len(objects), len(gt)))
            for k, obj in enumerate(objects):
                for t, g in enumerate(gt):
                    if g is not None and np.isfinite(obj.boxes_xyxy[t]).all():
                        ious[k, t] = box_iou(obj.boxes_xyxy[t][None], g[None])[0, 0]
            row[name] = {"frames": result.num_frames, "objects": len(objects),
                         "main_iou": round(float(ious[:, has].mean(1).max()), 3) if len(objects) else 0.0,
                         "any_iou": round(float(ious[:, has].max(0).mean()), 3) if len(objects) else 0.0,
                         "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
