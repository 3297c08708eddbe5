"""Render speed of synthetic worlds at 320×240 against the target of 20 frames/s.

Measures, over the same worlds in one run:
  render only   — pose + RGB + segmentation + object map per frame (the MuJoCo model already built);
  full world    — ``render_world``: scene generation, model build, rendering, masks (RLE), boxes,
                  H.264 encoding, record building and the atomic writes;
and the same two with shadows on (``--shadows``), which CPU Mesa pays for dearly.

Usage: MUJOCO_GL=egl python benchmarks/world_render.py [--seeds 0 1 2] [--duration 24] [--fps 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

TARGET_FPS = 20.0


def _render_only(config: object) -> tuple[int, float]:
    from dsr.world.render import WorldModel
    from dsr.world.scene import generate_scene

    spec = generate_scene(config)  # type: ignore[arg-type]
    world = WorldModel(spec)
    try:
        world.render(0)  # warm-up: GL context, texture upload, shader compilation
        start = time.perf_counter()
        for i in range(spec.num_frames):
            world.render(i)
        return spec.num_frames, time.perf_counter() - start
    finally:
        world.close()


def _full(config: object, out: Path) -> tuple[int, float]:
    from dsr.world.render import render_world

    start = time.perf_counter()
    result = render_world(config, out, progress=False, overwrite=True)  # type: ignore[arg-type]
    return result.spec.num_frames, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--duration", type=float, default=None, help="seconds [default: WorldConfig's, 24]")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()

    import mujoco

    from dsr.world.config import DEFAULT_DURATION_S, WorldConfig

    if args.duration is None:
        args.duration = DEFAULT_DURATION_S

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load avg "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; python {platform.python_version()}, "
          f"mujoco {mujoco.__version__}, MUJOCO_GL={os.environ['MUJOCO_GL']}")
    print(f"worlds: seeds {args.seeds}, {args.width}x{args.height}, {args.duration:g} s at {args.fps:g} fps")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shadows in (False, True):
            frames = {"render only": 0, "full world": 0}
            seconds = {"render only": 0.0, "full world": 0.0}
            for seed in args.seeds:
                config = WorldConfig(seed=seed, duration_s=args.duration, fps=args.fps, width=args.width,
                                     height=args.height, shadows=shadows)
                n, s = _render_only(config)
                frames["render only"] += n
                seconds["render only"] += s
                n, s = _full(config, Path(tmp) / f"w{seed}")
                frames["full world"] += n
                seconds["full world"] += s
            for what in frames:
                fps = frames[what] / seconds[what]
                rows.append((f"{what}{', shadows' if shadows else ''}", frames[what], seconds[what], fps))
    print(f"{'measure':28s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s} {'× target':>9s}")
    for name, n, s, fps in rows:
        print(f"{name:28s} {n:7d} {s:8.2f} {fps:9.1f} {fps / TARGET_FPS:9.2f}")
    print(f"target: {TARGET_FPS:g} frames/s at 320x240 on 2 cores (default settings = no shadows)")


if __name__ == "__main__":
    main()
