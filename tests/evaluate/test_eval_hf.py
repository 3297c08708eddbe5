"""The local transformers backend on tiny randomly initialised Qwen2.5-VL and Qwen3-VL built here (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsr.errors import DsrError
from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.hf import (
    checkpoint_family,
    expand_image_slots,
    group_times,
    qwen3_video_text,
    video_patches,
)
from dsr.evaluate.models import create_model
from dsr.evaluate.run import RunConfig, run_eval
from dsr.evaluate.sampling import FramePolicy

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]


def _tokenizer() -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["These are the frames of a video. Select the best answer. Question: Answer: "
                             "A B C D left right up down seconds"] * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def _text_config(tok: Any, ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {"vocab_size": len(tok), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"], **extra}


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor

    out = tmp_path_factory.mktemp("tiny-qwen2.5-vl")
    tok = _tokenizer()
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config=_text_config(tok, ids, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                            "mrope_section": [2, 3, 3]}),
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": 64, "fullatt_block_indexes": [1]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen3-VL's real architecture (DeepStack, interleaved M-RoPE, 16-px patches) at toy sizes."""
    torch = pytest.importorskip("torch")
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    out = tmp_path_factory.mktemp("tiny-qwen3-vl")
    tok = _tokenizer()
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIAL}
    config = Qwen3VLConfig(
        text_config=_text_config(tok, ids, head_dim=16, rope_parameters={
            "rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": 64, "patch_size": 16, "num_position_embeddings": 64,
                       "deepstack_visual_indexes": [0]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen3VLForConditionalGeneration(config).save_pretrained(out)
    # Qwen3-VL's own processor settings: 16-px patches, merge 2, mean/std 0.5
    Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                          image_std=[0.5] * 3, min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _rows(d: Path) -> dict[str, dict]:
    return {r["item_id"]: r for r in map(json.loads, (d / "results.jsonl").read_text().splitlines())}


def test_tiny_qwen_runs_end_to_end(tiny_qwen: Path, toy_dataset: Path, tmp_path: Path) -> None:
    ds = load_dataset(toy_dataset)
    model = create_model(f"hf-qwen:{tiny_qwen}", max_new_tokens=4, max_pixels=28 * 28 * 16, min_pixels=28 * 28 * 4)
    policy = FramePolicy(num_frames=3, max_side=64)
    main = run_eval(ds, model, tmp_path / "main", RunConfig(policy=policy, concurrency=1, limit=3), progress=False)
    # image positions went through M-RoPE (vision tokens share positions, so the offset is negative)
    assert int(model._loaded[2].model.rope_deltas.min()) < 0
    blind = run_eval(ds, model, tmp_path / "blind", RunConfig(policy=policy, arm="blind", concurrency=1, limit=3),
                     progress=False)
    assert main.n_new == blind.n_new == 3 and not main.failures and not blind.failures

    m, b = _rows(tmp_path / "main"), _rows(tmp_path / "blind")
    for key in m:
        assert isinstance(m[key]["response"], str) and m[key]["tier"] is not None
        assert 1 <= m[key]["usage"]["completion_tokens"] <= 4
        # three 56×56-ish frames: each adds at least one merged patch token plus its vision markers
        assert m[key]["usage"]["prompt_tokens"] >= b[key]["usage"]["prompt_tokens"] + 3 * 3
    manifest = json.loads((tmp_path / "main" / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "hf-transformers" and manifest["model"]["family"] == "qwen2_5_vl"
    assert manifest["model"]["decoding"] == {"do_sample": False, "max_new_tokens": 4}
    assert manifest["model"]["input"] == "images"
    # greedy decoding is deterministic: a fresh run gives the same replies
    again = create_model(f"hf-qwen:{tiny_qwen}", max_new_tokens=4, max_pixels=28 * 28 * 16,
                         min_pixels=28 * 28 * 4)
    run_eval(ds, again, tmp_path / "again", RunConfig(policy=policy, concurrency=1, limit=3), progress=False)
    assert {k: r["response"] for k, r in _rows(tmp_path / "again").items()} == {
        k: r["response"] for k, r in m.items()}
    # Qwen2.5-VL's native video (second_per_grid_ts) runs too: 3 frames → 2 temporal patches of 2×2 tokens
    native = create_model(f"hf-qwen:{tiny_qwen}", max_new_tokens=4, max_pixels=28 * 28 * 16,
                          min_pixels=28 * 28 * 4, video_mode="native")
    out = run_eval(ds, native, tmp_path / "native", RunConfig(policy=policy, concurrency=1, limit=1), progress=False)
    assert not out.failures
    assert json.loads((tmp_path / "native" / "manifest.json").read_text())["model"]["input"] == "video"


def test_tiny_qwen3_native_video_end_to_end(tiny_qwen3: Path, toy_dataset: Path, tmp_path: Path) -> None:
    ds = load_dataset(toy_dataset)
    kw: dict[str, Any] = {"max_new_tokens": 4, "max_pixels": 32 * 32 * 16, "min_pixels": 32 * 32 * 4}
    model = create_model(f"hf-qwen:{tiny_qwen3}", **kw)
    policy = FramePolicy(num_frames=3, max_side=64)
    runs = {}
    for arm in ("main", "blind", "reversed-frames", "single-frame"):
        outcome = run_eval(ds, model, tmp_path / arm, RunConfig(policy=policy, arm=arm, concurrency=1, limit=2),
                           progress=False)
        assert outcome.n_new == 2 and not outcome.failures, outcome.failures
        runs[arm] = _rows(tmp_path / arm)
    tok = model._loaded[1]

    def n_tokens(text: str) -> int:
        return len(tok(text)["input_ids"])

    for key, row in runs["main"].items():
        assert row["tier"] is not None and 1 <= row["usage"]["completion_tokens"] <= 4
        # frames 48×64 → 64×64 → 4×4 patches → 2×2 = 4 tokens per temporal patch; 3 frames → 2 patches,
        # each with its "<t seconds>" label and vision markers; the prompt's "<t s>" labels are gone
        stamps = row["frames"]["timestamps_s"]
        video = qwen3_video_text(group_times(stamps, 2), 4)
        assert row["usage"]["prompt_tokens"] == runs["blind"][key]["usage"]["prompt_tokens"] + n_tokens(video)
        # the reversed arm reorders pixels only; the text (and so the token count) is the main arm's
        assert runs["reversed-frames"][key]["usage"]["prompt_tokens"] == row["usage"]["prompt_tokens"]
        # one frame (the middle one, at its own time) fills one temporal patch by repeating itself
        one = qwen3_video_text([stamps[1]], 4)
        assert runs["single-frame"][key]["usage"]["prompt_tokens"] == (
            runs["blind"][key]["usage"]["prompt_tokens"] + n_tokens(one))
    manifest = json.loads((tmp_path / "main" / "manifest.json").read_text())["model"]
    assert (manifest["family"], manifest["input"]) == ("qwen3_vl", "video")
    assert manifest["architectures"] == ["Qwen3VLForConditionalGeneration"]
    # greedy and deterministic; the frames mode (images with time labels) also runs on Qwen3-VL
    again = create_model(f"hf-qwen:{tiny_qwen3}", **kw)
    run_eval(ds, again, tmp_path / "again", RunConfig(policy=policy, concurrency=1, limit=2), progress=False)
    assert {k: r["response"] for k, r in _rows(tmp_path / "again").items()} == {
        k: r["response"] for k, r in runs["main"].items()}
    frames = create_model(f"hf-qwen:{tiny_qwen3}", video_mode="frames", **kw)
    out = run_eval(ds, frames, tmp_path / "frames", RunConfig(policy=policy, concurrency=1, limit=1), progress=False)
    assert not out.failures and int(frames._loaded[2].model.rope_deltas.min()) < 0
    # the CLI passes --video-mode through to the backend
    from typer.testing import CliRunner

    from dsr.cli import app

    res = CliRunner().invoke(app, ["eval", "run", str(toy_dataset), "-m", f"hf-qwen:{tiny_qwen3}", "-o",
                                   str(tmp_path / "cli"), "--frames", "3", "--max-side", "64", "-j", "1",
                                   "--limit", "1", "--max-tokens", "2", "--video-mode", "frames", "--no-progress"])
    assert res.exit_code == 0, res.output
    cli_model = json.loads((tmp_path / "cli" / "manifest.json").read_text())["model"]
    assert (cli_model["input"], cli_model["decoding"]["max_new_tokens"]) == ("images", 2)


def test_video_patches_match_the_video_processor_layout() -> None:
    """Per-frame image patches regrouped into temporal patches equal Qwen3-VL's own video patchify."""
    torch = pytest.importorskip("torch")
    from PIL import Image
    from transformers import Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8)  # sizes already on the 32-px grid
    ip = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                               image_std=[0.5] * 3, min_pixels=32 * 32, max_pixels=64 * 96)
    per_frame = ip(images=[Image.fromarray(f) for f in frames], return_tensors="np")
    ours = video_patches(np.asarray(per_frame["pixel_values"]), 3, 2)
    normalised = torch.from_numpy(((frames / 255.0 - 0.5) / 0.5).astype(np.float32)).permute(0, 3, 1, 2)[None]
    # patchify uses no processor state; called unbound because the class needs torchvision to be built
    ref, grid_t, grid_h, grid_w = Qwen3VLVideoProcessor.patchify(None, normalised, 16, 2, 2)
    assert (grid_t, grid_h, grid_w) == (2, 4, 6)
    assert ours.shape == tuple(ref.shape[1:]) == (2 * 4 * 6, 3 * 2 * 16 * 16)
    np.testing.assert_allclose(ours, ref[0].numpy(), atol=1e-5)


def test_group_times_and_slots() -> None:
    # odd count: the last frame repeats; a patch's time is the mean of its first and last frame
    assert group_times([0.0, 1.0, 1.9], 2) == pytest.approx([0.5, 1.9])
    assert group_times([0.0, 1.0, 1.9, 2.9], 2) == pytest.approx([0.5, 2.4])
    assert qwen3_video_text([0.5, 2.4], 2) == ("<0.5 seconds><|vision_start|><|video_pad|><|video_pad|><|vision_end|>"
                                               "<2.4 seconds><|vision_start|><|video_pad|><|video_pad|><|vision_end|>")
    slot = "<|vision_start|><|image_pad|><|vision_end|>"
    assert expand_image_slots(f"a{slot}b{slot}", [[1, 4, 4], [1, 2, 4]], 2) == (
        "a<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>b<|vision_start|>" + "<|image_pad|>" * 2
        + "<|vision_end|>")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(DsrError, match=r"no config\.json"):
        create_model(f"hf-qwen:{tmp_path}")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(DsrError, match="not supported by hf-qwen"):
        checkpoint_family(tmp_path)


def test_bad_video_mode(tiny_qwen3: Path) -> None:
    with pytest.raises(DsrError, match="video mode"):
        create_model(f"hf-qwen:{tiny_qwen3}", video_mode="video_url")
