"""Cost of the perception components per frame: YOLOv3-tiny at several input sizes and on both backends
(OpenVINO, the default, and cv2.dnn), the dense tracker's parts, MediaPipe Pose per person box.

    python benchmarks/extract_perception_speed.py --video /work/data/opencv-doc_vtest.avi [--frames 60]

Prints milliseconds per frame (median over the frames), the seconds of perception per second of video at the
default tracking rate, and the load average (timings on a shared machine are provisional).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from dsr.extract.dense_track import (
    CameraMotionTracker,
    CutDetector,
    DenseTrackConfig,
    DenseTracker,
    FrameDetection,
    box_appearance,
    frame_histogram,
    tracking_frame_indices,
)
from dsr.extract.detect import DetectorConfig, YoloDetector
from dsr.video import iter_frames_at, probe


def _ms(fn, frames) -> tuple[float, list]:
    out, times = [], []
    for f in frames:
        start = time.perf_counter()
        out.append(fn(f))
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()
    import cv2

    meta = probe(args.video)
    cfg = DenseTrackConfig()
    idx = tracking_frame_indices(meta.timestamps_s, cfg)
    track_rate = len(idx) / max(meta.duration_s, 1e-9)
    frames = [f for _, _, f in iter_frames_at(args.video, idx[: args.frames])]
    print(f"video {meta.width}x{meta.height}, {meta.duration_s:.1f} s, tracking {track_rate:.1f} frames/s; "
          f"cv2 threads {cv2.getNumThreads()}; load average before: {os.getloadavg()}")
    rows = []
    dets_416 = None
    for size in (320, 416, 512):
        det = YoloDetector(DetectorConfig(input_size=size))
        det.detect(frames[0])  # the first call builds the network
        ms, dets = _ms(det.detect, frames)
        if size == 416:
            dets_416 = dets
        rows.append((f"YOLOv3-tiny {size}² px", ms, np.mean([len(d) for d in dets])))
    # the default input size on the other backend and thread counts (the default: OpenVINO, one thread)
    for label, config in (("cv2.dnn", DetectorConfig(backend="opencv")),
                          ("OpenVINO, every core", DetectorConfig(threads=0))):
        det = YoloDetector(config)
        det.detect(frames[0])
        cpu = time.process_time()
        ms, dets = _ms(det.detect, frames)
        cpu_ms = 1000.0 * (time.process_time() - cpu) / len(frames)
        rows.append((f"YOLOv3-tiny 416² px, {label} ({cpu_ms:.0f} ms CPU)", ms, np.mean([len(d) for d in dets])))
    assert dets_416 is not None
    ms_app, _ = _ms(lambda k: [box_appearance(frames[k], d.box_xyxy) for d in dets_416[k]], range(len(frames)))
    rows.append(("appearance histograms (all boxes of a frame)", ms_app, np.nan))
    cam = CameraMotionTracker()
    ms_cam, _ = _ms(cam.step, frames)
    rows.append(("camera image motion (LK + similarity)", ms_cam, np.nan))
    cuts = CutDetector(cfg)
    ms_cut, _ = _ms(lambda f: cuts.step(frame_histogram(f)), frames)
    rows.append(("cut detector", ms_cut, np.nan))
    tracker = DenseTracker(cfg)
    fds = [[FrameDetection(d.box_xyxy, d.score, d.class_name, box_appearance(frames[k], d.box_xyxy))
            for d in dets_416[k]] for k in range(len(frames))]
    ms_trk, _ = _ms(lambda k: tracker.update(k, k / track_rate, fds[k]), range(len(frames)))
    rows.append(("association (gates + Hungarian)", ms_trk, np.nan))
    per_frame = rows[1][1] + ms_app + ms_cam + ms_cut + ms_trk
    try:
        from dsr.extract.people import MediaPipePeople

        people = MediaPipePeople()
        K = np.array([[1.2 * meta.width, 0, meta.width / 2], [0, 1.2 * meta.width, meta.height / 2], [0, 0, 1.0]])
        boxes = [(k, d.box_xyxy) for k in range(len(frames)) for d in dets_416[k] if d.class_name == "person"]
        if boxes:
            people.estimate(frames[boxes[0][0]], boxes[0][1], K)
            ms_pose, _ = _ms(lambda kb: people.estimate(frames[kb[0]], kb[1], K), boxes[:40])
            rows.append((f"MediaPipe Pose per person box ({min(40, len(boxes))} boxes)", ms_pose, np.nan))
        people.close()
    except ImportError as err:
        print(f"MediaPipe: {err}")
    print("| part | ms (median) | detections per frame |")
    print("|---|---|---|")
    for name, ms, n in rows:
        print(f"| {name} | {ms:.1f} | {'' if np.isnan(n) else f'{n:.1f}'} |")
    print(f"detector (416) + tracker per tracking frame: {per_frame:.1f} ms → {per_frame * track_rate / 1000:.2f} s "
          f"per second of video at {track_rate:.1f} tracking frames/s (≤ 1 is real time for this part alone)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
