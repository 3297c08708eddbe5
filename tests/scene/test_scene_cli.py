"""`dsr validate` exit codes, `dsr show --objects`, and the file names `dsr show` and the demo share
(issue 15, items 1, 9 and 10)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsr.cli import app
from dsr.scene import SceneRecord, write_record
from dsr.scene.show import format_runs, object_summaries, output_paths
from dsr.video import write_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def record_dir(tmp_path: Path, record: SceneRecord) -> Path:
    """record.npz (conftest's: person_0 hidden at frame 3, ball_0 visible throughout) beside its video."""
    size = (record.video.height, record.video.width, 3)
    write_video(tmp_path / "video.mp4", [np.full(size, 90, np.uint8)] * record.video.num_frames, 10.0)
    write_record(tmp_path / "record.npz", record)
    return tmp_path


def test_validate_exit_codes(record_dir: Path, tmp_path: Path) -> None:
    good = record_dir / "record.npz"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a record")
    cli = CliRunner()
    ok = cli.invoke(app, ["validate", str(good)])
    assert ok.exit_code == 0, ok.output
    some = cli.invoke(app, ["validate", str(good), str(bad)])
    assert some.exit_code == 1 and "error: 1 of 2 records failed (invalid)" in some.output
    none = cli.invoke(app, ["validate", str(bad), str(bad)])
    assert none.exit_code == 2 and "error: nothing succeeded: 2 of 2 records failed (invalid)" in none.output
    one = cli.invoke(app, ["validate", str(bad)])  # one record: its own line says it all, no summary line
    assert one.exit_code == 2 and "error:" not in one.output and one.output.startswith("invalid ")


def test_object_summaries_hand_checked(record_dir: Path) -> None:
    from dsr.scene.io import read_record

    record = read_record(record_dir / "record.npz")
    person, ball = object_summaries(record)
    # 8 frames at t = (i + 1) / 10 s; the person is hidden at frame 3
    assert (person.object_id, person.class_phrase, person.is_agent) == ("person_0", "person", True)
    assert person.visible_frames == ((0, 2), (4, 7))
    assert np.allclose(person.visible_s, [(0.1, 0.3), (0.5, 0.8)])
    assert (ball.object_id, ball.is_agent, ball.visible_frames, ball.n_center_known) == ("ball_0", False, ((0, 7),), 7)
    assert format_runs(person.visible_frames) == "0:2, 4:7"
    assert format_runs(person.visible_s, seconds=True) == "0.10-0.30, 0.50-0.80 s"
    assert format_runs(()) == "never"


def test_show_objects_lists_ids_and_writes_nothing(record_dir: Path) -> None:
    before = sorted(p.name for p in record_dir.iterdir())
    res = CliRunner().invoke(app, ["show", str(record_dir / "record.npz"), "--objects"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    person = next(ln for ln in res.output.splitlines() if "person_0" in ln)
    ball = next(ln for ln in res.output.splitlines() if "ball_0" in ln)
    assert "person" in person and "yes" in person and "0:2, 4:7" in person and "0.10-0.30, 0.50-0.80 s" in person
    assert "no" in ball and "0:7" in ball and "7/8 frames" in ball
    assert "frames 0:7" in res.output
    assert sorted(p.name for p in record_dir.iterdir()) == before


def test_show_and_demo_write_the_files_the_readme_names(record_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("rerun")
    from dsr.demo import _show

    demo_dir = tmp_path / "demo_copy"
    shutil.copytree(record_dir, demo_dir)
    res = CliRunner().invoke(app, ["show", str(record_dir / "record.npz")])
    assert res.exit_code == 0, res.output
    png, rrd = _show(demo_dir / "record.npz")
    assert (png.name, rrd.name) == ("record.png", "record.rrd") == tuple(p.name for p in output_paths("x/record.npz"))
    assert {p.name for p in record_dir.iterdir()} >= {"record.png", "record.rrd"}
    readme = (REPO / "README.md").read_text()
    assert "overview.png" not in readme and "demo_out/worlds/*/record.png" in readme
    assert "dsr show worlds/3/record.npz" in readme and "record.png" in readme
