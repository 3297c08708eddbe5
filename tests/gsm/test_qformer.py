"""Q-Former blocks: M-RoPE against a naive computation, masking, GQA, gradients, per-video isolation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.gsm.qformer import (
    CrossAttention,
    GeometrySelectionModule,
    GSMConfig,
    apply_rotary,
    mrope_cos_sin,
    rope_inv_freq,
)

CFG = GSMConfig(hidden_size=32, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=40, num_queries=5,
                mrope_section=(2, 1, 1), rope_theta=10000.0)


def naive_mrope(x: torch.Tensor, pos: torch.Tensor, theta: float, section: tuple[int, ...]) -> torch.Tensor:
    """Rotate each (j, j + D/2) pair of x (N, D) by pos[axis(j), n] · θ^(−2j/D), axis by band, in float64."""
    n, d = x.shape
    out = x.clone().double()
    bounds = [sum(section[:i + 1]) for i in range(len(section))]
    for tok in range(n):
        for j in range(d // 2):
            axis = next(i for i, b in enumerate(bounds) if j < b) % 3
            angle = float(pos[axis, tok]) * theta ** (-2 * j / d)
            a, b = float(x[tok, j]), float(x[tok, j + d // 2])
            out[tok, j] = a * math.cos(angle) - b * math.sin(angle)
            out[tok, j + d // 2] = b * math.cos(angle) + a * math.sin(angle)
    return out


def test_mrope_matches_naive_rotation() -> None:
    torch.manual_seed(0)
    pos = torch.tensor([[0, 3, 7, 2], [1, 1, 5, 0], [4, 0, 2, 9]])  # (3, N)
    x = torch.randn(4, 8)
    cos, sin = mrope_cos_sin(pos[:, None], rope_inv_freq(8, 100.0), (2, 1, 1))
    got = apply_rotary(x[None, None], cos, sin)[0, 0]
    torch.testing.assert_close(got.double(), naive_mrope(x, pos, 100.0, (2, 1, 1)), atol=1e-5, rtol=0)


def test_mrope_with_equal_axes_is_plain_rope() -> None:
    pos = torch.arange(6)
    cos, sin = mrope_cos_sin(pos.expand(3, 1, -1), rope_inv_freq(8, 10000.0), (2, 1, 1))
    freqs = pos[:, None].float() * rope_inv_freq(8, 10000.0)
    emb = torch.cat([freqs, freqs], -1)
    torch.testing.assert_close(cos[0], emb.cos())
    torch.testing.assert_close(sin[0], emb.sin())


def _rope(n: int, b: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return mrope_cos_sin(torch.arange(n).expand(3, b, -1), rope_inv_freq(8, 10000.0), (2, 1, 1))


@settings(max_examples=15, deadline=None)
@given(n_valid=st.integers(1, 6), seed=st.integers(0, 1000))
def test_masked_keys_do_not_change_output(n_valid: int, seed: int) -> None:
    torch.manual_seed(seed)
    attn = CrossAttention(CFG).eval()
    q = torch.randn(1, 5, 32)
    k = torch.randn(1, 7, 32)
    mask = torch.zeros(1, 7, dtype=torch.bool)
    mask[0, :n_valid] = True
    base = attn(q, k, mask, _rope(5), _rope(7))
    k2 = k.clone()
    k2[0, n_valid:] = torch.randn(7 - n_valid, 32) * 100
    torch.testing.assert_close(attn(q, k2, mask, _rope(5), _rope(7)), base, atol=0, rtol=0)


def test_gqa_repeats_each_kv_head_for_its_query_group() -> None:
    torch.manual_seed(0)
    attn = CrossAttention(CFG).eval()
    q, k = torch.randn(1, 5, 32), torch.randn(1, 7, 32)
    mask = torch.ones(1, 7, dtype=torch.bool)
    # Zero KV head 1's value projection: query heads 2, 3 (its group) output zero, heads 0, 1 do not.
    with torch.no_grad():
        attn.v_proj.weight[8:16] = 0
        attn.v_proj.bias[8:16] = 0
        attn.o_proj.weight.copy_(torch.eye(32))
    out = attn(q, k, mask, _rope(5), _rope(7)).view(1, 5, 4, 8)
    assert torch.all(out[:, :, 2:] == 0)
    assert torch.all(out[:, :, :2].abs().sum(-1) > 0)


def test_gsm_output_shape_gradients_and_init() -> None:
    torch.manual_seed(0)
    gsm = GeometrySelectionModule(CFG)
    assert abs(float(gsm.queries.detach().std()) - 0.02) < 0.01
    text, tmask = torch.randn(2, 6, 32), torch.ones(2, 6, dtype=torch.bool)
    geo, gmask = torch.randn(2, 9, 32), torch.ones(2, 9, dtype=torch.bool)
    gpos = torch.randint(0, 5, (3, 2, 9))
    out = gsm(text, tmask, geo, gpos, gmask)
    assert out.shape == (2, 5, 32)
    out.sum().backward()
    assert gsm.queries.grad is not None and gsm.queries.grad.abs().sum() > 0
    assert all(p.grad is not None for p in gsm.qformer1.parameters())


def test_per_video_isolation_and_padding_invariance() -> None:
    torch.manual_seed(1)
    gsm = GeometrySelectionModule(CFG).eval()
    text = torch.randn(3, 6, 32)
    tmask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=torch.bool)
    geo = torch.randn(3, 9, 32)
    gmask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 9], dtype=torch.bool)
    gpos = torch.randint(0, 5, (3, 3, 9))
    base = gsm(text, tmask, geo, gpos, gmask)
    text2, geo2 = text.clone(), geo.clone()
    text2[2] += 5
    geo2[2] -= 3  # perturb video 2 only
    out = gsm(text2, tmask, geo2, gpos, gmask)
    torch.testing.assert_close(out[:2], base[:2], atol=0, rtol=0)
    assert not torch.allclose(out[2], base[2])
    # Video 1 alone, without padding, gives the same tokens as in the padded batch.
    alone = gsm(text[1:2, :4], tmask[1:2, :4], geo[1:2, :5], gpos[:, 1:2, :5], gmask[1:2, :5])
    torch.testing.assert_close(alone[0], base[1], atol=1e-5, rtol=1e-5)


def test_empty_question_row_raises() -> None:
    gsm = GeometrySelectionModule(CFG)
    with pytest.raises(ValueError, match="question token"):
        gsm(torch.randn(1, 3, 32), torch.zeros(1, 3, dtype=torch.bool), torch.randn(1, 4, 32),
            torch.zeros(3, 1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool))


def test_config_checks_and_reference_defaults() -> None:
    with pytest.raises(ValueError, match="mrope_section"):
        GSMConfig(hidden_size=32, num_heads=4, num_kv_heads=2, head_dim=8, mrope_section=(16, 24, 24))
    ref = GSMConfig()
    assert (ref.num_queries, ref.hidden_size, ref.num_kv_heads, ref.mlp_dim) == (32, 3584, 4, 18944)
