"""CLI commands of the qa stage: ``dsr qa`` (generate QA files) and ``dsr answer`` (one query)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dsr.qa.rules import QAConfig

# Help texts state QAConfig's defaults without importing it (numpy) when the CLI starts;
# tests/qa/test_export_cli.py checks them against QAConfig.
_MIN_STABILITY_DEFAULT = 0.0
_STABILITY_K_DEFAULT = 20
_MIN_TRACK_CONFIDENCE_DEFAULT = 0.5
_MIN_STABILITY_UNCERTAIN_DEFAULT = 0.8
_PRESET_DEFAULT = "debiased"
_PRESET_HELP = ("debiased (counterfactual options that text alone cannot tell apart, docs/qa.md), paper (DSR's "
                "procedure: random-sequence distractors) or official_code (the released code's behaviour, for "
                f"parity); default: the --config file's preset, else {_PRESET_DEFAULT}.")


def qa_config(preset_flag: str | None, config_file: Path | None, **overrides: object) -> QAConfig:
    """QAConfig from the preset (flag, else the config file's, else the default), the file's fields and
    the flags' overrides."""
    from dsr.errors import DsrError
    from dsr.qa.rules import QAConfig, make_config

    fields: dict[str, object] = {}
    preset = preset_flag or _PRESET_DEFAULT
    if config_file is not None:
        try:
            fields.update(json.loads(config_file.read_text()))
        except (OSError, ValueError) as exc:
            raise DsrError(f"{config_file}: cannot read config ({exc})") from None
        # a config file names its preset ("preset"; older files only "parity"), which the flag overrides
        named = fields.pop("preset", fields.get("parity"))
        preset = str(named) if named is not None and preset_flag is None else preset
    fields.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(fields) - set(QAConfig.__dataclass_fields__)
    if unknown:
        raise DsrError(f"unknown config field(s): {', '.join(sorted(unknown))}")
    return make_config(preset, **fields)


def _free_answers(records: list[Path], out: Path, answer_format: str, config: QAConfig, *, per_video: int,
                  seed: int) -> None:
    """``dsr qa --answer-format numeric|open``: one file, a summary line, the exit-code policy."""
    from rich.console import Console
    from rich.progress import Progress

    from dsr.atomic import atomic_write_text
    from dsr.cli.outcome import finish
    from dsr.errors import DsrError
    from dsr.locking import lock_file
    from dsr.qa.free_answer import ANSWER_FORMATS, generate_free_files

    if answer_format not in ANSWER_FORMATS:
        raise DsrError(f"--answer-format must be one of {', '.join(ANSWER_FORMATS)}, got {answer_format!r}")
    if not str(out).endswith((".jsonl", ".parquet", ".json")):
        raise DsrError(f"{out}: numeric and open QAs are written as .jsonl, .parquet or .json (DSR-Train)")
    err = Console(stderr=True, highlight=False)
    failed: list[str] = []
    with lock_file(out), Progress(console=err, transient=True) as progress:
        task = progress.add_task("records", total=len(records))

        def on_record(path: str, error: str | None) -> None:
            if error:
                failed.append(path)
                err.print(f"[red]error[/red] {error}", soft_wrap=True)
            progress.advance(task)

        report = generate_free_files([str(r) for r in records], out, answer_format, config, per_video=per_video,
                                     seed=seed, on_record=on_record)
    summary = report.to_json()
    atomic_write_text(Path(f"{out}.report.json"), json.dumps(summary, indent=1) + "\n")
    per_type = ", ".join(f"{k}: {v}" for k, v in sorted(summary["per_type"].items())) or "none"
    Console(highlight=False).print(f"{out}: {summary['qas']} {answer_format} QAs from {summary['records']} records "
                                   f"({per_type}); scale: {summary['scale_kinds'] or 'none'}; report: {out}.report.json")
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(summary["records_failed"].items()))
    finish(len(records) - len(failed), len(failed), what="records", detail=detail)


def register(app: typer.Typer) -> None:
    """Add ``qa`` and ``answer`` to ``app``."""

    @app.command()
    def qa(
        records: list[Path] = typer.Argument(..., help="Scene record files (.npz)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output file: .jsonl, .parquet (DSR-Bench) or .json (DSR-Train)."),
        fmt: str | None = typer.Option(None, "--format", help="jsonl, parquet or train_json (default: from the suffix)."),
        per_video: int = typer.Option(10, "--per-video", help="Template QAs per record."),
        seed: int = typer.Option(0, "--seed", help="Seed of every random choice; same seed and records give the "
                                                    "same QAs."),
        types: str = typer.Option("all", "--types", help="Comma list of types, 'abs', 'rel', a base type ('dis') or 'all'."),
        min_stability: float | None = typer.Option(
            None, "--min-stability", show_default=False,
            help=f"Drop QAs whose stability is below this, 0 to 1 (default: {_MIN_STABILITY_DEFAULT:g}, i.e. keep "
                 "every QA with its score)."),
        stability_k: int | None = typer.Option(
            None, "--stability-k", show_default=False,
            help=f"Perturbed re-derivations per QA; 0 turns scoring off (default: {_STABILITY_K_DEFAULT})."),
        min_track_confidence: float | None = typer.Option(
            None, "--min-track-confidence", show_default=False,
            help="Abstention on extracted records: drop a QA naming an object tracked below this confidence at "
                 f"any of its frames, 0 to 1 (default: {_MIN_TRACK_CONFIDENCE_DEFAULT:g}; 0 turns it off). "
                 "Records with no stated uncertainty (ground truth) are unaffected."),
        min_stability_uncertain: float | None = typer.Option(
            None, "--min-stability-uncertain", show_default=False,
            help="Abstention on extracted records: the least stability under the record's own uncertainty, 0 to 1 "
                 f"(default: {_MIN_STABILITY_UNCERTAIN_DEFAULT:g}; 0 turns it off)."),
        frame_policy: str | None = typer.Option(None, "--frame-policy", help="uniform32, fps1 or official_code."),
        direction_eps: float | None = typer.Option(None, "--direction-eps",
                                                   help="Direction threshold (default cos 70° = 0.342; code: 0.3)."),
        distractor_pool: float | None = typer.Option(
            None, "--distractor-pool",
            help="Probability that a distractor is another query's answer (0 = paper; 0.75 cuts the "
                 "text-only shortcut, docs/qa.md)."),
        preset: str | None = typer.Option(None, "--preset", show_default=False, help=_PRESET_HELP),
        config_file: Path | None = typer.Option(None, "--config", help="JSON file of QAConfig fields."),
        workers: int | None = typer.Option(None, "--workers", "-j", show_default=False,
                                           help="Processes generating in parallel (default: the CPUs available); "
                                                "the output is the same for any number."),
        free_form: int = typer.Option(1, "--free-form-per-video", help="Free-form QAs per record (needs an endpoint)."),
        llm_base_url: str | None = typer.Option(None, "--llm-base-url", envvar="DSR_LLM_BASE_URL",
                                                help="OpenAI-compatible endpoint, e.g. http://host:8000/v1."),
        llm_model: str | None = typer.Option(None, "--llm-model", envvar="DSR_LLM_MODEL",
                                             help="Model name sent to the endpoint (required with --llm-base-url)."),
        llm_key_env: str = typer.Option("OPENAI_API_KEY", "--llm-api-key-env",
                                        help="Name of the environment variable holding the API key."),
        answer_format: str = typer.Option(
            "mcq", "--answer-format",
            help="mcq (four options), numeric (metres, m/s, degrees on metric records; scale-free ratios "
                 "otherwise) or open (the template questions without options; the answer is the state "
                 "sequence). numeric and open write .jsonl or .parquet."),
    ) -> None:
        """Generate template (and free-form) QAs from scene records, with a report by failure reason."""
        from rich.console import Console
        from rich.progress import Progress

        from dsr.errors import DsrError
        from dsr.qa.generate import parse_types
        from dsr.qa.run import (
            FreeFormSettings,
            default_workers,
            generate_files,
            print_report,
            report_path,
            write_report_png,
        )

        config = qa_config(preset, config_file, min_stability=min_stability, stability_k=stability_k,
                           min_track_confidence=min_track_confidence,
                           min_stability_uncertain=min_stability_uncertain,
                           frame_policy=frame_policy, direction_eps=direction_eps,
                           distractor_pool_prob=distractor_pool)
        if answer_format != "mcq":
            _free_answers(records, out, answer_format, config, per_video=per_video, seed=seed)
            return
        qtypes = parse_types(types)
        console, err = Console(highlight=False), Console(stderr=True, highlight=False)
        freeform = None
        if free_form > 0:
            if not llm_base_url:
                err.print("free-form questions: no LLM endpoint (--llm-base-url); template questions only")
            elif not llm_model:
                raise DsrError("--llm-model is required with --llm-base-url")
            else:
                freeform = FreeFormSettings(base_url=llm_base_url, model=llm_model, api_key_env=llm_key_env,
                                            per_video=free_form)
        if workers is not None and workers < 1:
            raise DsrError(f"--workers must be >= 1, got {workers}")
        from dsr.cli.outcome import finish
        from dsr.locking import lock_file

        failed: list[str] = []
        with lock_file(out), Progress(console=err, transient=True) as progress:  # one process per output
            task = progress.add_task("records", total=len(records))

            def on_record(path: str, error: str | None) -> None:
                if error:
                    failed.append(path)
                    err.print(f"[red]error[/red] {error}", soft_wrap=True)
                progress.advance(task)

            report = generate_files(records, out, config, per_video=per_video, seed=seed, types=qtypes, fmt=fmt,
                                    freeform=freeform, on_record=on_record,
                                    workers=default_workers() if workers is None else workers)
        summary = report.to_json()
        print_report(console, summary, out, report_path(out))
        console.print(f"chart: {write_report_png(summary, str(out) + '.report.png')}")
        by_reason = summary.get("records_failed") or {}
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(by_reason.items())) if sum(by_reason.values()) == len(failed) else ""
        finish(len(records) - len(failed), len(failed), what="records", detail=detail)

    @app.command()
    def answer(
        record: Path = typer.Argument(..., help="Scene record file (.npz)."),
        qtype: str = typer.Option(..., "--type", help="abs_dis, rel_dir, ... (12 template types)."),
        observer: str = typer.Option("camera", "--observer", help="'camera' or an agent's object id."),
        targets: str = typer.Option(..., "--targets", help="One or two ids, comma-separated ('camera' allowed)."),
        interval: str = typer.Option(..., "--interval", help="S:E record frame indices, inclusive "
                                                               "(prediction: last visible:future)."),
        t_v: int | None = typer.Option(None, "--t-v", help="Observer frame of absolute types."),
        step: int = typer.Option(1, "--step", help="Use every STEP-th frame of the interval."),
        preset: str | None = typer.Option(None, "--preset", show_default=False, help=_PRESET_HELP),
        config_file: Path | None = typer.Option(None, "--config", help="JSON file of QAConfig fields (the answer "
                                                                        "rules' thresholds and wording)."),
        as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
    ) -> None:
        """Answer one hand-written query from a 4D record, printing the per-frame quantity."""
        from rich.console import Console
        from rich.table import Table

        from dsr.errors import DsrError
        from dsr.qa.query import Query, type_row
        from dsr.qa.query import answer as answer_query
        from dsr.scene.io import read_record

        config = qa_config(preset, config_file)
        rec = read_record(record)
        try:
            start_s, end_s = interval.split(":")
            start, end = int(start_s), int(end_s)
        except ValueError:
            raise DsrError(f"--interval must be S:E with integer frames, got {interval!r}") from None
        if step < 1:
            raise DsrError("--step must be >= 1")
        if end <= start:
            raise DsrError(f"--interval end must be after its start, got {interval}")
        qt = type_row(qtype)
        frames = (start, end) if qt.is_prediction else tuple(range(start, end + 1, step))
        if frames[-1] != end:
            frames = (*frames, end)
        query = Query(type=qtype, observer=observer, targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
                      frames=frames, t_v=t_v)
        ans = answer_query(rec, query, config)
        if as_json:
            typer.echo(json.dumps({"query": query.to_json(), "answer": ans.text, "states": list(ans.states),
                                   "quantity": ans.quantity_json()}))
            return
        console = Console(highlight=False)
        console.print(f"[bold]{ans.text}[/bold]", soft_wrap=True)
        table = Table(title=f"{ans.quantity_name} (lengths / scene scale {ans.scale:.4g})")
        ts = rec.timestamps_s
        step_rows = qt.per_step
        table.add_column("frames" if step_rows else "frame")
        table.add_column("t (s)")
        table.add_column(ans.quantity_name)
        for i, value in enumerate(ans.values.tolist()):
            a = frames[i]
            label = f"{a}→{frames[i + 1]}" if step_rows else str(a)
            t_label = f"{ts[a]:.2f}→{ts[frames[i + 1]]:.2f}" if step_rows else f"{ts[a]:.2f}"
            shown = ", ".join(f"{v:+.3f}" for v in value) if isinstance(value, list) else f"{value:.3f}"
            table.add_row(label, t_label, shown)
        console.print(table)
