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

Levers:

* ``allframes`` / ``grid`` / ``sfm4`` / ``sfm3`` — ``CameraConfig.sfm_fps``: SfM on every dense frame (the
  default before session 2, with the sampled frames that ``load_clip`` adds) or on the dense frames at a
  6 / 4 / 3 fps time grid only, poses at the sampled frames interpolated between registered grid frames.
  ``sfm3`` is the current default, so ``default`` = ``sfm3``; the tables of docs/bench-extract-levers.md were
  measured when ``default`` meant ``allframes`` and the grid was monkeypatched in (same algorithm).
* ``ba*`` / ``noquad`` — pycolmap mapper / pairing options, applied by wrapping
  ``pycolmap.incremental_mapping`` / ``pycolmap.match_sequential`` inside this script only.

    .venv/bin/python benchmarks/extract_camera_levers.py [--settings default sift2048 ...] [--clips ...]
        [--repeats 1] [--json out.json]

Every setting on every default clip takes over an hour on 2 loaded cores; the decisive comparison of
docs/bench-extract-levers.md is ``--settings allframes sfm3 rec_d`` (about 5 minutes).
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
from dataclasses import dataclass, field, replace
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
    "allframes": Setting(camera={"sfm_fps": None}),  # the default before session 2
    "grid": Setting(camera={"sfm_fps": 6.0}),
    "sfm4": Setting(camera={"sfm_fps": 4.0}),  # dense frames (rotation check, VO) stay at 6 fps
    "sfm3": Setting(camera={"sfm_fps": 3.0}),  # = the current default
    "ba_light": Setting(mapper=BA_LIGHT),
    # combinations
    "grid+fps4+sift2048": Setting(clip={"dense_fps": 4.0}, camera={"sift_max_features": 2048, "sfm_fps": 4.0}),
    "combo_a": Setting(clip={"dense_fps": 4.0, "dense_max_side": 480},
                       camera={"sift_max_features": 2048, "sequential_overlap": 5, "sfm_fps": 4.0}),
    "combo_b": Setting(clip={"dense_fps": 3.0, "dense_max_side": 480},
                       camera={"sift_max_features": 2048, "sequential_overlap": 5, "sfm_fps": 3.0},
                       mapper=BA_LIGHT),
    "combo_c": Setting(clip={"dense_fps": 3.0, "dense_max_side": 400},
                       camera={"sift_max_features": 1024, "sequential_overlap": 5, "sfm_fps": 3.0},
                       mapper=BA_LIGHT, pairing={"quadratic_overlap": False}),
    # candidates for new defaults: dense frames (rotation check, VO, movers) stay at 6 fps
    "rec_a": Setting(clip={"dense_max_side": 480}, camera={"sequential_overlap": 5, "sfm_fps": 4.0}),
    "rec_b": Setting(clip={"dense_max_side": 480}, camera={"sequential_overlap": 5, "sfm_fps": 3.0},
                     mapper=BA_LIGHT),
    "rec_c": Setting(clip={"dense_max_side": 480}, camera={"sfm_fps": 3.0}),
    # rec_c with the rotation / VO pixel thresholds scaled by 480/640, so they keep the same angular size
    "rec_d": Setting(clip={"dense_max_side": 480},
                     camera={"sfm_fps": 3.0, "max_homography_residual_px": 1.5 * 0.75,
                             "max_long_residual_px": 3.0 * 0.75, "min_parallax_px": 1.0 * 0.75}),
}


# --------------------------------------------------------------------------------------------------
# pycolmap sub-stage timing and option overrides


@contextlib.contextmanager
def patched_camera(setting: Setting, timings: dict[str, float]) -> Iterator[None]:
    """Apply the monkeypatched levers of ``setting`` and time pycolmap's three sub-stages into ``timings``."""
    import pycolmap


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

    try:
        for name in originals:
            setattr(pycolmap, name, timed(name))
        yield
    finally:
        for name, fn in originals.items():
            setattr(pycolmap, name, fn)


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
    from dsr.scene.align import ate, path_length
    from dsr.scene.poses import rotation_angle_deg

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
    from dsr.extract.camera import CameraConfig
    from dsr.extract.camera.auto import AutoCamera
    from dsr.extract.clip import ClipConfig, load_clip

    clip_cfg = replace(ClipConfig(), num_samples=src.num_samples, **setting.clip)
    cam_cfg = replace(CameraConfig(), **setting.camera)
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
