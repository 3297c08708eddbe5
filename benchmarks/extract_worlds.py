"""``dsr extract`` on MuJoCo worlds (``dsr.world``) with exact GT: camera, centres, orientation, QA agreement.

For each camera motion × seed a small world is rendered (320×240, 10 fps); the camera stage runs once, then
the object stage twice: **auto** (class-agnostic movers, the default) and **given** (MIL tracking from the
GT boxes at the first sampled frame, ``--init-boxes``). The GT record is cut to the extracted record's
sampled frames. Reported per clip and per motion:

* camera ATE after Sim(3) as % of the GT path (valid frames only) and coverage (valid / sampled);
* objects: GT objects matched (auto: Hungarian on mean box IoU ≥ 0.1), mean IoU, centre error after the
  camera's Sim(3) (rotation-only cameras: rotation from poses, scale from median camera–object distance) as
  % of the median GT camera–object distance, orientation error where the extraction gives one;
* the headline: template QAs generated from the GT record, answered again on the extracted record
  (matched ids), % agreement per type; an unanswerable query counts as disagreement (also counted apart);
  all QAs and only those with ``stability ≥ --min-stability``.

    .venv/bin/python benchmarks/extract_worlds.py [--seeds 0 1] [--motions static pan ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dsr.scene.align import Sim3
from dsr.scene.record import CameraTrack, ObjectTrack, SceneRecord, VideoInfo
from extract_synthetic import align_poses


def _take(obj: object, idx: np.ndarray, n: int, **overrides: object) -> object:
    """Copy of a record dataclass with every per-frame array (first axis n) cut to ``idx``."""
    kw = {}
    for f in fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n and not (f.name == "K" and v.ndim == 2):
            kw[f.name] = v[idx]
    kw.update(overrides)
    return replace(obj, **kw)  # type: ignore[type-var]


def subsample_record(rec: SceneRecord, idx: np.ndarray) -> SceneRecord:
    """The record on frames ``idx`` only (masks dropped: the QA generator needs boxes, not masks)."""
    n = rec.num_frames
    objects = []
    for o in rec.objects:
        ori = _take(o.orientation, idx, n) if o.orientation is not None else None
        objects.append(_take(o, idx, n, masks=None, orientation=ori))
    video: VideoInfo = _take(rec.video, idx, n)  # type: ignore[assignment]
    camera: CameraTrack = _take(rec.camera, idx, n)  # type: ignore[assignment]
    return replace(rec, video=video, camera=camera, objects=tuple(objects))


def match_objects(ext: SceneRecord, gt: SceneRecord, min_iou: float = 0.1) -> dict[str, tuple[str, float]]:
    """GT id → (extracted id, mean box IoU over frames both see), one-to-one (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    from dsr.extract.adapters import box_iou

    if not ext.objects:
        return {}
    cost = np.zeros((len(gt.objects), len(ext.objects)))
    for i, g in enumerate(gt.objects):
        for j, e in enumerate(ext.objects):
            both = np.flatnonzero(g.visible & e.visible)
            if len(both):
                cost[i, j] = np.mean([box_iou(g.boxes_xyxy[t], e.boxes_xyxy[t])[0, 0] for t in both])
    rows, cols = linear_sum_assignment(-cost)
    return {gt.objects[i].object_id: (ext.objects[j].object_id, float(cost[i, j]))
            for i, j in zip(rows, cols, strict=True) if cost[i, j] >= min_iou}


def rotation_scale_alignment(ext: SceneRecord, gt: SceneRecord, pairs: list[tuple[ObjectTrack, ObjectTrack]]
                             ) -> Sim3:
    """Sim(3) for a camera without translation: rotation from camera orientations, scale from the median
    camera–object distance of the matched objects."""
    v = ext.camera.valid
    m = np.einsum("nij,nkj->ik", gt.camera.c2w[v, :3, :3], ext.camera.c2w[v, :3, :3])
    u, _, vt = np.linalg.svd(m)
    rot = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    d_est, d_gt = [], []
    for e, g in pairs:
        k = e.center_known & g.center_known & v
        d_est.extend(np.linalg.norm(e.centers_world[k] - ext.camera.c2w[k, :3, 3], axis=1))
        d_gt.extend(np.linalg.norm(g.centers_world[k] - gt.camera.c2w[k, :3, 3], axis=1))
    scale = float(np.median(d_gt) / np.median(d_est)) if d_est else 1.0
    t = gt.camera.c2w[v, :3, 3].mean(0) - scale * rot @ ext.camera.c2w[v, :3, 3].mean(0)
    return Sim3(rot, t, scale)


def object_metrics(ext: SceneRecord, gt: SceneRecord, matches: dict[str, tuple[str, float]], sim: Sim3 | None
                   ) -> tuple[dict, Sim3 | None]:
    by_id = {o.object_id: o for o in ext.objects}
    gt_by_id = {o.object_id: o for o in gt.objects}
    pairs = [(by_id[e], gt_by_id[g]) for g, (e, _) in matches.items()]
    if sim is None and pairs:
        sim = rotation_scale_alignment(ext, gt, pairs)
    out: dict = {"gt_objects": len(gt.objects), "extracted": len(ext.objects), "matched": len(matches),
                 "mean_iou": round(float(np.mean([iou for _, iou in matches.values()])), 3) if matches else None}
    errs, dists, ori_errs, gated_errs = [], [], [], []
    known = 0
    for e, g in pairs:
        k = e.center_known & g.center_known & ext.camera.valid
        known += int(k.sum())
        if k.any() and sim is not None:
            errs.extend(np.linalg.norm(sim.apply(e.centers_world[k]) - g.centers_world[k], axis=1))
            dists.extend(np.linalg.norm(g.centers_cam[k], axis=1))
        if e.orientation is not None and g.orientation is not None and sim is not None:
            ko = (e.orientation.confidence > 0) & (g.orientation.confidence > 0)
            if ko.any():
                fwd = (sim.rotation @ e.orientation.world_from_agent[ko][:, :, 0].T).T
                gfwd = g.orientation.world_from_agent[ko][:, :, 0]
                err = np.degrees(np.arccos(np.clip(np.sum(fwd * gfwd, axis=1), -1, 1)))
                ori_errs.extend(err)
                gated_errs.extend(err[e.orientation.confidence[ko] >= 0.6])
    out["center_frames_known"] = f"{known}/{sum(int((g.center_known & ext.camera.valid).sum()) for _, g in pairs)}"
    out["center_err_pct"] = round(100 * float(np.median(errs)) / float(np.median(dists)), 1) if errs else None
    out["orientation_err_deg_median"] = round(float(np.median(ori_errs)), 1) if ori_errs else None
    out["orientation_frames"] = len(ori_errs)
    # the frames that pass DSR's 0.6 gate: the ones the QA engine will use
    out["orientation_err_deg_median_gated"] = round(float(np.median(gated_errs)), 1) if gated_errs else None
    out["orientation_frames_gated"] = len(gated_errs)
    return out, sim


def qa_agreement(gt: SceneRecord, ext: SceneRecord | None, id_map: dict[str, str], qas: list[dict]
                 ) -> list[dict]:
    """Per QA: type, stability, agree, unanswerable (answered on ``ext`` with GT ids mapped)."""
    from dsr.errors import DsrError
    from dsr.qa.query import Query, answer

    renamed = None
    if ext is not None:
        inverse = {e: g for g, e in id_map.items()}
        renamed = replace(ext, objects=tuple(replace(o, object_id=inverse.get(o.object_id, f"x_{o.object_id}"))
                                             for o in ext.objects))
    rows = []
    for qa in qas:
        got, why = None, "no record"
        if renamed is not None:
            try:
                got = answer(renamed, Query.from_json(qa["query"])).text
            except DsrError as err:
                why = str(getattr(err, "reason", "")) or str(err).split(":")[0]
        rows.append({"type": qa["type"], "stability": qa["stability"], "agree": got == qa["answer_text"],
                     "unanswerable": got is None, "why": why if got is None else None,
                     "camera_observer": qa["query"]["observer"] == "camera"})
    return rows


def summarize(rows: list[dict], min_stability: float) -> dict:
    out = {}
    for label, sel in (("all", rows), (f"stability>={min_stability}", [r for r in rows if r["stability"] >=
                                                                         min_stability])):
        n = Counter(r["type"] for r in sel)
        ok = Counter(r["type"] for r in sel if r["agree"])
        out[label] = {"n": len(sel), "agree_pct": round(100 * sum(ok.values()) / max(1, len(sel)), 1),
                      "unanswerable": sum(r["unanswerable"] for r in sel),
                      "unanswerable_by_reason": dict(Counter(r["why"] for r in sel if r["unanswerable"])),
                      "camera_observer": f"{sum(r['agree'] for r in sel if r['camera_observer'])}/"
                                         f"{sum(r['camera_observer'] for r in sel)}",
                      "per_type": {t: f"{ok[t]}/{n[t]}" for t in sorted(n)}}
    return out


def main() -> None:
    from dsr.extract.camera.auto import AutoCamera
    from dsr.extract.clip import load_clip
    from dsr.extract.given import InitBox
    from dsr.extract.pipeline import ExtractConfig, extract_clip, record_id_for
    from dsr.qa.generate import generate_record_qas
    from dsr.scene.align import ate, path_length
    from dsr.scene.io import read_record
    from dsr.scene.poses import rotation_angle_deg
    from dsr.world import WorldConfig, render_world

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--motions", nargs="+", default=["static", "pan", "dolly", "orbit", "handheld"])
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--per-video", type=int, default=40)
    ap.add_argument("--min-stability", type=float, default=0.8)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--camera-cache", type=Path, default=None,
                    help="reuse camera estimates pickled here by an earlier run (to iterate on the object stage)")
    ap.add_argument("--known-focal", action="store_true",
                    help="give the camera stage the GT focal length (what --focal-px does for a user)")
    args = ap.parse_args()
    config = ExtractConfig()
    all_rows: dict[str, list[dict]] = {"auto": [], "given": []}
    by_motion: dict[str, dict[str, list[dict]]] = {}
    clips = []
    start = time.perf_counter()
    for motion in args.motions:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                world = WorldConfig(seed=seed, camera_motion=motion, duration_s=args.duration, fps=10.0, width=320,
                                    height=240)
                render_world(world, tmp)
                video = Path(tmp) / "video.mp4"
                gt_full = read_record(Path(tmp) / "record.npz")
                clip, meta = load_clip(video, config.clip)
                if args.known_focal:
                    focal = float(np.asarray(gt_full.camera.K).reshape(-1, 3, 3)[0, 0, 0])
                    config = replace(config, camera=replace(config.camera, focal_px=focal))
                t0 = time.perf_counter()
                tag = "-known-focal" if args.known_focal else ""
                cached = args.camera_cache / f"{motion}-seed{seed}{tag}.pkl" if args.camera_cache else None
                if cached is not None and cached.exists():
                    camera = pickle.loads(cached.read_bytes())
                else:
                    camera = AutoCamera(config.camera, methods=config.camera_methods).estimate(clip)
                    if cached is not None:
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        cached.write_bytes(pickle.dumps(camera))
                cam_s = time.perf_counter() - t0
                gt = subsample_record(gt_full, clip.frame_indices)
                qas = [qa.to_json() for qa in generate_record_qas(gt, per_video=args.per_video, seed=seed)]
                row: dict = {"clip": f"{motion}/seed{seed}", "camera_method": camera.method,
                             "camera_attempts": [f"{a.method}: {a.reason}" for a in camera.attempts],
                             "camera_s": round(cam_s, 1), "qas": len(qas)}
                init = {o.object_id: InitBox(o.class_phrase, o.boxes_xyxy[0], o.is_agent) for o in gt.objects
                        if o.visible[0]}
                row["given_boxes"] = f"{len(init)}/{len(gt.objects)}"
                for mode in ("auto", "given"):
                    t0 = time.perf_counter()
                    out = extract_clip(clip, meta, str(video), record_id_for(video), config, camera=camera,
                                       init_boxes=init if mode == "given" else None)
                    res: dict = {"status": out.status, "reason": out.reason,
                                 "objects_s": round(time.perf_counter() - t0, 1)}
                    ext = out.record
                    id_map: dict[str, str] = {}
                    if ext is not None:
                        v = ext.camera.valid
                        res["coverage"] = f"{int(v.sum())}/{len(v)}"
                        path = path_length(gt.camera.c2w[v, :3, 3])
                        # rotation relative to the first valid frame, and (GT without translation) how far the
                        # estimate wanders, in record units (normalised: median scene depth = 1)
                        c_est, c_gt = ext.camera.c2w[v], gt.camera.c2w[v]
                        rel_est = np.swapaxes(c_est[:1, :3, :3], 1, 2) @ c_est[:, :3, :3]
                        rel_gt = np.swapaxes(c_gt[:1, :3, :3], 1, 2) @ c_gt[:, :3, :3]
                        res["rot_err_deg_median"] = round(float(np.median(rotation_angle_deg(
                            np.swapaxes(rel_gt, 1, 2) @ rel_est))), 2)
                        if path <= 1e-3:
                            res["spurious_translation_pct_depth"] = round(100 * float(np.max(np.linalg.norm(
                                c_est[:, :3, 3] - c_est[0, :3, 3], axis=1))), 1)
                        sim = None
                        if path > 1e-3 and np.ptp(ext.camera.c2w[v, :3, 3], axis=0).max() > 1e-9:
                            stats, _ = ate(ext.camera.c2w[v, :3, 3], gt.camera.c2w[v, :3, 3])
                            res["ate_pct_path"] = round(100 * stats.rmse / path, 2)
                            sim = align_poses(ext.camera.c2w[v], gt.camera.c2w[v])
                        if mode == "given":
                            matches = {o.object_id: (o.object_id, 0.0) for o in ext.objects}
                            from dsr.extract.adapters import box_iou
                            for o in ext.objects:
                                g = next(x for x in gt.objects if x.object_id == o.object_id)
                                both = np.flatnonzero(g.visible & o.visible)
                                matches[o.object_id] = (o.object_id, float(np.mean(
                                    [box_iou(g.boxes_xyxy[t], o.boxes_xyxy[t])[0, 0] for t in both])) if len(both)
                                    else 0.0)
                        else:
                            matches = match_objects(ext, gt)
                        id_map = {g: e for g, (e, _) in matches.items()}
                        obj, _ = object_metrics(ext, gt, matches, sim)
                        res.update(obj)
                    qa_rows = qa_agreement(gt, ext, id_map, qas)
                    res["qa"] = summarize(qa_rows, args.min_stability)
                    all_rows[mode].extend(qa_rows)
                    by_motion.setdefault(motion, {"auto": [], "given": []})[mode].extend(qa_rows)
                    row[mode] = res
                clips.append(row)
                print(json.dumps(row), flush=True)
    summary = {"seconds": round(time.perf_counter() - start, 1),
               "overall": {m: summarize(r, args.min_stability) for m, r in all_rows.items()},
               "per_motion": {mo: {m: summarize(r, args.min_stability) for m, r in d.items()}
                              for mo, d in by_motion.items()}}
    print(json.dumps(summary, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps({"clips": clips, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
