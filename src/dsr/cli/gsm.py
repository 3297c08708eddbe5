"""CLI commands of the gsm stage: ``dsr model assemble``, ``dsr model convert-official`` and ``dsr train``."""

from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(help="GSM model checkpoints (Qwen2.5-VL + π³ + Geometry Selection Module).",
                        no_args_is_help=True)


@model_app.command("assemble")
def assemble(
    qwen: Path = typer.Option(..., "--qwen", help="Local Qwen2.5-VL checkpoint dir (config.json + safetensors)."),
    pi3: Path = typer.Option(..., "--pi3", help="Local π³ / Pi3X model.safetensors (or its dir)."),
    out: Path = typer.Option(..., "--out", help="Output dir of the combined GSM checkpoint."),
    num_queries: int = typer.Option(32, help="K, geometry tokens per video (paper: 32)."),
    strategy: str = typer.Option("gsm", help="gsm or addition."),
    pi3_heads: int = typer.Option(None, help="π³ encoder heads if not width/64 (16 for ViT-L)."),
    seed: int = typer.Option(0, help="Seed of the new (merger, GSM) weights."),
    parity: str = typer.Option("dsr", help="dsr (our defaults) or official (shared key norm, randn queries, "
                                           "tokens/s 2, Q-Former 1 reads the prompt: as qwen_vl_spatial.py)."),
) -> None:
    """Build a GSM checkpoint from local Qwen2.5-VL and π³ weights; never downloads."""
    from dsr.gsm.assemble import assemble_checkpoint

    out_dir = assemble_checkpoint(qwen, pi3, out, num_queries=num_queries, strategy=strategy,
                                  pi3_heads=pi3_heads, seed=seed, parity=parity)
    typer.echo(f"wrote {out_dir}")


@model_app.command("convert-official")
def convert_official(
    ckpt_dir: Path = typer.Argument(..., help="The released DSR_Suite-Model dir (config.json + safetensors)."),
    out: Path = typer.Option(..., "--out", help="Output dir of the dsr GSM checkpoint (must not hold one)."),
    pi3_heads: int = typer.Option(None, help="π³ encoder heads if not width/64 (16 for ViT-L)."),
) -> None:
    """Load the official GSM checkpoint (qwen_vl_spatial.py key names) into dsr's classes, with the official
    parity settings, so `dsr eval run --model gsm:<out>` evaluates it."""
    from dsr.gsm.convert import convert_official_checkpoint

    out_dir = convert_official_checkpoint(ckpt_dir, out, pi3_heads=pi3_heads)
    typer.echo(f"wrote {out_dir}")


def train(
    config: Path = typer.Argument(..., help="Train config JSON (see configs/gsm/)."),
    output_dir: str = typer.Option(None, help="Override output_dir."),
    strategy: str = typer.Option(None, help="Override strategy: baseline, sft, addition, gsm."),
    max_steps: int = typer.Option(None, help="Override max_steps."),
    max_samples: int = typer.Option(None, help="Use only the first N QAs (data-scaling runs)."),
    recipe: str = typer.Option(None, help="Override recipe: per-group (default; per-component LRs, cosine) or "
                                          "official (one AdamW group at learning_rate, WarmupLR: the official run)."),
) -> None:
    """Fine-tune Qwen2.5-VL (+ GSM) on a DSR-Train conversation JSON with HF Trainer."""
    from dsr.gsm.train import load_train_config
    from dsr.gsm.train import train as run

    cfg = load_train_config(config, output_dir=output_dir, strategy=strategy, max_steps=max_steps,
                            max_samples=max_samples, recipe=recipe)
    result = run(cfg)
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items())) or "none"
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    typer.echo(f"{cfg.strategy}: {result.steps} steps, last loss {last}, skipped videos: {skipped}; "
               f"wrote {result.output_dir}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to ``app``."""
    app.add_typer(model_app, name="model")
    app.command("train")(train)
