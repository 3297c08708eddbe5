"""``dsr world`` end to end, in a subprocess like a user runs it."""

from __future__ import annotations

import os
import re
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


def test_dsr_world_help_describes_every_option_without_dangling_text() -> None:
    """Rich markup once swallowed "[default: ...]" from help texts, leaving "Number of moving objects ."."""
    run = subprocess.run([sys.executable, "-m", "dsr.cli", "world", "--help"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"})
    assert run.returncode == 0
    text = run.stdout
    assert not re.search(r"\S \.(\s|$)", text), "a help text ends in a dangling ' .'"
    rows = [line.strip("│ ") for line in text.splitlines() if re.match(r"^│\s+(\*\s+)?--", line)]
    described = {}
    for row in rows:
        cells = re.split(r"\s{2,}", row.lstrip("* "))
        described[cells[0]] = cells[-1] if len(cells) >= 3 and not cells[-1].startswith("<") else ""
    want = {"--seed", "--out", "--duration", "--fps", "--width", "--height", "--objects", "--camera-motion",
            "--motion-scale", "--fovy", "--shadows", "--overwrite", "--quiet", "--help"}
    assert want <= described.keys(), described.keys()
    for option, description in described.items():
        assert len(description) > 10 and description[0].isupper(), (option, description)
    # the defaults drawn from the seed are spelt out
    assert "3–6, drawn from the seed" in described["--objects"]
    assert "45–58, drawn from the seed" in described["--fovy"]
    assert "static, pan, dolly, orbit, handheld" in described["--camera-motion"]
    assert "[default: 24.0]" in described["--duration"]
