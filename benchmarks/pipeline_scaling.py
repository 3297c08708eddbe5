"""How `dsr pipeline run` scales on Ray: one worker vs N workers on the same rendered videos.

Renders ``--videos`` worlds (seeds from ``--first-seed``), then runs the whole pipeline (curate → extract →
questions) three times into fresh folders: the serial local executor, Ray with 1 CPU (one worker) and Ray
with ``--cpus`` CPUs. Prints wall times, the speedup of N workers over one, the per-video and per
video-minute costs that `docs/scaling.md` sizes a cluster with, and checks that the three runs wrote the
same records and questions.

Usage: MUJOCO_GL=egl python benchmarks/pipeline_scaling.py [--videos 8] [--cpus 2] [--duration 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def _records(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "records").glob("*.npz"))}


def main() -> None:
    from dsr.extract.curate import CurateConfig
    from dsr.pipeline.executors import LocalExecutor, RayExecutor
    from dsr.pipeline.run import PipelineConfig, run_pipeline
    from dsr.world import WorldConfig, render_world

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per rendered world")
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--skip-local", action="store_true", help="skip the serial local executor run")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = root / "videos"
        videos.mkdir()
        motions = ("static", "pan", "dolly", "orbit", "handheld")
        start = time.perf_counter()
        minutes = 0.0
        for k in range(args.videos):
            seed = args.first_seed + k
            world = render_world(WorldConfig(seed=seed, duration_s=args.duration, camera_motion=motions[k % 5]),
                                 root / f"w{seed}", progress=False)
            shutil.copy(world.video_path, videos / f"world{seed}.mp4")
            minutes += args.duration / 60.0
        print(f"load average before the runs: {os.getloadavg()}")
        print(f"rendered {args.videos} worlds of {args.duration:g} s in {time.perf_counter() - start:.1f} s")
        config = PipelineConfig(curate=CurateConfig(min_duration_s=0.0))
        runs: dict[str, tuple[float, dict]] = {}
        plans = ([] if args.skip_local else [("local", LocalExecutor)]) + [
            ("ray-1", lambda: RayExecutor(num_cpus=1)), (f"ray-{args.cpus}", lambda: RayExecutor(num_cpus=args.cpus))]
        for name, make in plans:
            executor = make()
            try:
                t0 = time.perf_counter()
                report = run_pipeline([videos], root / name, config, executor=executor)
                runs[name] = (time.perf_counter() - t0, report.to_json())
            finally:
                executor.close()
            print(f"{name:>8}: {runs[name][0]:7.1f} s  ({report.extracted}/{report.videos} extracted, {report.qas} QAs)")
        one, many = runs["ray-1"][0], runs[f"ray-{args.cpus}"][0]
        same = len({json.dumps(sorted(_records(root / n).items()), default=str) for n in runs}) == 1
        same_qas = len({(root / n / "qas.jsonl").read_bytes() for n in runs}) == 1
        print(f"speedup of {args.cpus} Ray workers over one: {one / many:.2f}x")
        print(f"per video: {one / args.videos:.1f} s on one worker; {one / minutes:.1f} s per video minute")
        print(f"records identical across runs: {same}; questions identical: {same_qas}")
        sizes = [len(b) for b in _records(root / f"ray-{args.cpus}").values()]
        if sizes:
            print(f"record size: mean {sum(sizes) / len(sizes) / 1e3:.0f} kB, largest {max(sizes) / 1e3:.0f} kB")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
