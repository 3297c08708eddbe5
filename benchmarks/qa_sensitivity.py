"""How accurate must extracted 4D clues be for DSR template answers to stay the same?

Ground-truth MuJoCo worlds (``dsr.world``, each camera motion × seeds, cut to 32 sampled frames as
``dsr extract`` does) get 40 template QAs each from their exact record. Each QA is then answered again on a
*degraded copy* of the same record, and the agreement (same answer text) is reported per kind and size of
degradation. This is the ceiling for any extractor: a pipeline whose centres are 10% off cannot agree more
often than the "iid centre noise 10%" row, whatever else it does right.

Degradations (each alone; ``--draws`` random draws each; ``none`` is the unchanged record, a sanity row):

* ``centre_iid``: every known object centre moves by N(0, (p·d)²) per axis, d = its distance to the camera
  (per-frame depth/lifting noise);
* ``centre_depth_bias``: each object's camera-frame centre is scaled by one factor (1 + N(0, p²)) for the
  whole clip (a wrong size prior or a wrong ground plane: consistent, not noisy);
* ``camera_iid``: camera positions move by N(0, (p·s)²) per axis, s = the median camera–object distance;
* ``agent_yaw``: each agent's facing turns about the world up axis by N(0, σ²) degrees per frame;
* ``no_agent_orientation``: agents keep their centres but lose their facing (what the weight-free extractor
  gives today).

    .venv/bin/python benchmarks/qa_sensitivity.py [--seeds 0 1] [--draws 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dsr.scene.frames import invert_pose, make_pose, transform_points
from dsr.scene.record import ObjectTrack, SceneRecord
from extract_worlds import qa_agreement, subsample_record

LEVELS = {
    "none": [0.0],  # sanity: the unchanged record must agree 100%
    "centre_iid": [0.01, 0.02, 0.05, 0.1, 0.2],
    "centre_depth_bias": [0.02, 0.05, 0.1, 0.2],
    "camera_iid": [0.01, 0.02, 0.05, 0.1],
    "agent_yaw": [5.0, 10.0, 20.0, 45.0],
    "no_agent_orientation": [0.0],
}


def _with_centres(rec: SceneRecord, o: ObjectTrack, centers_world: np.ndarray) -> ObjectTrack:
    cam = transform_points(invert_pose(rec.camera.c2w), centers_world)
    return replace(o, centers_world=centers_world, centers_cam=cam)


def _rotation_about(axis: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations about one unit axis by T angles (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s, c = np.sin(angle_rad)[:, None, None], np.cos(angle_rad)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def degrade(rec: SceneRecord, kind: str, level: float, rng: np.random.Generator) -> SceneRecord:
    """A copy of ``rec`` with one kind of error of size ``level`` (see the module docstring)."""
    c2w = rec.camera.c2w
    objects = []
    dist_all = [np.linalg.norm(o.centers_cam[o.center_known], axis=1) for o in rec.objects]
    scale = float(np.median(np.concatenate(dist_all))) if dist_all else 1.0
    camera = rec.camera
    if kind == "camera_iid":
        pos = c2w[:, :3, 3] + rng.standard_normal((len(c2w), 3)) * level * scale
        camera = replace(rec.camera, c2w=make_pose(c2w[:, :3, :3], pos))
    for o in rec.objects:
        known = o.center_known
        if kind == "centre_iid":
            d = np.linalg.norm(o.centers_cam, axis=1)
            world = o.centers_world + rng.standard_normal(o.centers_world.shape) * (level * d)[:, None]
            o = _with_centres(rec, o, np.where(known[:, None], world, np.nan))
        elif kind == "centre_depth_bias":
            cam = o.centers_cam * (1.0 + level * rng.standard_normal())
            world = transform_points(c2w, cam)
            o = replace(o, centers_cam=cam, centers_world=world)
        elif kind == "camera_iid":
            o = replace(o, centers_cam=transform_points(invert_pose(camera.c2w), o.centers_world))
        elif kind in ("agent_yaw", "no_agent_orientation") and o.orientation is not None:
            ori = o.orientation
            if kind == "no_agent_orientation":
                o = replace(o, orientation=None)
            else:
                up = np.nanmean(ori.world_from_agent[:, :, 2], axis=0)
                up /= np.linalg.norm(up)
                turn = _rotation_about(up, np.radians(level) * rng.standard_normal(len(ori.confidence)))
                o = replace(o, orientation=replace(ori, world_from_agent=turn @ ori.world_from_agent))
        objects.append(o)
    return replace(rec, camera=camera, objects=tuple(objects))


def main() -> None:
    from dsr.extract.clip import ClipConfig
    from dsr.qa.generate import generate_record_qas
    from dsr.scene.io import read_record
    from dsr.video import probe, uniform_indices
    from dsr.world import WorldConfig, render_world

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--motions", nargs="+", default=["static", "pan", "dolly", "orbit", "handheld"])
    ap.add_argument("--per-video", type=int, default=40)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--min-stability", type=float, default=0.8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    rows: dict[tuple[str, float], list[dict]] = {}
    for motion in args.motions:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                render_world(WorldConfig(seed=seed, camera_motion=motion, duration_s=6.0, fps=10.0, width=320,
                                         height=240), tmp)
                meta = probe(Path(tmp) / "video.mp4")
                gt = subsample_record(read_record(Path(tmp) / "record.npz"),
                                      uniform_indices(meta.num_frames, ClipConfig().num_samples))
            qas = [qa.to_json() for qa in generate_record_qas(gt, per_video=args.per_video, seed=seed)]
            rng = np.random.default_rng(seed)
            ids = {o.object_id: o.object_id for o in gt.objects}
            for kind, levels in LEVELS.items():
                for level in levels:
                    for _ in range(args.draws if kind not in ("none", "no_agent_orientation") else 1):
                        got = qa_agreement(gt, degrade(gt, kind, level, rng), ids, qas)
                        rows.setdefault((kind, level), []).extend(got)
    table = []
    for (kind, level), got in rows.items():
        stable = [r for r in got if r["stability"] >= args.min_stability]
        per_type = Counter(r["type"] for r in got if r["agree"])
        n_type = Counter(r["type"] for r in got)
        table.append({"kind": kind, "level": level, "n": len(got),
                      "agree_pct": round(100 * sum(r["agree"] for r in got) / len(got), 1),
                      "agree_pct_stable": round(100 * sum(r["agree"] for r in stable) / max(1, len(stable)), 1),
                      "n_stable": len(stable),
                      "camera_observer_pct": round(100 * sum(r["agree"] for r in got if r["camera_observer"])
                                                   / max(1, sum(r["camera_observer"] for r in got)), 1),
                      "unanswerable": dict(Counter(r["why"] for r in got if r["unanswerable"])),
                      "per_type_pct": {t: round(100 * per_type[t] / n_type[t]) for t in sorted(n_type)}})
        print(json.dumps(table[-1]), flush=True)
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
