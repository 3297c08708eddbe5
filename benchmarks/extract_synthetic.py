"""End-to-end accuracy on synthetic clips with exact GT: camera, object centre, heading, QA agreement.

Clips come from the numpy ray-caster of the extraction tests (a textured room, one textured ball rolling
on the floor; camera motions truck / pan / static). ``dsr.world`` (MuJoCo) worlds are not used yet (TODO).
For each clip: ``dsr extract``'s default pipeline writes a record; the GT record has the same sampled
frames, the GT camera and the ball (an agent facing its direction of travel). The extracted object whose
boxes best overlap the ball's GT boxes stands for the ball.

Reported per clip: camera ATE (% of GT path after Sim(3); rotation error for pan/static), centre error
(after the camera's Sim(3), as % of the median GT camera–ball distance), heading error, and the
**template-answer agreement**: every QA the generator makes from the GT record is answered again on the
extracted record (same query, same frames) and the answer texts compared (no answer = disagreement),
per type and split by observer (the camera, or the ball as an agent — which needs an orientation).

    .venv/bin/python benchmarks/extract_synthetic.py [--seeds 0 1] [--per-video 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from dsr.scene.align import Sim3
from dsr.scene.frames import invert_pose
from dsr.scene.record import ObjectTrack, SceneRecord

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "extract"))
from extract_synth import make_clip  # noqa: E402 - the test renderer lives beside the tests


def gt_record(sc, rec):
    """GT record on the extracted record's sampled frames."""
    from dsr.scene.build import camera_track, object_track_from_world
    from dsr.scene.frames import invert_pose, project_points, transform_points
    idx = rec.video.frame_indices
    c2w = sc.c2w[idx]
    ball = sc.ball_world[idx]
    h, w = sc.frames.shape[1:3]
    cam_pts = transform_points(invert_pose(c2w), ball)
    uv = project_points(cam_pts, sc.K)
    r_px = 0.45 * sc.K[0, 0] / cam_pts[:, 2]
    boxes = np.column_stack([uv[:, 0] - r_px, uv[:, 1] - r_px, uv[:, 0] + r_px, uv[:, 1] + r_px])
    visible = (cam_pts[:, 2] > 0) & (boxes[:, 2] > 0) & (boxes[:, 0] < w) & (boxes[:, 3] > 0) & (boxes[:, 1] < h)
    boxes = np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1])
    fwd = np.diff(sc.ball_world, axis=0).mean(axis=0)
    fwd /= np.linalg.norm(fwd)
    up = np.array([0.0, 0.0, 1.0])
    left = np.cross(up, fwd)
    rot = np.broadcast_to(np.stack([fwd, left, up], axis=1), (len(idx), 3, 3))
    obj = object_track_from_world("ball", "ball", centers_world=ball, c2w=c2w, visible=visible, boxes_xyxy=boxes,
                                  is_agent=True, world_from_agent=rot)
    return SceneRecord(record_id=rec.record_id + "-gt", video=rec.video, camera=camera_track(sc.K, c2w),
                       objects=(obj,), scale_kind="metric", meters_per_unit=1.0), boxes, visible


def align_poses(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> Sim3:
    """Sim(3) from camera centres plus points one (scaled) unit along each camera's z and −y axes.

    Centres alone leave the roll about a straight camera path undetermined (Umeyama on collinear points).
    """
    from dsr.scene.align import umeyama

    s0 = umeyama(est_c2w[:, :3, 3], gt_c2w[:, :3, 3]).scale
    src = np.concatenate([est_c2w[:, :3, 3], est_c2w[:, :3, 3] + est_c2w[:, :3, 2], est_c2w[:, :3, 3] - est_c2w[:, :3, 1]])
    dst = np.concatenate([gt_c2w[:, :3, 3], gt_c2w[:, :3, 3] + s0 * gt_c2w[:, :3, 2],
                          gt_c2w[:, :3, 3] - s0 * gt_c2w[:, :3, 1]])
    return umeyama(src, dst)


def rotation_depth_alignment(rec: SceneRecord, obj: ObjectTrack, gt: SceneRecord) -> Sim3:
    """Sim(3) for a camera without translation: rotation from the camera orientations, scale from the median
    camera–object distance (so centre errors measure shape, not the unknowable scale)."""
    v = rec.camera.valid
    m = np.einsum("nij,nkj->ik", gt.camera.c2w[v, :3, :3], rec.camera.c2w[v, :3, :3])
    u, _, vt = np.linalg.svd(m)
    rot = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    k = obj.center_known & v
    d_est = np.linalg.norm(obj.centers_world[k] - rec.camera.c2w[k, :3, 3], axis=1)
    d_gt = np.linalg.norm(gt.objects[0].centers_world[k] - gt.camera.c2w[k, :3, 3], axis=1)
    scale = float(np.median(d_gt) / np.median(d_est)) if k.any() else 1.0
    t = gt.camera.c2w[v, :3, 3].mean(0) - scale * rot @ rec.camera.c2w[v, :3, 3].mean(0)
    return Sim3(rot, t, scale)


def main() -> None:
    from dsr.errors import DsrError
    from dsr.extract.adapters import box_iou
    from dsr.extract.clip import ClipConfig
    from dsr.extract.pipeline import ExtractConfig, extract_video
    from dsr.qa.generate import generate_record_qas
    from dsr.qa.query import Query, answer
    from dsr.scene.align import ate, path_length
    from dsr.scene.poses import rotation_angle_deg
    from dsr.video import write_video

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--per-video", type=int, default=40)
    ap.add_argument("--cameras", nargs="+", default=["truck", "pan", "static"])
    args = ap.parse_args()
    config = replace(ExtractConfig(), clip=ClipConfig(num_samples=16, dense_fps=10.0))
    totals: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    for camera in args.cameras:
        for seed in args.seeds:
            sc = make_clip(30, camera=camera, seed=seed)
            with tempfile.TemporaryDirectory() as tmp:
                video = write_video(Path(tmp) / f"{camera}-{seed}.mp4", sc.frames, sc.fps)
                out = extract_video(video, config)
            row: dict = {"clip": f"{camera}/seed{seed}", "status": out.status, "reason": out.reason,
                         "seconds": round(sum(out.stage_seconds.values()), 1)}
            if out.record is None:
                print(json.dumps(row), flush=True)
                continue
            rec = out.record
            gt, gt_boxes, gt_vis = gt_record(sc, rec)
            valid = rec.camera.valid
            path = path_length(gt.camera.c2w[:, :3, 3])
            row["camera"] = rec.camera.source.name
            row["focal_err_pct"] = round(100 * abs(rec.camera.K[0, 0, 0] - sc.K[0, 0]) / sc.K[0, 0], 2)
            rel = invert_pose(rec.camera.c2w[valid][:-1]) @ rec.camera.c2w[valid][1:]
            rel_gt = invert_pose(gt.camera.c2w[valid][:-1]) @ gt.camera.c2w[valid][1:]
            row["rel_rot_err_deg_median"] = round(float(np.median(rotation_angle_deg(
                np.swapaxes(rel_gt[:, :3, :3], 1, 2) @ rel[:, :3, :3]))), 3)
            if path > 1e-6 and np.ptp(rec.camera.c2w[valid, :3, 3], axis=0).max() > 1e-9:
                stats, _ = ate(rec.camera.c2w[valid, :3, 3], gt.camera.c2w[valid, :3, 3])
                row["ate_pct_path"] = round(100 * stats.rmse / path, 2)
                sim = align_poses(rec.camera.c2w[valid], gt.camera.c2w[valid])
            else:
                sim = None  # no translation to align by: fitted below from rotations and object depths
            # the extracted object standing for the ball
            best, best_iou = None, 0.0
            for obj in rec.objects:
                both = obj.visible & gt_vis
                if both.any():
                    iou = float(np.mean([box_iou(obj.boxes_xyxy[t], gt_boxes[t])[0, 0] for t in np.flatnonzero(both)]))
                    if iou > best_iou:
                        best, best_iou = obj, iou
            row["objects"] = len(rec.objects)
            row["ball_box_iou"] = round(best_iou, 3)
            if best is not None and sim is None:
                sim = rotation_depth_alignment(rec, best, gt)
            if best is not None:
                k = best.center_known & valid
                if k.any():
                    err = np.linalg.norm(sim.apply(best.centers_world[k]) - gt.objects[0].centers_world[k], axis=1)
                    dist = np.median(np.linalg.norm(gt.objects[0].centers_cam, axis=1))
                    row["center_err_pct_depth"] = round(100 * float(np.median(err)) / dist, 1)
                    row["center_known_frames"] = int(k.sum())
                o = best.orientation
                if o is not None and o.known.any():
                    fwd = (sim.rotation @ o.world_from_agent[o.known][:, :, 0].T).T
                    gt_fwd = gt.objects[0].orientation.world_from_agent[0][:, 0]
                    row["heading_err_deg_median"] = round(float(np.degrees(np.median(np.arccos(np.clip(
                        fwd @ gt_fwd, -1, 1))))), 1)
                renamed = replace(rec, objects=(replace(best, object_id="ball"),))
            else:
                renamed = None
            per_type: Counter[str] = Counter()
            per_type_ok: Counter[str] = Counter()
            for qa in (q.to_json() for q in generate_record_qas(gt, per_video=args.per_video, seed=seed)):
                query = Query.from_json(qa["query"])
                per_type[qa["type"]] += 1
                per_type[f"observer:{'camera' if query.observer == 'camera' else 'agent'}"] += 1
                try:
                    got = answer(renamed, query).text if renamed is not None else None
                except DsrError:  # unanswerable on the extracted record (e.g. unknown centre): disagreement
                    got = None
                per_type_ok[qa["type"]] += got == qa["answer_text"]
                per_type_ok[f"observer:{'camera' if query.observer == 'camera' else 'agent'}"] += (
                    got == qa["answer_text"])
            totals.update(per_type)
            agree.update(per_type_ok)
            row["qa_agreement"] = {t: f"{per_type_ok[t]}/{n}" for t, n in sorted(per_type.items())}
            print(json.dumps(row), flush=True)
    n_all = totals["observer:camera"] + totals["observer:agent"]
    overall = (agree["observer:camera"] + agree["observer:agent"]) / max(1, n_all)
    print(json.dumps({"qa_agreement_overall": round(overall, 3), "qas": n_all,
                      "per_type": {t: round(agree[t] / n, 3) for t, n in sorted(totals.items())}}))


if __name__ == "__main__":
    main()
