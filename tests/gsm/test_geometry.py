"""Frames from Qwen patches, the merger regrouping, geometry positions and the π³ key mapping."""

from __future__ import annotations

import pytest
import torch

from dsr.gsm.geometry import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    GeometryMerger,
    Pi3WeightsError,
    build_pi3_encoder,
    encode_frames,
    frames_from_qwen_patches,
    geometry_positions,
    group_for_merger,
    infer_pi3_config,
    load_pi3_encoder_weights,
    patchify_frames,
    pi3_to_hf_state_dict,
    renormalise,
)
from dsr.gsm.tiny import tiny_pi3_config

from .official_reference import RefDinoV2, randomise_


def test_patchify_matches_qwen_row_layout_entrywise() -> None:
    torch.manual_seed(0)
    frames = torch.randn(4, 3, 56, 84)  # T=4 → t=2; 4×6 patches
    rows, grid = patchify_frames(frames)
    assert grid == (2, 4, 6) and rows.shape == (48, 3 * 2 * 14 * 14)
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):  # Qwen order: rows (t, h/2, w/2, 2, 2), features (C, 2, 14, 14)
        t, hb, wb, mh, mw = (int(torch.randint(n, (1,), generator=gen)) for n in (2, 2, 3, 2, 2))
        c, tt, py, px = (int(torch.randint(n, (1,), generator=gen)) for n in (3, 2, 14, 14))
        r = (((t * 2 + hb) * 3 + wb) * 2 + mh) * 2 + mw
        f = ((c * 2 + tt) * 14 + py) * 14 + px
        assert rows[r, f] == frames[t * 2 + tt, c, (hb * 2 + mh) * 14 + py, (wb * 2 + mw) * 14 + px]


def test_frames_from_qwen_patches_round_trip_exact_per_video() -> None:
    torch.manual_seed(0)
    vids = [torch.randn(4, 3, 56, 84), torch.randn(2, 3, 28, 56)]  # two sizes in one batch
    patched = [patchify_frames(v) for v in vids]
    pixel_values = torch.cat([p[0] for p in patched])
    grids = torch.tensor([p[1] for p in patched])
    rebuilt = frames_from_qwen_patches(pixel_values, grids)
    for v, r in zip(vids, rebuilt, strict=True):
        expected = renormalise(v, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD)
        assert r.shape == v.shape
        torch.testing.assert_close(r, expected, atol=0, rtol=0)
        back = renormalise(r, IMAGENET_MEAN, IMAGENET_STD, CLIP_MEAN, CLIP_STD)
        torch.testing.assert_close(back, v, atol=1e-5, rtol=0)


def test_clip_to_imagenet_known_pixel_values() -> None:
    pixel = torch.tensor([0.5, 0.25, 1.0])  # RGB in [0, 1]
    clip = ((pixel - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)).view(1, 3, 1, 1)
    out = renormalise(clip.double(), CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD).flatten()
    expected = [(0.5 - 0.485) / 0.229, (0.25 - 0.456) / 0.224, (1.0 - 0.406) / 0.225]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)


def test_grouping_impulse_lands_in_its_merged_token() -> None:
    t2, h, w, c = 4, 4, 6, 3
    for f, y, x, ch in [(0, 0, 0, 0), (3, 3, 5, 2), (1, 2, 1, 1), (2, 1, 4, 0)]:
        feats = torch.zeros(t2, h * w, c)
        feats[f, y * w + x, ch] = 1.0
        out = group_for_merger(feats, (2, h, w))
        row = (f // 2) * (h // 2) * (w // 2) + (y // 2) * (w // 2) + x // 2
        col = ((f % 2) * 4 + (y % 2) * 2 + x % 2) * c + ch
        assert out.shape == (2 * 2 * 3, 8 * c)
        assert out[row, col] == 1 and out.abs().sum() == 1


def test_grouping_aligns_with_qwen_merged_token_order() -> None:
    # Give every (frame, patch) a unique id, patchify as Qwen does, and check that merged token k groups
    # exactly the patches of Qwen rows 4k..4k+3 (what Qwen's own merger concatenates).
    t2, h, w = 4, 4, 6
    ids = torch.arange(t2 * h * w, dtype=torch.float32).view(t2, h, w)
    frames = ids.repeat_interleave(14, 1).repeat_interleave(14, 2)[:, None].expand(-1, 3, -1, -1)
    rows, grid = patchify_frames(frames.contiguous())
    merged = group_for_merger(ids.view(t2, h * w, 1), grid)
    for k in range(merged.shape[0]):
        qwen_ids = set(rows[4 * k:4 * k + 4].unique().tolist())
        assert set(merged[k].tolist()) == qwen_ids


def test_merger_output_depends_only_on_its_source_patches() -> None:
    torch.manual_seed(0)
    merger = GeometryMerger(8, 16).eval()
    feats = torch.randn(4, 4 * 6, 8)
    base = merger(feats, (2, 4, 6))
    feats2 = feats.clone()
    feats2[3, 2 * 6 + 5] += 1.0  # frame 3, patch (2, 5) → merged token (1, 1, 2)
    diff = (merger(feats2, (2, 4, 6)) - base).abs().sum(-1)
    assert diff.shape == (12,)
    assert diff[1 * 6 + 1 * 3 + 2] > 0 and int((diff > 0).sum()) == 1


def test_geometry_positions_golden() -> None:
    pos = geometry_positions((4, 4, 6), 0.75, 2.0)
    assert pos.shape == (3, 4 * 2 * 3)
    assert pos[0].view(4, 6)[:, 0].tolist() == [0, 1, 3, 4]  # ⌊t · 0.75 · 2⌋
    assert pos[1].view(4, 2, 3)[0].tolist() == [[0, 0, 0], [1, 1, 1]]
    assert pos[2].view(4, 2, 3)[0].tolist() == [[0, 1, 2], [0, 1, 2]]


def _pi3_block_state() -> dict[str, torch.Tensor]:
    """A π³ checkpoint's encoder in DINOv2's own layout, written by the reference module (not by our inverse)."""
    return {"encoder." + k: v for k, v in randomise_(RefDinoV2(32, 1, 4, 64, image_size=56), seed=0).state_dict()
            .items()}


def test_pi3_mapping_splits_fused_qkv_and_layerscale() -> None:
    state = _pi3_block_state()
    mapped = pi3_to_hf_state_dict(state)
    qkv = state["encoder.blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(mapped["encoder.layer.0.attention.q_proj.weight"], qkv[:32])
    torch.testing.assert_close(mapped["encoder.layer.0.attention.k_proj.weight"], qkv[32:64])
    torch.testing.assert_close(mapped["encoder.layer.0.attention.v_proj.weight"], qkv[64:])
    assert mapped["encoder.layer.0.layer_scale1.lambda1"] is state["encoder.blocks.0.ls1.gamma"]
    assert mapped["embeddings.position_embeddings"] is state["encoder.pos_embed"]
    assert mapped["layernorm.weight"] is state["encoder.norm.weight"]


def test_pi3_strict_load_ignores_decoys_and_gives_dinov2_features() -> None:
    """π³ weights in DINOv2's layout load strictly into the HF encoder and give what DINOv2's own graph (the
    reference re-statement) computes, at the native size and with position-embedding interpolation."""
    reference = randomise_(RefDinoV2(32, 2, 4, 64, image_size=56), seed=3).eval()
    state = {"encoder." + k: v for k, v in reference.state_dict().items()}
    assert "encoder.blocks.0.attn.qkv.weight" in state and "encoder.blocks.1.ls2.gamma" in state
    state["decoder.0.attn.qkv.weight"] = torch.randn(96, 32)  # π³ decoder: not used by GSM
    state["depth_encoder.blocks.0.attn.qkv.weight"] = torch.randn(96, 32)  # Pi3X decoy ("encoder" substring)
    encoder = build_pi3_encoder(infer_pi3_config(state, num_heads=4)).eval()
    load_pi3_encoder_weights(encoder, state)
    torch.manual_seed(0)
    for size in ((56, 56), (42, 70)):  # native grid, then pos-embed interpolation
        frames = torch.randn(2, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(encode_frames(encoder, frames), reference(frames), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("breakage", ["missing", "shape", "unknown", "empty"])
def test_pi3_mismatched_keys_give_one_line_error(breakage: str) -> None:
    state = _pi3_block_state()
    if breakage == "missing":
        del state["encoder.blocks.0.mlp.fc2.weight"]
    elif breakage == "shape":
        state["encoder.norm.weight"] = torch.ones(31)
    elif breakage == "unknown":
        state["encoder.blocks.0.attn.rope.freqs"] = torch.ones(3)
    else:
        state = {"decoder." + k: v for k, v in state.items()}
    target = build_pi3_encoder(tiny_pi3_config())
    with pytest.raises(Pi3WeightsError) as err:
        load_pi3_encoder_weights(target, state)
    assert "\n" not in str(err.value)
