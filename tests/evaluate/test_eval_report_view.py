"""The report a researcher reads at a glance (issue 15, items 14-19): headline, red flags on blind controls,
the CI warning, n per type, the legend of type names, readable charts, and per-question thumbnails over
the question's interval with times, boxes and the gold option. The page is also opened in headless
Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.models import create_model
from dsr.evaluate.report import (
    MIN_VIDEOS_FOR_CI,
    chart_per_type,
    ci_warning,
    control_flags,
    headline,
    load_runs,
    write_report,
)
from dsr.evaluate.run import RunConfig, run_eval
from dsr.qa.question_types import TYPES


def _plain(tmp_path: Path, answers: list[tuple[str, str]], videos: int, name: str = "q.jsonl") -> Path:
    """A plain question file: (type, gold letter) per item, spread over ``videos`` videos (no files needed)."""
    path = tmp_path / name
    path.write_text("".join(json.dumps({
        "id": f"q{i:03d}", "video": f"v{i % videos}.mp4", "question": f"Question {i}?",
        "options": ["A. left", "B. right", "C. up", "D. down"], "answer": gold, "type": qtype}) + "\n"
        for i, (qtype, gold) in enumerate(answers)))
    return path


def _runs(tmp_path: Path, data: Path, specs: tuple[str, ...]) -> list[Path]:
    ds = load_dataset(data, check_videos=False)
    dirs = []
    for spec in specs:
        d = tmp_path / "runs" / spec.replace(":", "-")
        run_eval(ds, create_model(spec, items=ds.items), d, RunConfig(), progress=False)
        dirs.append(d)
    return dirs


def test_red_flag_overall_and_per_type_beyond_luck(tmp_path: Path) -> None:
    # always:A is right on 18/20 abs_dis and 6/20 rel_dis: 60% overall (+35 points) -> flag, abs_dis flagged
    answers = [("abs_dis", "A" if i < 18 else "B") for i in range(20)] + \
              [("rel_dis", "A" if i < 6 else "C") for i in range(20)]
    # always:B is right on 2/40: far below chance, no flag
    runs = load_runs(_runs(tmp_path, _plain(tmp_path, answers, 12), ("always:A", "always:B")), resamples=200)
    flags = {f.run: f for f in control_flags(runs)}
    assert flags["always-A"].red and flags["always-A"].points_above == pytest.approx(35.0)
    assert [t for t, *_ in flags["always-A"].flagged_types] == ["abs_dis"]   # 6/20 on rel_dis is +5 points only
    assert not flags["always-B"].red and flags["always-B"].points_above == pytest.approx(-20.0)


def test_red_flag_on_one_type_even_when_the_average_is_near_chance(tmp_path: Path) -> None:
    # 14/20 on abs_dir (p ~ 1e-5) and 0/20 on rel_dir: 35% overall, exactly +10 points -> only the type flags
    answers = [("abs_dir", "A" if i < 14 else "D") for i in range(20)] + [("rel_dir", "B") for _ in range(20)]
    runs = load_runs(_runs(tmp_path, _plain(tmp_path, answers, 12), ("always:A",)), resamples=200)
    (flag,) = control_flags(runs)
    assert flag.points_above == pytest.approx(10.0) and flag.red
    assert [(t, n) for t, _, _, n, _ in flag.flagged_types] == [("abs_dir", 20)]


def test_a_few_lucky_guesses_are_not_a_flag(tmp_path: Path) -> None:
    # 4/6 right on one type (p = 0.038, not beyond luck over two types) and 1/6 on the other: 41.7% overall
    # is +16.7 points -> the overall rule flags it, but no type is listed
    answers = [("abs_spd", "A" if i < 4 else "B") for i in range(6)] + [("rel_spd", "A" if i < 1 else "C")
                                                                        for i in range(6)]
    runs = load_runs(_runs(tmp_path, _plain(tmp_path, answers, 12), ("always:A",)), resamples=200)
    (flag,) = control_flags(runs)
    assert flag.flagged_types == () and flag.red  # overall +16.7
    answers = [("abs_spd", "A" if i < 4 else "B") for i in range(6)] + [("rel_spd", "C") for _ in range(10)]
    runs = load_runs(_runs(tmp_path / "b", _plain(tmp_path, answers, 12, "b.jsonl"), ("always:A",)), resamples=200)
    (flag,) = control_flags(runs)
    assert flag.points_above == pytest.approx(0.0) and not flag.red  # 4/16 = chance; the 4/6 type is luck


def test_ci_warning_below_ten_videos(tmp_path: Path) -> None:
    answers = [("abs_dis", "ABCD"[i % 4]) for i in range(40)]
    few = load_runs(_runs(tmp_path / "few", _plain(tmp_path, answers, 3, "few.jsonl"), ("random",)), resamples=200)
    many = load_runs(_runs(tmp_path / "many", _plain(tmp_path, answers, MIN_VIDEOS_FOR_CI, "many.jsonl"),
                           ("random",)), resamples=200)
    assert "Only 3 videos" in (ci_warning(few) or "")
    assert ci_warning(many) is None


def test_headline_orders_models_then_blind_controls(tmp_path: Path) -> None:
    answers = [("abs_dis", "A")] * 6 + [("rel_dis", "B")] * 6
    runs = load_runs(_runs(tmp_path, _plain(tmp_path, answers, 4), ("random", "always:A", "answer-prior")),
                     resamples=200)
    # always-A: 6/12; answer-prior: 12/12 (A for abs_dis, B for rel_dis); chance 25%
    line = headline(runs)
    assert line.startswith("blind controls: answer-prior 100.0%, always-A 50.0%, random ")
    assert line.endswith("· chance 25.0% — 12 questions on 4 videos")


def test_per_type_chart_is_readable_and_not_clipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    answers = [(t, "ABCD"[i % 4]) for i, t in enumerate(list(TYPES) * 3)]
    runs = load_runs(_runs(tmp_path, _plain(tmp_path, answers, 12), ("random", "always:A", "answer-prior",
                                                                     "text-prior")), resamples=200)
    png = chart_per_type(runs, list(TYPES))
    img = Image.open(io.BytesIO(png))
    # about the page's width (1250 px), so 10-pt text stays ~10 pt in the browser instead of being shrunk
    assert 1000 <= img.width <= 1300 and img.height >= 450
    from dsr.evaluate import report

    captured = {}  # the figure's axes, seen where the chart turns its figure into PNG bytes
    real = report._png

    def keep(figure: object) -> bytes:
        captured["fig"] = figure
        ax = figure.axes[0]  # type: ignore[attr-defined]
        captured["ylim"] = ax.get_ylim()
        captured["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        captured["legend_size"] = ax.get_legend().get_texts()[0].get_fontsize()
        return real(figure)

    monkeypatch.setattr(report, "_png", keep)
    chart_per_type(runs, list(TYPES))
    assert captured["ylim"][1] > 105  # bars at 100 and their error caps are drawn whole
    assert captured["ticks"][0] == "AbsDis\nn=3" and captured["ticks"][-1] == "Avg\nn=36"
    assert captured["legend_size"] >= 9


# ---------------------------------------------------------------------------------------------- our QAs


FPS = 4.0  # the qa_scene fixture's video rate (tests/evaluate/conftest.py)


@pytest.fixture(scope="module")
def qa_runs(qa_scene: tuple[Path, object], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], object]:
    """Three runs (oracle, text-prior, always:D) on the qa_scene's template QAs."""
    d, record = qa_scene
    runs = _runs(tmp_path_factory.mktemp("report_runs"), d / "qas.jsonl", ("oracle", "text-prior", "always:D"))
    return d, runs, record


def test_report_sections_in_reading_order(qa_runs: tuple[Path, list[Path], object], tmp_path: Path) -> None:
    _, runs, _ = qa_runs
    md, html_path = write_report(runs, tmp_path / "rep", resamples=200)
    text, page = md.read_text(), html_path.read_text()
    order = [text.index(h) for h in ("# DSR evaluation report", "oracle 100.0%", "Too few videos",
                                     "## Accuracy by question type", "## Question types",
                                     "## Blind controls against chance", "## Runs", "## Failures",
                                     "## Items most runs got wrong")]
    assert order == sorted(order)
    assert 'class="headline"' in page and "Only 1 video" in text
    # n per type: the row sums to the number of questions
    n_row = next(ln for ln in text.splitlines() if ln.startswith("| n (questions) |"))
    cells = [c.strip() for c in n_row.strip("|").split("|")]
    types = [t for t in TYPES if any(t == r["type"] for r in map(json.loads, (runs[0] / "results.jsonl").open()))]
    assert sum(int(c) for c in cells[1:1 + len(types)]) == int(cells[1 + len(types)])
    # the legend: every type present, with its title from the one table in dsr.qa
    for t in types:
        assert f"| {TYPES[t].label} | {TYPES[t].title} |" in text


def test_worst_items_show_the_interval_boxes_and_gold(qa_runs: tuple[Path, list[Path], object], tmp_path: Path) -> None:
    from dsr.evaluate.store import read_results
    from dsr.evaluate.thumbnails import question_thumbnails
    from dsr.qa.question_types import is_prediction
    from dsr.scene.show import object_color

    _d, runs, record = qa_runs
    rows = sorted(read_results(runs[2]), key=lambda r: r["item_id"])  # always:D
    interval = next(r for r in rows if not is_prediction(r["type"])
                    and any(w != "camera" for w in r["query"]["targets"]))
    thumbs = question_thumbnails(interval, count=5)
    frames = interval["query"]["frames"]
    assert 2 <= len(thumbs) <= 5  # t_v, when shown, takes one of the five tiles
    times = [float(re.match(r"t = ([\d.]+) s", t.caption).group(1)) for t in thumbs]
    ts = record.timestamps_s  # type: ignore[attr-defined]
    shown = [round(x * FPS) for x in times]
    assert shown[0] == frames[0] and frames[-1] in shown and all(frames[0] <= f <= frames[-1] or
                                                                 f == interval["query"]["t_v"] for f in shown)
    assert times == pytest.approx([ts[f] for f in shown])
    assert "boxes named in the question" in thumbs[0].caption
    # the frame itself is the right one (its number is in the red channel) and the named box is drawn
    first = np.asarray(Image.open(io.BytesIO(thumbs[0].jpeg)).convert("RGB")).astype(int)
    scale = first.shape[1] / record.video.width  # type: ignore[attr-defined]
    assert abs(first[2, first.shape[1] // 2, 0] - 10 * frames[0]) < 12
    target = next(w for w in interval["query"]["targets"] if w != "camera")
    index = [o.object_id for o in record.objects].index(target)  # type: ignore[attr-defined]
    x1, y1, _x2, y2 = record.objects[index].boxes_xyxy[frames[0]] * scale  # type: ignore[attr-defined]
    edge = first[int((y1 + y2) / 2), int(x1) + 1]
    assert np.abs(edge - np.array(object_color(index))).max() < 60, (edge, object_color(index))

    pred = next(r for r in rows if is_prediction(r["type"]))
    thumbs = question_thumbnails(pred, count=5)
    assert "hidden from the model" in thumbs[-1].caption and "hidden" not in thumbs[-2].caption
    assert float(re.match(r"t = ([\d.]+) s", thumbs[-1].caption).group(1)) == pytest.approx(
        ts[pred["query"]["frames"][-1]])
    last = np.asarray(Image.open(io.BytesIO(thumbs[-1].jpeg)).convert("RGB")).astype(int)
    assert last[1, last.shape[1] // 2, 0] > 180 and last[1, last.shape[1] // 2, 1] < 90  # red border

    _, html_path = write_report(runs, tmp_path / "rep", resamples=200, worst=3)
    page = html_path.read_text()
    golds = re.findall(r'<li class="gold">([A-D])\. [^<]* ✓ gold</li>', page)
    assert len(golds) == 3 and page.count("<figcaption>t = ") >= 3 * 2


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no headless Chromium on this machine (apt-get install chromium)")
    return exe


def _chrome(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120)


def test_report_in_headless_chromium(qa_runs: tuple[Path, list[Path], object], tmp_path: Path) -> None:
    """The real browser parses the page (the headline and the flag are there) and paints the red flag."""
    exe = _chromium()
    _, runs, _ = qa_runs
    _, html_path = write_report(runs, tmp_path / "rep", resamples=200)
    dom = _chrome(exe, tmp_path / "profile", "--dump-dom", html_path.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    assert re.search(r'<p class="headline">oracle 100\.0% · blind controls: text-prior', dom.stdout)
    assert '<div class="note flag"><strong>Red flag: text-prior' in dom.stdout
    shot = tmp_path / "shot.png"
    res = _chrome(exe, tmp_path / "profile2", "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1300,900",
                  html_path.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-500:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    flag_bar = np.all(np.abs(pixels - [198, 40, 40]) < 12, axis=1).sum()  # the flag's red left border
    assert flag_bar > 6 * 40, flag_bar
