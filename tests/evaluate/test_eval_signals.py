"""Runs that say when they fail (issue 15): exit codes, the circuit breaker, request timeouts, the run-folder
lock, and extending a ``--limit`` run. Real processes and a real loopback server throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.models import create_model
from dsr.evaluate.run import RunConfig, run_eval
from dsr.evaluate.store import read_results
from dsr.locking import LockedError, lock_folder


def _dataset(tmp_path: Path, n: int, name: str = "q.jsonl") -> Path:
    """``n`` text questions (no videos needed: the tests run the blind arm or baselines)."""
    path = tmp_path / name
    path.write_text("".join(json.dumps({
        "id": f"q{i:03d}", "video": f"v{i % 5}.mp4", "question": f"Question {i}: where does it go?",
        "options": ["A. left", "B. right", "C. up", "D. down"], "answer": "ABCD"[i % 4], "type": "abs_dir"}) + "\n"
        for i in range(n)))
    return path


def _dsr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsr.cli", *args], capture_output=True, text=True, timeout=timeout)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def test_closed_port_stops_within_60_s_with_one_line_and_resumes(tmp_path: Path) -> None:
    """Done-when: 50 items against a closed loopback port, --timeout 2 --max-retries 1: a non-zero exit
    within 60 s and one line naming the cause; once a server listens there, the same command resumes."""
    from dsr.evaluate.fakeserver import serve

    data = _dataset(tmp_path, 50)
    run_dir = tmp_path / "run"
    port = _closed_port()
    args = ["eval", "run", str(data), "-m", "openai:fake-vlm", "--arm", "blind", "-o", str(run_dir),
            "--base-url", f"http://127.0.0.1:{port}/v1", "--timeout", "2", "--max-retries", "1", "--no-progress"]
    start = time.monotonic()
    res = _dsr(*args, timeout=90)
    elapsed = time.monotonic() - start
    assert elapsed < 60 and res.returncode == 2, (elapsed, res.stdout, res.stderr)
    errors = _error_lines(res.stderr)
    assert len(errors) == 1, res.stderr
    assert "stopped after 10 items in a row failed" in errors[0] and "connection_error" in errors[0]
    assert "Connection refused" in errors[0] and "resume" in errors[0]
    rows = read_results(run_dir)
    assert 10 <= len(rows) < 50  # stopped early: the rest were never sent
    assert "0/50 scored" in res.stdout

    server = serve(port)  # the endpoint is back
    try:
        again = _dsr(*args)
        assert again.returncode == 0, again.stderr
        assert not _error_lines(again.stderr)
        assert "50/50 scored" in again.stdout and "new 50, resumed 0" in again.stdout  # failed rows retried
        stats = httpx.get(f"http://127.0.0.1:{port}/v1/stats").json()
        assert stats["requests"] == 50
    finally:
        server.shutdown()
    assert len(read_results(run_dir)) == 50


@pytest.fixture()
def hung_endpoint() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(256)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_hung_endpoint_times_out_per_attempt_and_trips_the_breaker(tmp_path: Path, hung_endpoint: str) -> None:
    ds = load_dataset(_dataset(tmp_path, 40))
    model = create_model("openai:x", base_url=hung_endpoint, timeout_s=0.5, max_retries=0, concurrency=4)
    start = time.monotonic()
    out = run_eval(ds, model, tmp_path / "run", RunConfig(arm="blind", concurrency=4, max_consecutive_failures=6),
                   progress=False)
    elapsed = time.monotonic() - start
    # 6 in a row trip it; the 4 in flight finish as timeouts; ~3 rounds of 0.5 s, not 40 items' worth
    assert out.stopped and "timeout" in out.stopped and "stopped after 6 items in a row" in out.stopped
    assert out.failures == {"timeout": out.n_new} and 6 <= out.n_new <= 6 + 4 + 4
    assert out.n_not_run == 40 - out.n_new and out.n_scored == 0
    assert elapsed < 20


def test_breaker_ignores_data_failures_and_resets_on_a_reply(toy_dataset: Path, chat_server, tmp_path: Path) -> None:
    """Missing and corrupt videos are the item's fault, not the endpoint's; a reply resets the count."""
    from dsr.evaluate.sampling import FramePolicy

    ds = load_dataset(toy_dataset)  # in order: 12 items on good videos, then a corrupt and a missing video

    def run(url: str, name: str, limit: int) -> object:
        config = RunConfig(policy=FramePolicy(num_frames=4, max_side=64), concurrency=1,
                           max_consecutive_failures=limit)
        return run_eval(ds, create_model("openai:fake-vlm", base_url=url, max_retries=0), tmp_path / name,
                        config, progress=False)

    healthy = run(chat_server(), "healthy", 2)  # the two video failures come in a row: no trip
    assert healthy.stopped is None and healthy.failures == {"corrupt_video": 1, "missing_video": 1}
    flaky = chat_server(rules=[{"match": "Question 1:", "status": 500}, {"match": "Question 2:", "status": 500}])
    tripped = run(flaky, "tripped", 2)  # q0 answered, q1 and q2 fail: two in a row
    assert tripped.stopped and "2 items in a row" in tripped.stopped and "server_error" in tripped.stopped
    # q3 may already be on the worker when the breaker trips; nothing after it is sent
    assert tripped.n_new in (3, 4) and tripped.n_not_run == 14 - tripped.n_new
    reset = run(flaky, "reset", 3)  # q3's reply resets the count after two failures
    assert reset.stopped is None and reset.n_not_run == 0
    assert reset.failures == {"server_error": 2, "corrupt_video": 1, "missing_video": 1}


def test_exit_codes_all_ok_some_failed(toy_dataset: Path, tmp_path: Path) -> None:
    ok = _dsr("eval", "run", str(toy_dataset), "-m", "always:C", "-o", str(tmp_path / "a"), "--no-progress")
    assert ok.returncode == 0 and not _error_lines(ok.stderr), ok.stderr  # baselines need no video
    some = _dsr("eval", "run", str(toy_dataset), "-m", "oracle", "-o", str(tmp_path / "b"), "--no-progress")
    # the plain toy file has no records: every item fails with no_record → nothing succeeded
    assert some.returncode == 2, some.stderr
    assert _error_lines(some.stderr) == ["error: nothing succeeded: 14 of 14 items failed (no_record: 14)"]


def test_partial_failure_exits_1_with_a_summary_line(toy_dataset: Path, chat_server, tmp_path: Path) -> None:
    url = chat_server()
    res = _dsr("eval", "run", str(toy_dataset), "-m", "openai:fake-vlm", "--base-url", url, "-o",
               str(tmp_path / "r"), "--frames", "4", "--max-side", "64", "--no-progress")
    assert res.returncode == 1, res.stderr
    assert _error_lines(res.stderr) == ["error: 2 of 14 items failed (corrupt_video: 1, missing_video: 1)"]


@pytest.mark.parametrize(("status", "reason"), [(500, "server_error"), (429, "rate_limited")])
def test_an_endpoint_failing_every_item_exits_2(tmp_path: Path, chat_server, status: int, reason: str) -> None:
    """Issue 15 item 1: HTTP 500 or 429 on all 5 items used to exit 0 with 0/5 scored."""
    data = _dataset(tmp_path, 5)
    url = chat_server(rules=[{"match": "", "status": status, "retry_after": 0.01}])
    res = _dsr("eval", "run", str(data), "-m", "openai:fake-vlm", "--base-url", url, "--arm", "blind",
               "-o", str(tmp_path / "run"), "--max-retries", "0", "--timeout", "5", "--no-progress")
    assert res.returncode == 2, res.stderr
    lines = _error_lines(res.stderr)
    assert len(lines) == 1 and reason in lines[0], res.stderr


def test_two_concurrent_runs_on_one_folder(tmp_path: Path, chat_server) -> None:
    """Done-when: the second run refuses at once, and the server sees exactly one request per item."""
    data = _dataset(tmp_path, 24)
    url = chat_server(latency=0.25)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "dsr.cli", "eval", "run", str(data), "-m", "openai:fake-vlm", "--base-url", url,
           "--arm", "blind", "-o", str(run_dir), "-j", "2", "--no-progress"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "results.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run must still be running"
        start = time.monotonic()
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        refused_after = time.monotonic() - start
        assert first.poll() is None, "the second was refused while the first still ran"
    finally:
        _, err = first.communicate(timeout=120)
    assert second.returncode == 2 and refused_after < 15, (second.stdout, second.stderr)
    assert _error_lines(second.stderr) == [
        f"error: {run_dir} is in use by another dsr process (lock file {run_dir / '.dsr.lock'}); "
        "wait for it to finish, or write to another output"]
    assert first.returncode == 0, err
    assert httpx.get(url + "/stats").json()["requests"] == 24
    assert sorted(r["item_id"] for r in read_results(run_dir)) == [f"q{i:03d}" for i in range(24)]


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    code = ("import sys, time; from dsr.locking import lock_folder\n"
            f"with lock_folder({str(folder)!r}):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match="in use by another dsr process"), lock_folder(folder):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    with lock_folder(folder):  # taken at once after kill -9: the kernel dropped the holder's lock
        pass


def test_a_limit_run_extends_to_the_full_set(toy_dataset: Path, tmp_path: Path) -> None:
    ds = load_dataset(toy_dataset)
    run_dir = tmp_path / "run"
    model = create_model("random", items=ds.items)
    smoke = run_eval(ds, model, run_dir, RunConfig(limit=3), progress=False)
    first = {r["item_id"]: r for r in read_results(run_dir)}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (smoke.n_new, len(first), manifest["dataset"]["limit"]) == (3, 3, 3)
    full = run_eval(ds, model, run_dir, RunConfig(), progress=False)
    assert (full.n_new, full.n_resumed, full.n_total) == (11, 3, 14)
    rows = {r["item_id"]: r for r in read_results(run_dir)}
    assert len(rows) == 14 and all(rows[k] == v for k, v in first.items())  # the smoke run's rows are kept
    after = json.loads((run_dir / "manifest.json").read_text())
    assert after["manifest_hash"] == manifest["manifest_hash"] and after["created_utc"] == manifest["created_utc"]
    assert (after["dataset"]["limit"], after["dataset"]["n_evaluated"]) == (None, 14)
    assert {r["manifest_hash"] for r in rows.values()} == {manifest["manifest_hash"]}
    # the experiment itself still may not change
    from dsr.evaluate.store import RunError

    with pytest.raises(RunError, match="different experiment"):
        run_eval(ds, model, run_dir, RunConfig(arm="blind", limit=2), progress=False)


def test_a_run_written_before_the_change_still_resumes(toy_dataset: Path, tmp_path: Path) -> None:
    """Older manifests stored a hash that covered --limit; resuming compares recomputed hashes and keeps
    the stored one (the hash the old result lines carry)."""
    ds = load_dataset(toy_dataset)
    run_dir = tmp_path / "run"
    model = create_model("random", items=ds.items)
    run_eval(ds, model, run_dir, RunConfig(limit=2), progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["manifest_hash"] = "0123456789abcdef"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    out = run_eval(ds, model, run_dir, RunConfig(limit=5), progress=False)
    assert (out.n_new, out.n_resumed) == (3, 2)
    assert json.loads((run_dir / "manifest.json").read_text())["manifest_hash"] == "0123456789abcdef"


def test_timeout_and_retries_reach_the_client_and_are_checked() -> None:
    from dsr.errors import DsrError

    model = create_model("openai:m", timeout_s=2.0, max_retries=1)
    assert (model.timeout_s, model.max_retries) == (2.0, 1)
    default = create_model("openai:m")
    assert (default.timeout_s, default.max_retries) == (120.0, 3)
    with pytest.raises(DsrError, match="timeout must be > 0"):
        create_model("openai:m", timeout_s=0.0)
    with pytest.raises(DsrError, match=r"timeout_s do not apply to model 'random'"):
        create_model("random", timeout_s=2.0)
    res = _dsr("eval", "run", "nothing.jsonl", "-m", "random", "-o", "x", "--max-retries", "-1")
    assert res.returncode == 2 and "Traceback" not in res.stderr
