"""Speed of ``dsr extract`` at default settings: real-time factor per clip, median over real clips and worlds.

Each clip goes through the full pipeline (:func:`dsr.extract.pipeline.extract_video`, defaults) in this
process, one after another. Per clip: wall seconds, CPU seconds of the process (all threads), the real-time
factor (wall / video duration; the target is a median ≤ 1 on 2 cores) and the seconds of each stage. The
clips: the shared real clips (``../shared/realdata``: the DAVIS-2016 val mp4s and ``videos/``, 1.7–9.6 s)
and rendered worlds (one per camera motion, the worlds' default duration), and with ``--long`` one 60-s world
whose peak memory is reported (long videos must stay within memory).

Timings depend on the machine's load: the script prints the load average before and after, the machine and
the date, and the CPU seconds (less sensitive to other processes than the wall time, but not equal to it:
YOLO and OpenCV use both cores).

    python benchmarks/extract_speed.py [--real N] [--worlds static pan dolly orbit handheld] [--long]
        [--cache out/speed] [--json out.json] [--detector-backend opencv]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "realdata"


def real_clips(limit: int | None) -> list[Path]:
    """The shared real clips, shortest-named first: DAVIS-2016 val mp4s and the videos/ folder."""
    clips = sorted((REAL / "davis2016_val" / "mp4").glob("*.mp4")) + sorted((REAL / "videos").glob("*.mp4"))
    return clips[:limit] if limit is not None else clips


def world_clip(cache: Path, motion: str, seed: int, duration: float | None) -> Path:
    from dsr.world import WorldConfig, render_world

    cfg = WorldConfig(seed=seed, camera_motion=motion) if duration is None else \
        WorldConfig(seed=seed, camera_motion=motion, duration_s=duration)
    folder = cache / f"{motion}-s{seed}-{cfg.duration_s:g}s"
    if not (folder / "video.mp4").exists():
        render_world(cfg, folder, progress=False)
    return folder / "video.mp4"


def time_clip(path: Path, config: Any) -> dict[str, Any]:
    from dsr.extract.pipeline import extract_video

    cpu, wall = time.process_time(), time.perf_counter()
    out = extract_video(path, config)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    dur = out.duration_s or float("nan")
    return {"clip": path.parent.name if path.name == "video.mp4" else path.stem, "status": out.status,
            "reason": out.reason[:90], "duration_s": round(dur, 2), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "realtime_factor": round(wall / dur, 2), "cpu_per_video_s": round(cpu / dur, 2),
            "stages": {k: round(v, 1) for k, v in out.stage_seconds.items()}}


def main() -> None:
    from dsr.extract.pipeline import ExtractConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=int, default=None, help="only the first N real clips (default: all)")
    ap.add_argument("--worlds", nargs="*", default=["static", "pan", "dolly", "orbit", "handheld"])
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--long", action="store_true", help="also a 60-s world: peak memory")
    ap.add_argument("--cache", type=Path, default=Path("out/speed"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--detector-backend", choices=("openvino", "opencv"), default=None,
                    help="run YOLO on this backend instead of the default (an A/B of the detector's cost)")
    args = ap.parse_args()
    config = ExtractConfig()
    if args.detector_backend is not None and config.detection is not None:
        from dataclasses import replace

        config = replace(config, detection=replace(config.detection, detector=replace(
            config.detection.detector, backend=args.detector_backend)))
    load_before = os.getloadavg()
    rows = []
    clips = [("real", p) for p in real_clips(args.real)]
    clips += [("world", world_clip(args.cache, m, args.seed, None)) for m in args.worlds]
    for kind, path in clips:
        row = {"kind": kind, **time_clip(path, config)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    long_row = None
    if args.long:
        long_row = {"kind": "long", **time_clip(world_clip(args.cache, "handheld", args.seed, 60.0), config)}
        long_row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
        print(json.dumps(long_row), flush=True)
    factors = [r["realtime_factor"] for r in rows if r["realtime_factor"] == r["realtime_factor"]]  # not NaN
    summary = {
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "clips": len(rows), "median_realtime_factor": round(statistics.median(factors), 2) if factors else None,
        "median_realtime_factor_real": round(statistics.median([r["realtime_factor"] for r in rows
                                                                if r["kind"] == "real"] or [float("nan")]), 2),
        "median_realtime_factor_worlds": round(statistics.median([r["realtime_factor"] for r in rows
                                                                  if r["kind"] == "world"] or [float("nan")]), 2),
        "median_cpu_per_video_s": round(statistics.median([r["cpu_per_video_s"] for r in rows]), 2) if rows else None,
        "long": long_row,
    }
    print(json.dumps(summary, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
