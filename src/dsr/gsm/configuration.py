"""The GSM model config: Qwen2.5-VL's config plus typed ``gsm_*`` fields and the π³ encoder config.

No ``from __future__ import annotations`` here on purpose: HF's ``@strict`` validates field types from the
annotations, which must be real types, not strings (with string annotations wrong types pass silently).
"""

from huggingface_hub.dataclasses import strict
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLConfig

from dsr.errors import DsrError

STRATEGIES_WITH_GEOMETRY = ("addition", "gsm")


class GSMInputError(DsrError, ValueError):
    """Inputs that the GSM cannot use (no question tokens, one text row per video missing, ...)."""


@strict
class GSMQwen2_5_VLConfig(Qwen2_5_VLConfig):
    """Qwen2.5-VL config plus the geometry branch.

    gsm_strategy: "gsm" (K tokens per video), "addition" (geometry added to vision tokens), "none" (plain Qwen).
    gsm_tokens_per_second: temporal scale of geometry-key positions (None → the vision config's value; DSR
        hard-codes 2, the 7B value).
    gsm_shared_norm: parity with the official code (one norm for queries and keys).
    pi3_config: ``Dinov2WithRegistersConfig`` kwargs of the π³ encoder.
    """

    model_type = "gsm_qwen2_5_vl"
    gsm_strategy: str = "gsm"
    gsm_num_queries: int = 32
    gsm_qformer1_layers: int = 1
    gsm_qformer2_layers: int = 1
    gsm_mlp_dim: int | None = None
    gsm_shared_norm: bool = False
    gsm_tokens_per_second: float | None = None
    gsm_feature_source: str = "encoder"
    pi3_config: dict | None = None

    def check_gsm(self) -> None:
        if self.gsm_strategy not in ("none", *STRATEGIES_WITH_GEOMETRY):
            raise GSMInputError(f"gsm_strategy must be none, addition or gsm, not {self.gsm_strategy!r}")
        if self.gsm_feature_source != "encoder":
            raise GSMInputError("gsm_feature_source: only 'encoder' (π³ encoder features, as DSR) is implemented")
        if self.gsm_strategy in STRATEGIES_WITH_GEOMETRY and not self.pi3_config:
            raise GSMInputError(f"gsm_strategy={self.gsm_strategy!r} needs pi3_config")

    @property
    def geometry_tokens_per_video(self) -> int:
        return self.gsm_num_queries if self.gsm_strategy == "gsm" else 0


def load_gsm_config(path: str, **overrides: object) -> GSMQwen2_5_VLConfig:
    """The config of a GSM checkpoint, or of a base Qwen2.5-VL checkpoint lifted to ours (``gsm_strategy``
    "none" unless overridden), without HF's model-type mismatch warning."""
    import json
    from pathlib import Path

    model_type = json.loads((Path(path) / "config.json").read_text()).get("model_type")
    if model_type == GSMQwen2_5_VLConfig.model_type:
        config = GSMQwen2_5_VLConfig.from_pretrained(path)
    else:
        base = Qwen2_5_VLConfig.from_pretrained(path).to_dict()
        for key in ("model_type", "transformers_version", "architectures"):
            base.pop(key, None)
        config = GSMQwen2_5_VLConfig(**base, gsm_strategy="none")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _register_auto_config() -> None:
    # So AutoConfig / AutoTokenizer recognise our checkpoints' model_type instead of warning.
    from transformers import AutoConfig

    AutoConfig.register(GSMQwen2_5_VLConfig.model_type, GSMQwen2_5_VLConfig, exist_ok=True)


_register_auto_config()
