"""Evaluation harness speed: overhead per item (no model) and throughput against a 200 ms server.

Usage: ``python benchmarks/bench_eval.py [--items 500] [--latency 0.2] [--concurrency 16]``.
Prints one line per measurement; figures are recorded in ``docs/bench-eval.md``.

1. baseline model (``always:A``, no frames): scheduling + parsing + one fsync'd JSON line per item;
2. loopback server with no latency, 8 cached frames per item: the full per-item path (frame cache read,
   base64 JPEG payload, HTTP round trip, parse, append) at concurrency 1;
3. loopback server with a fixed latency at the given concurrency: wall time against the ideal
   ``items × latency / concurrency``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.fakeserver import serve
from dsr.evaluate.models import OpenAIChatModel, create_model
from dsr.evaluate.run import RunConfig, run_eval, write_summary
from dsr.evaluate.sampling import FramePolicy
from dsr.video import write_video


def _dataset(root: Path, n_items: int, n_videos: int = 10) -> Path:
    for v in range(n_videos):
        frames = []
        for t in range(60):
            img = np.full((240, 320, 3), 40, np.uint8)
            img[100:140, (5 * t + 9 * v) % 280:(5 * t + 9 * v) % 280 + 40] = (230, 80, 30)
            frames.append(img)
        write_video(root / f"v{v}.mp4", frames, fps=20)
    rows = [{"id": f"q{i:05d}", "video": str(root / f"v{i % n_videos}.mp4"), "question": f"Question {i}?",
             "options": ["A. left", "B. right", "C. up", "D. down"], "answer": "ABCD"[i % 4],
             "type": "abs_dir"} for i in range(n_items)]
    path = root / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} python {platform.python_version()}")
    import scipy.stats  # noqa: F401 - imported once up front so no timing below includes it
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ds = load_dataset(_dataset(root, args.items))
        policy = FramePolicy(num_frames=8, max_side=320)
        cache = root / "cache"

        t = time.perf_counter()
        run_eval(ds, create_model("always:A"), root / "baseline", RunConfig(concurrency=4), progress=False)
        dt = time.perf_counter() - t
        t = time.perf_counter()
        write_summary(root / "baseline")
        ds_summary = time.perf_counter() - t
        print(f"baseline (no model, no frames): {args.items} items in {dt:.2f} s = {1e3 * dt / args.items:.2f} ms/item "
              f"(of which the final summary, 2000 cluster-bootstrap resamples: {ds_summary:.2f} s)")

        fast = serve(latency_s=0.0)
        url = f"http://127.0.0.1:{fast.server_address[1]}/v1"
        warm = OpenAIChatModel(model="fake", base_url=url)
        t = time.perf_counter()
        run_eval(ds, warm, root / "warm", RunConfig(policy=policy, concurrency=4), cache_dir=cache, progress=False)
        dt = time.perf_counter() - t
        print(f"first pass, decoding + caching 8 frames/item ({len(set(i.video_id for i in ds.items))} videos): "
              f"{dt:.2f} s")
        t = time.perf_counter()
        run_eval(ds, OpenAIChatModel(model="fake", base_url=url, max_connections=1), root / "serial",
                 RunConfig(policy=policy, concurrency=1), cache_dir=cache, progress=False)
        dt = time.perf_counter() - t
        print(f"harness + loopback HTTP, cached frames, concurrency 1: {1e3 * dt / args.items:.2f} ms/item")
        fast.shutdown()

        slow = serve(latency_s=args.latency)
        url = f"http://127.0.0.1:{slow.server_address[1]}/v1"
        model = OpenAIChatModel(model="fake", base_url=url, max_connections=args.concurrency)
        t = time.perf_counter()
        run_eval(ds, model, root / "slow", RunConfig(policy=policy, concurrency=args.concurrency), cache_dir=cache,
                 progress=False)
        dt = time.perf_counter() - t
        ideal = args.items * args.latency / args.concurrency
        print(f"server latency {args.latency * 1e3:.0f} ms, concurrency {args.concurrency}: {args.items} items in "
              f"{dt:.2f} s (ideal {ideal:.2f} s, ratio {dt / ideal:.2f}, {args.items / dt:.1f} items/s)")
        slow.shutdown()


if __name__ == "__main__":
    main()
