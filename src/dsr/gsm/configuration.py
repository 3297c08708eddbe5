"""The GSM model config: Qwen2.5-VL's config plus typed ``gsm_*`` fields and the π³ encoder config.

No ``from __future__ import annotations`` here on purpose: HF's ``@strict`` validates field types from the
annotations, which must be real types, not strings (with string annotations wrong types pass silently).
"""

from huggingface_hub.dataclasses import strict
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLConfig

from dsr.errors import DsrError

STRATEGIES_WITH_GEOMETRY = ("addition", "gsm")
GSM_TEXTS = ("question", "prompt")
FEATURE_SOURCES = ("encoder", "precomputed")

#: Model-config fields that reproduce the official code (``qwen_vl_spatial.py``) where it differs from our
#: defaults: one RMSNorm for queries and keys, ``torch.randn`` queries (std 1), tokens_per_second hard-coded
#: to 2, Q-Former 1 reading the whole prompt, and the CLIP-mean typo. ``dsr model assemble --parity official``
#: builds new modules this way; ``dsr model convert-official`` sets them on the released weights.
OFFICIAL_PARITY: dict[str, object] = {
    "gsm_shared_norm": True,
    "gsm_query_init_std": 1.0,
    "gsm_tokens_per_second": 2.0,
    "gsm_text": "prompt",
    "gsm_official_clip_mean": True,
}
PARITY_PRESETS: dict[str, dict[str, object]] = {"dsr": {}, "official": OFFICIAL_PARITY}


class GSMInputError(DsrError, ValueError):
    """Inputs that the GSM cannot use (no question tokens, one text row per video missing, ...)."""


@strict
class GSMQwen2_5_VLConfig(Qwen2_5_VLConfig):
    """Qwen2.5-VL config plus the geometry branch.

    gsm_strategy: "gsm" (K tokens per video), "addition" (geometry added to vision tokens), "none" (plain Qwen).
    gsm_tokens_per_second: temporal scale of geometry-key positions (None → the vision config's value; DSR
        hard-codes 2, the 7B value).
    gsm_shared_norm: parity with the official code (one norm for queries and keys).
    gsm_query_init_std: std of the queries' initialisation (0.02; the official code's ``torch.randn`` is 1.0).
    gsm_text: what Q-Former 1 reads, recorded with the weights so inference matches training: "question" or
        "prompt" (official code: system prompt, role words and question).
    gsm_official_clip_mean: un-normalise Qwen's patches for π³ with the official code's CLIP mean, whose green
        entry 0.4576275 is a typo of 0.4578275 (the mean Qwen normalised with); parity for the released weights.
    gsm_feature_source: "encoder" (π³'s encoder run on Qwen's own patches, as DSR) or "precomputed" (per-patch
        geometry features passed in as ``geometry_features``: cached π³ features, or ground-truth geometry in the
        miniature Table 5; no encoder is built).
    gsm_feature_dim: width of precomputed per-patch features (``gsm_feature_source="precomputed"`` only).
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
    gsm_feature_dim: int | None = None
    gsm_query_init_std: float = 0.02
    gsm_text: str = "question"
    gsm_official_clip_mean: bool = False
    pi3_config: dict | None = None

    def check_gsm(self) -> None:
        if self.gsm_strategy not in ("none", *STRATEGIES_WITH_GEOMETRY):
            raise GSMInputError(f"gsm_strategy must be none, addition or gsm, not {self.gsm_strategy!r}")
        if self.gsm_feature_source not in FEATURE_SOURCES:
            raise GSMInputError(f"gsm_feature_source must be one of {', '.join(FEATURE_SOURCES)}, "
                                f"not {self.gsm_feature_source!r}")
        geometry = self.gsm_strategy in STRATEGIES_WITH_GEOMETRY
        if geometry and self.gsm_feature_source == "encoder" and not self.pi3_config:
            raise GSMInputError(f"gsm_strategy={self.gsm_strategy!r} needs pi3_config")
        if geometry and self.gsm_feature_source == "precomputed" and not (self.gsm_feature_dim or 0) > 0:
            raise GSMInputError("gsm_feature_source='precomputed' needs gsm_feature_dim (the per-patch feature width)")
        if self.gsm_text not in GSM_TEXTS:
            raise GSMInputError(f"gsm_text must be 'question' or 'prompt', not {self.gsm_text!r}")

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


def qwen2_5_vl_7b_config(strategy: str = "gsm", num_queries: int = 32, **overrides: object) -> GSMQwen2_5_VLConfig:
    """Qwen2.5-VL-7B-Instruct's published shapes (``gsm-model.md`` §4) + π³'s ViT-L/14-reg encoder: build it
    on the meta device to count parameters or plan memory without weights."""
    from dsr.gsm.geometry import pi3_encoder_config

    return GSMQwen2_5_VLConfig(
        text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000,
                         rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24],
                                                             "rope_theta": 1e6}),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2),
        tie_word_embeddings=False, gsm_strategy=strategy, gsm_num_queries=num_queries,
        pi3_config=pi3_encoder_config() if strategy != "none" else None, **overrides)


def _register_auto_config() -> None:
    # So AutoConfig / AutoTokenizer recognise our checkpoints' model_type instead of warning.
    from transformers import AutoConfig

    AutoConfig.register(GSMQwen2_5_VLConfig.model_type, GSMQwen2_5_VLConfig, exist_ok=True)


_register_auto_config()
