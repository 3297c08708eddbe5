"""Grounding by detection: COCO objects tracked densely, read at the record's sampled frames.

The object stage's default (extraction.md §4.4 "Grounder"): YOLOv3-tiny (:mod:`dsr.extract.detect`) runs at
the detection rate and the identity-safe tracker (:mod:`dsr.extract.dense_track`) follows the objects through
every tracking-rate frame of the clip (median flow between detections); the sampled frames take each track's
box there (exact at a tracked frame; the sampled frames are always tracking frames). Motion stays the fallback
for things no COCO class covers (:func:`unexplained_movers` keeps the movers that no detected object accounts
for).

Frames come from the video file, decoded once more and never stored (:func:`tracking_frames`); an in-memory
clip without a file falls back to its dense frames.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from dsr.extract.adapters import box_iou
from dsr.extract.base import VideoClip
from dsr.extract.dense_track import (
    DenseTrack,
    DenseTrackConfig,
    DenseTrackResult,
    boxes_at,
    track_frames,
    tracking_frame_indices,
)
from dsr.extract.detect import DetectorConfig
from dsr.video import iter_frames_at


@dataclass(frozen=True)
class DetectGroundingConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracking: DenseTrackConfig = field(default_factory=DenseTrackConfig)
    min_sampled_frames: int = 2  # a track must have a box at this many sampled frames to become an object …
    # … and last this long: shorter tracks are detector flicker or fragments of one object (on a 6-s world
    # rendered at 320×240 one capsule person came out as 2–4 tracks of 0.4–0.7 s)
    min_track_s: float = 1.0
    # a mover is explained by a detected object where their boxes overlap this much …
    mover_overlap_iou: float = 0.2
    mover_containment: float = 0.5  # … or this fraction of the mover's box lies inside the object's
    mover_explained_frac: float = 0.3  # … at this fraction of the mover's frames


@dataclass(frozen=True, eq=False)
class SampledObject:
    """A dense track read at the sampled frames: boxes (T, 4) NaN where not seen, scores (T,), class name."""

    track: DenseTrack
    class_name: str
    boxes_xyxy: np.ndarray
    scores: np.ndarray


def tracking_frames(clip: VideoClip | None, video_path: str | os.PathLike[str] | None,
                    timestamps_s: np.ndarray | None, config: DenseTrackConfig, *, sampled: np.ndarray | None = None,
                    stop: threading.Event | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(video index, t_s relative to the first frame, RGB full resolution) at the tracking rate.

    From the file when there is one (``timestamps_s``: every video frame's presentation time, as probed);
    the sampled frames (``clip.frame_indices``, or ``sampled`` before the clip is decoded) are always among
    them. Without a file, the clip's dense frames (upscaled boxes are avoided by returning the full-resolution
    sampled frame where a dense frame is a sampled one). Ends early once ``stop`` is set.
    """
    if video_path is not None and timestamps_s is not None and os.path.exists(video_path):
        ts = np.asarray(timestamps_s, np.float64)
        must = clip.frame_indices if clip is not None else sampled
        wanted = tracking_frame_indices(ts, config, must_include=must)
        for index, _, frame in iter_frames_at(video_path, wanted):
            if stop is not None and stop.is_set():
                return
            yield index, float(ts[index] - ts[0]), frame
        return
    if clip is None:
        raise ValueError("tracking frames need a video file or a decoded clip")
    import cv2

    sampled = {int(i): k for k, i in enumerate(clip.frame_indices)}
    t0 = clip.frame_indices[0] / clip.fps
    for index, small in zip(clip.dense_indices, clip.dense_rgb, strict=True):
        k = sampled.get(int(index))
        if k is not None:
            yield int(index), float(clip.timestamps_s[k]), clip.frames_rgb[k]
        else:
            full = cv2.resize(small, (clip.width, clip.height), interpolation=cv2.INTER_LINEAR)
            yield int(index), float(index / clip.fps - t0), full


def detect_and_track(clip: VideoClip | None, video_path: str | os.PathLike[str] | None,
                     timestamps_s: np.ndarray | None, config: DetectGroundingConfig = DetectGroundingConfig(), *,
                     sampled: np.ndarray | None = None, stop: threading.Event | None = None,
                     alone: threading.Event | None = None) -> DenseTrackResult:
    """YOLO at the detection rate, median flow between → dense tracks (after re-identification). Raises
    :class:`~dsr.extract.registry.EstimatorError` when the detector's weights are not installed.

    With a video file it needs only the sampled frames' indices (``sampled`` when ``clip`` is None: the pipeline
    starts it while the clip is still being decoded); ``stop`` ends it early (the clip was skipped). Once
    ``alone`` is set (the caller now only waits for the result) the network takes ``threads_alone`` threads."""
    from dsr.extract.registry import create_estimator

    detector = create_estimator("grounding/yolov3-tiny", config=config.detector)
    frames = tracking_frames(clip, video_path, timestamps_s, config.tracking, sampled=sampled, stop=stop)
    if alone is None:
        return track_frames(frames, detector.detect, config.tracking)
    return track_frames(frames, lambda frame: detector.detect(frame, alone=alone.is_set()), config.tracking)


@dataclass(frozen=True, eq=False)
class DetectionJob:
    """:func:`detect_and_track` running in another thread (``future``), started with ``alone``."""

    future: Future
    alone: threading.Event

    def result(self) -> DenseTrackResult:
        """Wait for the tracks. The caller does nothing else meanwhile, so the detector may take every core."""
        self.alone.set()
        return self.future.result()


def sampled_objects(result: DenseTrackResult, clip: VideoClip,
                    config: DetectGroundingConfig = DetectGroundingConfig()) -> list[SampledObject]:
    """Dense tracks lasting ≥ ``min_track_s`` with a box at ≥ ``min_sampled_frames`` sampled frames, read at those
    frames, ordered by first frame."""
    out = []
    for track in result.tracks:
        if track.end_s - track.start_s < config.min_track_s:
            continue
        boxes, scores = boxes_at(track, clip.timestamps_s, config.tracking.max_interp_s)
        if np.isfinite(boxes).all(axis=1).sum() >= config.min_sampled_frames:
            out.append(SampledObject(track, track.class_name, boxes, scores))
    out.sort(key=lambda o: (int(np.argmax(np.isfinite(o.boxes_xyxy).all(axis=1))), o.track.track_id))
    return out


def _containment(inner: np.ndarray, outer: np.ndarray) -> float:
    """Fraction of box ``inner``'s area inside box ``outer``."""
    w = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = max((inner[2] - inner[0]) * (inner[3] - inner[1]), 1e-9)
    return float(w * h / area)


def unexplained_movers(mover_boxes: list[np.ndarray], objects: list[SampledObject],
                       config: DetectGroundingConfig = DetectGroundingConfig()) -> list[bool]:
    """For each mover track (boxes (T, 4), NaN where unseen): True when no detected object accounts for it.

    A detected object accounts for a mover at a frame where their boxes overlap (IoU ≥ ``mover_overlap_iou``)
    or the mover lies mostly inside it (a motion blob of a person's swinging arm); a mover accounted for at
    ≥ ``mover_explained_frac`` of its frames is the same thing seen twice and is dropped.
    """
    keep = []
    for boxes in mover_boxes:
        seen = np.flatnonzero(np.isfinite(boxes).all(axis=1))
        explained = 0
        for t in seen:
            for obj in objects:
                b = obj.boxes_xyxy[t]
                if not np.isfinite(b).all():
                    continue
                if (box_iou(boxes[t][None], b[None])[0, 0] >= config.mover_overlap_iou
                        or _containment(boxes[t], b) >= config.mover_containment):
                    explained += 1
                    break
        keep.append(not (len(seen) and explained >= config.mover_explained_frac * len(seen)))
    return keep
