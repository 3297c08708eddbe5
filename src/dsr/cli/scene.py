"""CLI commands on scene records: validate, show."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from dsr.scene.record import SceneRecord


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``show`` to ``app``."""

    @app.command()
    def validate(
        paths: list[Path] = typer.Argument(..., help="Scene record files (.npz) to check."),
        skip_video: bool = typer.Option(False, "--skip-video", help="Do not require the video file to exist."),
    ) -> None:
        """Check records: shapes, finiteness, orthonormal rotations, monotonic time, references.

        Prints one line per record; the first problem of a bad record names its file and field.
        Exit code: 0 all valid; 1 some invalid (with a summary line); 2 none valid.
        """
        from rich.console import Console

        from dsr.cli.outcome import finish
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
        # one record: its own "invalid" line is the whole story; several: a summary line too
        finish(len(paths) - failures, failures, what="records", detail="invalid", summary=len(paths) > 1)

    @app.command()
    def show(
        record_path: Path = typer.Argument(..., metavar="RECORD", help="Scene record file (.npz)."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: the record's folder)."),
        no_video: bool = typer.Option(False, "--no-video", help="Do not decode the video into the recording."),
        objects: bool = typer.Option(False, "--objects",
                                     help="Only list the objects (id, class, agent, visible frames and "
                                          "seconds, the ids and intervals `dsr answer` takes); write nothing."),
    ) -> None:
        """Write a PNG plot and a Rerun recording (.rrd) of a record, and print where they went.

        Files: RECORD's stem with .png and .rrd (worlds/3/record.npz gives record.png and record.rrd).

        PNG: top view of every trajectory; camera-to-object distance, speed and visibility over time.

        RRD (open with `rerun FILE.rrd`): camera frusta, trajectories, heading arrows, boxes, masks, video.
        """
        from rich.console import Console

        from dsr.scene.io import read_record

        console = Console(highlight=False)
        record = read_record(record_path)
        if objects:
            _print_objects(console, record)
            return
        _write_views(console, record, record_path, out, no_video)


def _print_objects(console: Console, record: SceneRecord) -> None:
    from rich.table import Table

    from dsr.scene.show import format_runs, object_summaries

    ts = record.timestamps_s
    table = Table(title=f"{record.record_id}: {len(record.objects)} object(s), "
                        f"frames 0:{len(ts) - 1} ({ts[0]:.2f}-{ts[-1]:.2f} s)")
    for name in ("id", "class", "agent", "visible frames (S:E)", "visible (s)", "centre known"):
        table.add_column(name, overflow="fold")
    for o in object_summaries(record):
        table.add_row(o.object_id, o.class_phrase, "yes" if o.is_agent else "no", format_runs(o.visible_frames),
                      format_runs(o.visible_s, seconds=True), f"{o.n_center_known}/{len(ts)} frames")
    console.print(table)


def _write_views(console: Console, record: SceneRecord, record_path: Path, out: Path | None, no_video: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dsr.scene.plot import plot_record
    from dsr.scene.show import log_record_to_rerun, output_paths, sampled_video_frames

    png_path, rrd_path = output_paths(record_path, out)
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
        png = plot_record(record, png_path)
    console.print(f"plot:      {png}", soft_wrap=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("writing rerun recording", total=record.num_frames)
        rrd = log_record_to_rerun(record, rrd_path, frames,
                                  on_frame=lambda _t: progress.advance(task))
    console.print(f"recording: {rrd}  (view with: rerun {rrd})", soft_wrap=True)
