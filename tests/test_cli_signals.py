"""Exit codes and output locks of the batch commands outside `dsr eval` (issue 15, items 1 and 3):
`dsr extract` and `dsr qa` follow the policy of `dsr.cli.outcome` and refuse an output another process
is writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsr.cli import main
from dsr.locking import lock_file, lock_folder


def _dsr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``dsr`` as its console script does (``dsr.cli.main``): exit code and all it printed."""
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _unreadable_videos(folder: Path, n: int) -> Path:
    folder.mkdir()
    for k in range(n):
        (folder / f"clip{k}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * (k + 1))
    return folder


def test_extract_of_only_unreadable_videos_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cv2")
    videos = _unreadable_videos(tmp_path / "videos", 4)
    code, output = _dsr(["extract", str(videos), "--out", str(tmp_path / "records")], capsys)
    assert code == 2, output
    assert "error: nothing succeeded: 4 of 4 videos failed (unreadable video: 4)" in output


def test_extract_refuses_a_folder_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cv2")
    videos = _unreadable_videos(tmp_path / "videos", 1)
    out = tmp_path / "records"
    with lock_folder(out):
        code, output = _dsr(["extract", str(videos), "--out", str(out)], capsys)
    assert code == 2 and f"error: {out} is in use by another dsr process" in output
    assert not (out / "report.json").exists()


@pytest.fixture()
def record_file(tmp_path: Path) -> Path:
    """A small valid record: a dollying camera, a walking person and a rolling ball (QAs need no video)."""
    import numpy as np

    from dsr.scene import SceneRecord, VideoInfo, write_record
    from dsr.scene.build import camera_track, object_track_from_world
    from dsr.scene.frames import look_at_c2w, rotation_about_z

    n, t = 24, np.arange(24)
    c2w = np.stack([look_at_c2w(np.array([0.1 * i, -6.0, 1.5]), np.array([0.0, 0.0, 0.5])) for i in t])
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    box = np.tile([20.0, 10.0, 40.0, 40.0], (n, 1))
    person = object_track_from_world(
        "person_0", "person", is_agent=True, centers_world=np.stack([[0.2 * i, 0.0, 0.9] for i in t]), c2w=c2w,
        visible=np.ones(n, bool), boxes_xyxy=box, world_from_agent=np.stack([rotation_about_z(0.05 * i) for i in t]))
    ball = object_track_from_world("ball_0", "ball", centers_world=np.stack([[1.0, 0.3 * i, 0.2] for i in t]),
                                   c2w=c2w, visible=np.ones(n, bool), boxes_xyxy=box)
    video = VideoInfo(path="video.mp4", fps=10.0, width=64, height=48, num_frames=n, duration_s=n / 10.0,
                      frame_indices=t, timestamps_s=t / 10.0)
    record = SceneRecord(record_id="cli", video=video, camera=camera_track(K, c2w), objects=(person, ball),
                         scale_kind="metric", meters_per_unit=1.0)
    return write_record(tmp_path / "record.npz", record)


def test_qa_exit_codes_and_lock(record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a record")
    out = tmp_path / "qas.jsonl"
    code, output = _dsr(["qa", str(record_file), str(bad), "--out", str(out), "--per-video", "3"], capsys)
    assert code == 1 and "error: 1 of 2 records failed (malformed_record: 1)" in output, output
    code, output = _dsr(["qa", str(bad), "--out", str(tmp_path / "none.jsonl")], capsys)
    assert code == 2 and "error: nothing succeeded: 1 of 1 records failed (malformed_record: 1)" in output, output
    busy = tmp_path / "busy.jsonl"
    with lock_file(busy):
        code, output = _dsr(["qa", str(record_file), "--out", str(busy), "--per-video", "3"], capsys)
    assert code == 2 and f"error: {busy} is in use by another dsr process" in output, output
    assert not busy.exists()
    code, output = _dsr(["qa", str(record_file), str(record_file), "--out", str(tmp_path / "dup.jsonl"),
                         "--per-video", "3"], capsys)  # the same record twice (helper qa's item 5)
    assert code == 1 and "error: 1 of 2 records failed (duplicate_record: 1)" in output, output


def test_pipeline_refuses_a_folder_in_use_and_fails_on_unreadable_videos(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cv2")
    videos = _unreadable_videos(tmp_path / "videos", 2)
    out = tmp_path / "run"
    with lock_folder(out):
        code, output = _dsr(["pipeline", "run", str(videos), "--out", str(out), "--min-duration", "0"], capsys)
    assert code == 2 and f"error: {out} is in use by another dsr process" in output
    assert not (out / "report.json").exists()
    # unlocked: every video is unreadable, so nothing succeeded (exit 2) and the line names the reason
    code, output = _dsr(["pipeline", "run", str(videos), "--out", str(out), "--min-duration", "0"], capsys)
    assert (out / "report.json").is_file() and not (out / ".dsr.lock").exists()
    assert code == 2 and "error: nothing succeeded: 2 of 2 videos failed (curate: unreadable: 2)" in output
