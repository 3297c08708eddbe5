"""The offline demo behind ``make demo``: every stage once, on rendered worlds, with no network.

world → record → validate → show → questions (from the ground-truth record) → extraction from the
video → questions from the extracted record → the ground-truth questions asked again of the extracted
records (label agreement per type) → evaluation of the baselines and the geometric oracle → report. Each step prints where its output went; a step that fails says why in one line and the
demo goes on with the rest (the summary lists it), so one broken stage never hides the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dsr.errors import DsrError

DEMO_WORLDS: tuple[tuple[int, str], ...] = ((0, "orbit"), (1, "handheld"))


@dataclass
class DemoSummary:
    """What the demo produced (label → path) and which steps failed (label → reason)."""

    outputs: dict[str, Path] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _step(summary: DemoSummary, console: Console, name: str, fn: Callable[[], Any]) -> Any:
    console.rule(f"[bold]{name}")
    start = time.perf_counter()
    try:
        return fn()
    except (DsrError, OSError, ValueError, RuntimeError, ImportError) as exc:
        reason = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        summary.failures[name] = reason
        console.print(f"[red]step failed[/red] {name}: {reason}")
        return None
    finally:
        summary.seconds[name] = time.perf_counter() - start


def run_demo(out_dir: str | Path, *, per_video: int = 40, console: Console | None = None) -> DemoSummary:
    """Run the whole pipeline on the demo worlds into ``out_dir``; returns the summary."""
    from dsr.world import WorldConfig, render_world

    console = console or Console()
    out = Path(out_dir)
    summary = DemoSummary()
    records: list[Path] = []

    # 1. worlds with exact ground truth, validated and shown
    for seed, motion in DEMO_WORLDS:
        world_dir = out / "worlds" / f"seed{seed}-{motion}"
        result = _step(summary, console, f"render world seed {seed} ({motion} camera)",
                       lambda s=seed, m=motion, d=world_dir: render_world(WorldConfig(seed=s, camera_motion=m), d))
        if result is None:
            continue
        records.append(result.record_path)
        summary.outputs[f"world {seed} video"] = result.video_path
        summary.outputs[f"world {seed} record"] = result.record_path
        _step(summary, console, f"validate world {seed}", lambda r=result: _validate(r.record_path, console))
        shown = _step(summary, console, f"show world {seed}", lambda r=result: _show(r.record_path))
        if shown:
            summary.outputs[f"world {seed} plot"], summary.outputs[f"world {seed} rerun"] = shown
    if not records:
        return summary

    # 2. questions from the ground-truth records
    gt_qas = out / "qa" / "ground_truth.jsonl"
    if _step(summary, console, "questions from ground truth",
             lambda: _questions(records, gt_qas, per_video, console)) is not None:
        summary.outputs["QAs (ground truth)"] = gt_qas
        summary.outputs["QA report"] = gt_qas.with_name(gt_qas.name + ".report.json")

    # 2a. the same records asked for numbers and for open state sequences (no options)
    free_qas = []
    for fmt in ("numeric", "open"):
        path = out / "qa" / f"ground_truth_{fmt}.jsonl"
        if _step(summary, console, f"{fmt} questions from ground truth",
                 lambda f=fmt, p=path: _free_questions(records, p, f, per_video, console)) is not None:
            free_qas.append(path)
            summary.outputs[f"QAs ({fmt})"] = path

    # 2b. a review database of those questions (the summary prints the command that opens it)
    if gt_qas.exists() and (command := _step(summary, console, "review database",
                                             lambda: _review(gt_qas, out / "review.db", console))):
        summary.outputs["review database"] = out / "review.db"
        summary.notes.append(f"review the questions in a browser: {command}")

    # 3. extraction from the videos alone, then questions from the extracted records
    extract_dir = out / "extracted"
    extracted = _step(summary, console, "extract records from the videos",
                      lambda: _extract([r.parent / "video.mp4" for r in records], extract_dir, console))
    if extracted:
        summary.outputs["extraction report"] = extract_dir / "report.json"
        ex_qas = out / "qa" / "extracted.jsonl"
        if _step(summary, console, "questions from extracted records",
                 lambda: _questions(extracted, ex_qas, per_video, console)) is not None:
            summary.outputs["QAs (extracted)"] = ex_qas
    elif extracted is not None:
        summary.notes.append("extraction wrote no record it could trust (see the extraction report)")
    checks = None
    if gt_qas.exists() and extracted is not None:  # [] when nothing was extracted: every QA then disagrees
        agreement = out / "eval" / "label_agreement.json"
        checks = _step(summary, console, "ground truth vs extracted labels",
                       lambda: _compare_labels(gt_qas, extracted, agreement, console))
        if checks is not None:
            summary.outputs["label agreement"] = agreement

    # 4. evaluation of the offline baselines and the oracle, with a report
    if gt_qas.exists():
        report = _step(summary, console, "evaluate baselines and the oracle",
                       lambda: _evaluate(gt_qas, out / "eval", checks, free_qas))
        if report:
            summary.outputs["eval report (markdown)"], summary.outputs["eval report (html)"] = report
    _print_summary(summary, console, out)
    return summary


def _validate(record_path: Path, console: Console) -> None:
    from dsr.scene.validate import describe, validate_record_file

    console.print(f"[green]ok[/green] {describe(validate_record_file(record_path))}")


def _show(record_path: Path) -> tuple[Path, Path]:
    from dsr.scene.io import read_record
    from dsr.scene.plot import plot_record
    from dsr.scene.show import log_record_to_rerun, output_paths, sampled_video_frames

    record = read_record(record_path)
    frames, _ = sampled_video_frames(record, record_path)
    png_path, rrd_path = output_paths(record_path)  # the files `dsr show` writes
    return plot_record(record, png_path), log_record_to_rerun(record, rrd_path, frames)


def _questions(records: list[Path], out: Path, per_video: int, console: Console) -> Path:
    from dsr.qa.run import generate_files, print_report, report_path, write_report_png

    summary = generate_files(records, out, per_video=per_video, seed=0).to_json()
    print_report(console, summary, out, report_path(out))  # per type, per letter (χ²), failures by reason
    console.print(f"chart: {write_report_png(summary, str(out) + '.report.png')}")
    return out


def _free_questions(records: list[Path], out: Path, answer_format: str, per_video: int, console: Console) -> Path:
    from dsr.qa.free_answer import generate_free_files

    report = generate_free_files([str(r) for r in records], out, answer_format, per_video=per_video // 2, seed=0)
    made = report.to_json()
    console.print(f"{made['qas']} {answer_format} QAs: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(made["per_type"].items())))
    return out


def _review(qas: Path, db: Path, console: Console) -> str:
    from dsr.review.demo import build_demo_database

    added, command = build_demo_database(qas, db)
    console.print(f"{added} question(s) added to {db}; open it with: {command}")
    return command


def _extract(videos: list[Path], out: Path, console: Console) -> list[Path]:
    from dsr.extract.pipeline import run_extract

    report = run_extract(videos, out)
    console.print(json.dumps({k: v for k, v in report.items() if k != "videos"}, default=str)[:400])
    return sorted(out.glob("*.npz"))


def _compare_labels(gt_qas: Path, extracted: list[Path], out: Path, console: Console) -> list[Any]:
    """Ask every ground-truth QA again of the record extracted from its video; print and save per type."""
    from dsr.atomic import atomic_write_text
    from dsr.evaluate.agreement import agreement_per_type, check_labels, records_by_video
    from dsr.evaluate.datasets import load_dataset

    checks = check_labels(load_dataset(gt_qas).items, records_by_video(extracted))
    per = agreement_per_type(checks)
    table = Table(title="same answer from the extracted record as from ground truth")
    for name in ("type", "n", "same", "%", "why not"):
        table.add_column(name)
    for a in per:
        table.add_row(a.type, str(a.n), str(a.agree), f"{100 * a.rate:.1f}" if a.n else "–",
                      ", ".join(f"{k}: {v}" for k, v in list(a.reasons.items())[:3]))
    console.print(table)
    atomic_write_text(out, json.dumps({"per_type": [{"type": a.type, "n": a.n, "agree": a.agree, "reasons": a.reasons}
                                                    for a in per],
                                       "questions": [c.to_json() for c in checks]}, indent=1) + "\n")
    return checks


def _evaluate(qas: Path, out: Path, checks: list[Any] | None = None,
              free_qas: list[Path] | None = None) -> tuple[Path, Path]:
    from dsr.evaluate.demo import run_demo_eval

    return run_demo_eval(qas, out, label_checks=checks, free_qas=free_qas or [])


def _print_summary(summary: DemoSummary, console: Console, out: Path) -> None:
    table = Table(title=f"dsr demo — everything is under {out}/", show_lines=False)
    table.add_column("output")
    table.add_column("path")
    for label, path in summary.outputs.items():
        table.add_row(label, str(path))
    console.print(table)
    for note in summary.notes:
        console.print(f"note: {note}")
    for name, reason in summary.failures.items():
        console.print(f"[red]failed[/red] {name}: {reason}")
    total = sum(summary.seconds.values())
    console.print(f"demo finished in {total:.0f} s with {len(summary.failures)} failed step(s)")
