"""Which cheaper settings of the ``dsr extract`` camera stage keep its accuracy? Measured, one run per table.

The camera stage (``AutoCamera``: rotation-only check → pycolmap SfM → VO) dominates extraction time. This
script runs **only** that stage (``load_clip`` + ``AutoCamera(...).estimate(clip)``, as in
benchmarks/extract_worlds.py) under several settings ("levers"), alone and combined, on

* MuJoCo worlds with exact GT (``dsr.world.render_world``; hand-held / dolly / orbit cameras, 6 s at 10 fps),
* the numpy ray-caster's truck clips with exact GT (tests/extract/extract_synth.py), and
* one real clip for timing (sam2 ``bedroom.mp4`` from /work/shared/realdata; no GT: its "ATE" is measured
  against the trajectory the default settings give in the same run, i.e. consistency, not accuracy).

Per setting × clip it prints: camera seconds, seconds per video minute, the method that won, ATE as % of the
GT path (Sim(3), valid sampled frames), coverage, pycolmap's sub-stage times (features / matching / mapping),
and the load average. The summary gives each setting's total camera time and its ratio to the default
settings **measured in the same run** (clips are the outer loop, so each clip's settings run back to back).

Levers that need a code change are applied by monkeypatching inside this script only:

* ``grid`` / ``sfm4`` / ``sfm3`` (``Setting.sfm_fps``) — SfM on the dense frames nearest a 6 / 4 / 3 fps time
  grid only, without the extra sampled frames that ``load_clip`` adds to the dense set (the rotation check
  and VO still see every dense frame); poses at the sampled frames are interpolated (slerp / lerp over frame
  number) between the two registered grid frames around them, SfM point observations re-projected from
  the nearest one. Proposed as a change of camera.py (docs/bench-extract-levers.md §5); once
  ``CameraConfig`` has an ``sfm_fps`` field, the script sets that field instead of monkeypatching.
* ``ba*`` / ``noquad`` — pycolmap mapper / pairing options (wrapping ``pycolmap.incremental_mapping`` /
  ``pycolmap.match_sequential``).

    .venv/bin/python benchmarks/extract_camera_levers.py [--settings default sift2048 ...] [--clips ...]
        [--repeats 1] [--json out.json]

Every setting on every default clip takes over an hour on 2 loaded cores; the decisive comparison of
docs/bench-extract-levers.md is ``--settings default sfm3 rec_d`` (about 5 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO / "tests" / "extract"))


@dataclass(frozen=True)
class Setting:
    """One combination of levers: overrides of ClipConfig / CameraConfig plus the monkeypatched ones."""

    clip: dict[str, Any] = field(default_factory=dict)
    camera: dict[str, Any] = field(default_factory=dict)
    sfm_fps: float | None = None  # SfM on a time grid at this rate only, without the sampled frames (see top)
    mapper: dict[str, Any] = field(default_factory=dict)  # IncrementalPipelineOptions attributes
    pairing: dict[str, Any] = field(default_factory=dict)  # SequentialPairingOptions attributes


BA_LIGHT = {"ba_global_frames_ratio": 1.4, "ba_global_points_ratio": 1.4, "ba_global_max_num_iterations": 20,
            "ba_global_max_refinements": 2}

SETTINGS: dict[str, Setting] = {
    "default": Setting(),
    "sift2048": Setting(camera={"sift_max_features": 2048}),
    "sift1024": Setting(camera={"sift_max_features": 1024}),
    "side480": Setting(clip={"dense_max_side": 480}),
    "side400": Setting(clip={"dense_max_side": 400}),
    "fps4": Setting(clip={"dense_fps": 4.0}),
    "fps3": Setting(clip={"dense_fps": 3.0}),
    "overlap5": Setting(camera={"sequential_overlap": 5}),
    "noquad": Setting(pairing={"quadratic_overlap": False}),
    "grid": Setting(sfm_fps=6.0),
    "sfm4": Setting(sfm_fps=4.0),  # dense frames (rotation check, VO) stay at 6 fps
    "sfm3": Setting(sfm_fps=3.0),
    "ba_light": Setting(mapper=BA_LIGHT),
    # combinations
    "grid+fps4+sift2048": Setting(clip={"dense_fps": 4.0}, camera={"sift_max_features": 2048}, sfm_fps=4.0),
    "combo_a": Setting(clip={"dense_fps": 4.0, "dense_max_side": 480},
                       camera={"sift_max_features": 2048, "sequential_overlap": 5}, sfm_fps=4.0),
    "combo_b": Setting(clip={"dense_fps": 3.0, "dense_max_side": 480},
                       camera={"sift_max_features": 2048, "sequential_overlap": 5}, sfm_fps=3.0,
                       mapper=BA_LIGHT),
    "combo_c": Setting(clip={"dense_fps": 3.0, "dense_max_side": 400},
                       camera={"sift_max_features": 1024, "sequential_overlap": 5}, sfm_fps=3.0,
                       mapper=BA_LIGHT, pairing={"quadratic_overlap": False}),
    # candidates for new defaults: dense frames (rotation check, VO, movers) stay at 6 fps
    "rec_a": Setting(clip={"dense_max_side": 480}, camera={"sequential_overlap": 5}, sfm_fps=4.0),
    "rec_b": Setting(clip={"dense_max_side": 480}, camera={"sequential_overlap": 5}, sfm_fps=3.0, mapper=BA_LIGHT),
    "rec_c": Setting(clip={"dense_max_side": 480}, sfm_fps=3.0),
    # rec_c with the rotation / VO pixel thresholds scaled by 480/640, so they keep the same angular size
    "rec_d": Setting(clip={"dense_max_side": 480}, sfm_fps=3.0,
                     camera={"max_homography_residual_px": 1.5 * 0.75, "max_long_residual_px": 3.0 * 0.75,
                             "min_parallax_px": 1.0 * 0.75}),
}


# --------------------------------------------------------------------------------------------------
# the "grid" lever: SfM on the dense time grid only, poses at the sampled frames interpolated


def grid_positions(dense_indices: np.ndarray, fps: float, sfm_fps: float) -> np.ndarray:
    """Positions in ``dense_indices`` nearest to a ``sfm_fps`` time grid, plus the first and last dense frame."""
    times = (dense_indices - dense_indices[0]) / fps
    grid = np.arange(0.0, times[-1] + 1e-9, 1.0 / sfm_fps)
    pos = np.clip(np.searchsorted(times, grid - 1e-6), 0, len(times) - 1)
    return np.unique(np.concatenate([pos, [0, len(times) - 1]])).astype(np.int64)


def interpolate_poses(query: np.ndarray, known_idx: np.ndarray, known_c2w: np.ndarray, known: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses at frame numbers ``query`` from poses at ``known_idx`` (sorted) where ``known`` is True.

    A query frame gets a pose when it coincides with a known frame or lies between two known neighbours
    (slerp of rotations, lerp of centres by frame number); others stay invalid (no extrapolation).
    Returns (c2w (Q, 4, 4), valid (Q,), nearest known position (Q,), −1 where invalid).
    """
    from scipy.spatial.transform import Rotation, Slerp

    c2w = np.tile(np.eye(4), (len(query), 1, 1))
    valid = np.zeros(len(query), bool)
    nearest = np.full(len(query), -1, np.int64)
    for q, frame in enumerate(query):
        j = int(np.searchsorted(known_idx, frame))
        if j < len(known_idx) and known_idx[j] == frame:
            if known[j]:
                c2w[q], valid[q], nearest[q] = known_c2w[j], True, j
            continue
        if 0 < j < len(known_idx) and known[j - 1] and known[j]:
            a, b = known_idx[j - 1], known_idx[j]
            w = (frame - a) / (b - a)
            rot = Slerp([0.0, 1.0], Rotation.from_matrix(known_c2w[[j - 1, j], :3, :3]))([w]).as_matrix()[0]
            c2w[q, :3, :3] = rot
            c2w[q, :3, 3] = (1 - w) * known_c2w[j - 1, :3, 3] + w * known_c2w[j, :3, 3]
            valid[q], nearest[q] = True, (j - 1 if w <= 0.5 else j)
    return c2w, valid, nearest


def reproject_observations(points_world: np.ndarray, point_ids: np.ndarray, c2w: np.ndarray, K: np.ndarray,
                           width: int, height: int) -> np.ndarray:
    """(u, v, point id) of ``point_ids`` seen from ``c2w`` with ``K``, kept where in front and inside the image."""
    if len(point_ids) == 0:
        return np.zeros((0, 3))
    p = points_world[point_ids.astype(np.int64)]
    cam = (p - c2w[:3, 3]) @ c2w[:3, :3]
    front = cam[:, 2] > 1e-9
    uv = cam[front, :2] / cam[front, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= height - 1)
    return np.column_stack([uv[inside], point_ids[front][inside]])


def grid_pycolmap_class(sfm_fps: float) -> type:
    """A PycolmapCamera that reconstructs the grid frames only and interpolates the sampled frames' poses."""
    from dsr.extract.adapters import camera_track_from_w2c
    from dsr.extract.base import CameraEstimate, SparsePoints, VideoClip
    from dsr.extract.camera import PycolmapCamera
    from dsr.scene.frames import invert_pose

    class GridPycolmapCamera(PycolmapCamera):
        def _run(self, clip: VideoClip) -> tuple[CameraEstimate, dict[str, float]]:
            pos = grid_positions(clip.dense_indices, clip.fps, sfm_fps)
            idx = clip.dense_indices[pos]
            # the grid frames play the role of the sampled frames (poses + observations are read for them)
            sub = VideoClip(frames_rgb=np.broadcast_to(clip.frames_rgb[:1], (len(pos), *clip.frames_rgb.shape[1:])),
                            timestamps_s=idx / clip.fps, frame_indices=idx, dense_rgb=clip.dense_rgb[pos],
                            dense_indices=idx, dense_scale=clip.dense_scale, fps=clip.fps)
            est, stats = super()._run(sub)
            stats["sfm_frames"] = float(len(pos))
            if est.track is None:
                return est, stats
            track = est.track
            c2w, valid, nearest = interpolate_poses(clip.frame_indices, idx, track.c2w, track.valid)
            K = track.K[0]
            obs = []
            for t in range(len(c2w)):
                if valid[t] and est.points is not None:
                    ids = est.points.observations[nearest[t]][:, 2]
                    obs.append(reproject_observations(est.points.points_world, ids, c2w[t], K, clip.width,
                                                      clip.height))
                else:
                    obs.append(np.zeros((0, 3)))
            points = None if est.points is None else SparsePoints(est.points.points_world, tuple(obs))
            new_track = camera_track_from_w2c(invert_pose(c2w), K, track.source, valid=valid,
                                              confidence=np.where(valid, 0.9, 0.0),
                                              rotation_sigma_deg=np.where(valid, 0.2, 10.0))
            trusted, reason = est.trusted, est.reason
            stats["sampled_valid_ratio"] = float(valid.mean())
            if trusted and valid.mean() < self.config.min_valid_ratio:
                trusted, reason = False, f"only {valid.sum()}/{len(valid)} sampled frames between registered frames"
            return replace(est, track=new_track, trusted=trusted, reason=reason, points=points), stats

    return GridPycolmapCamera


# --------------------------------------------------------------------------------------------------
# pycolmap sub-stage timing and option overrides


@contextlib.contextmanager
def patched_camera(setting: Setting, timings: dict[str, float]) -> Iterator[None]:
    """Apply the monkeypatched levers of ``setting`` and time pycolmap's three sub-stages into ``timings``."""
    import pycolmap

    import dsr.extract.camera as camera_mod

    originals = {name: getattr(pycolmap, name) for name in ("extract_features", "match_sequential",
                                                            "incremental_mapping")}

    def timed(name: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if name == "incremental_mapping" and setting.mapper:
                for key, value in setting.mapper.items():
                    setattr(kwargs["options"], key, value)
            if name == "match_sequential" and setting.pairing:
                for key, value in setting.pairing.items():
                    setattr(kwargs["pairing_options"], key, value)
            t0 = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return run

    original_class = camera_mod.PycolmapCamera
    try:
        for name in originals:
            setattr(pycolmap, name, timed(name))
        if setting.sfm_fps is not None:
            camera_mod.PycolmapCamera = grid_pycolmap_class(setting.sfm_fps)
        yield
    finally:
        for name, fn in originals.items():
            setattr(pycolmap, name, fn)
        camera_mod.PycolmapCamera = original_class


# --------------------------------------------------------------------------------------------------
# clips


@dataclass(frozen=True)
class ClipSource:
    name: str
    video: Path
    gt_c2w: np.ndarray | None  # (N, 4, 4) per video frame, None for the real clip
    num_samples: int = 32


def prepare_clips(names: list[str], workdir: Path) -> list[ClipSource]:
    from dsr.scene.io import read_record
    from dsr.video import write_video
    from dsr.world import WorldConfig, render_world

    out = []
    for name in names:
        kind, _, arg = name.partition(":")
        if kind == "world":  # world:<motion>[@WxH]
            motion, _, size = arg.partition("@")
            w, h = (int(v) for v in (size or "320x240").split("x"))
            d = workdir / f"world-{motion}-{w}x{h}"
            render_world(WorldConfig(seed=1, camera_motion=motion, duration_s=6.0, fps=10.0, width=w, height=h), d,
                         progress=False)
            out.append(ClipSource(name, d / "video.mp4", read_record(d / "record.npz").camera.c2w))
        elif kind == "truck":  # truck:<seed>
            from extract_synth import make_clip

            sc = make_clip(30, camera="truck", seed=int(arg))
            video = write_video(workdir / f"truck-{arg}.mp4", sc.frames, sc.fps)
            # 30 frames: 16 samples as in benchmarks/extract_synthetic.py (32 would be every frame)
            out.append(ClipSource(name, video, sc.c2w, num_samples=16))
        elif kind == "real":
            video = SHARED / "realdata" / "videos" / arg
            if not video.exists():
                print(f"skip {name}: {video} not found", file=sys.stderr)
                continue
            out.append(ClipSource(name, video, None))
        else:
            raise SystemExit(f"unknown clip {name!r} (world:<motion>[@WxH] | truck:<seed> | real:<file>)")
    return out


def trajectory_error(est_c2w: np.ndarray, valid: np.ndarray, ref_c2w: np.ndarray) -> tuple[float | None, float]:
    """(ATE % of reference path after Sim(3), median relative-rotation error °) over frames valid in both."""
    from dsr.scene.align import ate, path_length, rotation_angle_deg

    if valid.sum() < 3:
        return None, float("nan")
    e, r = est_c2w[valid], ref_c2w[valid]
    rel_e = np.swapaxes(e[:1, :3, :3], 1, 2) @ e[:, :3, :3]
    rel_r = np.swapaxes(r[:1, :3, :3], 1, 2) @ r[:, :3, :3]
    rot_err = float(np.median(rotation_angle_deg(np.swapaxes(rel_r, 1, 2) @ rel_e)))
    path = path_length(r[:, :3, 3])
    if path <= 1e-3 or np.ptp(e[:, :3, 3], axis=0).max() <= 1e-9:
        return None, rot_err
    stats, _ = ate(e[:, :3, 3], r[:, :3, 3])
    return 100 * stats.rmse / path, rot_err


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(src: ClipSource, name: str, setting: Setting, reference: dict[str, np.ndarray]) -> dict:
    from dsr.extract.camera import AutoCamera, CameraConfig
    from dsr.extract.clip import ClipConfig, load_clip

    clip_cfg = replace(ClipConfig(), num_samples=src.num_samples, **setting.clip)
    cam_cfg = replace(CameraConfig(), **setting.camera)
    if setting.sfm_fps is not None and "sfm_fps" in {f.name for f in fields(CameraConfig)}:
        cam_cfg = replace(cam_cfg, sfm_fps=setting.sfm_fps)  # the lever is in camera.py: no monkeypatch
        setting = replace(setting, sfm_fps=None)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    clip, meta = load_clip(src.video, clip_cfg)
    load_s = time.perf_counter() - t0
    timings: dict[str, float] = {}
    with patched_camera(setting, timings):
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        est = AutoCamera(cam_cfg).estimate(clip)
        cam_s = time.perf_counter() - t0
        cpu_s = _cpu_seconds() - cpu0
    minutes = meta.num_frames / meta.fps / 60.0
    row: dict[str, Any] = {
        "setting": name, "clip": src.name, "method": est.method if est.trusted else "none",
        "camera_s": round(cam_s, 2), "s_per_video_min": round(cam_s / minutes, 1), "decode_s": round(load_s, 2),
        # CPU seconds of this process (all threads): less sensitive than wall time to other agents' load
        "camera_cpu_s": round(cpu_s, 2),
        "dense_frames": len(clip.dense_indices), "dense_hw": list(clip.dense_rgb.shape[1:3]),
        "sfm": {k.split("_")[0]: round(v, 2) for k, v in timings.items()},
        "attempts": [f"{a.method}: {a.reason} ({a.seconds:.1f}s)" for a in est.attempts],
        "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    for a in est.attempts:
        if a.method == "pycolmap":
            row["registered_ratio"] = round(a.stats.get("registered_ratio", 0.0), 3)
    if est.track is not None and est.trusted:
        valid = est.track.valid
        row["coverage"] = f"{int(valid.sum())}/{len(valid)}"
        if src.gt_c2w is not None:
            ate_pct, rot = trajectory_error(est.track.c2w, valid, src.gt_c2w[clip.frame_indices])
            row["ate_pct_path"] = None if ate_pct is None else round(ate_pct, 3)
            row["rot_err_deg"] = round(rot, 3)
        elif name == "default":
            reference[src.name] = np.where(valid[:, None, None], est.track.c2w, np.nan)
        elif src.name in reference:
            ref = reference[src.name]
            both = valid & ~np.isnan(ref[:, 0, 0])
            ate_pct, rot = trajectory_error(est.track.c2w, both, np.nan_to_num(ref))
            row["ate_vs_default_pct"] = None if ate_pct is None else round(ate_pct, 3)
            row["rot_vs_default_deg"] = round(rot, 3)
    return row


def summarize(rows: list[dict], names: list[str]) -> list[dict]:
    """Per setting: camera time over all clips, ratio to default (same run), worst ATE, methods."""
    by = {n: [r for r in rows if r["setting"] == n] for n in names}
    base = sum(r["camera_s"] for r in by.get("default", []))
    base_cpu = sum(r["camera_cpu_s"] for r in by.get("default", []))
    out = []
    for n, rs in by.items():
        if not rs:
            continue
        total = sum(r["camera_s"] for r in rs)
        gt_ates = [r["ate_pct_path"] for r in rs if r.get("ate_pct_path") is not None]
        real = [r for r in rs if r["clip"].startswith("real:")]
        cpu = sum(r["camera_cpu_s"] for r in rs)
        out.append({"setting": n, "camera_s_total": round(total, 1),
                    "ratio_vs_default": round(total / base, 3) if base else None,
                    "cpu_ratio_vs_default": round(cpu / base_cpu, 3) if base_cpu else None,
                    "real_s_per_min": [r["s_per_video_min"] for r in real],
                    "worst_gt_ate_pct": max(gt_ates) if gt_ates else None,
                    "misses": [r["clip"] for r in rs if r["method"] == "none"
                               or (r.get("ate_pct_path") or 0.0) > 2.0],
                    "methods": sorted({r["method"] for r in rs})})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--clips", nargs="+", default=["world:handheld", "world:dolly", "world:orbit",
                                                   "world:handheld@640x480", "truck:0", "truck:1",
                                                   "real:sam2-bedroom.mp4"])
    ap.add_argument("--repeats", type=int, default=1, help="run the whole table this many times")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    names = ["default", *[s for s in args.settings if s != "default"]]  # default first: the reference
    rows: list[dict] = []
    summaries = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dsr-levers-") as tmp:
        clips = prepare_clips(args.clips, Path(tmp))
        for rep in range(args.repeats):
            run_rows = []
            for src in clips:
                reference: dict[str, np.ndarray] = {}
                for name in names:
                    row = run_one(src, name, SETTINGS[name], reference)
                    row["repeat"] = rep
                    run_rows.append(row)
                    print(json.dumps(row), flush=True)
            rows.extend(run_rows)
            summary = summarize(run_rows, names)
            summaries.append(summary)
            print(f"== repeat {rep}: summary (ratios within this repeat) ==")
            for s in summary:
                print(json.dumps(s), flush=True)
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1), "cpu_count": os.cpu_count()}))
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "summaries": summaries}, indent=1))


if __name__ == "__main__":
    main()
