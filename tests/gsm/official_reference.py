"""An independent re-statement of the official GSM graph (``qwen_vl_spatial.py`` + DINOv2), for tests only.

Module and attribute names follow the official code, so ``state_dict()`` keys *are* the official key layout
(``spatial_encoder.blocks.0.attn.qkv.weight``, ``q_former_1.norm1.weight``, ``spatial_merger.mlp.0.weight``,
``q_former_queries``, ...). The forward follows the official computation step by step, unbatched like the
original (one video, one question): its own un-patchify, the official CLIP-mean constant, DINOv2's own
attention / LayerScale / position interpolation, one norm for queries and keys, the hard-coded 32 queries, the
``× 2`` temporal scale and the ``// 4`` merged-token mask. Nothing here imports dsr's model code, so comparing
dsr's converted model against it is not circular.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

OFFICIAL_BEFORE_MEAN = (0.48145466, 0.4576275, 0.40821073)  # as written in the official code
OFFICIAL_BEFORE_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NUM_QUERIES = 32  # hard-coded in the official code


class RefRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


# --- DINOv2 ViT with registers (the official spatial_encoder) ---------------------------------------------


class RefPatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)


class RefDinoAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // self.heads) ** -0.5, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class RefLayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class RefDinoMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class RefDinoBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefDinoAttention(dim, heads)
        self.ls1 = RefLayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefDinoMlp(dim, mlp)
        self.ls2 = RefLayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class RefDinoV2(nn.Module):
    """dinov2_vitl14_reg's graph at any size (``mask_token`` deleted, as the official tower does)."""

    def __init__(self, dim: int, depth: int, heads: int, mlp: int, image_size: int, patch: int = 14,
                 registers: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.patch_embed = RefPatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (image_size // patch) ** 2, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim))
        self.blocks = nn.ModuleList([RefDinoBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def interpolate_pos_encoding(self, n_patches: int, height: int, width: int) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        if n_patches == n and height == width:
            return self.pos_embed
        side = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        # the _reg variants: antialiased bicubic to the exact patch grid (interpolate_offset 0)
        grid = F.interpolate(grid, size=(height // self.patch, width // self.patch), mode="bicubic",
                             antialias=True)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, grid.shape[1])], dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 3, H, W) → x_norm_patchtokens (B, H/14·W/14, dim)."""
        b, _, h, w = frames.shape
        x = self.patch_embed(frames)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self.interpolate_pos_encoding(x.shape[1] - 1, h, w)
        x = torch.cat([x[:, :1], self.register_tokens.expand(b, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1 + self.register_tokens.shape[1]:]


# --- Q-Formers and the spatial tower ---------------------------------------------------------------------------


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RefRotary(nn.Module):
    """The LLM's rotary embedding, per axis: cos/sin (3, L, head_dim) for positions (3, L)."""

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions[..., None].float() * self.inv_freq  # (3, L, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def _apply_mrope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, section: list[int]) -> torch.Tensor:
    """x (heads, L, hd); cos/sin (3, L, hd): band i of the doubled section list takes axis i % 3."""
    sec = section * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec, dim=-1))], dim=-1)[None]
    sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec, dim=-1))], dim=-1)[None]
    return x * cos + _rotate_half(x) * sin


class RefCrossAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, section: list[int]) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.section = section
        self.q_proj = nn.Linear(hidden, heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(heads * self.head_dim, hidden, bias=False)

    def forward(self, query: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                q_rope: tuple[torch.Tensor, torch.Tensor], k_rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        lq, lk = query.shape[0], target.shape[0]
        q = self.q_proj(query).view(lq, -1, self.head_dim).transpose(0, 1)
        k = self.k_proj(target).view(lk, -1, self.head_dim).transpose(0, 1)
        v = self.v_proj(target).view(lk, -1, self.head_dim).transpose(0, 1)
        q = _apply_mrope(q, *q_rope, self.section)
        k = _apply_mrope(k, *k_rope, self.section)
        rep = self.heads // self.kv_heads
        k = k[:, None].expand(-1, rep, -1, -1).reshape(self.heads, lk, self.head_dim)
        v = v[:, None].expand(-1, rep, -1, -1).reshape(self.heads, lk, self.head_dim)
        w = q @ k.transpose(1, 2) / math.sqrt(self.head_dim) + mask[None]
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        return self.o_proj((w @ v).transpose(0, 1).reshape(lq, -1))


class RefMlp(nn.Module):
    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=True)
        self.up_proj = nn.Linear(hidden, inter, bias=True)
        self.down_proj = nn.Linear(inter, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class RefQFormer(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, inter: int, section: list[int]) -> None:
        super().__init__()
        self.norm1 = RefRMSNorm(hidden)
        self.norm2 = RefRMSNorm(hidden)
        self.attn = RefCrossAttention(hidden, heads, kv_heads, section)
        self.mlp = RefMlp(hidden, inter)

    def forward(self, query: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                q_rope: tuple[torch.Tensor, torch.Tensor], k_rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        query = query + self.attn(self.norm1(query), self.norm1(target), mask, q_rope, k_rope)  # one shared norm
        return query + self.mlp(self.norm2(query))


class RefPatchMerger(nn.Module):
    """Qwen2_5_VLPatchMerger(dim, context_dim, spatial_merge_size=1): RMSNorm → Linear → GELU → Linear."""

    def __init__(self, dim: int, context_dim: int) -> None:
        super().__init__()
        self.ln_q = RefRMSNorm(context_dim)
        self.mlp = nn.Sequential(nn.Linear(context_dim, context_dim), nn.GELU(), nn.Linear(context_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_q(x))


class RefSpatialTower(nn.Module):
    """The geometry branch the official vision tower adds (its Qwen ViT part is stock Qwen2.5-VL)."""

    def __init__(self, *, hidden: int, heads: int, kv_heads: int, inter: int, section: list[int], theta: float,
                 enc_dim: int, enc_depth: int, enc_heads: int, enc_mlp: int, enc_image: int,
                 merge: int = 2, temporal: int = 2, patch: int = 14) -> None:
        super().__init__()
        self.spatial_encoder = RefDinoV2(enc_dim, enc_depth, enc_heads, enc_mlp, enc_image, patch)
        self.spatial_merger = RefPatchMerger(hidden, enc_dim * 8)
        self.q_former_1 = RefQFormer(hidden, heads, kv_heads, inter, section)
        self.q_former_2 = RefQFormer(hidden, heads, kv_heads, inter, section)
        self.q_former_norm = RefRMSNorm(hidden)
        self.q_former_queries = nn.Parameter(torch.randn(NUM_QUERIES, hidden))
        self.rotary = RefRotary(hidden // heads, theta)
        self.merge, self.temporal, self.patch = merge, temporal, patch

    def frames(self, rows: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        t, h, w = grid
        m, tp, p = self.merge, self.temporal, self.patch
        x = rows.view(t, h // m, w // m, m, m, 3, tp, p, p).permute(0, 6, 5, 1, 3, 7, 2, 4, 8)
        x = x.reshape(t * tp, 3, h * p, w * p)
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (OFFICIAL_BEFORE_MEAN, OFFICIAL_BEFORE_STD))
        x = x * std + mean
        return (x - torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)) / torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)

    def forward(self, rows: torch.Tensor, grid: tuple[int, int, int], text_states: torch.Tensor,
                second_per_grid_t: float) -> torch.Tensor:
        """One video's patch rows and its question's token embeddings (Lt, hidden) → (32, hidden)."""
        t, h, w = grid
        m = self.merge
        feats = self.spatial_encoder(self.frames(rows, grid))  # (2t, h·w, C)
        feats = feats.view(t, 2, h // m, m, w // m, m, feats.shape[-1]).permute(0, 2, 4, 1, 3, 5, 6)
        keys = self.spatial_merger(feats.reshape(t * (h // m) * (w // m), -1))
        # positions: queries 0..31, text 0..Lt-1 (all axes), geometry (⌊t·s·2⌋, h, w)
        qpos = torch.arange(NUM_QUERIES)[None].expand(3, -1)
        tpos = torch.arange(text_states.shape[0])[None].expand(3, -1)
        tt = (torch.arange(t).view(-1, 1).expand(-1, (h // m) * (w // m)).float() * second_per_grid_t * 2).long()
        hh = torch.arange(h // m).view(1, -1, 1).expand(t, -1, w // m).flatten()
        ww = torch.arange(w // m).view(1, 1, -1).expand(t, h // m, -1).flatten()
        gpos = torch.stack([tt.flatten(), hh, ww])
        mask1 = torch.zeros(NUM_QUERIES, text_states.shape[0])
        mask2 = torch.zeros(NUM_QUERIES, (t * h * w) // 4)
        q = self.q_former_1(self.q_former_queries, text_states, mask1, self.rotary(qpos), self.rotary(tpos))
        q = self.q_former_2(q, keys, mask2, self.rotary(qpos), self.rotary(gpos))
        return self.q_former_norm(q)


def randomise_(module: nn.Module, seed: int, scale: float = 0.2) -> nn.Module:
    """Every parameter random (norm and LayerScale weights around 1), so a swapped or dropped tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            ones = name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "ln_q.weight", "gamma"))
            p.copy_(1.0 + noise if ones else noise)
    return module


def official_positions(ids: list[int], grid: tuple[int, int, int], second_per_grid_t: float, *, video_token: int,
                       tokens_per_second: float = 2.0, merge: int = 2) -> torch.Tensor:
    """(3, L) M-RoPE positions of one single-video sequence by transformers 4.51's Qwen2.5-VL rule (what the
    official code ran): text counts on from ``max(previous) + 1``; the video's t·h·w/merge² placeholders get
    ``(⌊t·s·tps⌋, h, w)`` + start; the official code's 32 extra placeholders fall into the text after them."""
    t, h, w = grid[0], grid[1] // merge, grid[2] // merge
    first = ids.index(video_token)
    chunks = [torch.arange(first)[None].expand(3, -1)]
    start = first
    tt = (torch.arange(t).view(-1, 1).expand(-1, h * w).float() * second_per_grid_t * tokens_per_second).long()
    hh = torch.arange(h).view(1, -1, 1).expand(t, -1, w).flatten()
    ww = torch.arange(w).view(1, 1, -1).expand(t, h, -1).flatten()
    chunks.append(torch.stack([tt.flatten(), hh, ww]) + start)
    rest = len(ids) - first - t * h * w
    nxt = int(chunks[-1].max()) + 1
    chunks.append(torch.arange(nxt, nxt + rest)[None].expand(3, -1))
    return torch.cat(chunks, dim=1)
