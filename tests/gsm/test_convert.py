"""``dsr model convert-official``: a random tiny checkpoint in the official key layout, converted, must compute
what the official graph computes with the same weights; and the official parity preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dsr.gsm.tiny import tiny_qwen_config_dict, tiny_tokenizer

from .conftest import video_rows
from .official_reference import NUM_QUERIES, RefSpatialTower, official_positions, randomise_

VISION_WIDTH = 16  # the tiny Qwen ViT's width (its out width is the LLM's, 32)


def _official_layout(key: str) -> str:
    """transformers 5.x in-memory names → the names the official (transformers 4.51) code saves."""
    if key.startswith("model.visual."):
        return key[len("model."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    return key


def _official_config_json(vocab: int) -> dict:
    """A legacy (4.51) flat Qwen2.5-VL config as the official code saves it, with its quirks: the
    Spatial architecture name and a vision hidden_size overwritten by out_hidden_size."""
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration_Spatial"], "model_type": "qwen2_5_vl",
        "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": vocab, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 1]}, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0,
        "vision_start_token_id": 3, "image_token_id": 4, "video_token_id": 5, "vision_end_token_id": 6,
        "torch_dtype": "float32", "transformers_version": "4.51.0",
        "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 32, "num_heads": 4,
                          "out_hidden_size": 32, "patch_size": 14, "spatial_merge_size": 2,
                          "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1],
                          "tokens_per_second": 2, "in_chans": 3, "hidden_act": "silu"},
    }


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A random tiny DSR_Suite checkpoint in the official layout (two shards + index), its Qwen half as a stock
    HF model and its geometry half as the reference re-statement of the official graph."""
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    kw = tiny_qwen_config_dict()
    kw["tie_word_embeddings"] = False
    kw["vision_config"] = dict(kw["vision_config"], hidden_size=VISION_WIDTH)
    torch.manual_seed(0)
    base = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**kw)).eval()
    tower = randomise_(RefSpatialTower(hidden=32, heads=4, kv_heads=2, inter=37, section=[2, 1, 1], theta=10000.0,
                                       enc_dim=32, enc_depth=2, enc_heads=4, enc_mlp=64, enc_image=56), seed=1).eval()
    state = {_official_layout(k): v for k, v in base.state_dict().items()}
    state.update({"visual." + k: v for k, v in tower.state_dict().items()})
    assert "visual.spatial_encoder.blocks.1.attn.qkv.weight" in state and "visual.q_former_2.norm1.weight" in state
    src = tmp_path_factory.mktemp("official") / "DSR_Suite-Model"
    src.mkdir()
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: state[k].contiguous() for k in keys}, str(src / file))
    (src / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}))
    tok = tiny_tokenizer()
    (src / "config.json").write_text(json.dumps(_official_config_json(len(tok))))
    tok.save_pretrained(str(src))
    return {"src": src, "base": base, "tower": tower, "tok": tok, "state": state}


@pytest.fixture(scope="module")
def converted(official: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dsr.cli import main

    out = tmp_path_factory.mktemp("converted") / "gsm"
    main(["model", "convert-official", str(official["src"]), "--out", str(out), "--pi3-heads", "4"])
    return out


def _batch(tok: Any, seconds: float) -> dict:
    from dsr.gsm.processing import collate, encode_conversation

    rows, grid = video_rows(7)  # 4 frames 56×56 → grid (2, 4, 4), 8 merged tokens
    human = "<video>\nWhich direction does the red square move ?\nOptions:\nA left\nB right"
    sample = encode_conversation(tok, human, None, [8], geometry_tokens=NUM_QUERIES, gsm_text="prompt")
    sample.update(pixel_values_videos=[rows], video_grid_thw=[list(grid)], second_per_grid_ts=[seconds])
    batch = collate([sample], tok.pad_token_id)
    batch.pop("labels")
    return batch


def test_converted_model_computes_the_official_graph(official: dict, converted: Path) -> None:
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    model = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(converted).eval()
    cfg = model.config
    assert (cfg.gsm_shared_norm, cfg.gsm_text, cfg.gsm_official_clip_mean, cfg.gsm_num_queries) == (
        True, "prompt", True, NUM_QUERIES)
    assert cfg.vision_config.hidden_size == VISION_WIDTH  # the official config's overwritten width is repaired
    assert model.model.gsm.qformer1.layers[0].key_norm is None
    base, tower = official["base"], official["tower"]
    batch = _batch(official["tok"], seconds=1.5)  # geometry t positions ⌊t·1.5·2⌋ = 0, 3
    pv, grid = batch["pixel_values_videos"], batch["video_grid_thw"]
    with torch.no_grad():
        ours = model.model.get_video_features(pv, grid, gsm_text_ids=batch["gsm_text_ids"],
                                              gsm_text_mask=batch["gsm_text_mask"],
                                              second_per_grid_ts=batch["second_per_grid_ts"]).pooler_output[0]
        vision = base.model.get_video_features(pv, grid).pooler_output[0]
        text = base.get_input_embeddings()(batch["gsm_text_ids"][0])
        geometry = tower(pv, tuple(grid[0].tolist()), text, 1.5)
    reference = torch.cat([vision, geometry])
    assert ours.shape == (8 + NUM_QUERIES, 32)
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-5)

    # The whole model: stock HF Qwen2.5-VL fed the reference features in the video slots and the official
    # (transformers 4.51) positions gives the same logits. (transformers 5.23's own rule would start the text
    # after the video 2 positions earlier here: it is not what the released model was trained with.)
    ids = batch["input_ids"]
    positions = official_positions(ids[0].tolist(), tuple(grid[0].tolist()), 1.5,
                                   video_token=cfg.video_token_id)[:, None]
    with torch.no_grad():
        embeds = base.get_input_embeddings()(ids)
        slots = (ids == cfg.video_token_id)[..., None].expand_as(embeds)
        embeds = embeds.masked_scatter(slots, reference)
        expected = base(inputs_embeds=embeds, position_ids=positions, attention_mask=batch["attention_mask"]).logits
        got = model(**batch).logits
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


def test_converted_checkpoint_evaluates_through_the_backend(converted: Path) -> None:
    from dsr.gsm.eval_backend import create_backend
    from dsr.gsm.tiny import moving_square_video

    backend = create_backend(converted, max_new_tokens=2, num_frames=4)
    assert backend.identity()["gsm_text"] == "prompt" and backend.name == "gsm:gsm"
    assert backend.generate(moving_square_video("up"), "Which direction ?")  # runs end to end


@pytest.mark.parametrize("breakage", ["renamed", "missing", "shape", "not_gsm"])
def test_mismatched_official_checkpoints_are_one_line_errors(official: dict, tmp_path: Path, breakage: str) -> None:
    from safetensors.torch import save_file

    from dsr.gsm.assemble import CheckpointError
    from dsr.gsm.convert import convert_official_checkpoint

    state = dict(official["state"])
    if breakage == "renamed":
        state["visual.q_former_1.norm3.weight"] = state.pop("visual.q_former_1.norm1.weight")
        message = "visual.q_former_1.norm3.weight"
    elif breakage == "missing":
        del state["visual.spatial_merger.mlp.2.bias"]
        message = "missing model.geometry_merger.fc2.bias"
    elif breakage == "shape":
        state["visual.q_former_2.mlp.up_proj.bias"] = torch.zeros(36)
        message = "shape of model.gsm.qformer2.layers.0.mlp.up_proj.bias"
    else:
        state = {k: v for k, v in state.items() if "q_former" not in k}
        message = "not a DSR_Suite"
    src = tmp_path / "src"
    src.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(src / "model.safetensors"))
    (src / "config.json").write_text(json.dumps(_official_config_json(len(official["tok"]))))
    with pytest.raises(CheckpointError, match=message) as err:
        convert_official_checkpoint(src, tmp_path / "out", pi3_heads=4)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_official_parity_preset_builds_the_official_module(tiny_ckpts: dict, tmp_path: Path) -> None:
    """``--parity official``: one norm for queries and keys, ``torch.randn`` queries, tokens/s 2, the prompt
    as Q-Former 1's text; the GSM then has exactly the official module's parameter count."""
    from dsr.cli import main
    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    out = tmp_path / "parity"
    main(["model", "assemble", "--qwen", tiny_ckpts["qwen"], "--pi3", tiny_ckpts["pi3"], "--out", str(out),
          "--num-queries", str(NUM_QUERIES), "--pi3-heads", "4", "--parity", "official"])
    model = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(out)
    cfg = model.config
    assert (cfg.gsm_shared_norm, cfg.gsm_query_init_std, cfg.gsm_tokens_per_second, cfg.gsm_text) == (
        True, 1.0, 2.0, "prompt")
    queries = model.model.gsm.queries.detach()
    assert 0.85 < float(queries.std()) < 1.15  # randn, not N(0, 0.02)
    assert not any("key_norm" in k for k in model.state_dict())
    gsm_params = sum(p.numel() for p in model.model.gsm.parameters())
    tower = RefSpatialTower(hidden=32, heads=4, kv_heads=2, inter=37, section=[2, 1, 1], theta=1e4, enc_dim=32,
                            enc_depth=1, enc_heads=4, enc_mlp=64, enc_image=56)
    official_gsm = sum(p.numel() for n, p in tower.named_parameters() if not n.startswith("spatial_"))
    assert gsm_params == official_gsm
    default = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(tiny_ckpts["gsm"])
    assert default.config.gsm_query_init_std == 0.02 and default.model.gsm.qformer1.layers[0].key_norm is not None
    with pytest.raises(SystemExit):
        main(["model", "assemble", "--qwen", tiny_ckpts["qwen"], "--pi3", tiny_ckpts["pi3"], "--out",
              str(tmp_path / "x"), "--parity", "paper"])
