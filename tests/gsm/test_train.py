"""Training presets, Trainer runs (full and LoRA), configs, CLI commands and the eval backend end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dsr.gsm.tiny import tiny_gsm_config
from dsr.gsm.train import (
    TrainConfig,
    TrainConfigError,
    apply_freezing,
    check_deepspeed_config,
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


def test_official_recipe_is_one_adamw_group_with_decay_on_everything(tmp_path: Path) -> None:
    from dsr.gsm.train import build_trainer, training_arguments

    model = _model()
    cfg = TrainConfig(recipe="official", output_dir=str(tmp_path), use_cpu=True, max_steps=100)
    apply_freezing(model, cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    trainer = build_trainer(cfg, training_arguments(cfg), model, dataset=[], collator=None)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    groups = trainer.optimizer.param_groups
    assert len(groups) == 1
    assert (groups[0]["lr"], groups[0]["weight_decay"]) == (0.0, 0.01)  # lr starts at WarmupLR's min, 0
    assert groups[0]["initial_lr"] == 2e-7
    ids = {id(p) for p in groups[0]["params"]}
    assert ids == {id(p) for n, p in model.named_parameters() if n in trainable}
    # biases, norms and the queries decay too (the official DeepSpeed AdamW had no no-decay group)
    assert {"model.gsm.queries", "model.gsm.out_norm.weight", "model.geometry_merger.fc1.bias"} <= trainable
    assert isinstance(trainer.optimizer, torch.optim.AdamW)


def test_official_recipe_schedule_is_deepspeed_warmup_lr(tmp_path: Path) -> None:
    """WarmupLR (log), peak 2e-7: with 100 steps and 3 % warm-up, W = ceil(3.0) = 3 steps. Update k runs at
    2e-7 · min(1, ln(max(k-1, 1)) / ln 3): 0, 0, 2e-7 · ln 2 / ln 3 = 1.2619e-7, then 2e-7 for good."""
    from dsr.gsm.train import build_trainer, training_arguments, warmup_lr_factor

    model = _model()
    cfg = TrainConfig(recipe="official", output_dir=str(tmp_path), use_cpu=True, max_steps=100)
    apply_freezing(model, cfg)
    trainer = build_trainer(cfg, training_arguments(cfg), model, dataset=[], collator=None)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    lrs = []
    for _ in range(6):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])  # the lr this update runs at
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    expected = [0.0, 0.0, 1.2618595071429148e-07, 2e-7, 2e-7, 2e-7]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    # a longer warm-up (1000 steps → W = 30): update 11 runs at ln 10 / ln 30 = 0.676992 of the peak
    assert warmup_lr_factor(10, 30) == pytest.approx(0.6769924, rel=1e-6)
    assert warmup_lr_factor(30, 30) == 1.0 and warmup_lr_factor(29, 30) < 1.0
    assert warmup_lr_factor(5, 0) == 1.0  # DeepSpeed clamps W to at least 2
    # the default recipe keeps the per-group rates and cosine
    default = TrainConfig(output_dir=str(tmp_path / "d"), use_cpu=True, max_steps=100)
    model2 = _model()
    apply_freezing(model2, default)
    trainer = build_trainer(default, training_arguments(default), model2, dataset=[], collator=None)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    assert sorted({g["initial_lr"] for g in trainer.optimizer.param_groups}) == [2e-7, 1e-6]
    assert type(trainer.lr_scheduler).__name__ == "LambdaLR" and trainer.args.lr_scheduler_type == "cosine"


@pytest.mark.parametrize(("recipe", "blocks", "error"), [
    ("per-group", {"optimizer": {"type": "AdamW"}}, "would replace the per-group recipe"),
    ("per-group", {"scheduler": {"type": "WarmupLR"}}, "would replace the per-group recipe"),
    ("official", {"scheduler": {"type": "WarmupDecayLR"}}, "needs scheduler WarmupLR"),
    ("official", {"optimizer": {"type": "Lamb"}}, "needs optimizer type AdamW"),
    ("official", {"optimizer": {"type": "AdamW"}, "scheduler": {"type": "WarmupLR"}}, None),
])
def test_deepspeed_blocks_must_match_the_recipe(tmp_path: Path, recipe: str, blocks: dict, error: str | None) -> None:
    from dsr.gsm.train import check_deepspeed_config

    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3}, **blocks}))
    cfg = TrainConfig(recipe=recipe, deepspeed=str(ds))
    if error is None:
        check_deepspeed_config(cfg)
    else:
        with pytest.raises(TrainConfigError, match=error):
            check_deepspeed_config(cfg)


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


def test_official_recipe_training_run(tiny_ckpts: dict, synthetic_export: str, tmp_path: Path) -> None:
    """Through ``dsr train --recipe official``: DeepSpeed's WarmupLR gives the first two updates lr 0, so the
    weights change only from the third on; the log records one group at the peak lr."""
    from transformers import TrainerCallback

    seen: list[torch.Tensor] = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, *args: object, **kwargs: object) -> None:
            seen.append(kwargs["model"].model.gsm.queries.detach().clone())

    cfg = _fast(tiny_ckpts, synthetic_export, tmp_path / "official", recipe="official", max_steps=3,
                warmup_ratio=0.5)  # W = ceil(1.5) = 2: updates at 0, 0, peak
    before = _state(tiny_ckpts["gsm"])["model.gsm.queries"]
    result = train(cfg, callbacks=[Snapshot()])
    assert result.steps == 3 and len(seen) == 3
    assert torch.equal(seen[0], before) and torch.equal(seen[1], before) and not torch.equal(seen[2], before)
    log = json.loads((tmp_path / "official" / "train_log.json").read_text())
    assert log["recipe"] == "official"
    assert [(g["role"], g["lr"], g["weight_decay"]) for g in log["optimizer_groups"]] == [("all", 1e-3, 0.01)]


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
        assert cfg.recipe == ("official" if "official" in path.name else "per-group"), path
        if cfg.deepspeed:
            check_deepspeed_config(cfg)  # DeepSpeed blocks agree with the recipe
    assert load_train_config(CONFIGS / "gsm_7b.json", recipe="official").recipe == "official"  # --recipe
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


def _greedy_answer(checkpoint: str, frames: Any, prompt: str, interval: float, steps: int) -> str:
    """The model's answer by hand: inputs from the processing functions, a full no-cache forward per token,
    argmax, stop at <|im_end|>, special tokens dropped."""
    from dsr.gsm.assemble import load_tokenizer
    from dsr.gsm.configuration import load_gsm_config
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration
    from dsr.gsm.processing import VideoProcessing, collate, prepare_sample

    model = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint, config=load_gsm_config(checkpoint))
    model.eval()
    tok = load_tokenizer(checkpoint)
    sample = prepare_sample(tok, [(frames, interval)], prompt, None,
                            geometry_tokens=model.config.geometry_tokens_per_video,
                            video_cfg=VideoProcessing(num_frames=4), gsm_text=model.config.gsm_text)
    batch = collate([sample], tok.pad_token_id)
    batch.pop("labels")
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(model(**batch, use_cache=False).logits[0, -1].argmax())
            if nxt == tok.convert_tokens_to_ids("<|im_end|>"):
                break
            new.append(nxt)
            one = torch.tensor([[nxt]])
            batch["input_ids"] = torch.cat([batch["input_ids"], one], 1)
            batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(one)], 1)
            batch["mm_token_type_ids"] = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(one).int()], 1)
    return tok.decode(new, skip_special_tokens=True).strip()


QUESTION = "Which direction does the red square move ?\nOptions:\nA left\nB right"


@pytest.mark.parametrize(("which", "name"), [("gsm", "gsm:gsm"), ("qwen", "qwen2_5_vl:qwen2_5_vl_tiny")])
def test_eval_backend_gives_the_models_greedy_answer(tiny_ckpts: dict, which: str, name: str) -> None:
    import io

    from PIL import Image

    from dsr.gsm.eval_backend import create_backend
    from dsr.gsm.tiny import moving_square_video

    frames = moving_square_video("right", frames=4)
    backend = create_backend(tiny_ckpts[which], max_new_tokens=3, num_frames=4)
    assert backend.name == name and backend.uses_frames
    answer = backend.generate(frames, QUESTION, frame_interval_s=0.5)
    expected = _greedy_answer(tiny_ckpts[which], frames, QUESTION, 0.5, steps=3)
    assert answer == expected and expected  # the untrained model's three greedy words, exactly
    pngs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    assert backend.generate(pngs, QUESTION, frame_interval_s=0.5) == answer  # PNG is lossless: same answer


def test_eval_backend_errors_and_identity(tiny_ckpts: dict) -> None:
    from dsr.gsm.eval_backend import create_backend
    from dsr.gsm.processing import PromptError
    from dsr.gsm.tiny import moving_square_video

    backend = create_backend(tiny_ckpts["gsm"], max_new_tokens=2, num_frames=4)
    ident = backend.identity()
    assert (ident["strategy"], ident["gsm_text"], ident["num_queries"]) == ("gsm", "question", 4)
    with pytest.raises(PromptError, match="no text tokens"):
        backend.generate(moving_square_video("up", frames=4), "  ")


def test_harness_adapter_the_cli_uses(tiny_ckpts: dict) -> None:
    """``dsr eval run --model gsm:<dir>`` builds ``VideoBackendModel(create_backend(dir))``: a harness request
    (JPEG frames with time labels, the DSR prompt) reaches the model as those frames, the prompt text without
    time labels and the frames' spacing, and the reply is the model's greedy answer."""
    import io

    from PIL import Image

    from dsr.cli.evaluate import gsm_model
    from dsr.evaluate.base import ModelContext, Request
    from dsr.evaluate.datasets import Item
    from dsr.evaluate.prompt import build_prompt, text_without_frames
    from dsr.gsm.tiny import moving_square_video

    frames = moving_square_video("up", frames=4)
    jpegs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=95)
        jpegs.append(buf.getvalue())
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs])
    item = Item(item_id="q1", video_id="v1", video_path=None, question="Which direction does the red square move ?",
                options={"A": "left", "B": "up"}, answer="B", type="dir")
    stamps = (0.0, 0.5, 1.0, 1.5)
    request = Request(item=item, prompt=build_prompt(item, tuple(jpegs), stamps), timestamps_s=stamps)
    model = gsm_model(tiny_ckpts["gsm"], context=ModelContext(), max_tokens=3)
    reply = model.generate(request)
    assert "<0.5 s>" in request.prompt.text and "<0.5 s>" not in text_without_frames(item)
    expected = _greedy_answer(tiny_ckpts["gsm"], decoded, text_without_frames(item), 0.5, steps=3)
    assert reply.text == expected and expected
    assert model.identity()["strategy"] == "gsm" and model.name == "gsm:gsm"


def test_inference_does_not_import_the_training_module(tiny_ckpts: dict) -> None:
    import subprocess
    import sys

    code = ("import sys; from dsr.gsm.eval_backend import create_backend; "
            f"create_backend({tiny_ckpts['gsm']!r}, num_frames=4); "
            "assert 'dsr.gsm.train' not in sys.modules and 'peft' not in sys.modules, 'training code imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
