"""``dsr demo``: the whole pipeline once, offline (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for everything the demo writes."),
        per_video: int = typer.Option(40, "--per-video", help="Template questions per rendered world."),
    ) -> None:
        """Render worlds, validate and show them, generate questions, extract, evaluate, report.

        Offline and deterministic; re-running reuses finished steps. Exits non-zero if a step failed.
        """
        from dsr.demo import run_demo

        summary = run_demo(out, per_video=per_video)
        if summary.failures:
            raise typer.Exit(code=1)
