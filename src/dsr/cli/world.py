"""CLI commands of the world stage: ``dsr world`` renders a synthetic world with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from dsr.world.config import CAMERA_MOTIONS, DEFAULT_DURATION_S, FOVY_DEG, MAX_OBJECTS, MIN_OBJECTS


def register(app: typer.Typer) -> None:
    """Add ``world`` to ``app``."""

    @app.command()
    def world(
        seed: int = typer.Option(0, "--seed", min=0, help="Every random choice of the world follows from it."),
        out: Path = typer.Option(..., "--out", help="Output folder: video.mp4, record.npz, world.json."),
        duration: float = typer.Option(DEFAULT_DURATION_S, "--duration",
                                       help="Clip length in seconds (dsr curate keeps 20–120 s)."),
        fps: float = typer.Option(10.0, "--fps", help="Frames per second (every frame goes into the record)."),
        width: int = typer.Option(320, "--width", help="Frame width in pixels (even)."),
        height: int = typer.Option(240, "--height", help="Frame height in pixels (even)."),
        objects: int | None = typer.Option(
            None, "--objects", help=f"Number of moving objects, {MIN_OBJECTS}–{MAX_OBJECTS}.",
            show_default="3–6, drawn from the seed"),
        camera_motion: str | None = typer.Option(
            None, "--camera-motion", help=f"Camera motion: {', '.join(CAMERA_MOTIONS)}.",
            show_default="drawn from the seed"),
        motion_scale: float = typer.Option(1.0, "--motion-scale", help="Scales camera motion amplitudes (0 = none)."),
        fovy: float | None = typer.Option(
            None, "--fovy", help="Vertical field of view in degrees.",
            show_default=f"{FOVY_DEG[0]:g}–{FOVY_DEG[1]:g}, drawn from the seed"),
        shadows: bool = typer.Option(False, "--shadows/--no-shadows", help="Render shadows (slower on CPU)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Render again even if OUT holds this world already."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Render a synthetic 4D world with MuJoCo: an H.264 video and its exact ground-truth scene record.

        The record holds the camera's intrinsics and poses, every object's 3D centre per frame, the agents' orientations, and boxes and masks from the renderer's segmentation.

        Same seed and settings give the same world; a finished world in OUT is reused unless --overwrite.
        """
        from rich.console import Console

        from dsr.scene.validate import describe
        from dsr.world.config import WorldConfig
        from dsr.world.render import render_world

        config = WorldConfig(seed=seed, duration_s=duration, fps=fps, width=width, height=height,
                             num_objects=objects, camera_motion=camera_motion, motion_scale=motion_scale,  # type: ignore[arg-type]
                             fovy_deg=fovy, shadows=shadows)
        result = render_world(config, out, progress=not quiet, overwrite=overwrite)
        console = Console(highlight=False)
        n = result.spec.num_frames
        how = "reused" if result.reused else f"rendered in {result.seconds:.1f}s ({n / max(result.seconds, 1e-9):.1f} frames/s)"
        console.print(f"world seed {seed}: {result.spec.camera_motion} camera, {how}", soft_wrap=True)
        console.print(f"  video   {result.video_path}", soft_wrap=True)
        console.print(f"  record  {result.record_path}: {describe(result.record)}", soft_wrap=True)
