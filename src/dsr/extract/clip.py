"""Read a video into a :class:`~dsr.extract.base.VideoClip`: sampled record frames plus dense frames.

SfM and VO need dense frames (3–10 fps, extraction.md §3.4 rule 1); the record keeps DSR's uniform sample
(32 frames by default). The dense set always contains the sampled frames, so poses are read at exactly
the sampled timestamps rather than interpolated.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from dsr.extract.base import VideoClip
from dsr.video import ProbeMismatch, VideoError, VideoMeta, iter_frames_at, probe, uniform_indices


@dataclass(frozen=True)
class ClipConfig:
    num_samples: int = 32  # DSR-Train: 32 uniform frames (dsr-paper §3)
    # at most this many record frames per second of video (None: always num_samples). On a 2-s clip 32 frames are
    # 16 fps, finer than any motion a question compares, yet the object stage pays per record frame (movers,
    # people, lifting) and the camera's dense set includes them all (docs/bench-extract.md §14)
    max_sample_fps: float | None = 8.0
    dense_fps: float = 6.0  # frames per second fed to SfM/VO
    dense_max_side: int = 640  # long side of dense frames, px
    min_frames: int = 4


def dense_indices(meta: VideoMeta, sampled: np.ndarray, dense_fps: float) -> np.ndarray:
    """Video frame indices for SfM/VO: about ``dense_fps`` per second by timestamp, plus every sampled frame."""
    ts = meta.timestamps_s
    grid = np.arange(0.0, ts[-1] + 1e-9, 1.0 / dense_fps)
    nearest = np.clip(np.searchsorted(ts, grid), 0, len(ts) - 1)
    return np.unique(np.concatenate([nearest, sampled]).astype(np.int64))


def _resize(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return frame
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def sampled_indices(meta: VideoMeta, config: ClipConfig = ClipConfig()) -> np.ndarray:
    """The record's frames: ``num_samples`` video frame indices spread uniformly over the video, fewer on a clip
    shorter than ``num_samples / max_sample_fps`` seconds (never fewer than ``min_frames``)."""
    n = min(config.num_samples, meta.num_frames)
    if config.max_sample_fps is not None:
        n = min(n, max(config.min_frames, math.ceil(meta.duration_s * config.max_sample_fps)))
    return uniform_indices(meta.num_frames, n)


def load_clip(path: str | os.PathLike[str], config: ClipConfig = ClipConfig(), meta: VideoMeta | None = None
              ) -> tuple[VideoClip, VideoMeta]:
    """Decode ``path`` once: the sampled frames at full size and the dense frames downscaled (``meta``: the
    video's :func:`~dsr.video.probe` or :func:`~dsr.video.probe_packets` if already read).

    Raises VideoError (one line) for unreadable, truncated-to-nothing or too-short videos, and its ProbeMismatch
    when the decoded frames are not the ones ``meta`` lists (fewer, other timestamps or another size).
    """
    meta = meta or probe(path)
    if meta.num_frames < config.min_frames:
        raise VideoError(f"{path}: only {meta.num_frames} decodable frames (need {config.min_frames})")
    sampled = sampled_indices(meta, config)
    dense = dense_indices(meta, sampled, config.dense_fps)
    scale = min(1.0, config.dense_max_side / max(meta.width, meta.height))
    where_full = {int(i): k for k, i in enumerate(sampled)}
    where_dense = {int(i): k for k, i in enumerate(dense)}
    # filled in place: a list of frames and a stack at the end copied every frame once more
    frames_rgb = np.empty((len(sampled), meta.height, meta.width, 3), np.uint8)
    dense_rgb: np.ndarray | None = None
    seen_full = seen_dense = 0
    first_s: float | None = None  # frame 0 is always sampled: the decoded times are checked against meta's from it
    for i, ts, frame in iter_frames_at(path, where_full.keys() | where_dense.keys()):
        first_s = ts if first_s is None else first_s
        if abs((ts - first_s) - meta.timestamps_s[i]) > 1e-6:
            raise ProbeMismatch(f"{path}: frame {i} decoded at {ts - first_s:.6f} s, probed at "
                                f"{meta.timestamps_s[i]:.6f} s")
        k = where_full.get(i)
        if k is not None:
            if frame.shape != frames_rgb.shape[1:]:
                raise ProbeMismatch(f"{path}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, not the probed "
                                 f"{meta.width}x{meta.height}")
            frames_rgb[k] = frame
            seen_full += 1
        k = where_dense.get(i)
        if k is not None:
            small = _resize(frame, scale)
            if dense_rgb is None:
                dense_rgb = np.empty((len(dense), *small.shape), np.uint8)
            dense_rgb[k] = small
            seen_dense += 1
    if seen_full < len(sampled) or seen_dense < len(dense) or dense_rgb is None:
        raise ProbeMismatch(f"{path}: decoding stopped early (truncated file?)")
    t0 = meta.timestamps_s[0]
    clip = VideoClip(
        frames_rgb=frames_rgb,
        timestamps_s=np.asarray([meta.timestamps_s[i] - t0 for i in sampled]),
        frame_indices=sampled,
        dense_rgb=dense_rgb,
        dense_indices=dense,
        dense_scale=float(scale),
        fps=meta.fps,
    )
    return clip, meta


def clip_from_arrays(frames_rgb: np.ndarray, fps: float, *, num_samples: int = 32, dense_step: int = 1,
                     dense_max_side: int = 640) -> VideoClip:
    """A VideoClip from in-memory frames (N, H, W, 3) uint8 — used by tests and benchmarks on image folders."""
    n = len(frames_rgb)
    sampled = uniform_indices(n, min(num_samples, n))
    dense = np.unique(np.concatenate([np.arange(0, n, dense_step), sampled]))
    h, w = frames_rgb.shape[1:3]
    scale = min(1.0, dense_max_side / max(h, w))
    return VideoClip(
        frames_rgb=frames_rgb[sampled], timestamps_s=sampled / float(fps), frame_indices=sampled,
        dense_rgb=np.stack([_resize(frames_rgb[i], scale) for i in dense]), dense_indices=dense,
        dense_scale=float(scale), fps=float(fps),
    )
