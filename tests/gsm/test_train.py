"""Training presets, Trainer runs (full and LoRA), configs, CLI commands and the eval backend end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dsr.gsm.tiny import tiny_gsm_config
from dsr.gsm.train import (
    TrainConfig,
    TrainConfigError,
    apply_freezing,
    load_train_config,
    param_groups,
    parameter_role,
    train,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "gsm"


def _model() -> Any:
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    return GSMQwen2_5_VLForConditionalGeneration(tiny_gsm_config("gsm", num_queries=4))


@pytest.mark.parametrize(("overrides", "trainable"), [
    ({}, {"llm", "merger", "geometry_merger", "gsm"}),  # paper / official code
    ({"freeze_pi3_encoder": False}, {"llm", "merger", "geometry_merger", "gsm", "pi3"}),  # literal paper (M9)
    ({"freeze_llm": True}, {"merger", "geometry_merger", "gsm"}),
])
def test_freezing_presets(overrides: dict, trainable: set[str]) -> None:
    model = _model()
    apply_freezing(model, TrainConfig(**overrides))
    got = {parameter_role(n) for n, p in model.named_parameters() if p.requires_grad}
    frozen = {parameter_role(n) for n, p in model.named_parameters() if not p.requires_grad}
    assert got == trainable
    assert "vision" in frozen and not (got & frozen)


def test_param_groups_carry_paper_learning_rates() -> None:
    model = _model()
    cfg = TrainConfig()
    apply_freezing(model, cfg)
    decay = {n for n, p in model.named_parameters() if p.ndim >= 2}
    groups = param_groups(model.named_parameters(), cfg, decay)
    lr = {g["role"]: g["lr"] for g in groups}
    assert lr == {"llm": 2e-7, "merger": 1e-6, "geometry_merger": 1e-6, "gsm": 1e-6}
    for g in groups:
        assert g["weight_decay"] == (0.01 if all(n in decay for n in g["names"]) else 0.0)
    named = {n for g in groups for n in g["names"]}
    assert named == {n for n, p in model.named_parameters() if p.requires_grad}
    assert "model.gsm.queries" in named


def _state(path: str) -> dict[str, torch.Tensor]:
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    return GSMQwen2_5_VLForConditionalGeneration.from_pretrained(path).state_dict()


def _fast(tiny_ckpts: dict, data: str, out: Path, **kw: Any) -> TrainConfig:
    base = dict(model=tiny_ckpts["gsm"], data=data, output_dir=str(out), num_frames=4, max_steps=2,
                per_device_train_batch_size=2, gradient_accumulation_steps=1, use_cpu=True, warmup_ratio=0.0,
                learning_rate=1e-3, merger_lr=1e-3, gsm_lr=1e-3, save_steps=1000, logging_steps=1)
    base.update(kw)
    return TrainConfig(**base)


def test_two_step_trainer_run_trains_exactly_the_intended_parameters_and_resumes(
        tiny_ckpts: dict, synthetic_export: str, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    result = train(_fast(tiny_ckpts, synthetic_export, tmp_path / "run", save_steps=1))
    assert result.steps == 2 and len(result.losses) == 2 and all(map(torch.isfinite, map(torch.tensor,
                                                                                          result.losses)))
    assert result.skipped == {"video_decode_failed": 1}
    before, after = _state(tiny_ckpts["gsm"]), _state(str(tmp_path / "run"))
    for name, value in before.items():
        role = parameter_role(name)
        changed = not torch.equal(value, after[name])
        if role in ("vision", "pi3"):
            assert not changed, name
        else:
            assert changed, name
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["skipped"] == {"video_decode_failed": 1} and set(log["trainable_parameters"]) == {
        "llm", "merger", "geometry_merger", "gsm"}

    class CountSteps(TrainerCallback):
        steps = 0
        first_state: dict | None = None

        def on_step_begin(self, *args: object, **kwargs: object) -> None:
            if CountSteps.first_state is None:  # the weights the resumed run starts from
                CountSteps.first_state = {k: v.detach().clone() for k, v in kwargs["model"].state_dict().items()}

        def on_step_end(self, *args: object, **kwargs: object) -> None:
            CountSteps.steps += 1

    # An interrupted run (say it was meant to take 3 steps) picks up from checkpoint-2: only step 3 runs.
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    resumed = train(_fast(tiny_ckpts, synthetic_export, tmp_path / "run", max_steps=3, save_steps=1),
                    callbacks=[CountSteps()])
    assert resumed.steps == 3 and CountSteps.steps == 1 and len(resumed.losses) == 3
    # ... and really starts from checkpoint-2's weights, not from the untrained ones
    saved = _state(str(tmp_path / "run" / "checkpoint-2"))
    started = CountSteps.first_state
    assert started is not None and set(saved) <= set(started)
    for name, value in saved.items():
        assert torch.equal(started[name], value), name


def test_lora_variant_trains_lora_and_geometry_branch_only(tiny_ckpts: dict, synthetic_export: str,
                                                           tmp_path: Path) -> None:
    result = train(_fast(tiny_ckpts, synthetic_export, tmp_path / "lora", lora={"r": 4, "alpha": 8}))
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert set(result.trainable) == {"lora", "geometry_merger", "gsm"}
    assert (tmp_path / "lora" / "adapter_config.json").is_file()


def test_sft_strategy_runs_without_geometry(tiny_ckpts: dict, synthetic_export: str, tmp_path: Path) -> None:
    result = train(_fast(tiny_ckpts, synthetic_export, tmp_path / "sft", strategy="sft", max_steps=1))
    assert result.steps == 1 and set(result.trainable) == {"llm", "merger"}


def test_packed_training_run(tiny_ckpts: dict, synthetic_export: str, tmp_path: Path) -> None:
    result = train(_fast(tiny_ckpts, synthetic_export, tmp_path / "packed", packing=True, max_steps=1))
    assert result.steps == 1 and all(torch.isfinite(torch.tensor(result.losses)))


def test_baseline_is_no_training(tmp_path: Path) -> None:
    result = train(TrainConfig(model="/nowhere", output_dir=str(tmp_path / "b"), strategy="baseline"))
    assert result.steps == 0 and (tmp_path / "b" / "train_log.json").is_file()


def test_shipped_configs_load_and_are_consistent() -> None:
    for path in sorted(CONFIGS.rglob("*.json")):
        raw = json.loads(path.read_text())
        if "zero_optimization" in raw:
            stage = raw["zero_optimization"]["stage"]
            assert stage == (2 if "zero2" in path.name else 3)
            assert raw["train_micro_batch_size_per_gpu"] == "auto" and raw["gradient_clipping"] == "auto"
            continue
        cfg = load_train_config(path)
        assert cfg.deepspeed is None or Path(cfg.deepspeed).is_file(), path
        assert (cfg.learning_rate, cfg.gsm_lr, cfg.merger_lr, cfg.weight_decay) == (2e-7, 1e-6, 1e-6, 0.01)
    scaling = {load_train_config(p).max_samples: load_train_config(p).strategy
               for p in (CONFIGS / "scaling").glob("*.json")}
    assert scaling == {0: "baseline", 5000: "gsm", 10000: "gsm", 20000: "gsm", 50000: "gsm"}


def test_bad_train_configs_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"strategy": "gsm", "learning_rat": 1}))
    with pytest.raises(TrainConfigError, match="unknown train config keys: learning_rat"):
        load_train_config(bad)
    with pytest.raises(TrainConfigError, match="strategy must be one of"):
        TrainConfig(strategy="gsmm")
    import importlib.util

    from dsr.gsm.train import training_arguments

    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(TrainConfigError, match="needs the deepspeed package"):
            training_arguments(TrainConfig(output_dir=str(tmp_path), deepspeed=str(CONFIGS / "zero2.json")))
    with pytest.raises(TrainConfigError, match="DeepSpeed config not found"):
        training_arguments(TrainConfig(output_dir=str(tmp_path), deepspeed=str(tmp_path / "none.json")))


def test_cli_assemble_and_train_end_to_end(tiny_ckpts: dict, synthetic_export: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    out = tmp_path / "assembled"
    main(["model", "assemble", "--qwen", tiny_ckpts["qwen"], "--pi3", tiny_ckpts["pi3"], "--out", str(out),
          "--num-queries", "4", "--pi3-heads", "4"])
    assert (out / "model.safetensors").is_file() and (out / "dsr_assembly.json").is_file()
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"model": "assembled", "data": synthetic_export, "output_dir": "run", "num_frames": 4,
                               "max_steps": 1, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                               "use_cpu": True, "save_steps": 1000}))
    main(["train", str(cfg)])
    assert "gsm: 1 steps" in capsys.readouterr().out
    assert (tmp_path / "run" / "model.safetensors").is_file()
    for argv, message in [
        (["model", "assemble", "--qwen", str(tmp_path / "none"), "--pi3", tiny_ckpts["pi3"], "--out", "x"],
         "checkpoint directory not found"),
        (["model", "assemble", "--qwen", tiny_ckpts["qwen"], "--pi3", str(tmp_path / "none.safetensors"),
          "--out", "x"], "π³ checkpoint not found"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_eval_backend_gsm_and_base(tiny_ckpts: dict) -> None:
    from dsr.gsm.eval_backend import create_backend
    from dsr.gsm.processing import PromptError
    from dsr.gsm.tiny import moving_square_video

    frames = moving_square_video("right", frames=4)
    for ckpt, name in ((tiny_ckpts["gsm"], "gsm:gsm"), (tiny_ckpts["qwen"], "qwen2_5_vl:qwen2_5_vl_tiny")):
        backend = create_backend(ckpt, max_new_tokens=3, num_frames=4)
        assert backend.name == name
        text = backend.generate(frames, "Which direction does the red square move ?\nOptions:\nA left\nB right")
        assert isinstance(text, str)
    backend = create_backend(tiny_ckpts["gsm"], max_new_tokens=2, num_frames=4)
    assert backend.identity()["strategy"] == "gsm" and backend.uses_frames
    import io

    from PIL import Image

    jpegs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        jpegs.append(buf.getvalue())
    a = backend.generate(frames, "Which direction ?")
    assert backend.generate(jpegs, "Which direction ?") == a  # PNG is lossless: same frames, same answer
    with pytest.raises(PromptError, match="no text tokens"):
        create_backend(tiny_ckpts["gsm"], num_frames=4).generate(frames, "  ")


def test_bench_protocol_adapter(tiny_ckpts: dict) -> None:
    bench_models = pytest.importorskip("dsr.evaluate.models")
    bench_prompt = pytest.importorskip("dsr.evaluate.prompt")
    import io

    from PIL import Image

    from dsr.gsm.eval_backend import create_bench_model
    from dsr.gsm.tiny import moving_square_video

    images = []
    for f in moving_square_video("up", frames=4):
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        images.append(buf.getvalue())
    parts = []
    for i in range(4):
        parts += [("text", f"<{0.5 * i:.1f} s>\n"), ("image", i)]
    parts.append(("text", "Which direction does the red square move ?\nOptions:\nA left\nB right"))
    try:
        prompt = bench_prompt.Prompt(parts=tuple(parts), images=tuple(images))
        request = bench_models.Request(item=None, prompt=prompt)
    except TypeError:
        pytest.skip("dsr.evaluate's Request/Prompt signature changed")
    model = create_bench_model(tiny_ckpts["gsm"], max_new_tokens=2, num_frames=4)
    reply = model.generate(request)
    assert isinstance(reply.text, str) and model.identity()["strategy"] == "gsm"
    expected = model.backend.generate(moving_square_video("up", frames=4),
                                      "Which direction does the red square move ?\nOptions:\nA left\nB right",
                                      frame_interval_s=0.5)
    assert reply.text == expected
