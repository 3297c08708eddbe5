"""Tiny, randomly initialised Qwen2.5-VL / π³ configs and a word-level tokenizer for offline tests.

No weights can be downloaded in CI, so tests, ``scripts/make_tiny_gsm_checkpoints.py`` and the
benchmarks build the real architectures at toy sizes (``gsm-model.md`` §10). The tokenizer carries the
Qwen special-token *strings* at small ids, so every code path that looks tokens up by name works unchanged.
"""

from __future__ import annotations

from typing import Any

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_end|>", "<|im_start|>", "<|vision_start|>", "<|image_pad|>", "<|video_pad|>",
    "<|vision_end|>", "<unk>", "<|vision_pad|>",
)
_WORDS = ["you", "are", "a", "helpful", "assistant", "system", "user", "options", "the", "of", "is", "to", "in", "from", "at", "and", "or", "than", "what", "which", "how", "does", "do", "did", "camera", "object", "person", "car", "dog", "ball", "box", "left", "right", "front", "back", "behind", "up", "down", "above", "below", "toward", "away", "moving", "move", "moves", "static", "stationary", "faster", "slower", "same", "speed", "distance", "direction", "closer", "farther", "nearly", "constant", "then", "become", "becomes", "larger", "smaller", "former", "latter", "frame", "frames", "time", "first", "last", "end", "start", "beginning", "middle", "between", "relative", "absolute", "viewpoint", "observer", "facing", "orientation", "rotate", "clockwise", "counterclockwise", "north", "south", "east", "west", "will", "would", "be", "after", "before", "during", "video", "scene", "red", "green", "blue", "yellow", "square", "circle", "going", "its", "it", "this", "that", "while", "red-square", "blue-circle", "where", "when"]


def tiny_vocab() -> dict[str, int]:
    """Special tokens at ids 0..8, then punctuation, letters, digits and question words (also capitalised)."""
    tokens = list(QWEN_SPECIAL_TOKENS)
    tokens += list(".,:;?!()-'\"/")
    tokens += [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += [str(d) for d in range(10)]
    words = list(dict.fromkeys(_WORDS))
    tokens += [w for w in words + [w.capitalize() for w in words] if w not in tokens]
    return {t: i for i, t in enumerate(tokens)}


def tiny_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over :func:`tiny_vocab` (word level; unknown words → ``<unk>``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(tiny_vocab(), unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in QWEN_SPECIAL_TOKENS if t not in ("<unk>", "<|im_end|>",
                                                                                "<|endoftext|>")])


def _word_pre_tokenizer() -> Any:
    from tokenizers import pre_tokenizers

    # words and punctuation apart, every digit its own token: numbers of any size stay in a closed vocabulary
    return pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])


def word_tokenizer(texts: Any) -> Any:
    """A word-level ``PreTrainedTokenizerFast`` whose vocabulary covers ``texts``: the Qwen special tokens, the
    digits 0–9, the letters A–Z and every word and punctuation mark of the texts (digits split one by one).

    Unlike :func:`tiny_tokenizer` (a fixed vocabulary), nothing in ``texts`` becomes ``<unk>`` — check with
    :func:`unknown_tokens`."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    pre = _word_pre_tokenizer()
    tokens = list(QWEN_SPECIAL_TOKENS) + [str(d) for d in range(10)] + [chr(c) for c in range(65, 91)]
    seen = dict.fromkeys(tokens)
    for text in texts:
        for word, _ in pre.pre_tokenize_str(text):
            seen.setdefault(word)
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(seen)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in QWEN_SPECIAL_TOKENS if t not in ("<unk>", "<|im_end|>",
                                                                                "<|endoftext|>")])


def unknown_tokens(tokenizer: Any, texts: Any) -> int:
    """How many ``<unk>`` tokens ``tokenizer`` makes of ``texts`` in all."""
    unk = tokenizer.unk_token_id
    return sum(tokenizer.encode(t, add_special_tokens=False).count(unk) for t in texts)


def tiny_qwen_config_dict(vocab_size: int | None = None) -> dict:
    """Kwargs of a ~0.1 M-parameter Qwen2.5-VL with merge 2 (so 2×2 merging and regrouping are exercised)."""
    vocab = vocab_size or len(tiny_vocab())
    return dict(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=512,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0},
                         bos_token_id=0, eos_token_id=1, pad_token_id=0, rms_norm_eps=1e-6),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=32, num_heads=4, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1], tokens_per_second=2),
        vision_start_token_id=3, image_token_id=4, video_token_id=5, vision_end_token_id=6,
        tie_word_embeddings=True,
    )


def tiny_pi3_config() -> dict:
    """A 1-layer DINOv2-with-registers at width 32 (π³'s encoder layout, toy size)."""
    from dsr.gsm.geometry import pi3_encoder_config

    return pi3_encoder_config(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                              image_size=56, num_register_tokens=4)


def tiny_qwen_config(vocab_size: int | None = None) -> Any:
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(**tiny_qwen_config_dict(vocab_size))


def tiny_gsm_config(strategy: str = "gsm", num_queries: int = 4, **overrides: Any) -> Any:
    from dsr.gsm.modeling import GSMQwen2_5_VLConfig

    kw = tiny_qwen_config_dict()
    kw.update(gsm_strategy=strategy, gsm_num_queries=num_queries,
              pi3_config=tiny_pi3_config() if strategy != "none" else None)
    kw.update(overrides)
    return GSMQwen2_5_VLConfig(**kw)


def make_tiny_checkpoints(out_dir: str, *, seed: int = 0) -> tuple[str, str]:
    """Save a tiny random Qwen2.5-VL (with tokenizer) and a π³-format checkpoint (fused qkv, ``encoder.``
    prefix, plus decoder and Pi3X ``depth_encoder.*`` decoys that must be ignored).

    Returns (qwen_dir, pi3_file). Used by tests, benchmarks and ``scripts/make_tiny_gsm_checkpoints.py``.
    """
    from pathlib import Path

    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    from dsr.gsm.geometry import build_pi3_encoder, hf_to_pi3_state_dict

    out = Path(out_dir)
    torch.manual_seed(seed)
    qwen_dir = out / "qwen2_5_vl_tiny"
    model = Qwen2_5_VLForConditionalGeneration(tiny_qwen_config())
    model.generation_config.pad_token_id = 0
    model.save_pretrained(str(qwen_dir))
    tiny_tokenizer().save_pretrained(str(qwen_dir))
    encoder = build_pi3_encoder(tiny_pi3_config())
    state = hf_to_pi3_state_dict(encoder.state_dict())
    width = tiny_pi3_config()["hidden_size"]
    state["decoder.0.attn.qkv.weight"] = torch.randn(3 * width, width)
    state["depth_encoder.blocks.0.attn.qkv.weight"] = torch.randn(3 * width, width)
    state["depth_encoder.cls_token"] = torch.randn(1, 1, width)
    pi3_dir = out / "pi3_tiny"
    pi3_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(pi3_dir / "model.safetensors"))
    return str(qwen_dir), str(pi3_dir / "model.safetensors")


_DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def moving_square_video(direction: str, *, frames: int = 4, size: int = 56, rng: Any = None) -> Any:
    """(frames, size, size, 3) uint8: a red square on grey moving one step per frame in ``direction``."""
    import numpy as np

    rng = rng if rng is not None else np.random.default_rng(0)
    dy, dx = _DIRECTIONS[direction]
    side = size // 4
    step = max(1, (size - side) // (2 * frames))
    y0 = size // 2 - side // 2 - dy * step * frames // 2 + int(rng.integers(-2, 3))
    x0 = size // 2 - side // 2 - dx * step * frames // 2 + int(rng.integers(-2, 3))
    out = np.full((frames, size, size, 3), 110, dtype=np.uint8)
    for t in range(frames):
        y = int(np.clip(y0 + dy * step * t, 0, size - side))
        x = int(np.clip(x0 + dx * step * t, 0, size - side))
        out[t, y:y + side, x:x + side] = (220, 30, 30)
    return out


def make_synthetic_export(out_dir: str, n: int, *, frames: int = 4, size: int = 56, seed: int = 0,
                          broken: int = 0) -> str:
    """A DSR-Train conversation JSON of ``n`` moving-square QAs (answer = the square's direction) with their
    mp4 videos, plus ``broken`` entries whose video file is not a video. Returns the JSON path."""
    import json
    from pathlib import Path

    import numpy as np

    from dsr.atomic import atomic_write_text
    from dsr.video import write_video

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    letters = dict(zip(_DIRECTIONS, "ABCD", strict=True))
    options = "\n".join(f"{letters[d]} {d}" for d in _DIRECTIONS)
    entries = []
    for i in range(n):
        direction = list(_DIRECTIONS)[int(rng.integers(4))]
        rel = f"videos/{i:05d}.mp4"
        write_video(out / rel, moving_square_video(direction, frames=frames, size=size, rng=rng), fps=2.0)
        question = "Which direction does the red square move ?"
        entries.append({"id": f"synthetic/{i:05d}", "video": rel, "visible_until_s": None, "conversations": [
            {"from": "human", "value": f"<video>\n{question}\nOptions:\n{options}"},
            {"from": "gpt", "value": letters[direction]}]})
    for j in range(broken):
        rel = f"videos/broken_{j}.mp4"
        (out / rel).write_bytes(b"not a video")
        entries.insert(min(len(entries), 1 + 2 * j), {"id": f"broken/{j}", "video": rel, "conversations": [
            {"from": "human", "value": "<video>\nWhich direction does the red square move ?"},
            {"from": "gpt", "value": "A"}]})
    path = out / "dsr_train.json"
    atomic_write_text(path, json.dumps(entries, indent=1))
    return str(path)
