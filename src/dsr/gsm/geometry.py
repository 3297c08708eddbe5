"""Geometry features for the GSM: π³'s encoder fed with frames rebuilt from Qwen's own video patches.

- Qwen2.5-VL turns a video into rows of ``pixel_values_videos``: one row per 14×14 patch pair (2 frames),
  rows in the order (t, h/2, w/2, 2, 2), features (C, 2, 14, 14), CLIP-normalised. :func:`patchify_frames`
  is our (torchvision-free) version of that and :func:`frames_from_qwen_patches` its exact inverse.
- π³'s encoder is DINOv2-L/14 with 4 registers; we build it from HF's ``Dinov2WithRegistersModel`` and
  remap π³ checkpoint keys onto it (:func:`pi3_to_hf_state_dict`, ``gsm-model.md`` §7).
- :class:`GeometryMerger` groups 2 frames × 2×2 patches of encoder features into one geometry token per
  Qwen merged vision token (the official ``spatial_merger``: RMSNorm → Linear → GELU → Linear).

Pure torch except the two ``*_pi3_encoder`` builders, which import transformers inside.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsr.errors import DsrError
from dsr.gsm.qformer import RMSNorm

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
# The official code un-normalises with this (green 0.4576275: a typo of CLIP's 0.4578275); parity option only.
OFFICIAL_CLIP_MEAN = (0.48145466, 0.4576275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Pi3WeightsError(DsrError):
    """A π³ checkpoint that is missing, unreadable or does not match the encoder's keys/shapes."""


# --- Qwen patches <-> frames --------------------------------------------------------------------------------


def patchify_frames(frames: torch.Tensor, *, patch_size: int = 14, temporal_patch_size: int = 2,
                    merge_size: int = 2) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Qwen2-VL patch rows from normalised frames.

    frames: (T, C, H, W) float, T a multiple of ``temporal_patch_size``, H and W multiples of
    ``patch_size * merge_size``. Returns rows (t·h·w, C·tp·p·p) in Qwen order (t, h/m, w/m, m, m) and the
    grid (t, h, w) in patches.
    """
    n, c, height, width = frames.shape
    tp, p, m = temporal_patch_size, patch_size, merge_size
    if n % tp or height % (p * m) or width % (p * m):
        raise ValueError(f"frames {tuple(frames.shape)} not divisible into {tp}×{p * m}×{p * m} blocks")
    gt, gh, gw = n // tp, height // p, width // p
    x = frames.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (t, h/m, w/m, m, m, C, tp, p, p)
    return x.reshape(gt * gh * gw, c * tp * p * p), (gt, gh, gw)


def unpatchify_frames(rows: torch.Tensor, grid_thw: tuple[int, int, int], *, channels: int = 3,
                      patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2) -> torch.Tensor:
    """Exact inverse of :func:`patchify_frames` for one video: rows → (t·tp, C, h·p, w·p)."""
    gt, gh, gw = (int(v) for v in grid_thw)
    tp, p, m, c = temporal_patch_size, patch_size, merge_size, channels
    x = rows.reshape(gt, gh // m, gw // m, m, m, c, tp, p, p)
    x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8)  # (t, tp, C, h/m, m, p, w/m, m, p)
    return x.reshape(gt * tp, c, gh * p, gw * p)


def renormalise(frames: torch.Tensor, src_mean: tuple[float, ...], src_std: tuple[float, ...],
                dst_mean: tuple[float, ...], dst_std: tuple[float, ...]) -> torch.Tensor:
    """Undo one per-channel normalisation and apply another. frames: (N, C, H, W)."""
    shape = (1, -1, 1, 1)
    sm = torch.tensor(src_mean, dtype=frames.dtype, device=frames.device).view(shape)
    ss = torch.tensor(src_std, dtype=frames.dtype, device=frames.device).view(shape)
    dm = torch.tensor(dst_mean, dtype=frames.dtype, device=frames.device).view(shape)
    ds = torch.tensor(dst_std, dtype=frames.dtype, device=frames.device).view(shape)
    return ((frames * ss + sm) - dm) / ds


def frames_from_qwen_patches(pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor, *,
                             patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2,
                             source_mean: tuple[float, ...] = CLIP_MEAN) -> list[torch.Tensor]:
    """Per video, the ImageNet-normalised frames (t·tp, 3, h·p, w·p) that π³'s encoder reads.

    pixel_values_videos: (Σ t·h·w, 3·tp·p·p) CLIP-normalised Qwen rows; video_grid_thw: (V, 3).
    source_mean: the mean assumed for un-normalising (``OFFICIAL_CLIP_MEAN`` for parity with the official code).
    """
    sizes = [int(t * h * w) for t, h, w in video_grid_thw.tolist()]
    if sum(sizes) != pixel_values_videos.shape[0]:
        raise ValueError(f"video_grid_thw covers {sum(sizes)} patch rows, pixel_values_videos has "
                         f"{pixel_values_videos.shape[0]}")
    out = []
    for rows, grid in zip(pixel_values_videos.split(sizes), video_grid_thw.tolist(), strict=True):
        frames = unpatchify_frames(rows.float(), tuple(grid), patch_size=patch_size,
                                   temporal_patch_size=temporal_patch_size, merge_size=merge_size)
        out.append(renormalise(frames, source_mean, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD))
    return out


# --- merger ---------------------------------------------------------------------------------------------------


def group_for_merger(features: torch.Tensor, grid_thw: tuple[int, int, int], *, temporal_patch_size: int = 2,
                     merge_size: int = 2) -> torch.Tensor:
    """Regroup per-frame patch features into Qwen merged-token order.

    features: (t·tp, h·w, C) encoder patch tokens, row-major (h, w) per frame.
    Returns (t·h/m·w/m, tp·m·m·C): row (t, h', w') concatenates frames (tp), then rows (m), then columns (m).
    """
    gt, gh, gw = (int(v) for v in grid_thw)
    tp, m = temporal_patch_size, merge_size
    c = features.shape[-1]
    x = features.reshape(gt, tp, gh // m, m, gw // m, m, c)
    x = x.permute(0, 2, 4, 1, 3, 5, 6)  # (t, h/m, w/m, tp, m, m, C)
    return x.reshape(gt * (gh // m) * (gw // m), tp * m * m * c)


class GeometryMerger(nn.Module):
    """RMSNorm(tp·m²·C) → Linear → GELU → Linear(→ LLM width): one geometry token per merged vision token."""

    def __init__(self, feature_dim: int, out_dim: int, *, temporal_patch_size: int = 2, merge_size: int = 2,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.temporal_patch_size = temporal_patch_size
        self.merge_size = merge_size
        in_dim = feature_dim * temporal_patch_size * merge_size * merge_size
        self.norm = RMSNorm(in_dim, eps)
        self.fc1 = nn.Linear(in_dim, in_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor, grid_thw: tuple[int, int, int]) -> torch.Tensor:
        """features (t·tp, h·w, C) of one video → (t·h/m·w/m, out_dim)."""
        grouped = group_for_merger(features, grid_thw, temporal_patch_size=self.temporal_patch_size,
                                   merge_size=self.merge_size)
        return self.fc2(self.act(self.fc1(self.norm(grouped.to(self.fc1.weight.dtype)))))


def geometry_positions(grid_thw: tuple[int, int, int], second_per_grid_t: float, tokens_per_second: float, *,
                       merge_size: int = 2, device: torch.device | None = None) -> torch.Tensor:
    """(3, t·h/m·w/m) long M-RoPE positions (⌊t·s·tps⌋, h, w) of one video's geometry tokens."""
    gt, gh, gw = int(grid_thw[0]), int(grid_thw[1]) // merge_size, int(grid_thw[2]) // merge_size
    t = (torch.arange(gt, device=device, dtype=torch.float64) * float(second_per_grid_t) * tokens_per_second).long()
    tt, hh, ww = torch.meshgrid(t, torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
    return torch.stack([tt, hh, ww]).reshape(3, -1)


# --- π³ encoder -------------------------------------------------------------------------------------------------


def pi3_encoder_config(**overrides: Any) -> dict:
    """π³'s encoder (dinov2_vitl14_reg) as ``Dinov2WithRegistersConfig`` kwargs; overrides for tiny tests.

    ``intermediate_size`` may be given; it becomes ``mlp_ratio`` (the HF config has no MLP-width field and
    would silently ignore it).
    """
    cfg: dict[str, Any] = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4,
                               patch_size=14, image_size=518, num_register_tokens=4, layerscale_value=1.0,
                               layer_norm_eps=1e-6, hidden_act="gelu")
    cfg.update(overrides)
    return _with_mlp_ratio(cfg)


def _with_mlp_ratio(config: Mapping[str, Any]) -> dict:
    cfg = dict(config)
    width = cfg.pop("intermediate_size", None)
    if width is not None:
        if int(width) % int(cfg["hidden_size"]):
            raise Pi3WeightsError(f"π³ MLP width {width} is not a multiple of the encoder width {cfg['hidden_size']}")
        cfg["mlp_ratio"] = int(width) // int(cfg["hidden_size"])
    return cfg


def build_pi3_encoder(config: Mapping[str, Any]) -> nn.Module:
    """An (untrained) HF ``Dinov2WithRegistersModel`` with π³'s encoder shape."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**_with_mlp_ratio(config)))


def encode_frames(encoder: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """Final-LayerNorm'd patch tokens (π³'s ``x_norm_patchtokens``): frames (N, 3, H, W) → (N, H/14·W/14, C)."""
    dtype = next(encoder.parameters()).dtype
    out = encoder(pixel_values=frames.to(dtype)).last_hidden_state
    skip = 1 + int(encoder.config.num_register_tokens)  # CLS + registers
    return out[:, skip:]


_PI3_TOP = {
    "cls_token": "embeddings.cls_token",
    "pos_embed": "embeddings.position_embeddings",
    "register_tokens": "embeddings.register_tokens",
    "mask_token": "embeddings.mask_token",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_PI3_BLOCK = {
    "attn.proj": "attention.o_proj",
    "norm1": "norm1",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
}


def pi3_entry_to_hf(key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    """One π³ encoder tensor (key without its ``encoder.`` prefix, DINOv2 names) → its
    ``Dinov2WithRegistersModel`` tensor(s): the fused ``attn.qkv`` splits in three along dim 0."""
    if key in _PI3_TOP:
        return {_PI3_TOP[key]: value}
    parts = key.split(".")
    if parts[0] != "blocks" or len(parts) < 4 or not parts[1].isdigit():
        raise Pi3WeightsError(f"π³ encoder key {key!r} has no DINOv2-with-registers counterpart")
    i, rest = parts[1], ".".join(parts[2:])
    head = f"encoder.layer.{i}."
    if rest in ("attn.qkv.weight", "attn.qkv.bias"):
        q, kk, v = value.chunk(3, dim=0)
        kind = rest.rsplit(".", 1)[1]
        return {f"{head}attention.q_proj.{kind}": q, f"{head}attention.k_proj.{kind}": kk,
                f"{head}attention.v_proj.{kind}": v}
    for src, dst in _PI3_BLOCK.items():
        if rest == src or rest.startswith(src + "."):
            return {head + dst + rest[len(src):]: value}
    raise Pi3WeightsError(f"π³ encoder key {key!r} has no DINOv2-with-registers counterpart")


def pi3_to_hf_state_dict(state: Mapping[str, torch.Tensor], prefix: str = "encoder.") -> dict[str, torch.Tensor]:
    """Map a π³ (or Pi3X) checkpoint onto ``Dinov2WithRegistersModel`` keys.

    Keeps only keys that *start with* ``prefix`` (Pi3X's ``depth_encoder.*`` must not match, a defect of the
    reference's substring filter). Fused ``attn.qkv`` is split in three along dim 0. Unknown keys raise.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(prefix):
            try:
                out.update(pi3_entry_to_hf(key[len(prefix):], value))
            except Pi3WeightsError:
                raise Pi3WeightsError(f"π³ checkpoint key {key!r} has no DINOv2-with-registers counterpart") from None
    if not out:
        raise Pi3WeightsError(f"no keys starting with {prefix!r} in the π³ checkpoint")
    return out


def load_pi3_encoder_weights(encoder: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "π³") -> None:
    """Strictly load a π³-format state dict into ``encoder``; the only key allowed to be absent is the
    (unused, deleted in π³) ``embeddings.mask_token``. Any other mismatch → one-line :class:`Pi3WeightsError`."""
    mapped = pi3_to_hf_state_dict(state)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(mapped) - {"embeddings.mask_token"})
    unexpected = sorted(set(mapped) - set(own))
    bad_shape = sorted(k for k in set(own) & set(mapped) if tuple(own[k].shape) != tuple(mapped[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
    if bad_shape:
        k = bad_shape[0]
        problems.append(f"{len(bad_shape)} shape mismatches (first: {k} {tuple(mapped[k].shape)} vs "
                        f"{tuple(own[k].shape)})")
    if problems:
        raise Pi3WeightsError(f"{source}: π³ encoder keys do not match the configured encoder: "
                              + "; ".join(problems))
    if "embeddings.mask_token" not in mapped:
        mapped["embeddings.mask_token"] = torch.zeros_like(own["embeddings.mask_token"])
    encoder.load_state_dict(mapped, strict=True)


def read_pi3_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read π³ weights from a ``.safetensors`` file or a directory holding ``model.safetensors``."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise Pi3WeightsError(f"{p}: π³ checkpoint not found (expected model.safetensors)")
    from safetensors.torch import load_file

    try:
        return load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types
        raise Pi3WeightsError(f"{p}: cannot read π³ checkpoint ({exc.__class__.__name__}: {exc})") from None


def infer_pi3_config(state: Mapping[str, torch.Tensor], *, num_heads: int | None = None,
                     prefix: str = "encoder.") -> dict:
    """Encoder shape read off a π³ checkpoint (width, depth, registers, pos-embed size, MLP width).

    The head count is not visible in the weights: DINOv2 uses 64-wide heads (16 for ViT-L), which is the
    default; pass ``num_heads`` for other encoders.
    """
    try:
        width = int(state[prefix + "cls_token"].shape[-1])
        depth = 1 + max(int(k[len(prefix):].split(".")[1]) for k in state if k.startswith(prefix + "blocks."))
        registers = int(state[prefix + "register_tokens"].shape[1])
        grid = round((state[prefix + "pos_embed"].shape[1] - 1) ** 0.5)
        patch = int(state[prefix + "patch_embed.proj.weight"].shape[-1])
        mlp = int(state[prefix + "blocks.0.mlp.fc1.weight"].shape[0])
    except (KeyError, ValueError) as exc:
        raise Pi3WeightsError(f"π³ checkpoint lacks the encoder keys needed to read its shape ({exc})") from None
    heads = num_heads or (width // 64 if width % 64 == 0 else 0)
    if heads <= 0 or width % heads:
        raise Pi3WeightsError(f"cannot infer the π³ encoder's head count for width {width}; pass num_heads")
    return pi3_encoder_config(hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                              intermediate_size=mlp, patch_size=patch, image_size=grid * patch,
                              num_register_tokens=registers)


def hf_to_pi3_state_dict(state: Mapping[str, torch.Tensor], prefix: str = "encoder.") -> dict[str, torch.Tensor]:
    """Inverse of :func:`pi3_to_hf_state_dict` (fuses q/k/v back into ``attn.qkv``); drops ``mask_token``.

    Used to write π³-format checkpoints for tests and tiny end-to-end runs.
    """
    top = {v: k for k, v in _PI3_TOP.items()}
    block = {v: k for k, v in _PI3_BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "embeddings.mask_token":
            continue
        if key in top:
            out[prefix + top[key]] = value
            continue
        parts = key.split(".")
        i, rest = parts[2], ".".join(parts[3:])
        head = f"{prefix}blocks.{i}."
        if rest.startswith("attention.q_proj."):
            kind = rest.rsplit(".", 1)[1]
            base = f"encoder.layer.{i}.attention."
            out[f"{head}attn.qkv.{kind}"] = torch.cat([state[base + f"{n}_proj.{kind}"] for n in "qkv"])
            continue
        if rest.startswith(("attention.k_proj.", "attention.v_proj.")):
            continue
        for dst, src in block.items():
            if rest == dst or rest.startswith(dst + "."):
                out[head + src + rest[len(dst):]] = value
                break
        else:
            raise KeyError(key)
    return out
