"""CLI commands on scene records: validate, show."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``show`` to ``app``."""

    @app.command()
    def validate(
        paths: list[Path] = typer.Argument(..., help="Scene record files (.npz) to check."),
        skip_video: bool = typer.Option(False, "--skip-video", help="Do not require the video file to exist."),
    ) -> None:
        """Check records: shapes, finiteness, orthonormal rotations, monotonic time, references.

        Prints one line per record; the first problem of a bad record names its file and field.
        Exits non-zero if any record is invalid.
        """
        from rich.console import Console

        from dsr.errors import RecordError
        from dsr.scene.validate import describe, validate_record_file

        out, err = Console(highlight=False), Console(stderr=True, highlight=False)
        failures = 0
        for path in paths:
            try:
                record = validate_record_file(path, check_video=not skip_video)
            except RecordError as exc:
                failures += 1
                err.print(f"[red]invalid[/red] {exc}", soft_wrap=True)
                continue
            out.print(f"[green]ok[/green] {path}: {describe(record)}", soft_wrap=True)
        if failures:
            raise typer.Exit(code=1)
