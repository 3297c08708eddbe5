"""``dsr world`` end to end, in a subprocess like a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dsr.scene.validate import validate_record_file


def _dsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsr.cli", *args], capture_output=True, text=True, timeout=120)


def test_dsr_world_writes_a_valid_world(tmp_path: Path) -> None:
    out = tmp_path / "tmp"
    run = _dsr("world", "--seed", "1", "--out", str(out), "--width", "96", "--height", "72", "--duration", "1",
               "--fps", "8", "--objects", "3", "--camera-motion", "dolly")
    assert run.returncode == 0, run.stderr
    assert "dolly camera" in run.stdout and "record.npz" in run.stdout
    record = validate_record_file(out / "record.npz")
    assert len(record.objects) == 3 and record.num_frames == 8
    assert (out / "video.mp4").is_file() and (out / "world.json").is_file()
    again = _dsr("world", "--seed", "1", "--out", str(out), "--width", "96", "--height", "72", "--duration", "1",
                 "--fps", "8", "--objects", "3", "--camera-motion", "dolly", "-q")
    assert again.returncode == 0 and "reused" in again.stdout


def test_dsr_world_bad_settings_fail_in_one_line(tmp_path: Path) -> None:
    for args, words in ((["--width", "95"], "width must be an even number"),
                        (["--camera-motion", "zoom"], "camera motion must be one of"),
                        (["--objects", "12"], "objects must be in")):
        run = _dsr("world", "--out", str(tmp_path / "x"), *args)
        assert run.returncode == 2, run
        assert run.stderr.count("\n") == 1 and words in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()


def test_dsr_world_help() -> None:
    run = _dsr("world", "--help")
    assert run.returncode == 0 and "--camera-motion" in run.stdout
