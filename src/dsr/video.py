"""Video files through PyAV: probe, decode chosen frames, encode H.264.

Shared by every stage (worlds write videos, extraction and evaluation read them). Any failure to
open or decode becomes a one-line :class:`VideoError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_open
from dsr.errors import DsrError


class VideoError(DsrError):
    """A video that cannot be opened or decoded (missing, corrupt, truncated, zero frames)."""


class ProbeMismatch(VideoError):
    """The decoded frames disagree with the :class:`VideoMeta` they were chosen by (a frame the decoder dropped
    or added against the container's packets): probe by decoding instead."""


@dataclass(frozen=True)
class VideoMeta:
    """What a decode pass learns about a video file.

    timestamps_s: (N,) float64 presentation time of every decoded frame, in decode order.
    from_packets: read off the container's packets (:func:`probe_packets`), not decoded: a decoder may still drop
        or add a frame, so whoever decodes the file checks the frames against it.
    """

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    timestamps_s: np.ndarray
    from_packets: bool = False

    @property
    def variable_frame_rate(self) -> bool:
        """True if frame intervals differ by more than 10% from their median."""
        if self.num_frames < 3:
            return False
        d = np.diff(self.timestamps_s)
        med = float(np.median(d))
        return med > 0 and bool(np.any(np.abs(d - med) > 0.1 * med))


def _open(path: str | os.PathLike[str]):
    import av

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: video file not found")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{p}: cannot open video ({exc.__class__.__name__}: {exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{p}: no video stream")
    return container


def _rate(stream: Any) -> float:
    """The stream's frame rate as its header states it (average, else guessed; 0.0 when neither is known)."""
    return float(stream.average_rate or stream.guessed_rate or 0) or 0.0


def _decode(container: Any) -> Iterator[tuple[int, float, Any]]:
    """(index, presentation time s, frame) of every frame of the first video stream, in order. A frame without a
    timestamp is placed at index / rate (at its index when the rate is unknown): every reader times frames alike,
    so the clip loader can check the decoded frames against the probe's."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    tb = stream.time_base or Fraction(1, 1)
    rate = _rate(stream)
    for i, frame in enumerate(container.decode(stream)):
        yield i, float(frame.pts * tb) if frame.pts is not None else (i / rate if rate else float(i)), frame


def iter_frames(path: str | os.PathLike[str]) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (timestamp_s, frame (H, W, 3) uint8 RGB) for every frame, in order."""
    for _, ts, frame in iter_frames_at(path, None):
        yield ts, frame


def iter_frames_at(path: str | os.PathLike[str], wanted: Iterable[int] | None
                   ) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, timestamp s, RGB frame (H, W, 3) uint8) of the ``wanted`` frames only (None: every frame), in
    order: every frame up to the last wanted one is decoded (a codec needs them), but only wanted ones are converted
    to RGB (the conversion costs as much as the decoding)."""
    import av

    want = None if wanted is None else set(int(i) for i in wanted)
    if want is not None and not want:
        return
    last = None if want is None else max(want)
    container = _open(path)
    try:
        for i, ts, frame in _decode(container):
            if want is None or i in want:
                yield i, ts, frame.to_ndarray(format="rgb24")
            if last is not None and i >= last:
                break
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed ({exc.__class__.__name__}: {exc})") from None
    finally:
        container.close()


def probe(path: str | os.PathLike[str]) -> VideoMeta:
    """Decode the whole video once (without converting pixels) to count frames and read timestamps.

    Container headers lie about frame counts for truncated or variable-rate files, so we count.
    """
    import av

    container = _open(path)
    stamps: list[float] = []
    width = height = 0
    rate = _rate(container.streams.video[0])
    try:
        for _, ts, frame in _decode(container):
            width, height = frame.width, frame.height
            stamps.append(ts)
    except av.error.FFmpegError as exc:
        if not stamps:
            raise VideoError(f"{path}: decoding failed ({exc.__class__.__name__}: {exc})") from None
    finally:
        container.close()
    if not stamps:
        raise VideoError(f"{path}: video has no decodable frames")
    return _meta(path, width, height, stamps, rate)


def _meta(path: str | os.PathLike[str], width: int, height: int, stamps: Sequence[float], rate: float,
          from_packets: bool = False) -> VideoMeta:
    ts = np.asarray(stamps, dtype=np.float64)
    ts = ts - ts[0]
    if len(ts) > 1:
        fps = (len(ts) - 1) / (ts[-1] - ts[0]) if ts[-1] > ts[0] else (rate or 1.0)
    else:
        fps = rate or 1.0
    return VideoMeta(path=str(path), width=width, height=height, fps=float(fps), num_frames=len(ts),
                     duration_s=float(len(ts) / fps), timestamps_s=ts, from_packets=from_packets)


def probe_packets(path: str | os.PathLike[str]) -> VideoMeta | None:
    """What :func:`probe` learns, read off the container's packets without decoding them (a fraction of the
    time), or None where the packets cannot say (one without a timestamp, no frame size, a demuxing error):
    decode then. Each packet with data is one frame, its presentation time the packet's; the result says
    ``from_packets``, and a decoder that drops or splits a frame shows up when the frames are decoded
    (:func:`dsr.extract.clip.load_clip` checks)."""
    import av

    container = _open(path)
    stamps: list[float] = []
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = _rate(stream)
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's empty flush packet
                continue
            if packet.pts is None or tb is None:
                return None
            stamps.append(float(packet.pts * tb))
    except av.error.FFmpegError:
        return None
    finally:
        container.close()
    if not stamps or width <= 0 or height <= 0:
        return None
    return _meta(path, width, height, sorted(stamps), rate, from_packets=True)


def read_frames(path: str | os.PathLike[str], indices: Sequence[int]) -> np.ndarray:
    """Decode the frames at ``indices`` (any order, repeats allowed) → (len(indices), H, W, 3) uint8 RGB."""
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise VideoError(f"{path}: no frame indices requested")
    if wanted[0] < 0:
        raise VideoError(f"{path}: negative frame index {wanted[0]}")
    got = {i: frame for i, _, frame in iter_frames_at(path, wanted)}
    missing = [i for i in wanted if i not in got]
    if missing:
        raise VideoError(f"{path}: video ends before frame {missing[0]} (truncated or shorter than expected)")
    return np.stack([got[int(i)] for i in indices])


def uniform_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices spread uniformly over [0, num_frames − 1] (DSR: round(linspace))."""
    if num_frames <= 0:
        raise ValueError("num_frames must be > 0")
    return np.unique(np.round(np.linspace(0, num_frames - 1, count)).astype(np.int64))


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 → one yuv420p plane stack (H * 3 / 2, W) uint8: BT.601, limited range (what
    decoders assume for untagged H.264), chroma averaged over 2×2 pixels. H and W must be even.

    Written in numpy because swscale's conversion gave different bytes from run to run for the same
    frames (measured on MuJoCo renders), and a video must be the same file every time.
    """
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    h, w = r.shape
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = [y.ravel(), u.ravel(), v.ravel()]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_video(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float, *, crf: int = 20,
                threads: int | None = 1) -> Path:
    """Encode RGB frames (H, W, 3) uint8 as H.264 (yuv420p) mp4, atomically. H and W must be even.

    The same frames give the same file every time: the colour conversion is :func:`rgb_to_yuv420p`
    and x264 runs on ``threads`` = 1 thread. ``threads=None`` lets libx264 pick (faster on large
    frames), but its output then varies from run to run when other threads compete for the CPU.
    """
    import av

    target = Path(path)
    with atomic_open(target, "wb") as fh:
        container = av.open(fh, mode="w", format="mp4")
        stream = None
        try:
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                    stream.width, stream.height = w, h
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf), "preset": "veryfast"}
                    if threads is not None:
                        stream.codec_context.thread_count = threads
                video_frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(np.asarray(frame)), format="yuv420p")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            if stream is None:
                raise VideoError(f"{target}: no frames to write")
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()
    return target
