"""CLI commands of the extract stage: ``dsr extract``, ``dsr curate``, ``dsr estimators``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CAMERA_CHOICES = {
    "auto": ("rotation", "pycolmap", "vo"),
    "pycolmap": ("pycolmap",),
    "vo": ("vo",),
    "rotation": ("rotation",),
    "fast": ("vo", "rotation"),
}


def extract(
    inputs: Annotated[list[Path], typer.Argument(help="Video files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: <id>.npz records + report.json.")],
    camera: Annotated[str, typer.Option(help=f"Camera methods to try: {', '.join(CAMERA_CHOICES)}.")] = "auto",
    num_samples: Annotated[int, typer.Option(help="Frames sampled per video for the record (DSR: 32).")] = 32,
    dense_fps: Annotated[float, typer.Option(help="Frames per second fed to SfM / VO.")] = 6.0,
    keep_empty: Annotated[bool, typer.Option(help="Write records for clips with no detected movers.")] = False,
    allow_cuts: Annotated[bool, typer.Option(help="Do not skip clips with hard scene cuts.")] = False,
    focal_px: Annotated[float | None, typer.Option(
        help="Known focal length in pixels of the full-resolution video (calibration, EXIF); "
             "default: estimated (SfM, homographies) or guessed.")] = None,
    init_boxes: Annotated[Path | None, typer.Option(
        help='Ground given objects instead of discovering movers (one video only): JSON {object_id: {"class": '
             '..., "box": [x1, y1, x2, y2], "is_agent": bool}} at the first sampled frame.')] = None,
) -> None:
    """Extract one scene record per video with the weight-free CPU default (resumable)."""
    from dataclasses import replace

    from rich.progress import Progress

    from dsr.errors import DsrError
    from dsr.extract.clip import ClipConfig
    from dsr.extract.given import read_init_boxes
    from dsr.extract.pipeline import ExtractConfig, find_videos, run_extract

    if camera not in CAMERA_CHOICES:
        raise DsrError(f"--camera must be one of {', '.join(CAMERA_CHOICES)}, got {camera!r}")
    if focal_px is not None and not focal_px > 0:
        raise DsrError(f"--focal-px must be a positive number of pixels, got {focal_px}")
    base = ExtractConfig()
    config = replace(base, clip=ClipConfig(num_samples=num_samples, dense_fps=dense_fps),
                     camera=replace(base.camera, focal_px=focal_px),
                     camera_methods=CAMERA_CHOICES[camera], keep_empty=keep_empty, reject_cuts=not allow_cuts)
    videos = find_videos(inputs)
    if not videos:
        raise DsrError("no video files found in the given inputs")
    given = read_init_boxes(init_boxes) if init_boxes is not None else None
    if given is not None and len(videos) != 1:
        raise DsrError(f"--init-boxes names the objects of one video; got {len(videos)} videos")
    with Progress() as progress:
        task = progress.add_task("extracting", total=len(videos))

        def tick(video: str, outcome: object) -> None:
            status = "done before" if outcome is None else f"{outcome.status}: {outcome.reason}"  # type: ignore[attr-defined]
            progress.console.print(f"{Path(video).name}: {status}")
            progress.advance(task)

        report = run_extract(videos, out, config, progress=tick, init_boxes=given)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["by_status"].items()))
    typer.echo(f"{report['videos']} videos: {counts}; report: {out / 'report.json'}")


def curate(
    inputs: Annotated[list[Path], typer.Argument(help="Video files or folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Curation table (.csv or .jsonl).")],
    min_duration: Annotated[float, typer.Option(help="Shortest clip kept, seconds.")] = 20.0,
    max_duration: Annotated[float, typer.Option(help="Longest clip kept, seconds.")] = 120.0,
) -> None:
    """Duration, shot-cut and world-motion filters; one row with a reason per clip."""
    from dataclasses import replace

    from rich.progress import track

    from dsr.extract.curate import CurateConfig, curate_video, write_curation_table
    from dsr.extract.pipeline import find_videos

    config = replace(CurateConfig(), min_duration_s=min_duration, max_duration_s=max_duration)
    rows = [curate_video(v, config) for v in track(find_videos(inputs), description="curating")]
    write_curation_table(rows, out)
    kept = sum(r.keep for r in rows)
    typer.echo(f"{kept}/{len(rows)} clips kept; table: {out}")


def estimators(role: Annotated[str | None, typer.Option(help="Only this role.")] = None) -> None:
    """List registered estimators with their availability on this machine."""
    from dsr.extract.registry import estimator_status, list_estimators

    for name in list_estimators(role):
        st = estimator_status(name)
        mark = "yes" if st.available else "no "
        typer.echo(f"{mark}  {name:<32} {st.reason}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to ``app``."""
    app.command("extract")(extract)
    app.command("curate")(curate)
    app.command("estimators")(estimators)
