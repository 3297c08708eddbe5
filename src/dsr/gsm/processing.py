"""Turning frames and a question into Qwen2.5-VL + GSM model inputs, without torchvision.

- :func:`smart_resize` / :func:`frames_to_patches`: Qwen2.5-VL's video preprocessing (resize to multiples
  of 28 within a pixel budget, CLIP normalisation, 2-frame × 14×14 patch rows).
- :func:`encode_conversation`: the chat rendering of qwen-vl-finetune (system prompt, ``<|im_start|>role\\n``
  turns), each ``<video>`` replaced by ``<|vision_start|>`` + ``<|video_pad|>`` × (N + K) + ``<|vision_end|>``
  (K geometry placeholders per video for the ``gsm`` strategy), labels masking everything but the answer turn
  after its ``<|im_start|>assistant\\n`` header, and ``gsm_text_ids``: the question's own tokens, identical at
  training and inference (the reference read them off the labels, differently in the two cases).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dsr.errors import DsrError
from dsr.gsm.geometry import CLIP_MEAN, CLIP_STD, patchify_frames

SYSTEM_PROMPT = "You are a helpful assistant."
VIDEO_TAG = "<video>"
IGNORE_INDEX = -100


class PromptError(DsrError):
    """A conversation that cannot be turned into model inputs (no question text, video count mismatch)."""


@dataclass(frozen=True)
class VideoProcessing:
    """Qwen2.5-VL video preprocessing (DSR training: 32 frames, at most 230 400 pixels per frame)."""

    num_frames: int = 32
    max_pixels: int = 230_400
    min_pixels: int = 784
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2


def smart_resize(height: int, width: int, *, factor: int = 28, min_pixels: int = 784,
                 max_pixels: int = 230_400) -> tuple[int, int]:
    """Qwen's resize rule: both sides multiples of ``factor``, area within [min_pixels, max_pixels],
    aspect ratio kept as closely as rounding allows."""
    if min(height, width) <= 0 or max(height, width) / min(height, width) > 200:
        raise PromptError(f"frame size {height}×{width} is unusable (empty or aspect ratio over 200)")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def frames_to_patches(frames: np.ndarray, cfg: VideoProcessing = VideoProcessing()) -> tuple[torch.Tensor,
                                                                                                tuple[int, int, int]]:
    """frames (T, H, W, 3) uint8 RGB → Qwen patch rows (t·h·w, 3·2·14·14) float32 and grid (t, h, w).

    Bicubic resize (PIL) to :func:`smart_resize`, scale to [0, 1], CLIP-normalise, repeat the last frame if T
    is odd, patchify in Qwen's row order.
    """
    from PIL import Image

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise PromptError(f"frames must be (T, H, W, 3) uint8 with T > 0, got {frames.shape}")
    factor = cfg.patch_size * cfg.merge_size
    h, w = smart_resize(frames.shape[1], frames.shape[2], factor=factor, min_pixels=cfg.min_pixels,
                        max_pixels=cfg.max_pixels)
    resized = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, h, w)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    if x.shape[0] % cfg.temporal_patch_size:
        pad = cfg.temporal_patch_size - x.shape[0] % cfg.temporal_patch_size
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
    return patchify_frames(x, patch_size=cfg.patch_size, temporal_patch_size=cfg.temporal_patch_size,
                           merge_size=cfg.merge_size)


@dataclass(frozen=True)
class SpecialIds:
    im_start: int
    im_end: int
    vision_start: int
    vision_end: int
    video_pad: int
    image_pad: int
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> SpecialIds:
        def tid(tok: str) -> int:
            i = tokenizer.convert_tokens_to_ids(tok)
            if i is None or i == tokenizer.unk_token_id:
                raise PromptError(f"tokenizer lacks the Qwen special token {tok}")
            return int(i)

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tid("<|endoftext|>")
        return cls(tid("<|im_start|>"), tid("<|im_end|>"), tid("<|vision_start|>"), tid("<|vision_end|>"),
                   tid("<|video_pad|>"), tid("<|image_pad|>"), int(pad))


def question_text(human_value: str) -> str:
    """The question as the GSM reads it: the user turn without its ``<video>`` tags."""
    return human_value.replace(VIDEO_TAG, " ").strip()


def encode_conversation(tokenizer: Any, human_value: str, answer: str | None, video_tokens: Sequence[int], *,
                        geometry_tokens: int, system_prompt: str = SYSTEM_PROMPT,
                        gsm_text: str = "question") -> dict[str, list[int]]:
    """Token ids of one single-turn sample.

    human_value: the user text with one ``<video>`` per video (one is prepended if none is present).
    answer: the assistant text, or None for an inference prompt ending in ``<|im_start|>assistant\\n``.
    video_tokens: merged vision tokens per video (t·h·w / 4). Returns ``input_ids``, ``labels`` (−100 except
    the answer, ``<|im_end|>`` and the newline after it), ``mm_token_type_ids`` (2 on vision placeholders, 0 on
    geometry placeholders and text) and ``gsm_text_ids``: the question's tokens (``gsm_text="question"``), or
    (``"prompt"``, parity with the official code) every non-special prompt token before the assistant header —
    system prompt and role words included.
    """
    if gsm_text not in ("question", "prompt"):
        raise PromptError(f"gsm_text must be 'question' or 'prompt', not {gsm_text!r}")
    sp = SpecialIds.from_tokenizer(tokenizer)

    def enc(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False)) if text else []

    if VIDEO_TAG not in human_value:
        human_value = VIDEO_TAG + "\n" + human_value
    pieces = human_value.split(VIDEO_TAG)
    if len(pieces) - 1 != len(video_tokens):
        raise PromptError(f"the question has {len(pieces) - 1} <video> tags for {len(video_tokens)} videos")
    gsm_text_ids = enc(question_text(human_value))
    if not gsm_text_ids:
        raise PromptError("the question has no text tokens (the GSM needs the question to select geometry)")

    ids: list[int] = []
    types: list[int] = []

    def add(tokens: list[int], kind: int = 0) -> None:
        ids.extend(tokens)
        types.extend([kind] * len(tokens))

    add([sp.im_start, *enc("system\n" + system_prompt), sp.im_end, *enc("\n")])
    add([sp.im_start, *enc("user\n")])
    for i, piece in enumerate(pieces):
        if i:
            n = int(video_tokens[i - 1])
            add([sp.vision_start])
            add([sp.video_pad] * n, 2)
            add([sp.video_pad] * geometry_tokens, 0)
            add([sp.vision_end])
        add(enc(piece))
    add([sp.im_end, *enc("\n")])
    if gsm_text == "prompt":
        special = {sp.im_start, sp.im_end, sp.vision_start, sp.vision_end, sp.video_pad, sp.image_pad, sp.pad}
        gsm_text_ids = [t for t in ids if t not in special]
    header = [sp.im_start, *enc("assistant\n")]
    add(header)
    labels = [IGNORE_INDEX] * len(ids)
    if answer is not None:
        tail = [*enc(answer), sp.im_end, *enc("\n")]
        add(tail)
        labels += tail
    return {"input_ids": ids, "labels": labels, "mm_token_type_ids": types, "gsm_text_ids": gsm_text_ids}


def collate(samples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded samples (with ``pixel_values_videos``, ``video_grid_thw``,
    ``second_per_grid_ts`` per sample) into one batch following ``docs/gsm.md``'s data contract."""
    length = max(len(s["input_ids"]) for s in samples)
    b = len(samples)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((b, length), dtype=torch.long)
    types = torch.zeros((b, length), dtype=torch.int)
    text_rows: list[list[int]] = []
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        input_ids[i, :n] = torch.tensor(s["input_ids"])
        labels[i, :n] = torch.tensor(s.get("labels", [IGNORE_INDEX] * n))
        attention[i, :n] = 1
        types[i, :n] = torch.tensor(s["mm_token_type_ids"], dtype=torch.int)
        text_rows += [s["gsm_text_ids"]] * len(s["video_grid_thw"])  # one row per video
    lq = max(len(r) for r in text_rows)
    gsm_text_ids = torch.full((len(text_rows), lq), pad_id, dtype=torch.long)
    gsm_text_mask = torch.zeros((len(text_rows), lq), dtype=torch.bool)
    for i, r in enumerate(text_rows):
        gsm_text_ids[i, : len(r)] = torch.tensor(r)
        gsm_text_mask[i, : len(r)] = True
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "mm_token_type_ids": types,
        "pixel_values_videos": torch.cat([v for s in samples for v in s["pixel_values_videos"]]),
        "video_grid_thw": torch.tensor([g for s in samples for g in s["video_grid_thw"]], dtype=torch.long),
        "second_per_grid_ts": torch.tensor([t for s in samples for t in s["second_per_grid_ts"]],
                                           dtype=torch.float32),
        "gsm_text_ids": gsm_text_ids,
        "gsm_text_mask": gsm_text_mask,
    }
    if any("geometry_features" in s for s in samples):  # precomputed per-patch geometry, one tensor per video
        batch["geometry_features"] = torch.cat([f for s in samples for f in s["geometry_features"]])
    return batch


def prepare_sample(tokenizer: Any, videos: Sequence[tuple[np.ndarray, float]], human_value: str,
                   answer: str | None, *, geometry_tokens: int, video_cfg: VideoProcessing = VideoProcessing(),
                   gsm_text: str = "question") -> dict[str, Any]:
    """One sample from decoded videos ``[(frames (T,H,W,3) uint8, seconds between sampled frames), ...]``."""
    rows, grids, seconds = [], [], []
    for frames, frame_interval_s in videos:
        r, grid = frames_to_patches(frames, video_cfg)
        rows.append(r)
        grids.append(list(grid))
        seconds.append(float(video_cfg.temporal_patch_size * frame_interval_s))
    merged = [g[0] * g[1] * g[2] // (video_cfg.merge_size**2) for g in grids]
    sample: dict[str, Any] = encode_conversation(tokenizer, human_value, answer, merged,
                                                 geometry_tokens=geometry_tokens, gsm_text=gsm_text)
    sample.update(pixel_values_videos=rows, video_grid_thw=grids, second_per_grid_ts=seconds)
    return sample


def add_geometry_placeholders(batch: dict[str, torch.Tensor], geometry_tokens: int, *, video_token_id: int,
                              pad_id: int, merge_size: int = 2) -> dict[str, torch.Tensor]:
    """Insert ``geometry_tokens`` extra ``<|video_pad|>`` after each video's N vision placeholders in a batch
    made by another processor (e.g. HF's ``Qwen2_5_VLProcessor``); returns a new batch.

    Rewrites ``input_ids``, ``attention_mask``, ``labels`` (−100 on the new slots) and ``mm_token_type_ids``
    (0 on the new slots) and keeps the padding side. Videos are matched to ``video_grid_thw`` in order.
    """
    ids = batch["input_ids"]
    mask = batch.get("attention_mask", torch.ones_like(ids))
    left = bool((mask[:, 0] == 0).any())
    grids = iter(batch["video_grid_thw"].tolist())
    rows: list[dict[str, list[int]]] = []
    extra = {"labels": IGNORE_INDEX, "mm_token_type_ids": 0}
    for r in range(ids.shape[0]):
        valid = mask[r].bool()
        src = {k: batch[k][r][valid].tolist() for k in ("input_ids", *extra) if k in batch}
        out: dict[str, list[int]] = {k: [] for k in src}
        i, tok = 0, src["input_ids"]
        while i < len(tok):
            if tok[i] != video_token_id:
                for k in src:
                    out[k].append(src[k][i])
                i += 1
                continue
            t, h, w = next(grids)
            n = t * h * w // merge_size**2
            for k in src:
                out[k].extend(src[k][i:i + n])
                out[k].extend([video_token_id if k == "input_ids" else extra[k]] * geometry_tokens)
            i += n
        rows.append(out)
    length = max(len(r["input_ids"]) for r in rows)
    fills = {"input_ids": pad_id, **extra}
    new = dict(batch)
    for key in rows[0]:
        tensor = torch.full((len(rows), length), fills[key], dtype=batch[key].dtype)
        for r, row in enumerate(rows):
            values = torch.tensor(row[key], dtype=batch[key].dtype)
            if left:
                tensor[r, length - len(values):] = values
            else:
                tensor[r, : len(values)] = values
        new[key] = tensor
    attention = torch.zeros((len(rows), length), dtype=mask.dtype)
    for r, row in enumerate(rows):
        n = len(row["input_ids"])
        if left:
            attention[r, length - n:] = 1
        else:
            attention[r, :n] = 1
    new["attention_mask"] = attention
    return new


def collate_packed(samples: Sequence[dict[str, Any]], *, image_token_id: int, video_token_id: int,
                   spatial_merge_size: int, tokens_per_second: float, geometry_tokens: int) -> dict[str, Any]:
    """Pack samples into one row without padding (transformers 5.x native packing).

    ``position_ids`` is (4, 1, ΣL): row 0 holds per-sample text positions restarting at 0 (HF builds the
    block-diagonal causal mask from it when no attention mask is given), rows 1–3 the M-RoPE positions of each
    sample from :func:`dsr.gsm.positions.rope_index`. ``use_cache=False`` is part of the batch because HF only
    detects packing without a cache. Loss is unchanged: each sample's first label is −100.
    """
    from dsr.gsm.positions import rope_index

    padded = collate(samples, pad_id=0)
    rows, mrope = [], []
    for s in samples:
        ids = torch.tensor([s["input_ids"]])
        pos, _ = rope_index(ids, image_token_id=image_token_id, video_token_id=video_token_id,
                            spatial_merge_size=spatial_merge_size, tokens_per_second=tokens_per_second,
                            geometry_tokens=geometry_tokens, video_grid_thw=torch.tensor(s["video_grid_thw"]),
                            second_per_grid_ts=torch.tensor(s["second_per_grid_ts"]))
        mrope.append(pos[:, 0])
        rows.append(torch.arange(len(s["input_ids"])))
    cat = {k: torch.tensor([[v for s in samples for v in s[k]]]) for k in ("input_ids", "labels")}
    text_pos = torch.cat(rows)[None, None]  # (1, 1, ΣL)
    position_ids = torch.cat([text_pos, torch.cat(mrope, dim=1)[:, None]], dim=0)  # (4, 1, ΣL)
    types = torch.tensor([[v for s in samples for v in s["mm_token_type_ids"]]], dtype=torch.int)
    out = {k: v for k, v in padded.items() if k not in ("input_ids", "labels", "attention_mask",
                                                          "mm_token_type_ids")}
    out.update(input_ids=cat["input_ids"], labels=cat["labels"], mm_token_type_ids=types,
               position_ids=position_ids, use_cache=False)
    return out
