"""Shared PyAV video I/O: exact frame access by index, and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsr.video import VideoError, probe, read_frames, uniform_indices, write_video


def _frames(n: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    # each frame carries its index as a flat grey level, robust to H.264 rounding
    return [np.full((h, w, 3), 8 * i + 20, np.uint8) for i in range(n)]


def test_write_probe_and_read_by_index(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _frames(12), fps=6)
    meta = probe(path)
    assert (meta.num_frames, meta.width, meta.height) == (12, 48, 32)
    assert meta.fps == pytest.approx(6.0) and meta.duration_s == pytest.approx(2.0)
    assert not meta.variable_frame_rate
    assert np.allclose(np.diff(meta.timestamps_s), 1 / 6)
    got = read_frames(path, [7, 0, 7, 11])
    assert got.shape == (4, 32, 48, 3)
    assert np.abs(got[:, 16, 24, 0].astype(int) - [76, 20, 76, 108]).max() <= 3


def test_uniform_indices_follow_dsr_rounding() -> None:
    assert list(uniform_indices(100, 5)) == [0, 25, 50, 74, 99]  # round(linspace(0, 99, 5)), half to even
    assert list(uniform_indices(3, 32)) == [0, 1, 2]  # never duplicates


def test_bad_videos_give_one_line_errors(tmp_path: Path) -> None:
    good = write_video(tmp_path / "v.mp4", _frames(12), fps=6).read_bytes()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 3])
    for path in (tmp_path / "missing.mp4", garbage, empty):
        with pytest.raises(VideoError) as info:
            probe(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    # a truncated file either fails to open or yields fewer frames; asking past its end names the frame
    with pytest.raises(VideoError, match=r"truncated\.mp4"):
        read_frames(truncated, [11])
    with pytest.raises(VideoError, match="no frames to write"):
        write_video(tmp_path / "none.mp4", [], fps=5)
    assert not (tmp_path / "none.mp4").exists()
