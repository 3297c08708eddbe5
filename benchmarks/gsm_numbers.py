"""GSM numbers: parameter counts at 7B shapes (meta device), tokens per video, CPU forward overhead at tiny
shapes, and a CPU learning check on synthetic moving-square QAs.

Usage: ``python benchmarks/gsm_numbers.py [--out docs/bench-gsm] [--learn-seconds 180] [--skip-learning]``.
Prints a JSON summary and writes ``<out>.json`` and ``<out>-loss.png``. Ratios are measured in one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch


def qwen25_vl_7b_config(strategy: str = "gsm", num_queries: int = 32) -> Any:
    from dsr.gsm.configuration import qwen2_5_vl_7b_config

    return qwen2_5_vl_7b_config(strategy, num_queries)


def parameter_counts() -> dict[str, Any]:
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration
    from dsr.gsm.train import TrainConfig, apply_freezing, parameter_role

    with torch.device("meta"):
        model = GSMQwen2_5_VLForConditionalGeneration(qwen25_vl_7b_config())
    by_role: dict[str, int] = {}
    for name, p in model.named_parameters():
        by_role[parameter_role(name)] = by_role.get(parameter_role(name), 0) + p.numel()
    gsm = model.model.gsm
    parts = {
        "qformer1": sum(p.numel() for p in gsm.qformer1.parameters()),
        "qformer2": sum(p.numel() for p in gsm.qformer2.parameters()),
        "queries": gsm.queries.numel(),
        "out_norm": sum(p.numel() for p in gsm.out_norm.parameters()),
        "geometry_merger": by_role["geometry_merger"],
    }
    new_trainable = parts["qformer1"] + parts["qformer2"] + parts["queries"] + parts["out_norm"] + \
        parts["geometry_merger"]
    trainable = apply_freezing(model, TrainConfig())
    return {"by_role": by_role, "gsm_parts": parts, "new_trainable_gsm": new_trainable,
            "new_trainable_addition": parts["geometry_merger"], "total": sum(by_role.values()),
            "trainable_default_preset": sum(trainable.values()),
            "reference_new_trainable": 562.8e6}


def tokens_per_video(frames: int = 32, height: int = 360, width: int = 640, num_queries: int = 32) -> dict[str, Any]:
    from dsr.gsm.processing import smart_resize

    h, w = smart_resize(height, width)
    merged = (frames // 2) * (h // 28) * (w // 28)
    return {"frames": frames, "frame_size": [width, height], "resized": [w, h], "vision_tokens": merged,
            "gsm_new_positions": num_queries, "gsm_overhead_pct": 100 * num_queries / merged,
            "addition_geometry_features": merged, "addition_new_positions": 0,
            "pi3_patch_tokens": frames * (h // 14) * (w // 14)}


def flop_estimate(params: dict[str, Any], tokens: dict[str, Any], text_tokens: int = 100) -> dict[str, Any]:
    """Analytic forward FLOPs at 7B shapes, 32 frames of 640×360 (matmuls: 2·params·tokens + attention).

    A CPU here cannot time a 7B model; this says where GSM's cost lies (GPU timing: a GPU-only TODO).
    """
    by_role = params["by_role"]
    hidden, layers, vocab = 3584, 28, 152064
    merged, patches, pi3_tokens = tokens["vision_tokens"], tokens["vision_tokens"] * 4, tokens["pi3_patch_tokens"]
    frames, per_frame = tokens["frames"], tokens["pi3_patch_tokens"] // tokens["frames"]

    def llm(length: int) -> float:
        dense = 2 * (by_role["llm"] - vocab * hidden) * length  # lm_head on every token (training forward)
        return dense + 4 * length**2 * hidden * layers

    vit = 2 * by_role["vision"] * patches + 4 * 64 * patches * 1280 * 28 + 4 * (patches // 16) * patches * 1280 * 4
    merger = 2 * by_role["merger"] * merged
    pi3 = 2 * by_role["pi3"] * pi3_tokens + 4 * (per_frame + 5) ** 2 * 1024 * 24 * frames
    geo_merger = 2 * params["gsm_parts"]["geometry_merger"] * merged
    k = tokens["gsm_new_positions"]
    qformer = lambda keys: 2 * (2 * hidden * hidden + 3 * hidden * 18944) * k + 2 * 2 * hidden * 512 * keys  # noqa: E731
    gsm_module = qformer(text_tokens) + qformer(merged)
    base = llm(merged + text_tokens) + vit + merger
    gsm_total = llm(merged + text_tokens + k) + vit + merger + pi3 + geo_merger + gsm_module
    addition_total = base + pi3 + geo_merger
    tf = 1e12
    return {"base_tflop": base / tf, "gsm_tflop": gsm_total / tf, "addition_tflop": addition_total / tf,
            "pi3_encoder_tflop": pi3 / tf, "geometry_merger_tflop": geo_merger / tf,
            "gsm_module_tflop": gsm_module / tf, "extra_llm_tokens_tflop": (llm(merged + text_tokens + k)
                                                                          - llm(merged + text_tokens)) / tf,
            "gsm_overhead_pct": 100 * (gsm_total / base - 1),
            "gsm_overhead_without_pi3_pct": 100 * ((gsm_total - pi3) / base - 1),
            "addition_overhead_pct": 100 * (addition_total / base - 1), "text_tokens_assumed": text_tokens}


def _bench_config(strategy: str) -> Any:
    from dsr.gsm.tiny import tiny_gsm_config

    return tiny_gsm_config(strategy, num_queries=32)


def forward_overhead(repeats: int = 40, frames: int = 8, size: int = 112) -> dict[str, Any]:
    """Median forward time (no grad, CPU) of the same tiny weights under none / addition / gsm."""
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration
    from dsr.gsm.processing import VideoProcessing, collate, prepare_sample
    from dsr.gsm.tiny import moving_square_video, tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    full = GSMQwen2_5_VLForConditionalGeneration(_bench_config("gsm")).eval()
    state = full.state_dict()
    video = moving_square_video("left", frames=frames, size=size)
    models, batches = {}, {}
    for strategy in ("none", "addition", "gsm"):
        model = full if strategy == "gsm" else GSMQwen2_5_VLForConditionalGeneration(_bench_config(strategy)).eval()
        model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=True)
        k = model.config.geometry_tokens_per_video
        sample = prepare_sample(tok, [(video, 0.5)], "<video> Which direction does the red square move ?", "A",
                                geometry_tokens=k, video_cfg=VideoProcessing(num_frames=frames))
        models[strategy], batches[strategy] = model, collate([sample], 0)
    samples: dict[str, list[float]] = {s: [] for s in models}
    with torch.no_grad():
        for strategy, model in models.items():  # warm-up
            for _ in range(3):
                model(**batches[strategy])
        for _ in range(repeats):  # interleaved rounds, so load changes on the shared machine hit all alike
            for strategy, model in models.items():
                t0 = time.perf_counter()
                model(**batches[strategy])
                samples[strategy].append(time.perf_counter() - t0)
    times = {s: statistics.median(v) for s, v in samples.items()}
    batch = batches["none"]
    return {"frames": frames, "size": size, "vision_tokens": int(batch["video_grid_thw"].prod(-1).sum()) // 4,
            "median_s": times, "gsm_over_base": times["gsm"] / times["none"],
            "addition_over_base": times["addition"] / times["none"], "repeats": repeats}


def learning_check(seconds: float, out_png: Path, n_train: int = 96, n_eval: int = 48) -> dict[str, Any]:
    """Train the tiny GSM model on moving-square QAs for ~``seconds`` on CPU; loss curve + held-out accuracy."""
    from transformers import TrainerCallback

    from dsr.gsm.assemble import assemble_checkpoint
    from dsr.gsm.eval_backend import GSMBackend
    from dsr.gsm.tiny import make_synthetic_export, make_tiny_checkpoints, moving_square_video
    from dsr.gsm.train import TrainConfig, train

    class StopAfter(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if time.perf_counter() - self.t0 > seconds:
                control.should_training_stop = True
            return control

    tmp = Path(tempfile.mkdtemp(prefix="gsm_learn_"))
    qwen, pi3 = make_tiny_checkpoints(str(tmp))
    ckpt = assemble_checkpoint(qwen, pi3, tmp / "gsm", num_queries=8, pi3_heads=4)
    data = make_synthetic_export(str(tmp / "data"), n_train, seed=1)
    cfg = TrainConfig(model=str(ckpt), data=data, output_dir=str(tmp / "run"), strategy="gsm", num_frames=4,
                      num_train_epochs=100, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                      learning_rate=1e-3, merger_lr=1e-3, gsm_lr=1e-3, warmup_ratio=0.05, use_cpu=True,
                      save_steps=10_000, logging_steps=1, max_steps=int(seconds * 4))
    t0 = time.perf_counter()
    result = train(cfg, callbacks=[StopAfter()])
    wall = time.perf_counter() - t0
    losses = result.losses
    rng = __import__("numpy").random.default_rng(7)
    directions = ["left", "right", "up", "down"]
    correct = {"trained": 0, "untrained": 0}
    options = "\nOptions:\nA left\nB right\nC up\nD down"
    for name, path in (("trained", tmp / "run"), ("untrained", ckpt)):
        backend = GSMBackend(path, max_new_tokens=1, num_frames=4)
        for i in range(n_eval):
            d = directions[i % 4]
            video = moving_square_video(d, frames=4, rng=rng)
            answer = backend.generate(video, "Which direction does the red square move ?" + options)
            correct[name] += answer.strip().startswith("ABCD"[directions.index(d)])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, lw=1)
    ax.set_xlabel("step (batch of 8)")
    ax.set_ylabel("training loss")
    ax.set_title("tiny GSM model, synthetic moving-square QAs (CPU)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    k = max(1, len(losses) // 10)
    return {"steps": result.steps, "wall_s": wall, "first_loss": losses[0], "last_loss": losses[-1],
            "mean_first_10pct": statistics.mean(losses[:k]), "mean_last_10pct": statistics.mean(losses[-k:]),
            "losses": [round(x, 4) for x in losses], "eval_items": n_eval,
            "accuracy": {name: c / n_eval for name, c in correct.items()}, "chance": 0.25,
            "skipped": result.skipped, "png": str(out_png)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/bench-gsm")
    ap.add_argument("--learn-seconds", type=float, default=180.0)
    ap.add_argument("--skip-learning", action="store_true")
    args = ap.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.set_num_threads(1)
    out = Path(args.out)
    summary: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": f"{platform.machine()} {platform.processor() or ''} "
                                          f"{torch.get_num_threads()} threads, shared and loaded",
                               "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    summary["parameters_7b"] = parameter_counts()
    summary["tokens_per_video"] = tokens_per_video()
    summary["flops_7b_estimate"] = flop_estimate(summary["parameters_7b"], summary["tokens_per_video"])
    summary["forward_overhead_tiny_cpu"] = forward_overhead()
    if not args.skip_learning:
        summary["learning_check"] = learning_check(args.learn_seconds, out.with_name(out.name + "-loss.png"))
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    brief = {k: v for k, v in summary.items() if k != "learning_check"}
    if "learning_check" in summary:
        brief["learning_check"] = {k: v for k, v in summary["learning_check"].items() if k != "losses"}
    print(json.dumps(brief, indent=2))


if __name__ == "__main__":
    main()
