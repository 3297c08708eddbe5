"""CLI of the pipeline stage: ``dsr pipeline run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

pipeline_app = typer.Typer(help="Curate, extract and make questions for a folder of videos in one resumable run.",
                           no_args_is_help=True)


@pipeline_app.command("run")
def run_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Video files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: curation.csv, records/, qas.jsonl, "
                                                          "report.json (an existing run is resumed).")],
    executor: Annotated[str, typer.Option(help="local (serial, this process) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (e.g. ray://head:10001 or auto); "
                                                     "default: a local Ray instance.")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray instance (default: all).")] = None,
    min_duration: Annotated[float, typer.Option(help="Shortest clip kept by curation, seconds.")] = 20.0,
    max_duration: Annotated[float, typer.Option(help="Longest clip kept by curation, seconds.")] = 120.0,
    per_video: Annotated[int, typer.Option(help="Template questions per record.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of question sampling.")] = 0,
    qa_out: Annotated[str, typer.Option(help="Question file name inside --out (.jsonl, .parquet or .json).")]
    = "qas.jsonl",
    preset: Annotated[str | None, typer.Option("--preset", show_default=False,
                                               help="QA preset: debiased (default), paper or official_code.")] = None,
    qa_config_file: Annotated[Path | None, typer.Option(
        "--qa-config", help="JSON file of QAConfig fields, as for `dsr qa --config` (e.g. "
                            '{"min_track_confidence": 0, "min_stability_uncertain": 0} turns abstention off).')]
    = None,
) -> None:
    """Curate → extract per video (chains of tasks, locally or on Ray), then questions over all records."""
    from collections import Counter
    from dataclasses import replace

    from rich.progress import Progress

    from dsr.cli.qa import qa_config
    from dsr.extract.curate import CurateConfig
    from dsr.extract.pipeline import find_videos
    from dsr.pipeline.executors import create_executor
    from dsr.pipeline.run import PipelineConfig, run_pipeline

    config = PipelineConfig(curate=replace(CurateConfig(), min_duration_s=min_duration, max_duration_s=max_duration),
                            qa=qa_config(preset, qa_config_file), per_video=per_video, seed=seed, qa_out=qa_out)
    total = len(find_videos(inputs))
    from dsr.cli.outcome import finish
    from dsr.locking import lock_folder

    out.mkdir(parents=True, exist_ok=True)
    runner = create_executor(executor, address=address, num_cpus=num_cpus)
    try:
        with lock_folder(out), Progress() as bar:  # one process per output folder
            task = bar.add_task(f"videos ({runner.name})", total=total)

            def tick(video: str, entry: dict, resumed: bool) -> None:
                curation, extraction = entry["curation"], entry["extract"]
                if not curation["keep"]:
                    bar.console.print(f"{Path(video).name}: curation: {curation['reason']}")
                elif extraction["status"] != "ok":
                    bar.console.print(f"{Path(video).name}: extract {extraction['status']}: {extraction['reason']}")
                bar.advance(task)

            report = run_pipeline(inputs, out, config, executor=runner, progress=tick)
    finally:
        runner.close()
    failures = "; ".join(f"{k}: {v}" for k, v in report.by_stage_reason.most_common()) or "none"
    typer.echo(f"{report.videos} videos: {report.kept} kept, {report.extracted} extracted, {report.qas} QAs "
               f"({report.resumed} done before); failures: {failures}; report: {out / 'report.json'}")
    # rejected by curation (too short, ...) or skipped by extraction (no objects, untrusted camera) are decisions,
    # not failures; an unreadable video, a failed extraction and a record the questions cannot use are
    failing = ("curate: unreadable", "extract failed", "qa:")
    errors = Counter({k: v for k, v in report.by_stage_reason.items() if k.startswith(failing)})
    failed = sum(errors.values())
    finish(max(report.videos - failed, 0), failed, what="videos",
           detail=", ".join(f"{k}: {v}" for k, v in errors.most_common()))


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
