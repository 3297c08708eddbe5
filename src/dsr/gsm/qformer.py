"""The Geometry Selection Module: two Q-Formers that turn a question and a video's geometry into K tokens.

Pure torch (no transformers import), so the core survives library upgrades (``gsm-model.md`` §9.1).

Data flow (``dsr-paper.md`` §12.1): K learnable queries → Q-Former 1 cross-attends to the question's
token embeddings (the *semantic condenser*) → Q-Former 2 cross-attends to the video's geometry tokens (the
*relevant-geometry selector*) → RMSNorm → K geometry tokens at LLM width.

Each Q-Former is a stack of pre-norm blocks: ``q += o_proj(attn(q_proj(norm_q(q)), k/v_proj(norm_kv(x))))``
then ``q += mlp(norm_mlp(q))``. Attention has the LLM's shape (GQA, q/k/v bias, o_proj without bias) and
multimodal rotary positions (M-RoPE: the head dimension's frequency bands are split into temporal / height /
width sections, each rotated by its own position axis).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GSMConfig:
    """Shapes of the GSM. Defaults are the reference (Qwen2.5-VL-7B LLM attention shape, one block each).

    hidden_size: LLM width (the input/output width of the module).
    mrope_section: frequency bands per position axis (t, h, w); must sum to head_dim / 2.
    shared_norm: parity with the official code, where one RMSNorm normalises both queries and keys.
    """

    hidden_size: int = 3584
    num_heads: int = 28
    num_kv_heads: int = 4
    head_dim: int = 128
    mlp_dim: int = 18944
    num_queries: int = 32
    qformer1_layers: int = 1
    qformer2_layers: int = 1
    mrope_section: tuple[int, int, int] = (16, 24, 24)
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    attention_dropout: float = 0.0
    shared_norm: bool = False
    query_init_std: float = 0.02

    def __post_init__(self) -> None:
        if sum(self.mrope_section) * 2 != self.head_dim:
            raise ValueError(f"sum(mrope_section)={sum(self.mrope_section)} must equal head_dim/2={self.head_dim // 2}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}")
        if self.num_queries < 1 or self.qformer1_layers < 0 or self.qformer2_layers < 1:
            raise ValueError("need num_queries >= 1, qformer1_layers >= 0 and qformer2_layers >= 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mrope_section"] = list(self.mrope_section)
        return d


# --- multimodal rotary positions -------------------------------------------------------------------------


def rope_inv_freq(head_dim: int, theta: float) -> torch.Tensor:
    """(head_dim/2,) float32 inverse frequencies of standard RoPE."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)).float()


def mrope_cos_sin(
    positions: torch.Tensor, inv_freq: torch.Tensor, section: tuple[int, ...] | list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for multimodal RoPE.

    positions: (3, B, N) int, the (t, h, w) position of each token.
    inv_freq: (D/2,) float. section: band sizes, summing to D/2; band i rotates with axis i % 3.
    Returns cos, sin: (B, N, D) float32, laid out for :func:`apply_rotary` (half-split convention).
    """
    freqs = positions[..., None].float() * inv_freq.to(positions.device).float()  # (3, B, N, D/2)
    bands = freqs.split(list(section), dim=-1)
    freqs = torch.cat([band[i % 3] for i, band in enumerate(bands)], dim=-1)  # (B, N, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (B, N, D)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x: (B, heads, N, D) by cos/sin: (B, N, D)."""
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)
    return x * cos + _rotate_half(x) * sin


# --- blocks ------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32 (as Qwen's)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)), all three with bias (the official ``Qwen2_5_VLMLP(bias=True)``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=True)
        self.up_proj = nn.Linear(dim, hidden, bias=True)
        self.down_proj = nn.Linear(hidden, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class CrossAttention(nn.Module):
    """Non-causal GQA cross-attention with M-RoPE on queries and keys and an additive padding mask."""

    def __init__(self, cfg: GSMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.num_heads * hd, bias=True)
        self.k_proj = nn.Linear(d, cfg.num_kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(d, cfg.num_kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(cfg.num_heads * hd, d, bias=False)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        key_mask: torch.Tensor,
        query_rope: tuple[torch.Tensor, torch.Tensor],
        key_rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """queries (B, K, d), keys (B, N, d), key_mask (B, N) bool (True = attend) → (B, K, d)."""
        cfg = self.cfg
        b, k, _ = queries.shape
        n = keys.shape[1]
        q = self.q_proj(queries).view(b, k, cfg.num_heads, cfg.head_dim).transpose(1, 2)  # (B, heads, K, hd)
        kk = self.k_proj(keys).view(b, n, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)  # (B, kv, N, hd)
        v = self.v_proj(keys).view(b, n, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        q = apply_rotary(q, *query_rope)
        kk = apply_rotary(kk, *key_rope)
        rep = cfg.num_heads // cfg.num_kv_heads
        kk = kk.repeat_interleave(rep, dim=1)  # (B, heads, N, hd): GQA, KV head j serves query heads j*rep..
        v = v.repeat_interleave(rep, dim=1)
        scores = (q @ kk.transpose(-1, -2)).float() * cfg.head_dim**-0.5  # (B, heads, K, N)
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        probs = scores.softmax(dim=-1).to(v.dtype)
        probs = F.dropout(probs, p=cfg.attention_dropout, training=self.training)
        out = (probs @ v).transpose(1, 2).reshape(b, k, cfg.num_heads * cfg.head_dim)
        return self.o_proj(out)


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: q += attn(norm_q(q), norm_kv(x)); q += mlp(norm_mlp(q))."""

    def __init__(self, cfg: GSMConfig) -> None:
        super().__init__()
        self.query_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        # Official code normalises keys with the query norm; we default to a separate one (parity flag).
        self.key_norm = None if cfg.shared_norm else RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = CrossAttention(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.mlp_dim)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        key_mask: torch.Tensor,
        query_rope: tuple[torch.Tensor, torch.Tensor],
        key_rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        key_norm = self.key_norm if self.key_norm is not None else self.query_norm
        queries = queries + self.attn(self.query_norm(queries), key_norm(keys), key_mask, query_rope, key_rope)
        return queries + self.mlp(self.mlp_norm(queries))


class QFormer(nn.Module):
    """A stack of :class:`CrossAttentionBlock` over one key set."""

    def __init__(self, cfg: GSMConfig, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([CrossAttentionBlock(cfg) for _ in range(num_layers)])

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor,
                query_rope: tuple[torch.Tensor, torch.Tensor],
                key_rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, keys, key_mask, query_rope, key_rope)
        return queries


def text_positions(text_mask: torch.Tensor) -> torch.Tensor:
    """(3, B, L) long positions 0..n−1 over the valid tokens of each row (any padding side)."""
    pos = (text_mask.long().cumsum(-1) - 1).clamp(min=0)
    return pos[None].expand(3, -1, -1)


class GeometrySelectionModule(nn.Module):
    """K queries → Q-Former 1 over question tokens → Q-Former 2 over geometry tokens → RMSNorm."""

    def __init__(self, cfg: GSMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, cfg.hidden_size) * cfg.query_init_std)
        self.qformer1 = QFormer(cfg, cfg.qformer1_layers)
        self.qformer2 = QFormer(cfg, cfg.qformer2_layers)
        self.out_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        # inv_freq is recomputed per call rather than kept as a buffer: HF loads models on the meta device and
        # would leave a non-persistent buffer uninitialised.

    def forward(
        self,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        geo_keys: torch.Tensor,
        geo_positions: torch.Tensor,
        geo_mask: torch.Tensor,
    ) -> torch.Tensor:
        """One row per video.

        text_embeds: (V, Lt, d) question token embeddings; text_mask: (V, Lt) bool, True = real token.
        geo_keys: (V, Lg, d) geometry tokens; geo_positions: (3, V, Lg) long (t, h, w); geo_mask: (V, Lg) bool.
        Returns (V, K, d) geometry tokens.
        """
        text_mask, geo_mask = text_mask.bool(), geo_mask.bool()
        if not bool(text_mask.any(-1).all()) or not bool(geo_mask.any(-1).all()):
            raise ValueError("every video needs at least one question token and one geometry token")
        v = text_embeds.shape[0]
        k = self.cfg.num_queries
        section = self.cfg.mrope_section
        inv_freq = rope_inv_freq(self.cfg.head_dim, self.cfg.rope_theta).to(text_embeds.device)
        query_pos = torch.arange(k, device=text_embeds.device)[None, None].expand(3, v, k)
        query_rope = mrope_cos_sin(query_pos, inv_freq, section)
        queries = self.queries.to(text_embeds.dtype)[None].expand(v, -1, -1)  # (V, K, d)
        if self.cfg.qformer1_layers:
            text_rope = mrope_cos_sin(text_positions(text_mask), inv_freq, section)
            queries = self.qformer1(queries, text_embeds, text_mask, query_rope, text_rope)
        geo_rope = mrope_cos_sin(geo_positions, inv_freq, section)
        queries = self.qformer2(queries, geo_keys.to(queries.dtype), geo_mask, query_rope, geo_rope)
        return self.out_norm(queries)
