"""Reports and the CLI: a self-contained HTML with table, charts and thumbnails; compare; score."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dsr.cli import app
from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.models import OpenAIChatModel, create_model
from dsr.evaluate.report import compare_rows, write_report
from dsr.evaluate.run import RunConfig, run_eval
from dsr.evaluate.sampling import FramePolicy


@pytest.fixture()
def runs(toy_dataset: Path, chat_server, tmp_path: Path) -> list[Path]:
    ds = load_dataset(toy_dataset)
    url = chat_server(rules=[{"match": "Question 5:", "reply": "I refuse."}])
    model = OpenAIChatModel(model="fake-vlm", base_url=url, backoff_s=0.01)
    policy = FramePolicy(num_frames=4, max_side=64)
    dirs = []
    for arm in ("main", "blind", "reversed-frames"):
        d = tmp_path / f"fake-{arm}"
        run_eval(ds, model, d, RunConfig(policy=policy, arm=arm, concurrency=4), progress=False)
        dirs.append(d)
    for spec in ("random", "answer-prior"):
        d = tmp_path / spec
        run_eval(ds, create_model(spec, items=ds.items), d, RunConfig(), progress=False)
        dirs.append(d)
    return dirs


def test_report_is_self_contained(runs: list[Path], tmp_path: Path) -> None:
    md, html = write_report(runs, tmp_path / "report", resamples=300)
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 2           # per-type chart and letter bias
    assert page.count("data:image/jpeg;base64,") >= 4          # frame thumbnails of the worst items
    assert not re.search(r'src="(?!data:)', page)              # nothing loaded from elsewhere
    text = md.read_text()
    for needle in ("AbsDis", "AbsDirP", "NonTemp", "Avg (micro)", "Chance (analytic)", "fake-vlm [blind]",
                   "Controls (main arm minus control, paired)", "corrupt_video: 1", "missing_video: 1",
                   "Tokens per correct answer", "I refuse.", "Letter bias"):
        assert needle in text, needle
    assert (tmp_path / "report" / "per_type.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_pairs_items_by_id(runs: list[Path]) -> None:
    from dsr.evaluate.store import read_results

    a, b = read_results(runs[3]), read_results(runs[4])
    overall, per, counts = compare_rows(a, b, resamples=200)
    assert counts == {"common": 14, "only_a": 0, "only_b": 0}
    ca = {r["item_id"]: r["correct"] for r in a}
    cb = {r["item_id"]: r["correct"] for r in b}
    assert overall.b_only == sum(1 for k in ca if cb[k] and not ca[k])
    assert sum(p.n for p in per.values()) == 14


def test_cli_smoke(runs: list[Path], toy_dataset: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(app, ["eval", "compare", str(runs[3]), str(runs[4]), "--out", str(tmp_path / "cmp.md"),
                           "--resamples", "200"])
    assert res.exit_code == 0, res.output
    assert "McNemar" in (tmp_path / "cmp.md").read_text()
    res = cli.invoke(app, ["eval", "report", *map(str, runs[:2]), "--out", str(tmp_path / "rep"),
                           "--resamples", "200", "--no-thumbnails"])
    assert res.exit_code == 0 and (tmp_path / "rep" / "report.html").is_file()
    res = cli.invoke(app, ["eval", "score", str(runs[0])])
    assert res.exit_code == 0 and "0 changed" in res.output
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"id": "vid0/q0", "response": "A"}, {"id": "vid0/q1", "response": "B"}]))
    res = cli.invoke(app, ["eval", "score", str(pred), "-d", str(toy_dataset), "-o", str(tmp_path / "sc")])
    assert res.exit_code == 0 and "2 predictions scored, accuracy 100.0%" in res.output
    res = cli.invoke(app, ["eval", "run", str(toy_dataset), "-m", "always:C", "-o", str(tmp_path / "r"),
                           "--no-progress"])
    assert res.exit_code == 0 and "14/14 scored" in res.output
    res = cli.invoke(app, ["eval", "lint", str(toy_dataset)])
    assert res.exit_code == 0


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    from dsr.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(SystemExit) as exc:
        main(["eval", "run", str(bad), "-m", "random", "-o", str(tmp_path / "x")])
    assert exc.value.code == 2
