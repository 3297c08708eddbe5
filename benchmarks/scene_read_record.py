"""How long ``read_record`` takes, and where the time goes (issue 10 item 6: 23 ms for 600 frames).

Builds a 600-frame record like a 20-s world at 30 fps sampled densely (8 objects, 3 agents, RLE masks),
writes it, and times reading it whole, then each part alone: opening the zip and parsing the JSON,
decompressing the arrays, and building the dataclasses (the schema checks).

    python benchmarks/scene_read_record.py [--frames 600] [--objects 8] [--repeat 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def build(num_frames: int, num_objects: int, size: tuple[int, int] = (480, 640)):
    from dsr.scene import SceneRecord, VideoInfo
    from dsr.scene.build import camera_track, object_track_from_world
    from dsr.scene.frames import look_at_c2w, rotation_about_z

    h, w = size
    t = np.arange(num_frames)
    c2w = np.stack([look_at_c2w(np.array([0.01 * i, -8.0, 1.6]), np.zeros(3)) for i in t])
    K = np.array([[500.0, 0, w / 2], [0, 500.0, h / 2], [0, 0, 1]])
    objects = []
    for k in range(num_objects):
        centres = np.stack([[np.cos(0.01 * i + k), np.sin(0.01 * i + k), 0.5] for i in t])
        boxes = np.tile([100.0 + 20 * k, 100.0, 160.0 + 20 * k, 220.0], (num_frames, 1))
        masks = []
        for i in t:
            m = np.zeros((h, w), bool)
            m[100:220, 100 + 20 * k + i % 7: 160 + 20 * k] = True
            masks.append(m)
        agent = k < 3
        objects.append(object_track_from_world(
            f"obj_{k}", "person" if agent else "ball", is_agent=agent, centers_world=centres, c2w=c2w,
            visible=np.ones(num_frames, bool), boxes_xyxy=boxes, masks=masks, frame_size=(h, w),
            world_from_agent=np.stack([rotation_about_z(0.01 * i) for i in t]) if agent else None,
            center_sigma=0.01))
    video = VideoInfo(path="video.mp4", fps=30.0, width=w, height=h, num_frames=num_frames,
                      duration_s=num_frames / 30.0, frame_indices=t, timestamps_s=t / 30.0)
    return SceneRecord(record_id="bench", video=video, camera=camera_track(K, c2w), objects=tuple(objects),
                       scale_kind="metric", meters_per_unit=1.0)


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    import json
    import zipfile

    from dsr.scene.io import META_MEMBER, _Reader, read_record, record_from_parts, write_record

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    record = build(args.frames, args.objects)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_record(Path(tmp) / "r.npz", record)
        read_record(path)  # warm the imports and the page cache

        def parts() -> tuple[dict, dict]:
            with zipfile.ZipFile(path) as zf:
                reader = _Reader(zf)
                meta = json.loads(zf.read(META_MEMBER))
                arrays = {n[:-4]: reader.array(n[:-4]) for n in reader.names if n.endswith(".npy")}
            return meta, arrays

        meta, arrays = parts()
        whole = timed(lambda: read_record(path), args.repeat)
        try:  # masks=False is new in schema v2's reader; the same script times older code too
            no_masks = timed(lambda: read_record(path, masks=False), args.repeat)
        except TypeError:
            no_masks = float("nan")
        io = timed(parts, args.repeat)
        build_only = timed(lambda: record_from_parts(meta, arrays.__getitem__), args.repeat)
        size_kb = path.stat().st_size / 1024
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {load:.2f}")
    print(f"record: {args.frames} frames, {args.objects} objects, {len(arrays)} arrays, {size_kb:.0f} KB on disk")
    print(f"read_record (whole):              {1000 * whole:7.2f} ms")
    print(f"read_record(masks=False):         {1000 * no_masks:7.2f} ms")
    print(f"  zip + JSON + arrays only:       {1000 * io:7.2f} ms")
    print(f"  dataclasses + checks only:      {1000 * build_only:7.2f} ms")


if __name__ == "__main__":
    main()
