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


def balance_letters(keys: Sequence[tuple[str, str] | None], seed: int) -> dict[int, str]:
    """The few letter moves that even out a run: QA number → its new correct letter.

    keys: per QA of the run in file order, (type, correct letter), None for QAs left alone (free-form).
    Records already place their answers in blocks of 4 per type (:func:`dsr.qa.generate.letter_plan`);
    what each record leaves over adds up over a run (a record with one QA of a type gives it one
    letter). Moving the fewest QAs, last ones first, every type ends within one QA of balance, its
    remainder letters drawn from the seed. Only the moved QAs are rewritten.
    """
    by_type: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            by_type.setdefault(key[0], []).append(i)
    moves: dict[int, str] = {}
    for qtype, items in sorted(by_type.items()):
        counts = Counter(keys[i][1] for i in items)  # type: ignore[index]
        order = list(LETTERS)
        random.Random(f"{seed}/{qtype}/remainder").shuffle(order)
        # the remainder goes to the letters already most used (fewest moves), ties in the seeded order
        ranked = sorted(order, key=lambda x: -counts[x])
        base, extra = divmod(len(items), len(LETTERS))
        target = {x: base + (1 if k < extra else 0) for k, x in enumerate(ranked)}
        excess = {x: counts[x] - target[x] for x in LETTERS}
        short = [x for x in ranked[::-1] for _ in range(max(0, -excess[x]))]
        for i in reversed(items):
            if not short:
                break
            letter = keys[i][1]  # type: ignore[index]
            if excess[letter] > 0:
                moves[i] = short.pop()
                excess[letter] -= 1
    return moves


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


def _read_header(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.loads(fh.readline())


def _read_part(path: Path) -> tuple[dict[str, Any], list[str]]:
    """A part's header (records covered, their report) and its QA lines."""
    with open(path, encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        return header, [line for line in fh if line.strip()]


@dataclass(frozen=True)
class _Job:
    """A run of consecutive records one worker turns into one part file (picklable)."""

    indices: tuple[int, ...]
    paths: tuple[str, ...]
    part: str
    out_dir: str
    config: QAConfig
    per_video: int
    seed: int
    types: tuple[str, ...]
    freeform: FreeFormSettings | None


def _record_qas(job: _Job, path: str) -> tuple[str | None, str | None, list[QA], GenerationReport]:
    """(record id, error, QAs, report) of one record."""
    from dsr.scene.io import read_record, resolve_video_path

    report = GenerationReport()
    rp, out_dir = Path(path), Path(job.out_dir)
    try:
        record = read_record(rp)
    except DsrError as exc:
        report.records += 1
        report.records_failed["malformed_record"] += 1
        return None, str(exc), [], report
    video = _rel(resolve_video_path(record, rp), out_dir)
    qas: list[QA] = list(generate_record_qas(record, job.config, per_video=job.per_video, seed=job.seed,
                                             types=job.types, report=report, record_path=_rel(rp, out_dir),
                                             video_path=video))
    if job.freeform is not None and job.freeform.per_video > 0:
        from dsr.qa.freeform import generate_freeform_qas

        qas.extend(generate_freeform_qas(record, job.freeform, job.config, seed=job.seed, report=report,
                                         record_path=_rel(rp, out_dir), video_path=video))
    return record.record_id, None, qas, report


def _write_part(job: _Job) -> dict[str, Any]:
    """Make the QAs of a job's records and write them, atomically, as one part file: a header line
    (per record: index, id, error, number of QA lines, report; per QA: (type, letter) for the letter
    balance), then the QA lines. Returns the header (runs in a worker process)."""
    header: dict[str, Any] = {"records": list(job.indices), "record_ids": [], "errors": [], "line_counts": [],
                              "reports": [], "keys": []}
    lines: list[str] = []
    for path in job.paths:
        record_id, error, qas, report = _record_qas(job, path)
        header["record_ids"].append(record_id)
        header["errors"].append(error)
        header["line_counts"].append(len(qas))
        header["reports"].append(report.to_json(letter_test=False))
        header["keys"].extend((qa.type, qa.answer) if qa.source == "template" else None for qa in qas)
        lines.extend(qa_line(qa) for qa in qas)
    with atomic_open(job.part, "w") as fh:
        fh.write(json.dumps(header) + "\n")
        fh.writelines(lines)
    return header


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[dict[str, Any]]:
    """Part headers in job order, from ``workers`` processes (inline when one is enough)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_write_part, jobs)
        return
    import multiprocessing

    # forkserver: workers start from a clean server that has imported dsr.qa once (fork would copy a
    # parent's threads, e.g. a progress bar's, and spawn would re-import everything per worker)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload(["dsr.qa.run", "dsr.qa.counterfactual", "dsr.scene.io"])
    with ctx.Pool(min(workers, len(jobs))) as pool:
        # ordered: progress lines and duplicate decisions come out the same whatever the worker count
        yield from pool.imap(_write_part, jobs, chunksize=1)


def _chunks(indices: list[int], size: int) -> Iterator[list[int]]:
    """Runs of at most ``size`` consecutive record indices."""
    run: list[int] = []
    for i in indices:
        if run and (len(run) == size or i != run[-1] + 1):
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def generate_files(record_paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                   config: QAConfig = QAConfig(), *, per_video: int = 10, seed: int = 0,
                   types: Sequence[str] = QUESTION_TYPES, fmt: str | None = None,
                   freeform: FreeFormSettings | None = None,
                   on_record: Callable[[str, str | None], None] | None = None,
                   flush_records: int = 16, workers: int = 1) -> GenerationReport:
    """Generate QAs for every record into ``out``; returns the merged report (also written to disk).

    Runs of up to ``flush_records`` consecutive records are shared among ``workers`` processes; each
    run ends in one part file, written atomically by its worker. A killed job loses at most the runs
    in flight, and the rerun with the same settings and records makes exactly those. The parts are
    merged in record order, so the output does not depend on the number of workers.
    on_record(path, error_or_None) is called after each record, in order (progress, one-line errors).
    A record that cannot be read is counted under ``records_failed["malformed_record"]``, a record
    given twice (the same record id) under ``"duplicate_record"``: its QAs are left out.
    """
    fmt = format_for(out, fmt)
    out_p = Path(out)
    paths = [Path(p) for p in record_paths]
    key = _run_key(config, per_video, seed, types, freeform, [str(p) for p in paths])
    parts = Path(str(out_p) + ".parts") / key
    parts.mkdir(parents=True, exist_ok=True)
    done: dict[int, tuple[str | None, str | None]] = {}  # index → (record id, error) of finished parts
    for _first, _last, part in _done_parts(parts):
        header = _read_header(part)
        done.update(zip(header["records"], zip(header["record_ids"], header["errors"], strict=True), strict=True))
    todo = [i for i in range(len(paths)) if i not in done]
    # ≥ 16 runs per worker: the last run of a worker is short, so workers end within ~1/16 of each other
    size = max(1, min(flush_records, -(-len(todo) // (16 * max(1, workers)))))
    jobs = [_Job(tuple(run), tuple(str(paths[i]) for i in run), str(parts / f"{run[0]:06d}-{run[-1]:06d}.jsonl"),
                 str(out_p.parent), config, per_video, seed, tuple(types), freeform) for run in _chunks(todo, size)]

    first_path: dict[str, int] = {}  # record id → index of its first record (a repeat is skipped)

    def announce(index: int, record_id: str | None, error: str | None) -> None:
        if record_id is not None:
            first = first_path.setdefault(record_id, index)
            if first != index:  # the same record twice would repeat every question id (issue 15 item 5)
                error = f"{paths[index]}: record {record_id} was already given as {paths[first]}; skipped"
        if on_record:
            on_record(str(paths[index]), error)

    results = _run_jobs(jobs, workers)
    job_at = {job.indices[0]: job for job in jobs}
    index = 0
    while index < len(paths):  # in record order: finished parts as they are, the jobs as they end
        job = job_at.get(index)
        if job is None:
            announce(index, *done[index])
            index += 1
            continue
        header = next(results)
        for i, rid, err in zip(header["records"], header["record_ids"], header["errors"], strict=True):
            done[i] = (rid, err)
            announce(i, rid, err)
        index = job.indices[-1] + 1
    return _merge(parts, out_p, fmt, config, seed)


def _merge(parts: Path, out_p: Path, fmt: str, config: QAConfig, seed: int) -> GenerationReport:
    """The parts, in record order, into ``out_p`` (skipping repeated records), and the report."""
    finished = _done_parts(parts)
    headers = [_read_header(part) for _, _, part in finished]
    total = GenerationReport()
    keep: list[bool] = []  # per QA line of the parts
    keys: list[tuple[str, str] | None] = []
    seen: set[str] = set()
    for header in headers:
        line = 0  # QA lines of this part so far
        for rid, n, rep in zip(header["record_ids"], header["line_counts"], header["reports"], strict=True):
            repeat = rid is not None and rid in seen
            if repeat:
                total.records += 1
                total.records_failed["duplicate_record"] += 1
            else:
                total.merge(GenerationReport.from_json(rep))
                if rid is not None:
                    seen.add(rid)
            keep.extend([not repeat] * n)
            keys.extend(None if repeat or k is None else (k[0], k[1]) for k in header["keys"][line:line + n])
            line += n
    moves = balance_letters(keys, seed) if config.balance_letters else {}
    for i, letter in moves.items():  # the report follows the moves
        qtype, old = keys[i]  # type: ignore[misc]
        total.letters[old] -= 1
        total.letters[letter] += 1
        total.letters_by_type[f"{qtype}/{old}"] -= 1
        total.letters_by_type[f"{qtype}/{letter}"] += 1

    def lines() -> Iterator[tuple[int, str]]:
        i = 0
        for _, _, part in finished:
            for text in _read_part(part)[1]:
                if keep[i]:
                    yield i, text
                i += 1

    def moved(i: int, text: str) -> QA:
        qa = QA.from_json(json.loads(text))
        return qa.with_answer_at(moves[i]) if i in moves else qa

    if fmt == "jsonl":  # copy the lines; only moved QAs are parsed and rewritten
        with atomic_open(out_p, "w") as fh:
            i = 0
            for header, (_, _, part) in zip(headers, finished, strict=True):
                n = sum(header["line_counts"])
                if all(keep[i:i + n]) and not any(j in moves for j in range(i, i + n)):
                    fh.flush()  # a part kept whole and unchanged: its bytes after the header line
                    with open(part, "rb") as src:
                        src.readline()
                        shutil.copyfileobj(src, fh.buffer)
                    fh.buffer.flush()
                else:
                    for text in _read_part(part)[1]:
                        if keep[i]:
                            fh.write(qa_line(moved(i, text)) if i in moves else text)
                        i += 1
                    continue
                i += n
    else:
        write_qas(out_p, (moved(i, text) for i, text in lines()), fmt)
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
