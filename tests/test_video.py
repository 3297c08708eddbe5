"""Shared PyAV video I/O: exact frame access by index, and one-line errors for bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dsr.video import (
    VideoError,
    iter_frames,
    iter_frames_at,
    probe,
    probe_packets,
    read_frames,
    rgb_to_yuv420p,
    uniform_indices,
    write_video,
)


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


def test_frames_at_are_the_wanted_frames_in_order_with_their_times(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _frames(12), fps=6)
    every = list(iter_frames(path))
    got = list(iter_frames_at(path, {9, 2, 5}))
    assert [i for i, _, _ in got] == [2, 5, 9]
    for i, ts, frame in got:
        assert ts == pytest.approx(every[i][0]) and ts == pytest.approx(i / 6)
        assert np.array_equal(frame, every[i][1])  # the same pixels as converting every frame
    assert list(iter_frames_at(path, [])) == []
    assert [i for i, _, _ in iter_frames_at(path, [3, 40])] == [3]  # past the end: the caller sees what is missing


def test_packet_probe_agrees_with_decoding(tmp_path: Path) -> None:
    # a variable frame rate (50 / 150 ms) written with explicit timestamps, and a constant one
    import av

    vfr = tmp_path / "vfr.mp4"
    with av.open(str(vfr), "w") as out:
        stream = out.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(_frames(10)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = (i // 2) * 200 + (50 if i % 2 else 0), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    for path in (write_video(tmp_path / "v.mp4", _frames(12), fps=6), vfr):
        decoded, listed = probe(path), probe_packets(path)
        assert listed is not None and listed.from_packets and not decoded.from_packets
        assert (listed.num_frames, listed.width, listed.height) == (decoded.num_frames, decoded.width, decoded.height)
        np.testing.assert_allclose(listed.timestamps_s, decoded.timestamps_s, atol=1e-9)
        assert listed.fps == pytest.approx(decoded.fps)
    assert probe(vfr).variable_frame_rate and probe_packets(vfr).timestamps_s[1] == pytest.approx(0.05)
    with pytest.raises(VideoError, match="not found"):
        probe_packets(tmp_path / "missing.mp4")


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


def test_rgb_to_yuv420p_uses_bt601_limited_range() -> None:
    # hand-computed: black → (16, 128, 128); white → (235, 128, 128); red → Y 16 + 0.2568·255 = 81.5,
    # U 128 − 0.1482·255 = 90.2, V 128 + 0.4392·255 = 240; chroma is the mean of each 2×2 block
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:, 2:] = 255
    out = rgb_to_yuv420p(rgb)
    assert out.shape == (3, 4)
    assert out[:2].tolist() == [[16, 16, 235, 235]] * 2
    assert out[2].tolist() == [128, 128, 128, 128]  # U of both blocks, then V of both blocks
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert rgb_to_yuv420p(red).ravel().tolist() == [81, 81, 81, 81, 90, 240]


def test_the_same_frames_give_the_same_file_in_another_process(tmp_path: Path) -> None:
    """swscale's conversion and multi-threaded x264 gave different bytes from run to run."""
    import hashlib
    import subprocess
    import sys

    script = """if True:
        import sys, numpy as np
        from dsr.video import write_video
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) for _ in range(12)]
        write_video(sys.argv[1], frames, 10.0)
    """
    digests = set()
    for k in range(2):
        out = tmp_path / f"v{k}.mp4"
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, timeout=120)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1
