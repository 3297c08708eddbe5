"""Qwen2.5-VL with the Geometry Selection Module, as subclasses of HF transformers 5.23.0 classes.

Design (``gsm-model.md`` §0, §5, §9): subclass, do not copy, the modeling file.

- :class:`GSMQwen2_5_VLConfig` adds typed ``gsm_*`` fields and the π³ encoder config.
- :class:`GSMQwen2_5_VLModel` overrides ``get_video_features`` to return, per video, ``[vision_i ; geo_i]``
  (``gsm``: K tokens appended; ``addition``: geometry added onto the vision tokens; ``none``: plain Qwen),
  ``get_rope_index`` (our :func:`dsr.gsm.positions.rope_index`) and ``_init_weights`` (the bare query
  Parameter would otherwise come back NaN after ``from_pretrained``).
- :class:`GSMQwen2_5_VLForConditionalGeneration` swaps in that model and lists the GSM inputs
  (``gsm_text_ids``, ``gsm_text_mask``) in its ``forward`` signature, so ``generate()`` accepts them; they are
  named in ``get_video_features`` too, so ``generate()`` routes them to the one pre-prefill encoder call.
- A registered checkpoint-conversion mapping lets base Qwen2.5-VL checkpoints (legacy Hub key layout) load
  into our subclass; HF skips its own mapping for non-library classes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from transformers import initialization as init
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.modeling_outputs import BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
    Qwen2_5_VLPreTrainedModel,
    Qwen2_5_VLTextModel,
)

from dsr.gsm.configuration import STRATEGIES_WITH_GEOMETRY, GSMInputError, GSMQwen2_5_VLConfig
from dsr.gsm.geometry import (
    CLIP_MEAN,
    OFFICIAL_CLIP_MEAN,
    GeometryMerger,
    build_pi3_encoder,
    encode_frames,
    frames_from_qwen_patches,
    geometry_positions,
)
from dsr.gsm.positions import rope_index
from dsr.gsm.qformer import GeometrySelectionModule, GSMConfig

#: Sub-modules we add under ``model.``; the conversion mapping must not rename them into the LLM.
OWN_MODULES = ("gsm", "geometry_encoder", "geometry_merger")


def gsm_module_config(config: GSMQwen2_5_VLConfig) -> GSMConfig:
    """The pure-torch :class:`GSMConfig` implied by a model config (LLM attention shape, K, depths)."""
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    rope = text.rope_parameters or {}
    return GSMConfig(
        hidden_size=text.hidden_size,
        num_heads=text.num_attention_heads,
        num_kv_heads=text.num_key_value_heads,
        head_dim=head_dim,
        mlp_dim=config.gsm_mlp_dim or text.intermediate_size,
        num_queries=config.gsm_num_queries,
        qformer1_layers=config.gsm_qformer1_layers,
        qformer2_layers=config.gsm_qformer2_layers,
        mrope_section=tuple(rope.get("mrope_section", (16, 24, 24))),
        rope_theta=float(rope.get("rope_theta", 1e6)),
        rms_norm_eps=text.rms_norm_eps,
        attention_dropout=float(text.attention_dropout or 0.0),
        shared_norm=config.gsm_shared_norm,
        query_init_std=config.gsm_query_init_std,
    )


def _pad_rows(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (N_i, d) tensors into (V, max N, d) with a (V, max N) bool mask."""
    n = max(r.shape[0] for r in rows)
    out = rows[0].new_zeros(len(rows), n, rows[0].shape[-1])
    mask = torch.zeros(len(rows), n, dtype=torch.bool, device=rows[0].device)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return out, mask


class GSMQwen2_5_VLModel(Qwen2_5_VLModel):
    config: GSMQwen2_5_VLConfig
    config_class = GSMQwen2_5_VLConfig

    def __init__(self, config: GSMQwen2_5_VLConfig) -> None:
        # Build Qwen's parts as Qwen2_5_VLModel.__init__ does, then ours, then one post_init.
        Qwen2_5_VLPreTrainedModel.__init__(self, config)
        config.check_gsm()
        self.visual = Qwen2_5_VisionTransformerPretrainedModel._from_config(config.vision_config)
        self.language_model = Qwen2_5_VLTextModel._from_config(config.text_config)
        self.rope_deltas = None
        vision = config.vision_config
        if config.gsm_strategy in STRATEGIES_WITH_GEOMETRY:
            if config.gsm_feature_source == "encoder":
                self.geometry_encoder = build_pi3_encoder(config.pi3_config)
                if int(self.geometry_encoder.config.patch_size) != int(vision.patch_size):
                    raise GSMInputError(f"π³ patch size {self.geometry_encoder.config.patch_size} must equal Qwen's "
                                        f"{vision.patch_size}: one π³ patch per Qwen patch")
                feature_dim = int(self.geometry_encoder.config.hidden_size)
            else:
                feature_dim = int(config.gsm_feature_dim)
            self.geometry_merger = GeometryMerger(
                feature_dim, config.text_config.hidden_size,
                temporal_patch_size=int(vision.temporal_patch_size), merge_size=int(vision.spatial_merge_size),
                eps=config.text_config.rms_norm_eps)
        if config.gsm_strategy == "gsm":
            self.gsm = GeometrySelectionModule(gsm_module_config(config))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, GeometrySelectionModule):
            init.normal_(module.queries, mean=0.0, std=module.cfg.query_init_std)

    # --- positions ---

    def get_rope_index(self, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor | None = None,
                       image_grid_thw: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None,
                       second_per_grid_ts: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                       **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Our own M-RoPE index (see :mod:`dsr.gsm.positions`); ``mm_token_type_ids`` is not needed."""
        vision = self.config.vision_config
        return rope_index(
            input_ids, image_token_id=self.config.image_token_id, video_token_id=self.config.video_token_id,
            spatial_merge_size=int(vision.spatial_merge_size), tokens_per_second=float(vision.tokens_per_second),
            geometry_tokens=self.config.geometry_tokens_per_video, image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw, second_per_grid_ts=second_per_grid_ts, attention_mask=attention_mask)

    # --- geometry ---

    def geometry_tokens(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor,
                        geometry_features: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per video, the merged geometry features (t·h/2·w/2, LLM width), one per merged vision token: from π³'s
        encoder, or from ``geometry_features`` (Σ t·tp·h·w, C): per frame, per patch in row-major order, videos
        in order (``gsm_feature_source="precomputed"``)."""
        vision = self.config.vision_config
        if self.config.gsm_feature_source == "precomputed":
            tp = int(vision.temporal_patch_size)
            sizes = [int(t * tp * h * w) for t, h, w in video_grid_thw.tolist()]
            if geometry_features is None:
                raise GSMInputError("this model reads precomputed geometry: pass geometry_features")
            if geometry_features.shape[0] != sum(sizes) or geometry_features.shape[-1] != self.config.gsm_feature_dim:
                raise GSMInputError(f"geometry_features {tuple(geometry_features.shape)} do not match the videos "
                                    f"({sum(sizes)} frame patches × {self.config.gsm_feature_dim} features)")
            return [self.geometry_merger(f.reshape(int(t) * tp, int(h * w), -1), (int(t), int(h), int(w)))
                    for f, (t, h, w) in zip(geometry_features.split(sizes), video_grid_thw.tolist(), strict=True)]
        frames = frames_from_qwen_patches(pixel_values_videos, video_grid_thw, patch_size=int(vision.patch_size),
                                          temporal_patch_size=int(vision.temporal_patch_size),
                                          merge_size=int(vision.spatial_merge_size),
                                          source_mean=OFFICIAL_CLIP_MEAN if self.config.gsm_official_clip_mean
                                          else CLIP_MEAN)
        frozen = not any(p.requires_grad for p in self.geometry_encoder.parameters())
        out = []
        for video_frames, grid in zip(frames, video_grid_thw.tolist(), strict=True):
            with torch.no_grad() if frozen else contextlib.nullcontext():
                features = encode_frames(self.geometry_encoder, video_frames)  # (t·tp, h·w, C)
            out.append(self.geometry_merger(features, tuple(grid)))
        return out

    def select_geometry(self, geometry: list[torch.Tensor], video_grid_thw: torch.Tensor,
                        gsm_text_ids: torch.Tensor | None, gsm_text_mask: torch.Tensor | None,
                        second_per_grid_ts: torch.Tensor | None) -> torch.Tensor:
        """Run the GSM: (V, K, H) geometry tokens, one row of question text per video."""
        v = len(geometry)
        if gsm_text_ids is None:
            raise GSMInputError("the GSM needs gsm_text_ids (the question's token ids, one row per video)")
        if gsm_text_ids.shape[0] != v:
            raise GSMInputError(f"gsm_text_ids has {gsm_text_ids.shape[0]} rows for {v} videos (one per video)")
        if gsm_text_mask is None:
            gsm_text_mask = torch.ones_like(gsm_text_ids, dtype=torch.bool)
        empty = (~gsm_text_mask.bool().any(-1)).nonzero().flatten().tolist()
        if empty:
            raise GSMInputError(f"video {empty[0]} has a question with no text tokens")
        vision = self.config.vision_config
        tps = self.config.gsm_tokens_per_second
        tps = float(vision.tokens_per_second if tps is None else tps)
        seconds = (torch.as_tensor(second_per_grid_ts).tolist() if second_per_grid_ts is not None else [1.0] * v)
        keys, key_mask = _pad_rows(geometry)
        positions = torch.ones(3, v, keys.shape[1], dtype=torch.long, device=keys.device)
        for i, grid in enumerate(video_grid_thw.tolist()):
            pos = geometry_positions(tuple(grid), seconds[i], tps, merge_size=int(vision.spatial_merge_size),
                                     device=keys.device)
            positions[:, i, : pos.shape[1]] = pos
        text = self.get_input_embeddings()(gsm_text_ids.to(keys.device))
        return self.gsm(text, gsm_text_mask.to(keys.device), keys, positions, key_mask)

    def get_video_features(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor | None = None,
                           gsm_text_ids: torch.Tensor | None = None, gsm_text_mask: torch.Tensor | None = None,
                           second_per_grid_ts: torch.Tensor | None = None,
                           geometry_features: torch.Tensor | None = None,
                           **kwargs: Any) -> BaseModelOutputWithPooling:
        """Per-video features ``[vision_i ; geo_i]`` (gsm), ``vision_i + geo_i`` (addition) or ``vision_i``."""
        kwargs.pop("return_dict", None)
        out = super().get_video_features(pixel_values_videos, video_grid_thw, return_dict=True, **kwargs)
        strategy = self.config.gsm_strategy
        if strategy == "none":
            return out
        geometry = self.geometry_tokens(pixel_values_videos, video_grid_thw, geometry_features)
        vision_tokens = out.pooler_output
        if strategy == "addition":
            out.pooler_output = tuple(vt + g.to(vt.dtype) for vt, g in zip(vision_tokens, geometry, strict=True))
            return out
        selected = self.select_geometry(geometry, video_grid_thw, gsm_text_ids, gsm_text_mask, second_per_grid_ts)
        # Interleave per video (the reference appended all geometry after all vision tokens, which misplaces
        # them with several videos per sequence: dsr-paper.md M11).
        out.pooler_output = tuple(torch.cat([vt, q.to(vt.dtype)]) for vt, q in zip(vision_tokens, selected,
                                                                                    strict=True))
        return out

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: Any = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                pixel_values: torch.Tensor | None = None, pixel_values_videos: torch.Tensor | None = None,
                image_grid_thw: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None,
                mm_token_type_ids: torch.Tensor | None = None, second_per_grid_ts: torch.Tensor | None = None,
                mm_encoder_outputs: dict | None = None, gsm_text_ids: torch.Tensor | None = None,
                gsm_text_mask: torch.Tensor | None = None, geometry_features: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        mm_encoder_outputs = dict(mm_encoder_outputs or {})
        if pixel_values_videos is not None:
            if mm_encoder_outputs.get("video") is not None:
                raise ValueError("pass either pixel_values_videos or mm_encoder_outputs['video'], not both")
            mm_encoder_outputs["video"] = self.get_video_features(
                pixel_values_videos, video_grid_thw, gsm_text_ids=gsm_text_ids, gsm_text_mask=gsm_text_mask,
                second_per_grid_ts=second_per_grid_ts, geometry_features=geometry_features)
        if pixel_values is not None:
            mm_encoder_outputs["image"] = self.get_image_features(pixel_values, image_grid_thw, return_dict=True)
        if mm_token_type_ids is None and input_ids is not None:
            # HF only computes 3-D positions when token types exist; our rope_index does not read them.
            mm_token_type_ids = torch.zeros_like(input_ids, dtype=torch.int)
        return super().forward(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
            image_grid_thw=image_grid_thw, video_grid_thw=video_grid_thw, mm_token_type_ids=mm_token_type_ids,
            second_per_grid_ts=second_per_grid_ts, mm_encoder_outputs=mm_encoder_outputs or None, **kwargs)


class GSMQwen2_5_VLForConditionalGeneration(Qwen2_5_VLForConditionalGeneration):
    config: GSMQwen2_5_VLConfig
    config_class = GSMQwen2_5_VLConfig

    def __init__(self, config: GSMQwen2_5_VLConfig) -> None:
        Qwen2_5_VLPreTrainedModel.__init__(self, config)
        self.model = GSMQwen2_5_VLModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict | None = None,
        gsm_text_ids: torch.LongTensor | None = None,
        gsm_text_mask: torch.Tensor | None = None,
        geometry_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Qwen2.5-VL's forward plus ``gsm_text_ids (V, Lq)`` / ``gsm_text_mask (V, Lq)``: the question's
        token ids, one row per video, and, for a model with precomputed geometry, ``geometry_features``
        (Σ t·tp·h·w, C) (see ``docs/gsm.md`` for the batch contract)."""
        outputs = self.model(
            input_ids=input_ids, pixel_values=pixel_values, pixel_values_videos=pixel_values_videos,
            image_grid_thw=image_grid_thw, video_grid_thw=video_grid_thw, second_per_grid_ts=second_per_grid_ts,
            mm_token_type_ids=mm_token_type_ids, position_ids=position_ids, attention_mask=attention_mask,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
            mm_encoder_outputs=mm_encoder_outputs, gsm_text_ids=gsm_text_ids, gsm_text_mask=gsm_text_mask,
            geometry_features=geometry_features, **kwargs)
        hidden = outputs[0]
        slice_ = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, slice_, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)


def _register_conversion() -> None:
    own = "|".join(OWN_MODULES)
    mapping = [
        WeightRenaming(r"^visual", "model.visual"),
        WeightRenaming(rf"^model(?!\.(language_model|visual|{own}))", "model.language_model"),
    ]
    register_checkpoint_conversion_mapping("GSMQwen2_5_VLForConditionalGeneration", mapping, overwrite=True)


_register_conversion()
