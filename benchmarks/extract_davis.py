"""Direction of the main object in the camera's frame on DAVIS (GT masks) vs VLM4D human labels.

For each VLM4D real question on a DAVIS-2016-val clip that asks, from the camera's perspective, whether
the object moves left/right or towards/away (and is about the annotated main object), we compare:

* ``naive_2d``: the mask centroid's image x shift (left/right) and the mask-area growth (towards/away);
* ``extracted``: the weight-free camera (``--camera`` methods) + the GT mask lifted to 3D with the size
  prior (depth ∝ 1/√area, the only cue for a mover without SfM points). Left/right: the world
  displacement between the first and last frame in the camera frame at the first frame (x > 0 right);
  towards/away: the change of the camera-to-object distance.

Panning clips (the camera follows the subject) are reported separately: the naive rule sees almost no
image motion there. Labels: "right"/"left"; "towards the camera"/"coming closer" vs
"away from the camera"/"away"/"going further away".

    .venv/bin/python benchmarks/extract_davis.py [--camera vo rotation] [--product-defaults]

``--product-defaults`` measures the camera as ``dsr extract`` ships it: the default clip settings (32 sampled
frames, at most 8 per second, dense frames at 6 fps) and the default chain (rotation → SfM → VO) instead of 16
samples at 8 fps and ``--camera``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dsr.extract.clip import ClipConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "realdata"
PANNING = {"bmx-trees", "camel", "car-roundabout", "cows", "goat", "libby"}
TOWARDS = {"towards the camera", "coming closer", "closer", "towards"}
AWAY = {"away from the camera", "away", "going further away", "further away"}


def questions() -> list[dict]:
    data = json.loads((SHARED / "benchmarks" / "vlm4d" / "vlm4d_real_subset_local_davis.json").read_text())
    keep = []
    for q in data:
        seq = q["davis_sequence"]
        text = q["question"].lower()
        ans = str(q["answer"]).lower()
        if not (SHARED / "davis2016_val" / "Annotations" / seq).is_dir():
            continue
        if "background" in text or "crowd" in text or "own perspective" in text:
            continue  # not the annotated main object, or not the camera frame
        if ans in {"left", "right"} and "direction" in text:
            keep.append({**q, "axis": "lr", "label": ans})
        elif ans in TOWARDS | AWAY:
            keep.append({**q, "axis": "tz", "label": "towards" if ans in TOWARDS else "away"})
    return keep


def load_masks(seq: str) -> np.ndarray:
    from PIL import Image

    files = sorted((SHARED / "davis2016_val" / "Annotations" / seq).glob("*.png"))
    return np.stack([np.asarray(Image.open(f).convert("L")) > 127 for f in files])


def naive(masks: np.ndarray) -> dict[str, str]:
    _ys, xs = zip(*[np.nonzero(m) for m in (masks[0], masks[-1])], strict=True)
    dx = xs[1].mean() - xs[0].mean()
    growth = masks[-1].sum() / max(1, masks[0].sum())
    return {"lr": "right" if dx > 0 else "left", "tz": "towards" if growth > 1 else "away"}


def extracted(seq: str, masks: np.ndarray, methods: tuple[str, ...], clip_config: ClipConfig | None = None
              ) -> tuple[dict[str, str], dict]:
    from dsr.extract.camera.auto import AutoCamera
    from dsr.extract.clip import ClipConfig, load_clip

    video = SHARED / "davis2016_val" / "mp4" / f"{seq}.mp4"
    start = time.perf_counter()
    clip, _meta = load_clip(video, clip_config or ClipConfig(num_samples=16, dense_fps=8.0))
    cam = AutoCamera(methods=methods).estimate(clip)
    info = {"camera": cam.method or "none", "trusted": cam.trusted, "seconds": time.perf_counter() - start,
            "reason": cam.reason}
    if cam.track is None:
        return {}, info
    idx = clip.frame_indices
    m = masks[np.minimum(idx, len(masks) - 1)]
    # depth ∝ 1/√area; scaled so the object's median depth is 1 camera unit (assumption: the object is at
    # the scene's median depth, which is what the camera's normalisation sets to 1)
    areas = m.reshape(len(m), -1).sum(axis=1)
    z_med = float(np.median(1.0 / np.sqrt(areas[areas > 0]))) if (areas > 0).any() else 1.0
    centers = []
    for t in range(len(idx)):
        ys, xs = np.nonzero(m[t])
        if len(xs) == 0:
            centers.append(np.full(3, np.nan))
            continue
        K = cam.track.K[t]
        z = 1.0 / np.sqrt(len(xs)) / z_med
        ray = np.linalg.inv(K) @ np.array([xs.mean(), ys.mean(), 1.0])
        c_cam = z * ray / ray[2]
        centers.append(cam.track.c2w[t, :3, :3] @ c_cam + cam.track.c2w[t, :3, 3])
    centers = np.array(centers)
    ok = np.flatnonzero(np.isfinite(centers).all(axis=1) & cam.track.valid)
    if len(ok) < 2:
        return {}, info
    a, b = ok[0], ok[-1]
    # left/right: the object's world displacement seen in the camera frame at the first frame (a pan that
    # follows the subject keeps it centred, yet it moves); towards/away: the change of its distance to the
    # camera, which is what "towards the camera" asks
    disp_cam = cam.track.c2w[a, :3, :3].T @ (centers[b] - centers[a])
    dist = [np.linalg.norm(centers[t] - cam.track.c2w[t, :3, 3]) for t in (a, b)]
    return {"lr": "right" if disp_cam[0] > 0 else "left", "tz": "towards" if dist[1] < dist[0] else "away"}, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--camera", nargs="+", default=["vo", "rotation"])
    ap.add_argument("--product-defaults", action="store_true",
                    help="dsr extract's default clip settings and camera chain (overrides --camera)")
    args = ap.parse_args()
    from dsr.extract.camera.auto import DEFAULT_METHODS
    from dsr.extract.clip import ClipConfig

    methods, clip_config = tuple(args.camera), None
    if args.product_defaults:
        methods, clip_config = DEFAULT_METHODS, ClipConfig()
    qs = questions()
    by_seq: dict[str, list[dict]] = {}
    for q in qs:
        by_seq.setdefault(q["davis_sequence"], []).append(q)
    rows = []
    for seq, items in sorted(by_seq.items()):
        masks = load_masks(seq)
        nv = naive(masks)
        ex, info = extracted(seq, masks, methods, clip_config)
        for q in items:
            row = {"seq": seq, "panning": seq in PANNING, "axis": q["axis"], "label": q["label"],
                   "naive": nv[q["axis"]], "extracted": ex.get(q["axis"], "none"), **info}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for group, sel in (("non-panning", [r for r in rows if not r["panning"]]),
                       ("panning", [r for r in rows if r["panning"]]), ("all", rows)):
        if not sel:
            continue
        n = len(sel)
        print(json.dumps({"group": group, "questions": n,
                          "naive_acc": sum(r["naive"] == r["label"] for r in sel) / n,
                          "extracted_acc": sum(r["extracted"] == r["label"] for r in sel) / n,
                          "extracted_none": sum(r["extracted"] == "none" for r in sel)}))


if __name__ == "__main__":
    sys.exit(main())
