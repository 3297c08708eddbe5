"""Fixtures for extraction tests: synthetic clips with exact GT, rendered once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_synth import SynthClip, make_clip

from dsr.video import write_video


@pytest.fixture(scope="session")
def truck_clip() -> SynthClip:
    """Camera moves sideways/forward while turning; a textured ball rolls across the floor."""
    return make_clip(30, camera="truck")


@pytest.fixture(scope="session")
def pan_clip() -> SynthClip:
    return make_clip(24, camera="pan")


@pytest.fixture(scope="session")
def static_clip() -> SynthClip:
    return make_clip(24, camera="static")


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory, truck_clip: SynthClip, static_clip: SynthClip) -> dict[str, Path]:
    """Good and bad input videos, written once."""
    root = tmp_path_factory.mktemp("videos")
    out: dict[str, Path] = {}
    out["truck"] = write_video(root / "truck.mp4", truck_clip.frames, truck_clip.fps)
    out["static"] = write_video(root / "static.mp4", static_clip.frames, static_clip.fps)
    # camera moves, nothing else does
    still = make_clip(20, camera="truck", ball=False)
    out["no_objects"] = write_video(root / "no_objects.mp4", still.frames, still.fps)
    flat = make_clip(16, camera="truck", ball=False, textured=False)
    out["textureless"] = write_video(root / "textureless.mp4", flat.frames, flat.fps)
    # a hard cut: the first half of one scene, then a different textured scene
    other = make_clip(12, camera="pan", seed=7)
    out["cut"] = write_video(root / "cut.mp4", np.concatenate([static_clip.frames[:12], other.frames[..., ::-1]]),
                             10.0)
    garbage = root / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    out["garbage"] = garbage
    data = out["static"].read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    out["truncated"] = truncated
    out["zero_frames"] = _zero_frame_video(root / "zero.mp4")
    out["vfr"] = _vfr_video(root / "vfr.mp4", static_clip.frames)
    return out


def _zero_frame_video(path: Path) -> Path:
    """An mp4 with a video stream and no frames."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuv420p"
        container.start_encoding()  # header only
    return path


def _vfr_video(path: Path, frames: np.ndarray) -> Path:
    """Variable frame rate: intervals alternate 50 ms and 150 ms (timestamps in ms)."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = pts
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
            pts += 50 if i % 2 == 0 else 150
        for packet in stream.encode():
            container.mux(packet)
    return path
