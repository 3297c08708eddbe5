"""The local transformers backend on a tiny randomly initialised Qwen2.5-VL built here (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsr.bench.datasets import load_dataset
from dsr.bench.frames import FramePolicy
from dsr.bench.models import create_model
from dsr.bench.run import RunConfig, run_eval
from dsr.errors import DsrError

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
    )

    out = tmp_path_factory.mktemp("tiny-qwen2.5-vl")
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["These are the frames of a video. Select the best answer. Question: Answer: "
                             "A B C D left right up down"] * 10, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                     "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                     "pad_token_id": ids["<|endoftext|>"]},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": 64, "fullatt_block_indexes": [1]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_tiny_qwen_runs_end_to_end(tiny_qwen: Path, toy_dataset: Path, tmp_path: Path) -> None:
    ds = load_dataset(toy_dataset)
    model = create_model(f"hf-qwen:{tiny_qwen}", max_new_tokens=4, max_pixels=28 * 28 * 16, min_pixels=28 * 28 * 4)
    policy = FramePolicy(num_frames=3, max_side=64)
    main = run_eval(ds, model, tmp_path / "main", RunConfig(policy=policy, concurrency=1, limit=3), progress=False)
    blind = run_eval(ds, model, tmp_path / "blind", RunConfig(policy=policy, arm="blind", concurrency=1, limit=3),
                     progress=False)
    assert main.n_new == blind.n_new == 3 and not main.failures and not blind.failures

    def rows(d: Path) -> dict[str, dict]:
        return {r["item_id"]: r for r in map(json.loads, (d / "results.jsonl").read_text().splitlines())}

    m, b = rows(tmp_path / "main"), rows(tmp_path / "blind")
    for key in m:
        assert isinstance(m[key]["response"], str) and m[key]["tier"] is not None
        assert 1 <= m[key]["usage"]["completion_tokens"] <= 4
        # three 56×56-ish frames: each adds at least one merged patch token plus its vision markers
        assert m[key]["usage"]["prompt_tokens"] >= b[key]["usage"]["prompt_tokens"] + 3 * 3
    manifest = json.loads((tmp_path / "main" / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "hf-transformers"
    assert manifest["model"]["decoding"] == {"do_sample": False, "max_new_tokens": 4}
    # greedy decoding is deterministic: a fresh run gives the same replies
    again = create_model(f"hf-qwen:{tiny_qwen}", max_new_tokens=4, max_pixels=28 * 28 * 16,
                         min_pixels=28 * 28 * 4)
    run_eval(ds, again, tmp_path / "again", RunConfig(policy=policy, concurrency=1, limit=3), progress=False)
    assert {k: r["response"] for k, r in rows(tmp_path / "again").items()} == {
        k: r["response"] for k, r in m.items()}


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(DsrError, match=r"no config\.json"):
        create_model(f"hf-qwen:{tmp_path}")
