"""Which frames a model sees, decoded with PyAV (``dsr.video``) and cached on disk as JPEG.

Policy (``dsr-paper.md`` §11, M6, M7): 32 frames uniformly over the visible part of the video by
default; ``fps`` as the alternative; never a frame at or past ``visible_until_s``. For
prediction items (``dsr.qa.question_types``) without an explicit ``visible_until_s`` the final second is hidden (M7 project
default) unless ``serve_full_video`` is set (parity with the released harness).

The cache key of a frame is (video file identity: resolved path, size, mtime) × frame index ×
``max_side`` × JPEG quality, so two policies never read each other's stale files.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dsr.atomic import atomic_write_bytes, atomic_write_text
from dsr.errors import DsrError
from dsr.qa.question_types import is_prediction
from dsr.video import VideoError, probe, read_frames, uniform_indices, write_video


class FrameError(DsrError):
    """The item's frames cannot be served (no visible frame, bad policy)."""


@dataclass(frozen=True)
class FramePolicy:
    """How frames are chosen and encoded. Copied verbatim into the run manifest.

    num_frames: uniform sample size (ignored when ``fps`` is set).
    fps: sample at this rate instead (capped at the video's own rate).
    timestamps_in_prompt: state each frame's time in the text (models without native video time).
    max_side: longest image side in pixels after downscaling (0 = keep).
    serve_full_video: parity with the released harness — never hide the final second (M7).
    """

    num_frames: int = 32
    fps: float | None = None
    timestamps_in_prompt: bool = True
    max_side: int = 768
    jpeg_quality: int = 90
    serve_full_video: bool = False
    pred_hidden_s: float = 1.0

    def __post_init__(self) -> None:
        if self.fps is None and self.num_frames < 1:
            raise FrameError("num_frames must be >= 1")
        if self.fps is not None and not self.fps > 0:
            raise FrameError("fps must be > 0")
        if not 1 <= self.jpeg_quality <= 100:
            raise FrameError("jpeg_quality must be in 1..100")

    def to_json(self) -> dict:
        return asdict(self)


def visible_limit_s(item_type: str, visible_until_s: float | None, duration_s: float,
                    policy: FramePolicy) -> float | None:
    """The time before which frames may be shown; None = the whole video."""
    if visible_until_s is not None:
        return float(visible_until_s)
    if is_prediction(item_type) and not policy.serve_full_video:
        return duration_s - policy.pred_hidden_s
    return None


def select_frames(timestamps_s: np.ndarray, policy: FramePolicy, limit_s: float | None) -> np.ndarray:
    """Frame indices (ascending, unique) to show, from per-frame timestamps (N,) in seconds.

    Uniform: round(linspace(0, M − 1, k)) over the M visible frames, deduplicated (short clips give
    fewer than k). fps: the nearest frame to each multiple of 1/fps, deduplicated.
    """
    ts = np.asarray(timestamps_s, dtype=float)
    visible = np.flatnonzero(ts < limit_s) if limit_s is not None else np.arange(len(ts))
    if not len(visible):
        raise FrameError(f"no frame before the visibility limit {limit_s:.3f} s")
    if policy.fps is not None:
        t0, t_end = ts[visible[0]], ts[visible[-1]]
        targets = t0 + np.arange(0.0, t_end - t0 + 1e-9, 1.0 / policy.fps)
        pos = np.clip(np.searchsorted(ts[visible], targets), 0, len(visible) - 1)
        prev = np.clip(pos - 1, 0, len(visible) - 1)
        nearer_prev = np.abs(ts[visible][prev] - targets) <= np.abs(ts[visible][pos] - targets)
        chosen = np.where(nearer_prev, prev, pos)
        return np.unique(visible[chosen])
    picks = uniform_indices(len(visible), policy.num_frames)
    return visible[picks]


def _video_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]


def video_timestamps(path: str | os.PathLike[str], cache_dir: Path | None) -> np.ndarray:
    """Per-frame timestamps (s), from a decode pass cached beside the frames."""
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: video file not found")
    meta_file = cache_dir / _video_key(p) / "timestamps.json" if cache_dir else None
    if meta_file is not None and meta_file.is_file():
        return np.asarray(json.loads(meta_file.read_text()), dtype=float)
    ts = probe(p).timestamps_s
    if meta_file is not None:
        atomic_write_text(meta_file, json.dumps([round(float(t), 6) for t in ts]))
    return ts


def encode_jpeg(frame: np.ndarray, max_side: int, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB → JPEG bytes, the longer side scaled down to ``max_side`` (0 = keep)."""
    from PIL import Image

    img = Image.fromarray(frame)
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@dataclass(frozen=True)
class ServedFrames:
    """The frames an item is shown. jpegs[i] is frame ``indices[i]`` at ``timestamps_s[i]`` seconds."""

    indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    jpegs: tuple[bytes, ...]
    duration_s: float
    limit_s: float | None


def serve_frames(video_path: str, item_type: str, visible_until_s: float | None, policy: FramePolicy,
                 cache_dir: Path | None) -> ServedFrames:
    """Choose, decode (cached) and encode the frames of one item. Raises VideoError/FrameError."""
    p = Path(video_path)
    ts = video_timestamps(p, cache_dir)
    duration = float(ts[-1] + (ts[-1] - ts[-2] if len(ts) > 1 else 0.0))
    limit = visible_limit_s(item_type, visible_until_s, duration, policy)
    indices = select_frames(ts, policy, limit)
    folder = cache_dir / _video_key(p) if cache_dir else None
    names = [f"{i:06d}_{policy.max_side}_{policy.jpeg_quality}.jpg" for i in indices]
    jpegs: list[bytes | None] = [None] * len(indices)
    if folder is not None:
        for k, name in enumerate(names):
            f = folder / name
            if f.is_file():
                jpegs[k] = f.read_bytes()
    todo = [k for k, j in enumerate(jpegs) if j is None]
    if todo:
        frames = read_frames(p, [int(indices[k]) for k in todo])
        for k, frame in zip(todo, frames, strict=True):
            data = encode_jpeg(frame, policy.max_side, policy.jpeg_quality)
            jpegs[k] = data
            if folder is not None:
                atomic_write_bytes(folder / names[k], data)
    return ServedFrames(indices=tuple(int(i) for i in indices), timestamps_s=tuple(float(ts[i]) for i in indices),
                        jpegs=tuple(j for j in jpegs if j is not None), duration_s=duration, limit_s=limit)


def median_spacing_s(timestamps_s: Sequence[float]) -> float:
    """Median positive gap between the sorted times (s); 1.0 for fewer than two distinct times. The time
    step a native-video input is given for served frames (arms reorder frames, not times)."""
    ts = sorted(float(t) for t in timestamps_s)
    gaps = sorted(b - a for a, b in itertools.pairwise(ts) if b > a)
    return float(gaps[len(gaps) // 2]) if gaps else 1.0


def clip_fps(timestamps_s: Sequence[float]) -> float:
    """Frame rate of a clip made of served frames, so that its timeline runs at real speed."""
    return 1.0 / median_spacing_s(timestamps_s)


def encode_clip(jpegs: Sequence[bytes], fps: float) -> bytes:
    """The served JPEG frames, in the given order, as an H.264 mp4 at ``fps`` (bytes).

    Only these frames go in — never a frame past the item's visibility limit. Odd sizes are padded by
    repeating the last row/column (H.264 in yuv420p needs even sides).
    """
    import tempfile

    from PIL import Image

    if not jpegs:
        raise FrameError("no frames to encode")
    frames = []
    for data in jpegs:
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        pad_h, pad_w = rgb.shape[0] % 2, rgb.shape[1] % 2
        frames.append(np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else rgb)
    with tempfile.TemporaryDirectory(prefix="dsr-clip-") as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(path, frames, fps=fps)
        return path.read_bytes()

