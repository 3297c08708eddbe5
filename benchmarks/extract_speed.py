"""Speed of ``dsr extract`` per stage, in seconds per minute of video, at default settings.

Runs the full pipeline (:func:`dsr.extract.pipeline.run_extract`) on a few DAVIS clips (real, 854×480,
24 fps) into a temporary folder and prints the run report's per-stage totals divided by the video minutes,
plus each clip's status. The target is ≤ 60 s per video minute (1× real time) on 2 cores.

    .venv/bin/python benchmarks/extract_speed.py [--clips blackswan car-shadow dog] [--camera auto]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAVIS = REPO / ".." / "shared" / "realdata" / "davis2016_val" / "mp4"


def main() -> None:
    from dsr.cli.extract import CAMERA_CHOICES
    from dsr.extract.pipeline import ExtractConfig, run_extract

    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=["blackswan", "car-shadow", "dog", "kite-surf"],
                    help="DAVIS sequence names, or paths to video files")
    ap.add_argument("--camera", default="auto", choices=sorted(CAMERA_CHOICES))
    args = ap.parse_args()
    videos = [Path(c) if c.endswith(".mp4") else DAVIS / f"{c}.mp4" for c in args.clips]
    config = replace(ExtractConfig(), camera_methods=CAMERA_CHOICES[args.camera])
    with tempfile.TemporaryDirectory() as tmp:
        report = run_extract(videos, tmp, config)
    for item in report["items"]:
        print(json.dumps({k: item[k] for k in ("video", "status", "reason", "duration_s", "stage_seconds")}))
    total = sum(report["stage_seconds"].values())
    minutes = sum(i["duration_s"] for i in report["items"]) / 60
    print(json.dumps({"camera": args.camera, "video_minutes": round(minutes, 3),
                      "seconds_per_video_minute": report["seconds_per_video_minute"],
                      "total_seconds_per_video_minute": round(total / minutes, 1)}))


if __name__ == "__main__":
    main()
