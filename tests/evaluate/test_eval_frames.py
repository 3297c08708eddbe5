"""Frame policy: uniform/fps sampling, the visibility limit, the JPEG cache, bad videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsr.evaluate.prompt import arm_order, build_prompt, letters_phrase
from dsr.evaluate.sampling import FrameError, FramePolicy, select_frames, serve_frames, visible_limit_s
from dsr.video import VideoError


def test_uniform_more_frames_requested_than_exist() -> None:
    ts = np.arange(10) / 10
    assert select_frames(ts, FramePolicy(num_frames=32), None).tolist() == list(range(10))


def test_uniform_32_of_100_hits_both_ends() -> None:
    idx = select_frames(np.arange(100) / 25, FramePolicy(), None)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 99
    assert np.all(np.diff(idx) > 0)


def test_visibility_limit_is_strict() -> None:
    ts = np.arange(30) / 10  # 0.0 … 2.9 s
    idx = select_frames(ts, FramePolicy(num_frames=8), 2.0)
    assert ts[idx].max() < 2.0 and idx[-1] == 19
    with pytest.raises(FrameError):
        select_frames(ts, FramePolicy(), 0.0)


def test_fps_sampling_and_cap_at_native_rate() -> None:
    ts = np.arange(30) / 10
    assert select_frames(ts, FramePolicy(fps=2.0), None).tolist() == [0, 5, 10, 15, 20, 25]
    assert select_frames(ts, FramePolicy(fps=50.0), None).tolist() == list(range(30))


def test_dir_pred_hides_final_second_unless_parity() -> None:
    policy = FramePolicy()
    assert visible_limit_s("abs_dir_pred", None, 3.0, policy) == 2.0
    assert visible_limit_s("abs_dir", None, 3.0, policy) is None
    assert visible_limit_s("rel_dir_pred", None, 3.0, FramePolicy(serve_full_video=True)) is None
    assert visible_limit_s("abs_dis", 1.5, 3.0, policy) == 1.5


def test_serve_frames_caches_jpegs(video_dir: Path, tmp_path: Path) -> None:
    policy = FramePolicy(num_frames=6, max_side=32)
    first = serve_frames(str(video_dir / "vid0.mp4"), "abs_dir_pred", None, policy, tmp_path)
    assert first.indices == (0, 4, 8, 11, 15, 19)  # round(linspace(0, 19, 6)): 20 frames before 2.0 s
    assert max(first.timestamps_s) < first.limit_s == pytest.approx(2.0)
    assert all(j[:2] == b"\xff\xd8" for j in first.jpegs)
    cached = sorted(p.name for p in tmp_path.rglob("*.jpg"))
    assert len(cached) == 6 and all(n.endswith("_32_90.jpg") for n in cached)
    for p in tmp_path.rglob("*.jpg"):  # prove the second call reads the cache: poison it
        p.write_bytes(b"cached")
    again = serve_frames(str(video_dir / "vid0.mp4"), "abs_dir_pred", None, policy, tmp_path)
    assert again.jpegs == (b"cached",) * 6
    other = serve_frames(str(video_dir / "vid0.mp4"), "abs_dir_pred", None, FramePolicy(num_frames=6, max_side=16),
                         tmp_path)
    assert other.jpegs[0] != b"cached"  # another size is another cache entry


def test_bad_videos_raise_video_error(video_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(VideoError):
        serve_frames(str(video_dir / "corrupt.mp4"), "abs_dis", None, FramePolicy(), tmp_path)
    with pytest.raises(VideoError, match="not found"):
        serve_frames(str(video_dir / "missing.mp4"), "abs_dis", None, FramePolicy(), tmp_path)


def _item():
    from dsr.evaluate.datasets import Item

    return Item("v/q1", "v", None, "Where does it go?", {"A": "left", "B": "right", "C": "up", "D": "down"},
                "A", "abs_dir")


def test_dsr_prompt_snapshot() -> None:
    p = build_prompt(_item(), (b"f0", b"f1"), (0.0, 1.5))
    assert p.text == (
        "<0.0 s>\n<image><1.5 s>\n<image>These are the frames of a video. Select the best answer to the "
        "following multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) "
        "of the correct option.\nQuestion: Where does it go?\nA. left\nB. right\nC. up\nD. down\nAnswer: ")
    assert p.images == (b"f0", b"f1")
    assert letters_phrase(("A", "B")) == "A or B"


def test_arms_change_only_the_images() -> None:
    jpegs = tuple(bytes([i]) for i in range(8))
    stamps = tuple(float(i) for i in range(8))
    main = build_prompt(_item(), jpegs, stamps)
    rev = build_prompt(_item(), jpegs, stamps, arm="reversed-frames")
    shuf = build_prompt(_item(), jpegs, stamps, arm="shuffled-frames", seed=3)
    blind = build_prompt(_item(), jpegs, stamps, arm="blind", timestamps=False)
    single = build_prompt(_item(), jpegs, stamps, arm="single-frame")
    assert rev.text == main.text == shuf.text
    assert rev.images == jpegs[::-1]
    assert sorted(shuf.images) == sorted(jpegs) and shuf.images != jpegs
    assert shuf.images == build_prompt(_item(), jpegs, stamps, arm="shuffled-frames", seed=3).images
    assert blind.images == () and "<image>" not in blind.text
    assert single.images == (jpegs[4],) and "<4.0 s>" in single.text
    assert arm_order("shuffled-frames", 2, "x", 0) == [1, 0]
