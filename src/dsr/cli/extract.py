"""CLI commands of the extract stage: ``dsr extract``, ``dsr curate``, ``dsr estimators``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CAMERA_CHOICES = {
    "auto": ("rotation", "pycolmap", "vo"),  # dsr.extract.camera.auto.DEFAULT_METHODS (kept light to import)
    # VO before SfM: several times faster where SfM fails, but VO drifts on long orbits (docs/bench-extract.md
    # §10.3); pair it with a VO grid (CameraConfig.vo_fps) for the fastest camera
    "vo-first": ("rotation", "vo", "pycolmap"),
    "pycolmap": ("pycolmap",),
    "vo": ("vo",),
    "rotation": ("rotation",),
    "fast": ("vo", "rotation"),
}


def extract(
    inputs: Annotated[list[Path], typer.Argument(help="Video files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: <id>.npz records + report.json.")],
    backend: Annotated[str, typer.Option(
        help="cpu: the weight-free default (camera by --camera, centres by the lifting chain); pi3: π³ camera "
             "and dense points from a local checkpoint (DSR_PI3_CKPT, package pi3, a GPU), centres as the mean "
             "of the points under each mask (the paper's rule). Grounding and tracking are the CPU ones in "
             "both.")] = "cpu",
    camera: Annotated[str, typer.Option(help=f"Camera methods to try: {', '.join(CAMERA_CHOICES)}.")] = "auto",
    vo_fps: Annotated[float | None, typer.Option(
        help="VO chains the dense frames of this time grid and interpolates the rest (default: every dense "
             "frame). 6 with --camera vo-first is the fastest camera; it drifts more on long orbits.")] = None,
    num_samples: Annotated[int, typer.Option(help="Frames sampled per video for the record (DSR: 32).")] = 32,
    max_sample_fps: Annotated[float, typer.Option(
        help="At most this many record frames per second: fewer than --num-samples on short clips (0: off).")] = 8.0,
    dense_fps: Annotated[float, typer.Option(help="Frames per second fed to SfM / VO.")] = 6.0,
    keep_empty: Annotated[bool, typer.Option(help="Write records for clips with no detected movers.")] = False,
    allow_cuts: Annotated[bool, typer.Option(help="Do not skip clips with hard scene cuts.")] = False,
    focal_px: Annotated[float | None, typer.Option(
        help="Known focal length in pixels of the full-resolution video (calibration, EXIF); "
             "default: estimated (SfM, homographies) or guessed.")] = None,
    init_boxes: Annotated[Path | None, typer.Option(
        # "\\[" keeps Rich from reading [x1, y1, x2, y2] as a markup tag (it printed "box": ,)
        help='Ground given objects instead of discovering movers (one video only): JSON {object_id: {"class": '
             '..., "box": \\[x1, y1, x2, y2], "is_agent": bool}} at the first sampled frame.')] = None,
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
    if backend not in ("cpu", "pi3"):
        raise DsrError(f"--backend must be cpu or pi3, got {backend!r}")
    methods = CAMERA_CHOICES[camera]
    if backend == "pi3":
        from dsr.extract.learned import Pi3Camera

        ok, why = Pi3Camera.available()
        if not ok:
            raise DsrError(f"--backend pi3 is not available here: {why}")
        methods = ("pi3",)  # pragma: no cover - needs weights
    if focal_px is not None and not focal_px > 0:
        raise DsrError(f"--focal-px must be a positive number of pixels, got {focal_px}")
    if vo_fps is not None and not vo_fps > 0:
        raise DsrError(f"--vo-fps must be a positive rate, got {vo_fps}")
    if max_sample_fps < 0:
        raise DsrError(f"--max-sample-fps must be >= 0 (0: off), got {max_sample_fps}")
    base = ExtractConfig()
    clip = ClipConfig(num_samples=num_samples, dense_fps=dense_fps, max_sample_fps=max_sample_fps or None)
    config = replace(base, clip=clip,
                     camera=replace(base.camera, focal_px=focal_px, vo_fps=vo_fps),
                     camera_methods=methods, keep_empty=keep_empty, reject_cuts=not allow_cuts)
    videos = find_videos(inputs)
    if not videos:
        raise DsrError("no video files found in the given inputs")
    given = read_init_boxes(init_boxes) if init_boxes is not None else None
    if given is not None and len(videos) != 1:
        raise DsrError(f"--init-boxes names the objects of one video; got {len(videos)} videos")
    from dsr.cli.outcome import finish
    from dsr.locking import lock_folder

    with lock_folder(out), Progress() as progress:  # one process per output folder
        task = progress.add_task("extracting", total=len(videos))

        def tick(video: str, outcome: object) -> None:
            status = "done before" if outcome is None else f"{outcome.status}: {outcome.reason}"  # type: ignore[attr-defined]
            progress.console.print(f"{Path(video).name}: {status}")
            progress.advance(task)

        report = run_extract(videos, out, config, progress=tick, init_boxes=given)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["by_status"].items()))
    typer.echo(f"{report['videos']} videos: {counts}; report: {out / 'report.json'}")
    # exit code (dsr.cli.outcome): skipped clips are decisions, failed ones (unreadable, errors) are failures
    failed = report["by_status"].get("failed", 0)
    reasons = ", ".join(f"{k.removeprefix('failed: ')}: {v}" for k, v in sorted(report["by_reason"].items())
                        if k.startswith("failed"))
    finish(report["videos"] - failed, failed, what="videos", detail=reasons)


def curate(
    inputs: Annotated[list[Path], typer.Argument(help="Video files or folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Curation table (.csv or .jsonl).")],
    min_duration: Annotated[float, typer.Option(help="Shortest clip kept, seconds.")] = 20.0,
    max_duration: Annotated[float, typer.Option(help="Longest clip kept, seconds.")] = 120.0,
    llm_base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible endpoint (e.g. http://localhost:8000/v1) for the paper's LLM steps; "
             "without it no LLM is called.")] = None,
    llm_model: Annotated[str | None, typer.Option(help="Model name at --llm-base-url.")] = None,
    llm_key_env: Annotated[str, typer.Option(
        help="Environment variable holding the API key (the key itself is never a flag).")] = "OPENAI_API_KEY",
    captions: Annotated[Path | None, typer.Option(
        help="CSV with columns videoID (video file stem) and caption: runs the caption motion filter and "
             "agent/object classes for clips with a caption.")] = None,
    llm_frames: Annotated[bool, typer.Option(
        help="Run the frames filter (6 scene classes) on 8 frames per clip; needs a vision model.")] = False,
) -> None:
    """Duration, shot-cut and world-motion filters, then optional LLM steps; one row with a reason per clip."""
    from collections import Counter
    from dataclasses import replace

    from rich.progress import Progress

    from dsr.errors import DsrError
    from dsr.extract.curate import (
        CurateConfig,
        CurationRow,
        LlmSteps,
        curate_videos,
        make_llm_client,
        read_captions,
        reason_kind,
    )
    from dsr.extract.pipeline import find_videos

    config = replace(CurateConfig(), min_duration_s=min_duration, max_duration_s=max_duration)
    llm: LlmSteps | None = None
    caption_of: dict[str, str] = {}
    if llm_base_url is None:
        if captions is not None or llm_frames or llm_model is not None:
            raise DsrError("--captions, --llm-frames and --llm-model need --llm-base-url")
    else:
        if not llm_model:
            raise DsrError("--llm-model is required with --llm-base-url")
        if captions is None and not llm_frames:
            raise DsrError("--llm-base-url needs a step to run: --captions FILE.csv and/or --llm-frames")
        caption_of = read_captions(captions) if captions is not None else {}
        llm = LlmSteps(make_llm_client(llm_base_url, llm_key_env), llm_model, frames=llm_frames)
    videos = find_videos(inputs)
    with Progress() as progress:
        task = progress.add_task("curating", total=len(videos))

        def tick(row: CurationRow, resumed: bool) -> None:
            if not row.keep:
                progress.console.print(f"{Path(row.video).name}: {row.reason}" + (" (done before)" * resumed))
            progress.advance(task)

        rows = curate_videos(list(videos), out, config, llm, caption_of, progress=tick)
    kept = sum(r.keep for r in rows)
    drops = Counter(reason_kind(r.reason) for r in rows if not r.keep)
    dropped = "".join(f"; {kind}: {n}" for kind, n in sorted(drops.items(), key=lambda kn: (-kn[1], kn[0])))
    typer.echo(f"{kept}/{len(rows)} clips kept{dropped}; table: {out}")


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
