"""Generating QA files from many records: resumable, atomic, with a report next to the output.

QAs are flushed atomically, every few records or seconds, to ``<out>.parts/<run key>/<a>-<b>.jsonl``
(a header line with the records covered and their report, then the QAs); a rerun with the same
settings and records skips the records already in a part, so a killed job resumes without losing or
duplicating work. At the end the parts are streamed into
``out`` (any format) and the merged report is written to ``<out>.report.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_open, atomic_write_text
from dsr.errors import DsrError
from dsr.qa.export import format_for, qa_line, write_qas
from dsr.qa.generate import GenerationReport, generate_record_qas
from dsr.qa.question_types import QUESTION_TYPES
from dsr.qa.rules import QAConfig
from dsr.qa.schema import LETTERS, QA


@dataclass(frozen=True)
class FreeFormSettings:
    """Free-form generation through an OpenAI-compatible endpoint (see :mod:`dsr.qa.freeform`)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    per_video: int = 1
    retries: int = 3
    timeout_s: float = 120.0


class LetterBalancer:
    """Moves each template QA's correct option so that, per type, every 4 consecutive QAs of a run
    use each letter once, in an order drawn from the seed (blocked randomisation).

    Letters drawn independently leave some types' χ² test failing by chance (with 12 types, about
    every other run has one below p = 0.05); blocks keep every type within one QA of balance while
    the order within a block stays random. It runs where the parts are merged, in record order, so
    the letters do not depend on how the records were split into parts or workers.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.counts: Counter[str] = Counter()
        self.blocks: dict[str, list[str]] = {}

    def __call__(self, qa: QA) -> QA:
        if qa.source != "template":
            return qa
        k = self.counts[qa.type]
        self.counts[qa.type] += 1
        if k % 4 == 0:
            block = list(LETTERS)
            random.Random(f"{self.seed}/{qa.type}/letters/{k // 4}").shuffle(block)
            self.blocks[qa.type] = block
        return qa.with_answer_at(self.blocks[qa.type][k % 4])


def report_path(out: str | os.PathLike[str]) -> Path:
    return Path(str(out) + ".report.json")


def _run_key(config: QAConfig, per_video: int, seed: int, types: Sequence[str], freeform: FreeFormSettings | None,
             paths: list[str]) -> str:
    """Parts of a run are reused only by a rerun with the same settings and the same record list."""
    blob = json.dumps({"config": config.to_json(), "per_video": per_video, "seed": seed, "types": list(types),
                       "freeform": None if freeform is None else [freeform.base_url, freeform.model, freeform.per_video],
                       "records": paths}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


_PART = re.compile(r"^(\d{6})-(\d{6})\.jsonl$")


def _done_parts(parts: Path) -> list[tuple[int, int, Path]]:
    """(first, last, path) of the finished parts of a run, sorted."""
    found = []
    for p in parts.iterdir():
        m = _PART.match(p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(found)


def _read_part(path: Path) -> tuple[dict[str, Any], list[str]]:
    """A part's header (records covered, their report) and its QA lines."""
    with open(path, encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        return header, [line for line in fh if line.strip()]


@dataclass(frozen=True)
class _Job:
    """What a worker needs to make one record's QAs (picklable)."""

    index: int
    path: str
    out_dir: str
    config: QAConfig
    per_video: int
    seed: int
    types: tuple[str, ...]
    freeform: FreeFormSettings | None


@dataclass(frozen=True)
class _Result:
    """One record's QAs as JSONL lines, its report (raw counts), and its id or a one-line error."""

    index: int
    record_id: str | None
    error: str | None
    lines: list[str]
    report: dict[str, Any]


def _make_record_qas(job: _Job) -> _Result:
    """One record → its QAs (runs in a worker process, or inline with one worker)."""
    from dsr.scene.io import read_record, resolve_video_path

    report = GenerationReport()
    rp, out_dir = Path(job.path), Path(job.out_dir)
    try:
        record = read_record(rp)
    except DsrError as exc:
        report.records += 1
        report.records_failed["malformed_record"] += 1
        return _Result(job.index, None, str(exc), [], report.to_json(letter_test=False))
    video = _rel(resolve_video_path(record, rp), out_dir)
    qas: list[QA] = list(generate_record_qas(record, job.config, per_video=job.per_video, seed=job.seed,
                                             types=job.types, report=report, record_path=_rel(rp, out_dir),
                                             video_path=video))
    if job.freeform is not None and job.freeform.per_video > 0:
        from dsr.qa.freeform import generate_freeform_qas

        qas.extend(generate_freeform_qas(record, job.freeform, job.config, seed=job.seed, report=report,
                                         record_path=_rel(rp, out_dir), video_path=video))
    return _Result(job.index, record.record_id, None, [qa_line(qa) for qa in qas], report.to_json(letter_test=False))


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _results(jobs: list[_Job], workers: int) -> Iterator[_Result]:
    """Results in job order, from ``workers`` processes (inline when one is enough)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_make_record_qas, jobs)
        return
    import multiprocessing

    # forkserver: workers start from a clean server that has imported dsr.qa once (fork would copy a
    # parent's threads, e.g. a progress bar's, and spawn would re-import everything per worker)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload(["dsr.qa.run", "dsr.qa.counterfactual", "dsr.scene.io"])
    with ctx.Pool(min(workers, len(jobs))) as pool:
        # ordered: parts, letters and the report come out the same whatever the number of workers
        yield from pool.imap(_make_record_qas, jobs, chunksize=1)


def generate_files(record_paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                   config: QAConfig = QAConfig(), *, per_video: int = 10, seed: int = 0,
                   types: Sequence[str] = QUESTION_TYPES, fmt: str | None = None,
                   freeform: FreeFormSettings | None = None,
                   on_record: Callable[[str, str | None], None] | None = None,
                   flush_records: int = 64, flush_seconds: float = 5.0, workers: int = 1) -> GenerationReport:
    """Generate QAs for every record into ``out``; returns the merged report (also written to disk).

    Records are shared among ``workers`` processes; their results are taken in record order, so the
    output does not depend on the number of workers. QAs are flushed atomically to a part file
    every ``flush_records`` records or ``flush_seconds`` (one fsync per part, not per record); a
    killed run loses at most the unflushed records and the rerun redoes exactly those.
    on_record(path, error_or_None) is called after each record (progress, one-line errors). A
    record that cannot be read is counted under ``records_failed["malformed_record"]``, a record
    given twice (the same record id) under ``"duplicate_record"``.
    """
    fmt = format_for(out, fmt)
    out_p = Path(out)
    paths = [Path(p) for p in record_paths]
    key = _run_key(config, per_video, seed, types, freeform, [str(p) for p in paths])
    parts = Path(str(out_p) + ".parts") / key
    parts.mkdir(parents=True, exist_ok=True)
    total = GenerationReport()
    done: set[int] = set()
    first_path: dict[str, str] = {}  # record id → the path that gave it first (a repeat is skipped)
    for _first, _last, part in _done_parts(parts):
        header, _ = _read_part(part)
        done.update(header["records"])
        for index, rid in zip(header["records"], header.get("record_ids", []), strict=False):
            if rid is not None:
                first_path.setdefault(rid, str(paths[index]))
        total.merge(GenerationReport.from_json(header["report"]))

    chunk: list[int] = []
    chunk_ids: list[str | None] = []
    chunk_lines: list[str] = []
    chunk_report = GenerationReport()
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal chunk, chunk_ids, chunk_lines, chunk_report, last_flush
        if chunk:
            header = {"records": chunk, "record_ids": chunk_ids, "report": chunk_report.to_json(letter_test=False)}
            with atomic_open(parts / f"{chunk[0]:06d}-{chunk[-1]:06d}.jsonl", "w") as fh:
                fh.write(json.dumps(header) + "\n")
                fh.writelines(chunk_lines)
            total.merge(chunk_report)
        chunk, chunk_ids, chunk_lines, chunk_report, last_flush = [], [], [], GenerationReport(), time.monotonic()

    for i, rp in enumerate(paths):
        if i in done and on_record:
            on_record(str(rp), None)
    jobs = [_Job(i, str(rp), str(out_p.parent), config, per_video, seed, tuple(types), freeform)
            for i, rp in enumerate(paths) if i not in done]
    for res in _results(jobs, workers):
        rp = paths[res.index]
        error, record_id, lines = res.error, res.record_id, res.lines
        report = GenerationReport.from_json(res.report)
        if record_id is not None and record_id in first_path:
            # the same record twice would repeat every question id (issue 15 item 5)
            report = GenerationReport(records=1)
            report.records_failed["duplicate_record"] += 1
            error = f"{rp}: record {record_id} was already given as {first_path[record_id]}; skipped"
            record_id, lines = None, []
        elif record_id is not None:
            first_path[record_id] = str(rp)
        chunk_report.merge(report)
        chunk.append(res.index)
        chunk_ids.append(record_id)
        chunk_lines.extend(lines)
        if on_record:
            on_record(str(rp), error)
        if len(chunk) >= flush_records or time.monotonic() - last_flush >= flush_seconds:
            flush()
    flush()

    finished = _done_parts(parts)
    if not config.balance_letters and fmt == "jsonl":  # copy the lines: no need to parse and re-encode
        with atomic_open(out_p, "w") as fh:
            for _, _, part in finished:
                fh.writelines(_read_part(part)[1])
    else:
        balancer = LetterBalancer(seed) if config.balance_letters else None
        total.letters.clear()
        total.letters_by_type.clear()

        def all_qas() -> Iterator[QA]:
            for _, _, part in finished:
                for line in _read_part(part)[1]:
                    qa = QA.from_json(json.loads(line))
                    if balancer is not None:
                        qa = balancer(qa)
                    total.count_letter(qa)
                    yield qa

        write_qas(out_p, all_qas(), fmt)
    result = total.to_json()
    result["output"] = str(out_p)
    result["format"] = fmt
    atomic_write_text(report_path(out_p), json.dumps(result, indent=1))
    shutil.rmtree(parts.parent, ignore_errors=True)
    return total


def write_report(path: str | os.PathLike[str], report: GenerationReport) -> None:
    with atomic_open(path, "w") as fh:
        json.dump(report.to_json(), fh, indent=1)


def write_report_png(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar charts of a generation report: QAs per type, correct letters (with the χ² p-value) and
    failed attempts by reason, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 1.2, 3]})
    per_type = report["per_type"]
    axes[0].bar(list(per_type), list(per_type.values()), color="#4477aa")
    axes[0].set_title(f"{report['qas']} QAs by type")
    axes[0].tick_params(axis="x", rotation=60)
    letters = report["letters"]
    axes[1].bar(list(letters["counts"]), list(letters["counts"].values()), color="#228833")
    p = letters.get("p_value")
    axes[1].set_title("correct letter" + ("" if p is None else f" (χ² p={p:.2f})"))
    fails = report["failures"]
    axes[2].barh(list(fails)[::-1], list(fails.values())[::-1], color="#cc6677")
    axes[2].set_title(f"{report['failed_attempts']} of {report['attempts']} attempts failed, by reason")
    fig.tight_layout()
    target = Path(path)
    with atomic_open(target, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)
    return target


def print_report(console: object, report: dict, out: os.PathLike[str] | str, report_file: os.PathLike[str] | str) -> None:
    """The generation report as rich tables: QAs per type, letters with χ², failed attempts by reason."""
    from rich.table import Table

    per_type = Table(title=f"{report['qas']} QAs by type")
    for name, justify in (("type", "left"), ("QAs", "right"), ("H(answer) bits", "right"), ("distinct", "right"),
                          ("top share", "right"), ("letters p", "right")):
        per_type.add_column(name, justify=justify)  # type: ignore[arg-type]
    spread = report.get("answers", {})
    for name, n in report["per_type"].items():
        a = spread.get(name)
        if a is None:
            per_type.add_row(name, str(n), "", "", "", "")
            continue
        p = a["letters"]["p_value"]
        per_type.add_row(name, str(n), f"{a['entropy_bits']:.2f}", str(a["distinct"]), f"{a['top_share']:.2f}",
                         "" if p is None else f"{p:.2f}")
    letters = report["letters"]
    chi = "" if letters["chi2"] is None else f"  χ²={letters['chi2']:.2f}, p={letters['p_value']:.3f}"
    failures = Table(title=f"{report['failed_attempts']} of {report['attempts']} attempts gave no QA")
    failures.add_column("reason")
    failures.add_column("attempts", justify="right")
    for name, n in report["failures"].items():
        failures.add_row(name, str(n))
    console.print(per_type)  # type: ignore[attr-defined]
    console.print("letters: " + ", ".join(f"{k}={v}" for k, v in letters["counts"].items()) + chi)  # type: ignore[attr-defined]
    console.print(failures)  # type: ignore[attr-defined]
    if report["records_failed"]:
        console.print("records failed: " + ", ".join(f"{k}={v}" for k, v in report["records_failed"].items()))  # type: ignore[attr-defined]
    console.print(f"QAs: {out}\nreport: {report_file}")  # type: ignore[attr-defined]
