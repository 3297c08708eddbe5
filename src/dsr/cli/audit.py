"""``dsr audit QAS...``: a validity audit of any question set (blind probes, letters, answer balance)."""

from __future__ import annotations

from pathlib import Path

import typer

# problem codes that drop an item from the audit (the rest are warnings on kept items)
_DROPPING = ("bad_row", "malformed_json", "duplicate_id", "answer_not_in_options", "too_few_options")


def register(app: typer.Typer) -> None:
    """Add ``audit`` to ``app``."""

    @app.command()
    def audit(
        qas: list[Path] = typer.Argument(..., help="Question files: our QA JSONL or parquet, DSR-Bench parquet, "
                                                   "VLM4D JSON, plain JSON(L), VSI-Bench, STI-Bench, VLMEvalKit TSV."),
        out: Path | None = typer.Option(None, "--out", "-o",
                                        help="Folder for audit.md, audit.html, items.csv, audit.json "
                                             "(default: print the summary only)."),
        folds: int = typer.Option(5, "--folds", min=2, help="K of the k-fold probes (folds grouped by video)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment and the bootstrap."),
        resamples: int = typer.Option(2000, "--resamples", min=100, help="Bootstrap resamples for the 95% CIs."),
        prune: Path | None = typer.Option(None, "--prune",
                                          help="Write a debiased subset here (the input's format where possible, "
                                               "else JSONL) and list what was removed."),
        margin: float = typer.Option(0.03, "--margin", help="--prune target: every probe ≤ chance + this."),
        format: str = typer.Option("auto", "--format", help="Loader: auto or a format of dsr eval lint."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars on stderr."),
    ) -> None:
        """Audit a multiple-choice question set offline: how far text alone gets.

        Blind probes (letter prior, text prior, fewest segments, shortest option, a k-fold text-only
        classifier) with per-type accuracy and 95% CIs, a letter χ² test, per-type answer-class entropy
        and a bias score per item. Exit 0; 1 when some items were unusable (counted) or --prune missed
        its target; 2 for an unreadable file.
        """
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from dsr.evaluate.audit import audit_items, load_question_sets, prune_items
        from dsr.evaluate.audit_report import write_audit_report, write_subset

        err = Console(stderr=True)
        loaded = load_question_sets(qas, format=format)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=err, transient=True, disable=not progress) as bar:
            tasks: dict[str, int] = {}

            def tick(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            result = audit_items(loaded.items, folds=folds, seed=seed, resamples=resamples, progress=tick,
                                 problems=loaded.problems)
            pruned = None
            if prune is not None:
                pruned = prune_items(loaded.items, margin=margin, folds=folds, seed=seed,
                                     resamples=min(resamples, 500), progress=tick, before=None)
        _print_summary(result, [str(p) for p in qas])
        if pruned is not None:
            kind = write_subset(prune, loaded, {it.item_id for it in pruned.kept})
            best = pruned.after.max_probe()
            typer.echo(f"prune: {'passed' if pruned.passed else 'NOT passed'} — kept {len(pruned.kept)} of "
                       f"{pruned.before.n_items} items in {pruned.rounds} round(s); best probe after: "
                       f"{best[0]} {100 * best[1]:.1f}% (chance {100 * pruned.after.chance:.1f}%); "
                       f"wrote {prune} ({kind})")
        if out is not None:
            paths = write_audit_report(out, result, loaded.items, sources=[str(p) for p in qas],
                                       examples=loaded.examples, prune=pruned,
                                       prune_path=str(prune) if prune else None)
            typer.echo(f"report: {paths['html']} (+ audit.md, items.csv, audit.json)")
        dropped = {k: v for k, v in result.problems.items() if k in _DROPPING}
        if dropped:
            typer.echo("unusable items: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
                       + " (left out)", err=True)
        if dropped or (pruned is not None and not pruned.passed):
            raise typer.Exit(1)


def _print_summary(result: object, sources: list[str]) -> None:
    """One screen: the verdict, the probe table (all + worst type), letters, entropy, problems."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from dsr.evaluate.audit import AuditResult
    from dsr.evaluate.audit_probes import PROBE_LABELS
    from dsr.evaluate.audit_report import few_videos_note, verdict
    from dsr.evaluate.datasets import TYPE_LABELS

    assert isinstance(result, AuditResult)
    con = Console()
    line = verdict(result)
    con.print(f"[bold]{', '.join(sources)}[/bold]: {result.n_items} items on {result.n_videos} videos, "
              f"{len(result.types)} type(s), {result.folds}-fold by video")
    con.print(("[bold red]" if line.startswith("FLAG") else "[bold green]") + line, highlight=False)
    warning = few_videos_note(result)
    if warning:
        con.print("[yellow]" + warning, highlight=False)
    table = Table(title="blind probes: held-out accuracy % [95% CI]", title_justify="left")
    for col in ("probe", "all", "worst type", "types >10 pts"):
        table.add_column(col)
    for name, r in result.probes.items():
        if not np.isfinite(r.overall.value):
            table.add_row(PROBE_LABELS[name], "not scored", "", "")
            continue
        worst_t = max(r.per_type, key=lambda t: r.per_type[t].value)
        over = sum(e.value - result.chance_per_type[t] > 0.10 for t, e in r.per_type.items())
        table.add_row(PROBE_LABELS[name], r.overall.pct(),
                      f"{TYPE_LABELS.get(worst_t, worst_t)} {r.per_type[worst_t].pct()}",
                      f"{over} of {len(r.per_type)}")
    table.add_row("chance", f"{100 * result.chance:.1f}", "", "")
    con.print(table)
    lt = result.letters
    con.print("gold letters: " + " ".join(f"{k}={v}" for k, v in lt.counts.items())
              + (f"  χ² p = {lt.p_value:.3g}" if np.isfinite(lt.p_value) else ""), highlight=False)
    low = sorted(result.types, key=lambda t: result.balance[t].normalized_entropy)[:3]
    con.print("lowest answer entropy: " + ", ".join(
        f"{TYPE_LABELS.get(t, t)} {result.balance[t].normalized_entropy:.2f} "
        f"(top answer {100 * result.balance[t].top_share:.0f}%)" for t in low), highlight=False)
    if result.problems:
        con.print("problems: " + ", ".join(f"{k} {v}" for k, v in sorted(result.problems.items())), highlight=False)
