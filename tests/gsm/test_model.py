"""GSMQwen2_5_VL on transformers 5.23: forward/backward, multi-video order, generate(), checkpoints."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dsr.gsm.modeling import GSMInputError, GSMQwen2_5_VLConfig, GSMQwen2_5_VLForConditionalGeneration
from dsr.gsm.processing import collate, encode_conversation
from dsr.gsm.tiny import tiny_gsm_config, tiny_tokenizer
from dsr.gsm.train import TrainConfig, apply_freezing

from .conftest import video_rows

K = 4


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


def make_batch(tok: Any, videos_per_sample: list[int], k: int = K, seed: int = 0, answer: str | None = "B") -> dict:
    samples = []
    s = seed
    for n in videos_per_sample:
        rows, grids = [], []
        for _ in range(n):
            r, g = video_rows(s)
            s += 1
            rows.append(r)
            grids.append(list(g))
        human = "".join("<video>" for _ in range(n)) + "\nWhich direction does the red square move ?"
        sample = encode_conversation(tok, human, answer, [g[0] * g[1] * g[2] // 4 for g in grids],
                                     geometry_tokens=k)
        sample.update(pixel_values_videos=rows, video_grid_thw=grids, second_per_grid_ts=[1.0] * n)
        samples.append(sample)
    return collate(samples, tok.pad_token_id)


def build(strategy: str = "gsm", seed: int = 0) -> GSMQwen2_5_VLForConditionalGeneration:
    torch.manual_seed(seed)
    return GSMQwen2_5_VLForConditionalGeneration(tiny_gsm_config(strategy, num_queries=K))


def test_forward_loss_backward_one_and_two_videos_frozen_parts_get_no_grad(tok: Any) -> None:
    model = build()
    apply_freezing(model, TrainConfig())
    batch = make_batch(tok, [1, 2])  # sample 0: one video, sample 1: two videos
    assert batch["video_grid_thw"].shape[0] == 3 and batch["gsm_text_ids"].shape[0] == 3
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for name, grad in grads.items():
        if "geometry_encoder" in name or ("visual." in name and "visual.merger" not in name):
            assert grad is None, name
    for part in ("model.gsm.queries", "model.gsm.qformer1.layers.0.attn.q_proj.weight",
                 "model.gsm.qformer2.layers.0.mlp.down_proj.weight", "model.geometry_merger.fc1.weight",
                 "model.visual.merger.mlp.0.weight", "model.language_model.layers.0.self_attn.q_proj.weight"):
        assert grads[part] is not None and grads[part].abs().sum() > 0, part


def _llm_inputs(model: Any, batch: dict) -> torch.Tensor:
    seen = {}

    def hook(_mod: Any, _args: Any, kwargs: dict) -> None:
        seen["embeds"] = kwargs["inputs_embeds"].detach().clone()

    handle = model.model.language_model.register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(**batch)
    handle.remove()
    return seen["embeds"]


def test_each_video_geometry_tokens_follow_its_own_vision_tokens(tok: Any) -> None:
    model = build().eval()
    batch = make_batch(tok, [2])
    ids = batch["input_ids"][0]
    slots = (ids == 5).nonzero().flatten()  # 8 vision + K geometry per video, in order
    v0_geo, v1_vis, v1_geo = slots[8:8 + K], slots[8 + K:16 + K], slots[16 + K:]
    base = _llm_inputs(model, batch)
    feats = model.model.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"],
                                           gsm_text_ids=batch["gsm_text_ids"], gsm_text_mask=batch["gsm_text_mask"],
                                           second_per_grid_ts=batch["second_per_grid_ts"]).pooler_output
    torch.testing.assert_close(base[0, v0_geo], feats[0][-K:].detach())
    torch.testing.assert_close(base[0, v1_geo], feats[1][-K:].detach())
    perturbed = dict(batch)
    pv = batch["pixel_values_videos"].clone()
    pv[32:] += torch.randn_like(pv[32:])  # video 1's patches only
    perturbed["pixel_values_videos"] = pv
    after = _llm_inputs(model, perturbed)
    torch.testing.assert_close(after[0, slots[:8 + K]], base[0, slots[:8 + K]], atol=1e-6, rtol=0)
    assert not torch.allclose(after[0, v1_geo], base[0, v1_geo])
    assert not torch.allclose(after[0, v1_vis], base[0, v1_vis])


def test_placeholder_count_must_be_n_plus_k(tok: Any) -> None:
    model = build().eval()
    batch = make_batch(tok, [1])
    ids = batch["input_ids"]
    drop = int((ids[0] == 5).nonzero()[-1])
    keep = [i for i in range(ids.shape[1]) if i != drop]
    for key in ("input_ids", "attention_mask", "labels", "mm_token_type_ids"):
        batch[key] = batch[key][:, keep]
    with pytest.raises(Exception, match=r"placeholders|do not match"):
        model(**batch)


def test_question_without_tokens_is_one_line_error(tok: Any) -> None:
    model = build().eval()
    batch = make_batch(tok, [2])
    batch["gsm_text_mask"][1] = False
    with pytest.raises(GSMInputError, match="no text tokens") as err:
        model(**batch)
    assert "\n" not in str(err.value)
    batch.pop("gsm_text_ids")
    with pytest.raises(GSMInputError, match="gsm_text_ids"):
        model(**batch)


@pytest.mark.parametrize("strategy", ["addition", "none"])
def test_addition_and_plain_strategies_add_no_tokens(tok: Any, strategy: str) -> None:
    model = build(strategy)
    assert hasattr(model.model, "geometry_merger") == (strategy == "addition")
    assert not hasattr(model.model, "gsm")
    batch = make_batch(tok, [1, 2], k=0)
    out = model(**batch)
    assert torch.isfinite(out.loss)
    if strategy == "addition":
        out.loss.backward()
        assert model.model.geometry_merger.fc2.weight.grad.abs().sum() > 0


def test_generate_runs_gsm_once_and_matches_manual_greedy_loop(tok: Any) -> None:
    model = build(seed=3).eval()
    batch = make_batch(tok, [2], answer=None)
    batch.pop("labels")
    calls = []
    handle = model.model.gsm.register_forward_hook(lambda *_: calls.append(1))
    steps = 4
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    assert len(calls) == 1
    handle.remove()
    assert out.shape == (1, batch["input_ids"].shape[1] + steps)
    manual = dict(batch)
    with torch.no_grad():
        for _ in range(steps):  # no cache: full forward each step, positions from our rope index
            logits = model(**manual, use_cache=False).logits[:, -1]
            logits[:, model.generation_config.eos_token_id] = -float("inf")  # as min_new_tokens does
            nxt = logits.argmax(-1, keepdim=True)
            manual["input_ids"] = torch.cat([manual["input_ids"], nxt], 1)
            manual["attention_mask"] = torch.cat([manual["attention_mask"], torch.ones_like(nxt)], 1)
            manual["mm_token_type_ids"] = torch.cat([manual["mm_token_type_ids"], torch.zeros_like(nxt).int()], 1)
    assert out.tolist() == manual["input_ids"].tolist()


def test_base_qwen_weights_load_unchanged_and_gsm_is_finite(tiny_ckpts: dict) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_ckpts["qwen"]).state_dict()
    config = GSMQwen2_5_VLConfig.from_pretrained(tiny_ckpts["gsm"])
    # Straight from the *base* dir: our modules are missing and must be initialised, not NaN (§5.4).
    ours, info = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(tiny_ckpts["qwen"], config=config,
                                                                       output_loading_info=True)
    assert not info["unexpected_keys"]
    assert all(k.startswith(("model.gsm.", "model.geometry_")) for k in info["missing_keys"])
    state = ours.state_dict()
    for key, value in base.items():
        assert torch.equal(state[key], value), key
    queries = ours.model.gsm.queries.detach()
    assert torch.isfinite(queries).all() and 0.01 < float(queries.std()) < 0.03


def test_assembled_checkpoint_round_trips(tiny_ckpts: dict, tmp_path: Any) -> None:
    from safetensors.torch import load_file

    from dsr.gsm.geometry import pi3_to_hf_state_dict

    model = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(tiny_ckpts["gsm"])
    assert model.config.gsm_num_queries == K and model.config.gsm_strategy == "gsm"
    pi3 = pi3_to_hf_state_dict(load_file(tiny_ckpts["pi3"]))
    enc = model.model.geometry_encoder.state_dict()
    for key, value in pi3.items():
        assert torch.equal(enc[key], value), key
    model.save_pretrained(tmp_path / "again")
    saved_keys = set(load_file(str(tmp_path / "again" / "model.safetensors")))
    assert any(k.startswith("model.gsm.") for k in saved_keys)
    again = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "again")
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again.config.to_dict()["pi3_config"] == model.config.to_dict()["pi3_config"]


def test_config_is_strictly_typed() -> None:
    with pytest.raises(Exception, match="gsm_num_queries"):
        GSMQwen2_5_VLConfig(gsm_num_queries="32")
    with pytest.raises(GSMInputError, match="pi3_config"):
        GSMQwen2_5_VLForConditionalGeneration(tiny_gsm_config("gsm", pi3_config=None))


def test_packed_batch_equals_padded_batch(tok: Any) -> None:
    from dsr.gsm.processing import collate_packed

    model = build(seed=5).eval()
    samples = []
    for i, n in enumerate((1, 2)):
        single = make_batch(tok, [n], seed=10 * i)
        samples.append({"input_ids": single["input_ids"][0].tolist(), "labels": single["labels"][0].tolist(),
                        "mm_token_type_ids": single["mm_token_type_ids"][0].tolist(),
                        "gsm_text_ids": single["gsm_text_ids"][0].tolist(),
                        "pixel_values_videos": list(single["pixel_values_videos"].split(32)),
                        "video_grid_thw": single["video_grid_thw"].tolist(), "second_per_grid_ts": [1.0] * n})
    padded = collate(samples, tok.pad_token_id)
    packed = collate_packed(samples, image_token_id=4, video_token_id=5, spatial_merge_size=2,
                            tokens_per_second=2.0, geometry_tokens=K)
    assert packed["position_ids"].shape == (4, 1, padded["attention_mask"].sum())
    with torch.no_grad():
        a = model(**padded)
        b = model(**packed)
    n0 = len(samples[0]["input_ids"])
    torch.testing.assert_close(b.logits[0, :n0], a.logits[0, :n0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.logits[0, n0:], a.logits[1, : b.logits.shape[1] - n0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.loss, a.loss, atol=1e-5, rtol=1e-5)


def test_new_parameters_at_7b_shapes_on_the_meta_device() -> None:
    """≈563 M new trainable parameters at Qwen2.5-VL-7B shapes (the paper's module), counted on the meta device
    (nothing allocated), against the arithmetic and against the official module graph."""
    from dsr.gsm.configuration import qwen2_5_vl_7b_config

    from .official_reference import RefSpatialTower

    def new_params(**overrides: Any) -> int:
        with torch.device("meta"):
            model = GSMQwen2_5_VLForConditionalGeneration(qwen2_5_vl_7b_config(**overrides))
        assert all(p.device.type == "meta" for p in model.parameters())
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(("model.gsm.", "model.geometry_m")))

    h, kv, mlp, c = 3584, 512, 18944, 1024
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h  # q (bias), k and v (bias, 4 KV heads × 128), o
    block = attention + 3 * h * mlp + 2 * mlp + h + 3 * h  # SwiGLU with biases + query, key and MLP norms
    merger = 8 * c + (8 * c) ** 2 + 8 * c + 8 * c * h + h  # RMSNorm(8192) → 8192 → 3584
    ours = 2 * block + 32 * h + h + merger
    assert ours == 562_812_928
    assert new_params() == ours
    parity = new_params(gsm_shared_norm=True)
    assert parity == ours - 2 * h == 562_805_760  # one norm fewer per block
    with torch.device("meta"):
        official = RefSpatialTower(hidden=h, heads=28, kv_heads=4, inter=mlp, section=[16, 24, 24], theta=1e6,
                                   enc_dim=c, enc_depth=1, enc_heads=16, enc_mlp=4 * c, enc_image=518)
    assert sum(p.numel() for n, p in official.named_parameters() if not n.startswith("spatial_encoder")) == parity
    assert abs(parity / 1e6 - 562.8) < 0.1  # the reference figure


@pytest.mark.parametrize(("num_beams", "num_return"), [(2, 2), (3, 2)])
def test_beam_search_and_several_returns_with_several_videos_per_sample(tok: Any, num_beams: int,
                                                                        num_return: int) -> None:
    """Beam search expands each sample ``num_beams`` times: every copy must keep its own videos' vision and
    geometry tokens. A batch of two samples with two videos each gives, per sample, the sequences that sample
    gives alone."""
    model = build(seed=11).eval()
    batch = make_batch(tok, [2, 2], answer=None, seed=20)
    batch.pop("labels")
    kw = dict(max_new_tokens=3, min_new_tokens=3, do_sample=False, num_beams=num_beams,
              num_return_sequences=num_return, pad_token_id=tok.pad_token_id, return_dict_in_generate=True,
              output_scores=True)
    with torch.no_grad():
        both = model.generate(**batch, **kw)
    assert both.sequences.shape[0] == 2 * num_return
    width = batch["input_ids"].shape[1]
    for i in range(2):
        alone = make_batch(tok, [2], answer=None, seed=20 + 2 * i)  # the same two videos, on their own
        alone.pop("labels")
        with torch.no_grad():
            single = model.generate(**alone, **kw)
        rows = slice(i * num_return, (i + 1) * num_return)
        assert both.sequences[rows, width:].tolist() == single.sequences[:, alone["input_ids"].shape[1]:].tolist()
        # beam scores carry every logit along the way: a copy fed another sample's tokens would differ
        torch.testing.assert_close(both.sequences_scores[rows], single.sequences_scores, atol=1e-5, rtol=1e-5)
    # ... and the scores do tell videos apart (sample 1's videos, same question, score differently)
    assert not torch.allclose(both.sequences_scores[:num_return], both.sequences_scores[num_return:])


@pytest.mark.parametrize("strategy", ["gsm", "addition"])
def test_precomputed_geometry_features_replace_the_encoder(tok: Any, strategy: str) -> None:
    """``gsm_feature_source="precomputed"``: no π³ encoder; per-frame, per-patch features passed as
    ``geometry_features`` feed the merger (training and generate), and they matter."""
    torch.manual_seed(0)
    k = K if strategy == "gsm" else 0
    model = GSMQwen2_5_VLForConditionalGeneration(tiny_gsm_config(strategy, num_queries=K, pi3_config=None,
                                                                  gsm_feature_source="precomputed",
                                                                  gsm_feature_dim=6))
    assert not hasattr(model.model, "geometry_encoder") and model.model.geometry_merger.fc1.in_features == 48
    batch = make_batch(tok, [1, 2], k=k)
    frames_patches = int((batch["video_grid_thw"][:, 0] * 2 * batch["video_grid_thw"][:, 1:].prod(-1)).sum())
    features = torch.randn(frames_patches, 6)
    out = model(**batch, geometry_features=features)
    out.loss.backward()
    assert model.model.geometry_merger.fc1.weight.grad.abs().sum() > 0
    with torch.no_grad():
        again = model(**batch, geometry_features=features).logits
        moved = model(**batch, geometry_features=features + 1.0).logits
    torch.testing.assert_close(again, out.logits.detach())
    assert not torch.allclose(again, moved)
    with pytest.raises(GSMInputError, match="geometry_features"):
        model(**batch)
    with pytest.raises(GSMInputError, match="do not match"):
        model(**batch, geometry_features=features[:-1])
    gen = make_batch(tok, [2], k=k, answer=None)
    gen.pop("labels")
    n = int((gen["video_grid_thw"][:, 0] * 2 * gen["video_grid_thw"][:, 1:].prod(-1)).sum())
    with torch.no_grad():
        seq = model.generate(**gen, geometry_features=torch.randn(n, 6), max_new_tokens=2, min_new_tokens=2,
                             do_sample=False, pad_token_id=tok.pad_token_id)
    assert seq.shape[1] == gen["input_ids"].shape[1] + 2
