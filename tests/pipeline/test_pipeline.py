"""dsr pipeline: the same files as the three commands run one after another, locally and on Ray;
kill -9 and resume; bad videos counted by reason."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsr.cli import main
from dsr.errors import DsrError
from dsr.pipeline.executors import Chain, LocalExecutor, create_executor

pytestmark = pytest.mark.slow


SEEDS = range(1, 9)


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight short worlds with a panning or static camera (rotation camera: cheap to extract) and one file that
    is no video."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from dsr.world import WorldConfig, render_world

    root = tmp_path_factory.mktemp("pipeline")
    videos = root / "videos"
    videos.mkdir()
    for seed in SEEDS:
        world = render_world(WorldConfig(seed=seed, width=160, height=120, duration_s=3.0, fps=10.0,
                                         camera_motion=("pan", "static")[seed % 2]), root / f"world{seed}",
                             progress=False)
        shutil.copy(world.video_path, videos / f"world{seed}.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    return videos


def _serial(videos: Path, out: Path) -> None:
    """The three commands one after another, as a user would type them."""
    main(["curate", str(videos), "--out", str(out / "curation.csv"), "--min-duration", "0"])
    kept = [str(videos / f"world{s}.mp4") for s in SEEDS]
    main(["extract", *kept, "--out", str(out / "records")])
    main(["qa", *sorted(str(p) for p in (out / "records").glob("*.npz")), "--out", str(out / "qas.jsonl")])


def _pipeline(args: list[str]) -> int:
    """``dsr pipeline run ARGS``'s exit code (the fixture folder's broken video makes a good run exit 1)."""
    try:
        main(["pipeline", "run", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _outputs(folder: Path) -> dict[str, bytes]:
    keep = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] != ".pipeline" and str(rel) != "report.json":
            keep[str(rel)] = p.read_bytes()
    return keep


def _untimed(marker: dict) -> dict:
    marker = {k: v for k, v in marker.items() if k != "stage_seconds"}
    marker["camera_attempts"] = [{k: v for k, v in a.items() if k != "seconds"} for a in marker["camera_attempts"]]
    return marker


def test_pipeline_equals_the_three_commands_locally_and_on_ray(video_folder: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _serial(video_folder, tmp_path / "serial")
    assert _pipeline([str(video_folder), "--out", str(tmp_path / "local"), "--min-duration", "0"]) == 1
    assert _pipeline([str(video_folder), "--out", str(tmp_path / "ray"), "--min-duration", "0",
                      "--executor", "ray", "--num-cpus", "2"]) == 1
    serial = _outputs(tmp_path / "serial")
    assert any(k.endswith(".npz") for k in serial) and "qas.jsonl" in serial and "curation.csv" in serial
    for run in ("local", "ray"):
        got = _outputs(tmp_path / run)
        assert sorted(got) == sorted(serial), run
        # the extract report holds timings and the chart PNG rendering metadata; the rest is byte-identical
        for name in serial:
            if name == "qas.jsonl.report.json":  # names its own output path
                a, b = json.loads(got[name]), json.loads(serial[name])
                assert a.pop("output").startswith(str(tmp_path / run))
                assert a == {k: v for k, v in b.items() if k != "output"}
            elif name.endswith(".done.json"):  # completion markers carry timings
                assert _untimed(json.loads(got[name])) == _untimed(json.loads(serial[name])), (run, name)
            elif name not in ("records/report.json", "qas.jsonl.report.png"):
                assert got[name] == serial[name], (run, name)
    report = json.loads((tmp_path / "ray" / "report.json").read_text())
    n_records = sum(1 for k in serial if k.endswith(".npz"))
    assert (report["videos"], report["kept"], report["extracted"]) == (9, 8, n_records)
    skipped = {k: v for k, v in report["failures"].items() if k != "curate: unreadable"}
    assert report["failures"]["curate: unreadable"] == 1 and sum(skipped.values()) == 8 - n_records
    assert all(k.startswith("extract skipped") for k in skipped)  # e.g. untrusted geometry: decided, not failed
    assert report["executor"]["executor"] == "ray" and report["executor"]["cpus"] == 2.0
    assert report["qas"] == sum(1 for _ in (tmp_path / "ray" / "qas.jsonl").open())
    assert f"9 videos: 8 kept, {n_records} extracted" in capsys.readouterr().out


def test_kill_9_mid_run_then_resume_loses_and_repeats_nothing(video_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # abstention off: issue 11's defaults may drop every QA of these tiny extracted clips, and this test needs some
    no_abstention = tmp_path / "qa.json"
    no_abstention.write_text(json.dumps({"min_track_confidence": 0, "min_stability_uncertain": 0}))
    args = [str(video_folder), "--out", str(out), "--min-duration", "0", "--executor", "ray", "--num-cpus", "1",
            "--qa-config", str(no_abstention)]
    cmd = [sys.executable, "-m", "dsr.cli", "pipeline", "run", *args]
    journal = out / ".pipeline" / "journal.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:  # settings + one finished video
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run(["pkill", "-9", "-f", f"{out}"], check=False)  # stray workers of the killed run, if any
    finished_before = len(journal.read_text().splitlines()) - 1
    assert 1 <= finished_before < 9
    assert _pipeline(args) == 1
    entries = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert sorted(e["video"] for e in entries) == sorted(str(p) for p in video_folder.glob("*.mp4"))
    report = json.loads((out / "report.json").read_text())
    assert report["resumed"] == finished_before and report["kept"] == 8
    markers = sorted((out / "records").glob("*.done.json"))
    assert len(markers) == 8 and report["extracted"] == len(list((out / "records").glob("*.npz")))  # one per kept
    qa_ids = [json.loads(line)["qa_id"] for line in (out / "qas.jsonl").open()]
    assert qa_ids and len(qa_ids) == len(set(qa_ids))  # no QA repeated
    assert all(json.loads(line)["generator"]["config"]["min_stability_uncertain"] == 0
               for line in (out / "qas.jsonl").open())


def test_changed_settings_refuse_to_resume(video_folder: Path, tmp_path: Path) -> None:
    from dsr.pipeline.run import PipelineConfig, run_pipeline

    out = tmp_path / "run"
    (out / ".pipeline").mkdir(parents=True)
    (out / ".pipeline" / "journal.jsonl").write_text(json.dumps({"settings": {"other": 1}}) + "\n")
    with pytest.raises(DsrError, match="other settings"):
        run_pipeline([video_folder], out, PipelineConfig())


def _first(key: str, x: int) -> int:
    return len(key) + x


def _second(key: str, first: int, y: int) -> str:
    return f"{key}:{first * y}"


def test_local_executor_runs_chains_in_order() -> None:
    chains = [Chain(key=k, first=_first, first_args=(1,), second=_second, second_args=(10,)) for k in ("a", "bb")]
    assert list(LocalExecutor().run(chains)) == [("a", 2, "a:20"), ("bb", 3, "bb:30")]


def test_executor_choices_are_checked() -> None:
    with pytest.raises(DsrError, match="unknown executor"):
        create_executor("dask")
    with pytest.raises(DsrError, match="--address joins a Ray cluster"):
        create_executor("local", address="auto")
