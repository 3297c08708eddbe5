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

    @app.command()
    def show(
        record_path: Path = typer.Argument(..., metavar="RECORD", help="Scene record file (.npz)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: the record's folder)."),
        no_video: bool = typer.Option(False, "--no-video", help="Do not decode the video into the recording."),
    ) -> None:
        """Write a PNG plot and a Rerun recording (.rrd) of a record, and print where they went.

        PNG: top view of every trajectory; camera-to-object distance, speed and visibility over time.

        RRD (open with `rerun FILE.rrd`): camera frusta, trajectories, heading arrows, boxes, masks, video.
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from dsr.scene.io import read_record
        from dsr.scene.plot import plot_record
        from dsr.scene.show import log_record_to_rerun, sampled_video_frames

        console = Console(highlight=False)
        record = read_record(record_path)
        out_dir = record_path.parent if out is None else out
        stem = record_path.name.removesuffix(".npz")
        frames = None
        if no_video:
            console.print("note: --no-video, the recording has no images")
        else:
            with console.status("decoding video frames"):
                frames, why_not = sampled_video_frames(record, record_path)
            if frames is None:
                console.print(f"[yellow]note[/yellow]: {why_not}", soft_wrap=True)
        # the plot needs only core packages: write it first so a missing rerun-sdk loses nothing
        with console.status("plotting"):
            png = plot_record(record, out_dir / f"{stem}.png")
        console.print(f"plot:      {png}", soft_wrap=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("writing rerun recording", total=record.num_frames)
            rrd = log_record_to_rerun(record, out_dir / f"{stem}.rrd", frames,
                                      on_frame=lambda _t: progress.advance(task))
        console.print(f"recording: {rrd}  (view with: rerun {rrd})", soft_wrap=True)
