"""QA generation speed: the issue-10 target is 50,000 QAs with stability on in <= 20 s on 2 cores.

Usage: ``MUJOCO_GL=egl python benchmarks/qa_speed.py [--records 100] [--per-video 500] [--workers 2]
[--worlds 4] [--work DIR] [--write docs/bench-qa.md]``.

Renders ``--worlds`` default worlds (24 s, 10 fps, 320x240: generator 2's dynamics) and writes
``--records`` record files, copies of them under distinct record ids (each id draws its own
questions), next to the worlds' videos. Then, in one run:

1. ``read_record`` per file (CPU ms; the reader belongs to the scene stage and is reported apart);
2. per-core rates in one process on a loaded record (CPU time): the default (debiased) preset and
   the paper preset, stability on (K = 20) and off;
3. **end to end** — ``generate_files`` over the record files into JSONL with the defaults
   (debiased, stability on): wall time with ``--workers`` processes and with one, their ratio, and
   the CPU time the workers spent reading records;
4. peak Python memory while streaming QAs into a file (flat in the number of QAs).

The load average is printed next to every timing: the development machine is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from dsr.qa.schema import QA

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5-min {five:.1f})"


def make_records(work: Path, worlds: int, records: int) -> list[Path]:
    """``records`` files, round-robin copies of ``worlds`` rendered worlds with distinct ids."""
    from dsr.scene.io import read_record, write_record
    from dsr.world import WorldConfig, render_world

    bases = []
    for seed in range(worlds):
        folder = work / f"world{seed}"
        if not (folder / "record.npz").exists():
            render_world(WorldConfig(seed=seed), folder, progress=False)
        bases.append(read_record(folder / "record.npz"))
    paths = []
    for i in range(records):
        base = bases[i % worlds]
        path = work / f"world{i % worlds}" / f"copy{i:04d}.npz"
        if not path.exists():
            write_record(path, dataclasses.replace(base, record_id=f"{base.record_id}-copy{i:04d}"))
        paths.append(path)
    return paths


def per_core_rates(path: Path, qas: int) -> dict[str, float]:
    """QAs per CPU second in this process, for each preset and stability setting."""
    from dsr.qa.generate import generate_record_qas
    from dsr.qa.rules import make_config
    from dsr.scene.io import read_record

    record = read_record(path)
    rates = {}
    for preset in ("debiased", "paper"):
        for k in (20, 0):
            config = make_config(preset, stability_k=k)
            made, seed = 0, 0
            start = time.process_time()
            while made < qas:
                made += sum(1 for _ in generate_record_qas(record, config, per_video=min(qas, 500), seed=seed))
                seed += 1
            rates[f"{preset}, stability {'on (K=20)' if k else 'off'}"] = made / (time.process_time() - start)
    return rates


def end_to_end(paths: list[Path], out: Path, per_video: int, workers: int) -> tuple[float, int, float]:
    """(wall seconds, QAs, parent CPU seconds) of ``generate_files`` with the defaults."""
    from dsr.qa.rules import QAConfig
    from dsr.qa.run import generate_files

    shutil.rmtree(Path(str(out) + ".parts"), ignore_errors=True)
    cpu, wall = time.process_time(), time.perf_counter()
    report = generate_files(paths, out, QAConfig(), per_video=per_video, seed=0, workers=workers)
    return time.perf_counter() - wall, sum(report.made.values()), time.process_time() - cpu


def peak_memory_mib(path: Path, total: int, folder: Path) -> float:
    from dsr.qa.export import write_qas
    from dsr.qa.generate import generate_record_qas
    from dsr.qa.rules import QAConfig
    from dsr.scene.io import read_record

    record = read_record(path)

    def stream() -> Iterator[QA]:
        made, seed = 0, 0
        while made < total:
            for qa in generate_record_qas(record, QAConfig(stability_k=0), per_video=100, seed=seed):
                if made == total:
                    return
                made += 1
                yield qa
            seed += 1

    tracemalloc.start()
    tracemalloc.reset_peak()
    write_qas(folder / f"mem{total}.jsonl", stream())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--per-video", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worlds", type=int, default=4)
    ap.add_argument("--rate-qas", type=int, default=2000, help="QAs per per-core rate measurement")
    ap.add_argument("--work", type=Path, default=None, help="folder to keep the worlds in (default: temporary)")
    ap.add_argument("--skip-single", action="store_true", help="skip the one-worker end-to-end run")
    ap.add_argument("--write", type=Path, default=None, help="write the results as markdown here")
    args = ap.parse_args()
    from dsr.scene.io import read_record

    work = args.work or Path(tempfile.mkdtemp(prefix="qa_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []

    def row(label: str, value: str) -> None:
        print(f"{label}: {value}", flush=True)
        rows.append((label, value))

    paths = make_records(work, args.worlds, args.records)
    frames = read_record(paths[0]).num_frames
    start = time.process_time()
    for p in paths:
        read_record(p)
    read_ms = (time.process_time() - start) / len(paths) * 1e3
    row(f"read_record, {frames}-frame world record (CPU, mean of {len(paths)})", f"{read_ms:.1f} ms; {load()}")
    for name, rate in per_core_rates(paths[0], args.rate_qas).items():
        row(f"QAs per CPU second in one process, {name}", f"{rate:,.0f} ({1e3 / rate:.2f} ms/QA); {load()}")
    out = work / "speed.jsonl"
    wall, made, _ = end_to_end(paths, out, args.per_video, args.workers)
    row(f"**end to end: {args.records} records × --per-video {args.per_video}, defaults (debiased, stability on), "
        f"{args.workers} workers**", f"**{made:,} QAs in {wall:.1f} s wall = {made / wall:,.0f} QAs/s**; {load()}")
    row(f"of which reading the {args.records} records (CPU, shared by the workers)",
        f"{read_ms * args.records / 1e3:.1f} s CPU = {read_ms * args.records / 1e3 / args.workers:.1f} s of wall "
        f"on {args.workers} cores ({read_ms * args.records / 1e3 / args.workers / wall:.0%} of the run)")
    if not args.skip_single:
        wall1, made1, _ = end_to_end(paths, work / "speed1.jsonl", args.per_video, 1)
        assert (work / "speed1.jsonl").read_bytes() == out.read_bytes(), "worker count changed the output"
        row("the same with 1 worker (output identical)",
            f"{made1:,} QAs in {wall1:.1f} s = {made1 / wall1:,.0f} QAs/s; speed-up ×{wall1 / wall:.2f}; {load()}")
    small, large = 2000, 20000
    row(f"peak traced memory streaming {small:,} vs {large:,} QAs to JSONL",
        f"{peak_memory_mib(paths[0], small, work):.2f} MiB vs {peak_memory_mib(paths[0], large, work):.2f} MiB")
    row("machine", f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, {load()}")

    if args.write:
        today = dt.date.today().isoformat()
        text = ["# QA generation speed (`benchmarks/qa_speed.py`)", "",
                "Target (issue 10 item 6): **50,000 QAs with stability on in ≤ 20 s on 2 cores**, with the "
                "defaults (the debiased preset: counterfactual options, stability K = 20).", "",
                f"Measured {today}. Load averages are next to every figure: the machine is shared, and the "
                "lead re-measures on a quiet one.", "",
                "| measurement | result |", "|---|---|"]
        text += [f"| {a} | {b} |" for a, b in rows]
        text += ["", f"Command: `MUJOCO_GL=egl .venv/bin/python benchmarks/qa_speed.py --records {args.records} "
                 f"--per-video {args.per_video} --workers {args.workers} --write {args.write}`", ""]
        args.write.write_text("\n".join(text))


if __name__ == "__main__":
    main()
