"""Training Qwen2.5-VL (+ GSM) on a DSR-Train export with HF ``Trainer``.

One config switch picks the paper's Table 5 row (``dsr-paper.md`` §13):

==========  ===========================  ====================================================
strategy    model                        trained
==========  ===========================  ====================================================
baseline    base Qwen2.5-VL              nothing (the untrained reference; no run)
sft         geometry branch off          LLM + lm_head + Qwen merger
addition    π³ tokens added to vision    + geometry merger
gsm         K GSM tokens per video       + geometry merger + GSM (Q-Formers, queries, norm)
==========  ===========================  ====================================================

Freezing follows ``gsm-model.md`` §9.5: Qwen ViT frozen, π³ encoder frozen (``freeze_pi3_encoder=False`` trains
it), everything else trainable. Two optimizer recipes:

- ``per-group`` (default, the recipe ``train.sh`` states): Qwen merger 1e-6, LLM + lm_head 2e-7, geometry
  merger and GSM 1e-6 (π³ / ViT at ``vision_lr`` if unfrozen); AdamW, weight decay 0.01 except biases and
  norms; cosine with 3 % warm-up.
- ``official`` (what the official run actually did: its ``zero3_offload.json`` carries its own optimizer and
  scheduler blocks, so HF Trainer never built the per-group optimizer): one AdamW at ``learning_rate`` (2e-7)
  for every trainable parameter, weight decay 0.01 on all of them, DeepSpeed's ``WarmupLR`` (log warm-up from 0
  over ``ceil(warmup_ratio · steps)`` steps, then constant). See :func:`warmup_lr_factor`.

1 epoch, grad-clip 1 in both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError

STRATEGIES = ("baseline", "sft", "addition", "gsm")
RECIPES = ("per-group", "official")
MODEL_STRATEGY = {"baseline": "none", "sft": "none", "addition": "addition", "gsm": "gsm"}
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


class TrainConfigError(DsrError):
    """A training config that is unreadable or inconsistent."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``dsr train`` needs; defaults are the paper's (``dsr-paper.md`` §12.2).

    Paths in a config file are relative to that file. ``max_samples`` limits the export (data-scaling runs).
    ``gsm_text``: what Q-Former 1 reads: "question" or "prompt" (official-code parity: system prompt, role words
    and question); None (default) keeps the checkpoint's ``gsm_text``, and the trained model records it.
    ``recipe``: "per-group" (default: per-component learning rates, cosine) or "official" (one AdamW group at
    ``learning_rate``, decay on everything, WarmupLR; ``merger_lr``/``gsm_lr``/``vision_lr`` and
    ``lr_scheduler_type`` are then unused). ``packing``: each micro-batch becomes one unpadded row (4-row position ids).
    ``lora``: None, or ``{"r": 64, "alpha": 128, "dropout": 0.05}`` (LoRA on the LLM attention; the geometry
    branch stays fully trainable).
    """

    model: str = ""
    data: str = ""
    output_dir: str = ""
    strategy: str = "gsm"
    max_samples: int | None = None
    num_frames: int = 32
    max_pixels: int = 230_400
    min_pixels: int = 784
    learning_rate: float = 2e-7
    merger_lr: float = 1e-6
    gsm_lr: float = 1e-6
    vision_lr: float = 1e-6
    freeze_vision: bool = True
    freeze_pi3_encoder: bool = True
    freeze_llm: bool = False
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 4
    bf16: bool = False
    gradient_checkpointing: bool = False
    deepspeed: str | None = None
    lora: dict | None = None
    gsm_text: str | None = None
    recipe: str = "per-group"
    packing: bool = False
    logging_steps: int = 1
    save_steps: int = 100
    save_total_limit: int | None = 2
    seed: int = 42
    use_cpu: bool = False
    extra_training_args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise TrainConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.gsm_text not in (None, "question", "prompt"):
            raise TrainConfigError(f"gsm_text must be 'question' or 'prompt', not {self.gsm_text!r}")
        if self.recipe not in RECIPES:
            raise TrainConfigError(f"recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")
        if self.num_frames < 2:
            raise TrainConfigError("num_frames must be at least 2 (Qwen groups frames in pairs)")


def load_train_config(path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
    """Read a JSON train config; relative paths resolve against the file's folder; unknown keys raise."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainConfigError(f"{p}: cannot read train config ({exc.__class__.__name__}: {exc})") from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TrainConfigError(f"{p}: unknown train config keys: {', '.join(unknown)}")
    for key in ("model", "data", "output_dir", "deepspeed"):
        if raw.get(key) and not Path(raw[key]).is_absolute():
            raw[key] = str((p.parent / raw[key]).resolve())
    try:
        return TrainConfig(**raw)
    except TypeError as exc:
        raise TrainConfigError(f"{p}: {exc}") from None


# --- freezing and learning-rate groups --------------------------------------------------------------------


def parameter_role(name: str) -> str:
    """Which component a parameter belongs to: vision, merger, pi3, geometry_merger, gsm or llm."""
    if "geometry_encoder." in name:
        return "pi3"
    if "geometry_merger." in name:
        return "geometry_merger"
    if ".gsm." in name or name.startswith("gsm."):
        return "gsm"
    if "visual.merger." in name:
        return "merger"
    if "visual." in name:
        return "vision"
    return "llm"


def role_learning_rates(cfg: TrainConfig) -> dict[str, float]:
    return {"vision": cfg.vision_lr, "merger": cfg.merger_lr, "pi3": cfg.vision_lr,
            "geometry_merger": cfg.gsm_lr, "gsm": cfg.gsm_lr, "llm": cfg.learning_rate}


def trainable_roles(cfg: TrainConfig) -> set[str]:
    roles = {"merger", "geometry_merger", "gsm", "llm"}
    if not cfg.freeze_vision:
        roles.add("vision")
    if not cfg.freeze_pi3_encoder:
        roles.add("pi3")
    if cfg.freeze_llm:
        roles.discard("llm")
    return roles


def apply_freezing(model: Any, cfg: TrainConfig) -> dict[str, int]:
    """Set ``requires_grad`` per component (full fine-tuning; LoRA handles its own); returns trainable counts."""
    roles = trainable_roles(cfg)
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():
        role = parameter_role(name)
        param.requires_grad_(role in roles)
        if role in roles:
            counts[role] = counts.get(role, 0) + param.numel()
    return counts


def param_groups(named_params: Iterable[tuple[str, Any]], cfg: TrainConfig,
                 decay_names: set[str]) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters.

    ``per-group``: one per (component, decay?) with that component's learning rate, no decay on ``decay_names``'
    complement (biases, norms). ``official``: one group at ``learning_rate`` with ``weight_decay`` on everything.
    """
    if cfg.recipe == "official":
        named = [(n, p) for n, p in named_params if p.requires_grad]
        return [{"params": [p for _, p in named], "names": [n for n, _ in named], "lr": cfg.learning_rate,
                 "weight_decay": cfg.weight_decay, "role": "all"}]
    lrs = role_learning_rates(cfg)
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        role = "llm" if "lora_" in name else parameter_role(name)
        decay = name in decay_names
        g = groups.setdefault((role, decay), {"params": [], "names": [], "lr": lrs[role],
                                              "weight_decay": cfg.weight_decay if decay else 0.0,
                                              "role": role})
        g["params"].append(param)
        g["names"].append(name)
    return list(groups.values())


def warmup_lr_factor(step: int, warmup_steps: int) -> float:
    """DeepSpeed ``WarmupLR`` (log type, min lr 0) as a multiplier of the peak lr for HF's ``LambdaLR``.

    ``step`` counts optimizer steps already taken (HF steps the scheduler after each one). DeepSpeed sets
    min lr (0) at construction and its ``k``-th ``step()`` call sets ``log(k) / log(W)`` of the peak (W =
    ``max(2, warmup_steps)``), reaching the peak at k = W and staying there: so update ``s+1`` runs at
    ``min(1, log(max(s, 1)) / log(W))`` — 0 for the first two updates.
    """
    w = max(2, int(warmup_steps))
    return min(1.0, math.log(max(step, 1)) / math.log(w))


# --- model loading ----------------------------------------------------------------------------------------


def load_model(path: str, strategy: str, *, dtype: Any = None) -> Any:
    """A GSM checkpoint (from ``dsr model assemble``) or a base Qwen2.5-VL dir, with ``strategy``'s branch."""
    from dsr.gsm.assemble import require_files
    from dsr.gsm.configuration import load_gsm_config
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    require_files(path, "model")
    config = load_gsm_config(path)
    model_strategy = MODEL_STRATEGY[strategy]
    if model_strategy != "none" and config.gsm_feature_source == "encoder" and not config.pi3_config:
        raise TrainConfigError(f"{path}: strategy {strategy!r} needs a checkpoint with π³ weights "
                               "(build one with `dsr model assemble`)")
    config.gsm_strategy = model_strategy
    return GSMQwen2_5_VLForConditionalGeneration.from_pretrained(path, config=config, dtype=dtype)


def apply_lora(model: Any, lora: dict) -> Any:
    from peft import LoraConfig, get_peft_model

    save = [m for m in ("gsm", "geometry_merger") if hasattr(model.model, m)]
    cfg = LoraConfig(r=int(lora.get("r", 64)), lora_alpha=int(lora.get("alpha", 128)),
                     lora_dropout=float(lora.get("dropout", 0.05)), target_modules=LORA_TARGETS,
                     modules_to_save=save or None)
    return get_peft_model(model, cfg)


# --- the run ----------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    losses: list[float]
    skipped: dict[str, int]
    trainable: dict[str, int]


def make_collator(cfg: TrainConfig, config: Any, pad_id: int) -> Any:
    """The batch builder: padded (``collate``) or packed (``collate_packed``) per ``cfg.packing``."""
    from functools import partial

    from dsr.gsm.processing import collate, collate_packed

    if not cfg.packing:
        return partial(collate, pad_id=pad_id)
    vision = config.vision_config
    return partial(collate_packed, image_token_id=config.image_token_id, video_token_id=config.video_token_id,
                   spatial_merge_size=int(vision.spatial_merge_size),
                   tokens_per_second=float(vision.tokens_per_second),
                   geometry_tokens=config.geometry_tokens_per_video)


def check_deepspeed_config(cfg: TrainConfig) -> None:
    """A DeepSpeed config with its own ``optimizer`` / ``scheduler`` blocks makes HF Trainer skip our optimizer
    (that is how the official run lost its per-group rates): allow them only with ``recipe: official``, and then
    only the ones that *are* that recipe (AdamW, WarmupLR)."""
    try:
        ds = json.loads(Path(cfg.deepspeed or "").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainConfigError(f"{cfg.deepspeed}: unreadable DeepSpeed config ({exc.__class__.__name__})") from None
    blocks = [b for b in ("optimizer", "scheduler") if b in ds]
    if blocks and cfg.recipe != "official":
        raise TrainConfigError(f"{cfg.deepspeed}: its {' and '.join(blocks)} block(s) would replace the per-group "
                               "recipe (HF Trainer then never builds it); remove them or use recipe official")
    if "optimizer" in ds and str(ds["optimizer"].get("type", "")).lower() != "adamw":
        raise TrainConfigError(f"{cfg.deepspeed}: recipe official needs optimizer type AdamW")
    if "scheduler" in ds and (ds["scheduler"].get("type") != "WarmupLR"
                              or ds["scheduler"].get("params", {}).get("warmup_type", "log") != "log"):
        raise TrainConfigError(f"{cfg.deepspeed}: recipe official needs scheduler WarmupLR (log warm-up)")


def training_arguments(cfg: TrainConfig) -> Any:
    """HF ``TrainingArguments`` for ``cfg``. Create them *before* loading the model: with a ZeRO-3 DeepSpeed
    config this is what makes ``from_pretrained`` load the weights already partitioned."""
    from transformers import TrainingArguments

    if cfg.deepspeed:
        if not Path(cfg.deepspeed).is_file():
            raise TrainConfigError(f"{cfg.deepspeed}: DeepSpeed config not found")
        check_deepspeed_config(cfg)
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise TrainConfigError(f"{cfg.deepspeed}: a DeepSpeed config needs the deepspeed package "
                                   "(install it on the GPU machine) or drop the deepspeed key")
    kwargs: dict[str, Any] = dict(
        output_dir=cfg.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, lr_scheduler_type=cfg.lr_scheduler_type,
        num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps, max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, seed=cfg.seed, bf16=cfg.bf16, use_cpu=cfg.use_cpu,
        deepspeed=cfg.deepspeed, activation_checkpointing=cfg.gradient_checkpointing, report_to=[],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=False)
    kwargs.update(cfg.extra_training_args)  # any TrainingArguments field, ours included, may be overridden
    return TrainingArguments(**kwargs)


def build_trainer(cfg: TrainConfig, args: Any, model: Any, dataset: Any, collator: Any,
                  callbacks: list | None = None) -> Any:
    """``Trainer`` whose optimizer uses :func:`param_groups` and, under ``recipe: official``, whose schedule is
    DeepSpeed's WarmupLR (:func:`warmup_lr_factor`)."""
    from transformers import Trainer

    class GSMTrainer(Trainer):
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if cfg.recipe != "official" or self.lr_scheduler is not None:
                return super().create_scheduler(num_training_steps, optimizer)
            from functools import partial

            from torch.optim.lr_scheduler import LambdaLR

            warmup = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = LambdaLR(optimizer if optimizer is not None else self.optimizer,
                                         partial(warmup_lr_factor, warmup_steps=warmup))
            self._created_lr_scheduler = True
            return self.lr_scheduler

        def create_optimizer(self, model: Any = None) -> Any:
            if self.optimizer is None:
                decay = set(self.get_decay_parameter_names(self.model))
                groups = param_groups(self.model.named_parameters(), cfg, decay)
                opt_cls, opt_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                opt_kwargs.pop("lr", None)
                self.optimizer = opt_cls([{k: v for k, v in g.items() if k != "names"} for g in groups],
                                         lr=cfg.learning_rate, **opt_kwargs)
            return self.optimizer

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            # HF restores checkpoint weights with strict=False, but save_pretrained writes Qwen's original
            # key names (conversion mapping), so nothing would load and a resumed run would silently start
            # from the untrained weights: go through from_pretrained, then load strictly.
            if cfg.lora or cfg.deepspeed:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            target = model if model is not None else self.model
            saved = type(target).from_pretrained(resume_from_checkpoint, config=target.config)
            target.load_state_dict(saved.state_dict(), strict=True)
            return None

    return GSMTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=callbacks)


def train(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Run one training job and save the model, tokenizer and ``train_log.json`` under ``cfg.output_dir``.

    Resumes from the newest ``checkpoint-*`` in the output dir after an interruption.
    """
    from dsr.gsm.assemble import load_tokenizer
    from dsr.gsm.data import DSRTrainDataset, read_train_json
    from dsr.gsm.processing import VideoProcessing

    if not cfg.output_dir:
        raise TrainConfigError("output_dir is required")
    out = Path(cfg.output_dir)
    if cfg.strategy == "baseline":
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "train_log.json", json.dumps(
            {"strategy": "baseline", "note": "baseline = the untrained model; evaluate cfg.model directly",
             "model": cfg.model, "config": asdict(cfg)}, indent=2))
        return TrainResult(str(out), 0, [], {}, {})
    if not cfg.data:
        raise TrainConfigError("data (a DSR-Train conversation JSON) is required")
    args = training_arguments(cfg)
    model = load_model(cfg.model, cfg.strategy)
    if cfg.gsm_text is not None:
        model.config.gsm_text = cfg.gsm_text  # saved with the weights: inference reads the same text
    gsm_text = model.config.gsm_text
    tokenizer = load_tokenizer(cfg.model)
    trainable = apply_freezing(model, cfg)
    if cfg.lora:
        model = apply_lora(model, cfg.lora)
        trainable = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                role = "lora" if "lora_" in name else parameter_role(name)
                trainable[role] = trainable.get(role, 0) + p.numel()
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    items = read_train_json(cfg.data, limit=cfg.max_samples)
    video_cfg = VideoProcessing(num_frames=cfg.num_frames, max_pixels=cfg.max_pixels, min_pixels=cfg.min_pixels)
    base = model.get_base_model() if cfg.lora else model
    dataset = DSRTrainDataset(items, tokenizer, geometry_tokens=base.config.geometry_tokens_per_video,
                              video_cfg=video_cfg, gsm_text=gsm_text)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = build_trainer(cfg, args, model, dataset, make_collator(cfg, base.config, pad_id), callbacks)
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if out.exists() else []
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    groups = [{"role": g["role"], "lr": g["lr"], "weight_decay": g["weight_decay"], "tensors": len(g["names"]),
               "parameters": sum(p.numel() for p in g["params"])}
              for g in param_groups(model.named_parameters(), cfg, set(trainer.get_decay_parameter_names(model)))]
    log = {"strategy": cfg.strategy, "recipe": cfg.recipe, "steps": trainer.state.global_step, "losses": losses,
           "learning_rates": [float(h["learning_rate"]) for h in trainer.state.log_history if "learning_rate" in h],
           "optimizer_groups": groups, "skipped": dict(dataset.skipped), "trainable_parameters": trainable,
           "samples": len(items), "gsm_text": gsm_text, "config": asdict(cfg)}
    atomic_write_text(out / "train_log.json", json.dumps(log, indent=2))
    return TrainResult(str(out), trainer.state.global_step, losses, dict(dataset.skipped), trainable)
