"""``dsr model assemble``: one GSM checkpoint from local Qwen2.5-VL and π³ weights (never downloads).

Load Qwen2.5-VL into :class:`GSMQwen2_5_VLForConditionalGeneration` (through the registered key conversion),
load π³'s encoder strictly (keys starting with ``encoder.``, remapped), initialise the geometry merger and GSM,
``save_pretrained``; training and evaluation then always ``from_pretrained`` that one directory, which also
avoids loading π³ after ``from_pretrained`` under ZeRO-3 (``gsm-model.md`` §9.6). π³ weights are CC BY-NC 4.0.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "chat_template.json", "chat_template.jinja", "preprocessor_config.json",
                   "video_preprocessor_config.json", "generation_config.json")


class CheckpointError(DsrError):
    """A checkpoint directory that is missing, incomplete or does not load cleanly."""


def require_files(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` must be a directory with ``config.json`` and safetensors weights."""
    p = Path(path)
    if not p.is_dir():
        raise CheckpointError(f"{p}: {what} checkpoint directory not found")
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p}: {what} checkpoint lacks config.json")
    if not (any(p.glob("*.safetensors")) or (p / "model.safetensors.index.json").is_file()):
        raise CheckpointError(f"{p}: {what} checkpoint has no *.safetensors weights")
    return p


def checkpoint_model_type(path: str | os.PathLike[str]) -> str:
    try:
        return str(json.loads((Path(path) / "config.json").read_text())["model_type"])
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable config.json ({exc.__class__.__name__})") from None


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The tokenizer saved with a checkpoint (inference and training both read it from the model dir)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: no tokenizer found ({exc.__class__.__name__})") from None


def assemble_checkpoint(qwen: str | os.PathLike[str], pi3: str | os.PathLike[str], out: str | os.PathLike[str], *,
                        num_queries: int = 32, strategy: str = "gsm", pi3_heads: int | None = None,
                        seed: int = 0, dtype: Any = None, parity: str = "dsr") -> Path:
    """Build and save the combined checkpoint; returns the output dir. Any mismatch is one line.

    parity: "dsr" (our defaults) or "official" (the new modules as the official code builds them:
    :data:`~dsr.gsm.configuration.OFFICIAL_PARITY`).
    """
    import torch

    from dsr.gsm.configuration import PARITY_PRESETS, load_gsm_config
    from dsr.gsm.geometry import infer_pi3_config, load_pi3_encoder_weights, read_pi3_checkpoint
    from dsr.gsm.modeling import OWN_MODULES, GSMQwen2_5_VLForConditionalGeneration

    qwen_dir = require_files(qwen, "Qwen2.5-VL")
    if checkpoint_model_type(qwen_dir) != "qwen2_5_vl":
        raise CheckpointError(f"{qwen_dir}: expected a Qwen2.5-VL checkpoint (model_type qwen2_5_vl)")
    pi3_state = read_pi3_checkpoint(pi3)
    pi3_cfg = infer_pi3_config(pi3_state, num_heads=pi3_heads)
    if parity not in PARITY_PRESETS:
        raise CheckpointError(f"parity must be one of {', '.join(PARITY_PRESETS)}, not {parity!r}")
    config = load_gsm_config(str(qwen_dir), gsm_strategy=strategy, gsm_num_queries=int(num_queries),
                             pi3_config=pi3_cfg, **PARITY_PRESETS[parity])
    config.check_gsm()
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our modules are "missing" by design; we check the report ourselves
    try:
        model, info = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(
            str(qwen_dir), config=config, dtype=dtype, output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    not_ours = [k for k in info["missing_keys"] if not any(f"model.{m}." in k for m in OWN_MODULES)]
    if not_ours or info["unexpected_keys"] or info.get("mismatched_keys"):
        first = (not_ours or list(info["unexpected_keys"]) or list(info["mismatched_keys"]))[0]
        raise CheckpointError(f"{qwen_dir}: Qwen weights do not load cleanly ({len(not_ours)} missing, "
                              f"{len(info['unexpected_keys'])} unexpected; first: {first})")
    load_pi3_encoder_weights(model.model.geometry_encoder, pi3_state, source=str(pi3))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    for name in TOKENIZER_FILES:
        if (qwen_dir / name).is_file():
            shutil.copy2(qwen_dir / name, out_dir / name)
    atomic_write_text(out_dir / "dsr_assembly.json", json.dumps({
        "qwen": str(qwen_dir.resolve()), "pi3": str(Path(pi3).resolve()), "strategy": strategy,
        "num_queries": int(num_queries), "seed": seed, "parity": parity, "pi3_config": pi3_cfg,
        "licence_note": "π³ weights are CC BY-NC 4.0 (non-commercial); respect it when redistributing",
    }, indent=2))
    return out_dir
