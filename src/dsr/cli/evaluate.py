"""CLI commands of the evaluate stage: ``dsr eval run | score | report | compare | lint``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

FORMAT_HELP = "Question file format: auto, dsr_parquet, qa_jsonl, plain or vlm4d."
PROTOCOL_HELP = ("Evaluation protocol: paper, dsr-official, vlmevalkit-dsrbench[-64frame|-30frame|-1fps] or vlm4d "
                 "(frames, prompt and answer parser of a published setup; recorded in the manifest).")

eval_app = typer.Typer(
    help="Evaluate vision-language models on DSR-Bench-style multiple-choice questions.",
    no_args_is_help=True,
)


def _print_findings(dataset: object) -> None:
    from collections import Counter

    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    findings = dataset.findings  # type: ignore[attr-defined]
    for f in findings:
        if not f.item_id:
            console.print(f"[dim]lint[/dim] {f.code}: {f.message}")
    per_code = Counter((f.level, f.code) for f in findings if f.item_id)
    for (level, code), n in sorted(per_code.items()):
        example = next(f for f in findings if f.code == code and f.item_id)
        console.print(f"[dim]lint[/dim] {level} {code}: {n} item(s), e.g. {example.item_id}: {example.message}")


@eval_app.command("lint")
def lint_cmd(
    dataset: Path = typer.Argument(..., help="Question file (DSR parquet, QA export JSONL, VLM4D JSON, plain JSONL)."),
    videos: Path | None = typer.Option(None, "--videos", help="Folder holding the videos."),
    format: str = typer.Option("auto", "--format", help=FORMAT_HELP),
) -> None:
    """Load a question file and print what the lint finds (duplicate options, missing videos, ...)."""
    from dsr.evaluate.datasets import load_dataset

    ds = load_dataset(dataset, videos_dir=videos, format=format)
    typer.echo(f"{ds.name}: {len(ds.items)} items ({ds.format}), sha256 {ds.file_sha256[:12]}")
    _print_findings(ds)


@eval_app.command("run")
def run_cmd(
    dataset: Path = typer.Argument(..., help="Question file."),
    model: str = typer.Option(..., "--model", "-m",
                              help="openai:<model>, hf-qwen:<dir> (Qwen2.5-VL or Qwen3-VL), gsm:<dir>, random, "
                                   "always:<letter>, answer-prior, text-prior[:<file>], oracle."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created; an existing one is resumed)."),
    videos: Path | None = typer.Option(None, "--videos", help="Folder holding the videos."),
    format: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    protocol: str = typer.Option("paper", "--protocol", help=PROTOCOL_HELP),
    frames: int | None = typer.Option(None, "--frames", show_default=False,
                                      help="Uniformly sampled frames (default: the protocol's; paper: 32)."),
    fps: float | None = typer.Option(None, "--fps", help="Sample at this rate instead of --frames."),
    timestamps: bool | None = typer.Option(None, "--timestamps/--no-timestamps", show_default=False,
                                           help="State frame times in the prompt (default: the protocol's)."),
    serve_full_video: bool | None = typer.Option(
        None, "--serve-full-video/--hide-final-second", show_default=False,
        help="Show or hide the final second of *_dir_pred items (default: the protocol's; official harness: show)."),
    max_side: int = typer.Option(768, "--max-side", help="Downscale frames to this longest side (0 = keep)."),
    arm: str = typer.Option("main", "--arm", help="main, blind, single-frame, shuffled-frames, reversed-frames."),
    circular: bool = typer.Option(False, "--circular", help="Ask every option rotation (circular evaluation)."),
    concurrency: int = typer.Option(8, "--concurrency", "-j", help="Model calls in flight."),
    limit: int | None = typer.Option(None, "--limit",
                                     help="Only the first N items (a smoke test; running again without it "
                                          "extends the same run directory to the full set)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random baseline, sampling and the API's seed field."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="OpenAI-compatible endpoint (openai: models; default: the OpenAI API)."),
    api_key_env: str | None = typer.Option(None, "--api-key-env",
                                           help="Environment variable holding the API key, never stored "
                                                "(openai: models; default: OPENAI_API_KEY)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens",
                                          help="Longest reply in tokens (openai: and hf-qwen: models; default 64)."),
    temperature: float | None = typer.Option(None, "--temperature",
                                             help="Sampling temperature (openai: models; default 0)."),
    timeout: float | None = typer.Option(None, "--timeout", min=0.001,
                                         help="Seconds each request attempt may take before it counts as a "
                                              "timeout (openai: models and the judge; default 120)."),
    max_retries: int | None = typer.Option(None, "--max-retries", min=0,
                                           help="Retries after a failed attempt (429, 5xx, timeout, connection "
                                                "error), with backoff (openai: models and the judge; default 3)."),
    max_consecutive_failures: int = typer.Option(
        10, "--max-consecutive-failures", min=0,
        help="Stop the run when this many items in a row fail at the model (dead or refusing endpoint); "
             "what is done is kept and the same command resumes. 0 = never stop."),
    image_detail: str | None = typer.Option(None, "--image-detail", help="OpenAI image detail: low/high/auto."),
    video_mode: str | None = typer.Option(
        None, "--video-mode",
        help="How the frames travel. openai: frames (JPEG image_url parts, default) or video_url (one mp4 of the "
             "served frames). hf-qwen: frames (images with time labels) or native (a video with the model's own "
             "time; default for Qwen3-VL)."),
    judge: str | None = typer.Option(None, "--judge",
                                     help="Opt-in LLM judge for INVALID replies only, e.g. openai:gpt-4o-mini."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="Judge endpoint (default: --base-url)."),
    judge_api_key_env: str | None = typer.Option(None, "--judge-api-key-env",
                                                 help="Environment variable holding the judge's API key "
                                                      "(default: --api-key-env)."),
    cache: Path | None = typer.Option(None, "--cache", help="Frame cache folder (default: <out>/frame_cache)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Evaluate a model on a question file into a crash-safe, resumable run directory.

    Exit code: 0 when every item got a reply, 1 when some failed (one summary line), 2 when none did or the
    run was stopped before any reply (the circuit breaker's line names the cause)."""
    from dsr.evaluate.datasets import load_dataset
    from dsr.evaluate.models import create_model
    from dsr.evaluate.protocols import get_protocol, protocol_policy
    from dsr.evaluate.run import RunConfig, run_eval
    from dsr.evaluate.store import SUMMARY

    ds = load_dataset(dataset, videos_dir=videos, format=format)
    _print_findings(ds)
    key_env = api_key_env or "OPENAI_API_KEY"
    if (model.startswith("openai:") or (judge or "").startswith("openai:")) and not (
            os.environ.get(key_env) or os.environ.get(judge_api_key_env or key_env)):
        typer.echo(f"warning: ${key_env} is not set; requests carry no API key", err=True)
    options = {"base_url": base_url, "api_key_env": api_key_env, "max_tokens": max_tokens,
               "temperature": temperature, "image_detail": image_detail, "video_mode": video_mode,
               "timeout_s": timeout, "max_retries": max_retries}
    m = create_model(model, items=ds.items, seed=seed, concurrency=concurrency, table=_cli_models(), **options)
    chosen = get_protocol(protocol)
    policy = protocol_policy(chosen, num_frames=frames, fps=fps, timestamps_in_prompt=timestamps,
                             max_side=max_side, serve_full_video=serve_full_video)
    config = RunConfig(policy=policy, arm=arm, prompt_style=chosen.prompt_style, protocol=chosen.name,
                       concurrency=concurrency, seed=seed, circular=circular, limit=limit,
                       max_consecutive_failures=max_consecutive_failures)
    judge_obj = None
    if judge:
        from dsr.errors import DsrError
        from dsr.evaluate.judge import Judge

        if not judge.startswith("openai:"):
            raise DsrError("--judge must name an OpenAI-compatible model: openai:<model>")
        judge_obj = Judge(create_model(judge, seed=0, base_url=judge_base_url or base_url,
                                       api_key_env=judge_api_key_env or api_key_env, max_tokens=16,
                                       timeout_s=timeout, max_retries=max_retries))
    outcome = run_eval(ds, m, out, config, cache_dir=cache, progress=progress, judge=judge_obj)
    import json

    summary = json.loads((out / SUMMARY).read_text())
    overall = summary.get("overall") or {}
    fails = ", ".join(f"{k}: {v}" for k, v in sorted(outcome.failures.items())) or "none"
    acc = _accuracy_text(overall) + _formats_text(summary)
    typer.echo(f"{out}: {outcome.n_scored}/{outcome.n_total} scored, accuracy {acc}; "
               f"new {outcome.n_new}, resumed {outcome.n_resumed}; failures: {fails}")
    if chosen.parser != "dsr":
        _echo_protocol_rescore(out, chosen.name)
    from dsr.cli.outcome import finish

    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.get("failures", {}).items()))
    finish(outcome.n_scored, outcome.n_failed + outcome.n_not_run, detail=reasons,
           line=outcome.stopped and f"{out}: {outcome.stopped}")


@eval_app.command("score")
def score_cmd(
    source: Path = typer.Argument(..., help="A run directory, or a JSON/JSONL file of {id, response}."),
    dataset: Path | None = typer.Option(None, "--dataset", "-d", help="Question file (for a predictions file)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory to create (for a predictions file)."),
    videos: Path | None = typer.Option(None, "--videos", help="Folder holding the videos (for the report's "
                                                                "thumbnails; none are decoded to score)."),
    format: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    name: str | None = typer.Option(None, "--name", help="Model name shown in reports."),
    protocol: str | None = typer.Option(None, "--protocol", show_default=False,
                                        help="Also re-read the replies with this protocol's answer parser and "
                                             "count the items it reads differently from ours "
                                             "(writes protocol-<name>.json). " + PROTOCOL_HELP),
) -> None:
    """Score replies offline with the one parser: re-parse a run, or score predictions made elsewhere."""
    from dsr.errors import DsrError

    if protocol is not None:
        from dsr.evaluate.protocols import get_protocol

        get_protocol(protocol)  # an unknown name fails before any work
    if source.is_dir():
        from dsr.evaluate.score import rescore_run

        stats = rescore_run(source)
        typer.echo(f"{source}: re-parsed {stats['rows']} rows, {stats['changed']} changed letter")
        if protocol is not None:
            _echo_protocol_rescore(source, protocol)
        return
    if dataset is None or out is None:
        raise DsrError("scoring a predictions file needs --dataset and --out")
    import json

    from dsr.evaluate.datasets import load_dataset
    from dsr.evaluate.score import score_predictions
    from dsr.evaluate.store import SUMMARY

    ds = load_dataset(dataset, videos_dir=videos, format=format, check_videos=False)
    outcome = score_predictions(source, ds, out, name=name)
    summary = json.loads((out / SUMMARY).read_text())
    overall = summary.get("overall") or {}
    acc = _accuracy_text(overall)
    typer.echo(f"{out}: {outcome.n_matched} predictions scored, accuracy {acc}, invalid "
               f"{100 * summary.get('invalid_rate', 0):.1f}%; {outcome.missing} items without a prediction, "
               f"{len(outcome.unknown_ids)} unknown ids; {len(outcome.differences)} items where our parse "
               f"differs from the file's (see differences.json)")
    if protocol is not None:
        _echo_protocol_rescore(out, protocol)


def _echo_protocol_rescore(run_dir: Path, protocol: str) -> None:
    from dsr.evaluate.protocols import protocol_rescore

    result, path = protocol_rescore(run_dir, protocol)
    if not result.n:
        typer.echo(f"{run_dir}: no replies to re-read with protocol {protocol}")
        return
    typer.echo(f"{run_dir}: protocol {protocol} ({result.parser} parser): accuracy "
               f"{100 * result.correct_theirs / result.n:.1f}% vs ours {100 * result.correct_ours / result.n:.1f}%; "
               f"{result.differ} of {result.n} items parse differently (see {path.name})")


@eval_app.command("report")
def report_cmd(
    runs: list[Path] = typer.Argument(..., help="Run directories."),
    out: Path = typer.Option(Path("eval-report"), "--out", "-o", help="Folder for report.md and report.html."),
    worst: int = typer.Option(12, "--worst", help="How many worst items to show."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails",
                                    help="Show each listed item's frames (decodes the videos)."),
) -> None:
    """Write a Markdown and a self-contained HTML report over one or more runs."""
    from dsr.evaluate.report import write_report

    md, html_path = write_report(list(runs), out, worst=worst, resamples=resamples, thumbnails=thumbnails)
    typer.echo(f"wrote {md} and {html_path}")


@eval_app.command("compare")
def compare_cmd(
    run_a: Path = typer.Argument(..., help="Run A (baseline)."),
    run_b: Path = typer.Argument(..., help="Run B."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the comparison as Markdown here."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
) -> None:
    """Paired comparison B − A on shared items: bootstrap CI of the difference and McNemar's test, per type."""
    from dsr.atomic import atomic_write_text
    from dsr.evaluate.report import compare_markdown, compare_rows, load_runs

    a, b = load_runs([run_a, run_b], resamples=resamples)
    overall, per, counts = compare_rows(a.rows, b.rows, resamples=resamples)
    text = compare_markdown(a.label, b.label, overall, per, counts)
    typer.echo(text)
    if out is not None:
        atomic_write_text(out, text)


@eval_app.command("export")
def export_cmd(
    dataset: Path = typer.Argument(..., help="Question file (any format `dsr eval lint` reads)."),
    to: str = typer.Option(..., "--to", help="Harness: lmms-eval (a task folder) or vlmevalkit (a TSV)."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="lmms-eval: the task folder to write; vlmevalkit: the .tsv file to write."),
    videos: Path | None = typer.Option(None, "--videos", help="Folder holding the videos."),
    format: str = typer.Option("auto", "--format", help="Input format (default: detected)."),
    task: str | None = typer.Option(None, "--task", help="lmms-eval task name (default: dsr_<file stem>)."),
) -> None:
    """Write a question set for lmms-eval or VLMEvalKit, with prediction items cut before their hidden future."""
    from rich.progress import Progress

    from dsr.errors import DsrError
    from dsr.evaluate.datasets import load_dataset
    from dsr.evaluate.harness_export import HARNESSES, export_lmms_eval, export_vlmevalkit

    if to not in HARNESSES:
        raise DsrError(f"--to must be one of {', '.join(HARNESSES)}, got {to!r}")
    ds = load_dataset(dataset, videos_dir=videos, format=format)
    _print_findings(ds)
    with Progress(transient=True) as bar:
        job = bar.add_task(f"export for {to}", total=len(ds.items))

        def step(n: int) -> None:
            bar.advance(job, n)

        if to == "lmms-eval":
            path = export_lmms_eval(ds, out, task=task, progress=step)
        else:
            if out.suffix != ".tsv":
                raise DsrError(f"--out for vlmevalkit must be a .tsv file, got {out}")
            path = export_vlmevalkit(ds, out, progress=step)
    typer.echo(f"wrote {path} ({len(ds.items)} items)")


def gsm_model(arg: str, *, context: Any, max_tokens: int | None = None) -> Any:
    """``gsm:<dir>``: a GSM (or base Qwen2.5-VL) checkpoint behind the harness's video-backend adapter.
    The GSM stage comes after evaluate, so only the CLI, which wires stages, may reach it."""
    from dsr.evaluate.models import VideoBackendModel
    from dsr.gsm.eval_backend import create_backend

    return VideoBackendModel(create_backend(arg, max_new_tokens=max_tokens or 64))


def _cli_models() -> dict[str, str]:
    from dsr.evaluate.models import MODELS

    return {**MODELS, "gsm": f"{__name__}:gsm_model"}


def register(app: typer.Typer) -> None:
    """Add this stage's commands to ``app``."""
    app.add_typer(eval_app, name="eval")


def _formats_text(summary: dict) -> str:
    """'; numeric MRA 62.5%, open exact match 40.0%' for a run with numeric or open items, else ''."""
    from dsr.evaluate.formats import SCORE_NAMES

    parts = [f"{fmt} {SCORE_NAMES[fmt]} {100 * s['score']['value']:.1f}%" for fmt, s in
             (summary.get("formats") or {}).items()]
    return ("; " + ", ".join(parts)) if parts else ""


def _accuracy_text(overall: dict) -> str:
    """'83.3% [71.2, 94.0]', or '[n/a]' where no interval exists (fewer than two videos)."""
    from dsr.evaluate.stats import Estimate

    if not overall:
        return "–"
    est = Estimate(value=overall["value"], lo=overall["lo"], hi=overall["hi"], n=overall.get("n", 0))
    value, _, interval = est.pct().partition(" ")
    return f"{value}% {interval}"
