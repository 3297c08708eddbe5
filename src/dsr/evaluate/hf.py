"""Local Qwen2.5-VL and Qwen3-VL through Hugging Face transformers, from a checkpoint folder (CPU or GPU).

The family is read from the checkpoint's ``config.json`` (``model_type`` ``qwen2_5_vl``, ``qwen3_vl`` or
``qwen3_vl_moe``), so one model name, ``hf-qwen:<dir>``, serves all of them. Two ways to show the frames
(``video_mode``):

* ``frames`` — each frame is an image, in the order of the prompt, with the time labels of
  :mod:`dsr.evaluate.prompt` as text (Qwen2.5-VL's chat format, default system prompt)::

      <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n
      <0.0 s>\\n<|vision_start|><|image_pad|>…<|vision_end|> … question …<|im_end|>\\n<|im_start|>assistant\\n

* ``native`` — the frames form one video and the model's own notion of time carries the timing: Qwen3-VL
  gets a ``<t seconds>`` label before every temporal patch (``tp`` = 2 consecutive frames, ``t`` the mean
  of their times, as Qwen3-VL's processor writes it), Qwen2.5-VL gets ``second_per_grid_ts`` (= tp × the
  median frame spacing) for its temporal rotary positions. The text is the prompt without time labels.

``auto`` (default) is ``native`` for Qwen3-VL and ``frames`` for Qwen2.5-VL.

The image processor and tokenizer are loaded on their own (never ``AutoProcessor``): the video processors
need torchvision, which the harness does not require. Native video is built from the image processor's
per-frame patches: each frame is resized, normalised and patchified exactly as an image, and the first
temporal slot of ``tp`` consecutive frames is stacked into one temporal patch, which is the layout the
video processor produces. Every call passes ``mm_token_type_ids`` so the multimodal rotary positions
(M-RoPE) are computed; without them transformers falls back to 1-D positions for Qwen2.5-VL and refuses
Qwen3-VL.

Greedy decoding (``do_sample=False``), ``max_new_tokens`` tokens. Calls are serialised with a lock (one
model in memory; run with ``--concurrency 1`` for clean latencies). Heavy imports stay inside functions.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsr.errors import DsrError
from dsr.evaluate.base import ModelContext, ModelError, Reply, Request
from dsr.evaluate.prompt import Prompt, text_without_frames
from dsr.evaluate.sampling import median_spacing_s

SYSTEM = "You are a helpful assistant."
IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
# Changes whenever the inputs this backend builds change (enters the manifest): 2 = M-RoPE positions
# passed (mm_token_type_ids), families, native video.
BACKEND_VERSION = 2

# model_type in config.json → (transformers class, system prompt of the family's chat template or None)
FAMILIES: dict[str, tuple[str, str | None]] = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", SYSTEM),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", None),
    "qwen3_vl_moe": ("Qwen3VLMoeForConditionalGeneration", None),
}
VIDEO_MODES = ("auto", "frames", "native")


def checkpoint_family(checkpoint: str | Path) -> str:
    """The ``model_type`` of a checkpoint folder, checked against the supported families."""
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise DsrError(f"{path}: not a transformers checkpoint folder (no config.json)")
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (ValueError, OSError) as exc:
        raise DsrError(f"{path / 'config.json'}: unreadable ({exc.__class__.__name__})") from None
    if model_type not in FAMILIES:
        raise DsrError(f"{path}: model_type {model_type!r} is not supported by hf-qwen "
                       f"(supported: {', '.join(FAMILIES)})")
    return str(model_type)


def chat_wrap(body: str, system: str | None = SYSTEM) -> str:
    """One user turn in Qwen's chat format, ready for the assistant's reply."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"


def chat_text(prompt: Prompt, system: str | None = SYSTEM) -> str:
    """The prompt in Qwen's chat format, one image slot per image part."""
    return chat_wrap("".join(str(v) if k == "text" else IMAGE_SLOT for k, v in prompt.parts), system)


def expand_image_slots(text: str, grids_thw: Sequence[Sequence[int]], merge_size: int) -> str:
    """Each image slot gets one ``<|image_pad|>`` per merged patch group (t·h·w / merge²)."""
    for thw in grids_thw:
        n = int(np.prod([int(x) for x in thw])) // (merge_size * merge_size)
        text = text.replace(IMAGE_SLOT, VISION_START + "\x00" * n + VISION_END, 1)
    return text.replace("\x00", IMAGE_PAD)


def group_times(timestamps_s: Sequence[float], temporal_patch_size: int) -> list[float]:
    """Time of each temporal patch: the frame list is padded with its last frame to a multiple of
    ``temporal_patch_size``, and a patch's time is the mean of its first and last frame."""
    ts = [float(t) for t in timestamps_s]
    if not ts:
        return []
    ts += [ts[-1]] * (-len(ts) % temporal_patch_size)
    return [(ts[i] + ts[i + temporal_patch_size - 1]) / 2 for i in range(0, len(ts), temporal_patch_size)]


def qwen3_video_text(times_s: Sequence[float], tokens_per_patch: int) -> str:
    """Qwen3-VL's video placeholder: ``<t seconds>`` then the patch's vision tokens, per temporal patch."""
    return "".join(f"<{t:.1f} seconds>{VISION_START}{VIDEO_PAD * tokens_per_patch}{VISION_END}" for t in times_s)


def video_patches(frame_patches: np.ndarray, n_frames: int, temporal_patch_size: int,
                  channels: int = 3) -> np.ndarray:
    """Per-frame image patches → video patches.

    frame_patches: (n_frames · N, C · tp · p · p) from the image processor, where each image repeats its
    frame in all tp temporal slots and all frames share one grid of N patches. Returns (G · N, C · tp · p · p)
    with G = ceil(n_frames / tp): temporal patch g holds frames g·tp … g·tp + tp − 1 (the last frame repeats
    to fill the final patch), patch order (g, spatial) — the video processor's layout.
    """
    tp = temporal_patch_size
    per = np.asarray(frame_patches).reshape(n_frames, -1, channels, tp, frame_patches.shape[-1] // (channels * tp))
    first = per[:, :, :, 0]  # (F, N, C, p·p): one copy of each frame
    if pad := -n_frames % tp:
        first = np.concatenate([first, np.repeat(first[-1:], pad, axis=0)], axis=0)
    groups = first.reshape(-1, tp, *first.shape[1:])  # (G, tp, N, C, pp)
    stacked = groups.transpose(0, 2, 3, 1, 4)  # (G, N, C, tp, pp)
    return np.ascontiguousarray(stacked.reshape(-1, frame_patches.shape[-1]))


def mm_token_types(input_ids: Any, image_token_id: int, video_token_id: int) -> Any:
    """0 for text, 1 for image tokens, 2 for video tokens (what M-RoPE groups positions by)."""
    return (input_ids == image_token_id).long() + 2 * (input_ids == video_token_id).long()


@dataclass
class QwenVLModel:
    """Qwen2.5-VL / Qwen3-VL from ``checkpoint`` (a folder with config, weights and processor files)."""

    checkpoint: str
    max_new_tokens: int = 64
    device: str | None = None
    dtype: str = "auto"
    min_pixels: int | None = None
    max_pixels: int | None = 768 * 28 * 28
    video_mode: str = "auto"
    uses_frames: bool = True
    name: str = ""
    family: str = ""
    _loaded: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.family = checkpoint_family(self.checkpoint)
        if self.video_mode not in VIDEO_MODES:
            raise DsrError(f"hf-qwen video mode must be one of {', '.join(VIDEO_MODES)}, got {self.video_mode!r}")
        if self.video_mode == "auto":
            self.video_mode = "frames" if self.family == "qwen2_5_vl" else "native"
        self.name = self.name or Path(self.checkpoint).name

    @classmethod
    def from_spec(cls, arg: str, *, context: ModelContext, max_tokens: int | None = None,
                  **fields: Any) -> QwenVLModel:
        """``hf-qwen:<checkpoint dir>``; ``max_tokens`` is the harness's name for ``max_new_tokens``."""
        if not arg:
            raise DsrError("hf-qwen:<dir> needs a checkpoint folder")
        if max_tokens is not None:
            fields["max_new_tokens"] = max_tokens
        return cls(checkpoint=arg, **fields)

    def identity(self) -> dict[str, Any]:
        import torch
        import transformers

        cfg = json.loads((Path(self.checkpoint) / "config.json").read_text())
        time_note = ("labels in the prompt" if self.video_mode == "frames" else
                     "second_per_grid_ts" if self.family == "qwen2_5_vl" else "<t seconds> per temporal patch")
        return {"backend": "hf-transformers", "backend_version": BACKEND_VERSION, "family": self.family,
                "checkpoint": str(Path(self.checkpoint).resolve()),
                "architectures": cfg.get("architectures"), "transformers": transformers.__version__,
                "torch": torch.__version__, "device": self._device(), "dtype": self.dtype,
                "decoding": {"do_sample": False, "max_new_tokens": self.max_new_tokens},
                "pixels": {"min": self.min_pixels, "max": self.max_pixels},
                "input": "images" if self.video_mode == "frames" else "video", "time": time_note}

    def _device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            import torch
            import transformers
            from transformers import AutoImageProcessor, AutoTokenizer

            size = None
            if self.max_pixels or self.min_pixels:
                size = {"longest_edge": self.max_pixels or 16384 * 28 * 28, "shortest_edge": self.min_pixels or 56 * 56}
            image_processor = AutoImageProcessor.from_pretrained(self.checkpoint, **({"size": size} if size else {}))
            tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
            dtype = torch.bfloat16 if self.dtype == "auto" and self._device() == "cuda" else (
                torch.float32 if self.dtype == "auto" else getattr(torch, self.dtype))
            model_class = getattr(transformers, FAMILIES[self.family][0])
            model = model_class.from_pretrained(self.checkpoint, dtype=dtype)
            model.to(self._device()).eval()
            self._loaded = (image_processor, tokenizer, model)
        return self._loaded

    def _inputs(self, request: Request, image_processor: Any, model: Any) -> tuple[str, dict[str, Any]]:
        """(chat text with expanded vision slots, vision tensors for ``generate``)."""
        from PIL import Image

        system = FAMILIES[self.family][1]
        images = [Image.open(io.BytesIO(j)).convert("RGB") for j in request.prompt.images]
        if not images:  # the blind arm: the text alone, identical in both modes
            return chat_text(request.prompt, system), {}
        if self.video_mode == "frames":
            text = chat_text(request.prompt, system)
            vision = image_processor(images=images, return_tensors="pt")
            merge = int(getattr(image_processor, "merge_size", 2))
            text = expand_image_slots(text, vision["image_grid_thw"].tolist(), merge)
            return text, {"pixel_values": vision["pixel_values"].to(model.device, model.dtype),
                          "image_grid_thw": vision["image_grid_thw"].to(model.device)}
        import torch

        vision = image_processor(images=images, return_tensors="np")
        grids = np.asarray(vision["image_grid_thw"])
        if len({tuple(g) for g in grids.tolist()}) != 1:
            raise ModelError("clip_error", "frames of different sizes cannot form one video")
        tp = int(getattr(image_processor, "temporal_patch_size", 2))
        merge = int(getattr(image_processor, "merge_size", 2))
        pixels = video_patches(np.asarray(vision["pixel_values"]), len(images), tp)
        n_patches = -(-len(images) // tp)
        grid = torch.tensor([[n_patches, int(grids[0][1]), int(grids[0][2])]], device=model.device)
        tokens_per_patch = int(grids[0][1] * grids[0][2]) // (merge * merge)
        # the arms reorder pixels only: the k-th patch keeps the k-th time of the main arm
        stamps = sorted(request.timestamps_s) if request.timestamps_s else [float(k) for k in range(len(images))]
        question = text_without_frames(request.item, request.prompt.style)
        inputs: dict[str, Any] = {"pixel_values_videos": torch.from_numpy(pixels).to(model.device, model.dtype),
                                  "video_grid_thw": grid}
        if self.family == "qwen2_5_vl":
            slot = VISION_START + VIDEO_PAD * (n_patches * tokens_per_patch) + VISION_END
            inputs["second_per_grid_ts"] = torch.tensor([tp * median_spacing_s(stamps)], device=model.device)
        else:
            slot = qwen3_video_text(group_times(stamps, tp), tokens_per_patch)
        return chat_wrap(slot + question, system), inputs

    def generate(self, request: Request) -> Reply:
        import torch

        start = time.perf_counter()
        with self._lock:
            try:
                image_processor, tokenizer, model = self._load()
            except (OSError, ValueError, AttributeError) as exc:  # AttributeError: class missing in this transformers
                raise ModelError("model_error", f"cannot load {self.checkpoint}: {exc}") from None
            text, inputs = self._inputs(request, image_processor, model)
            enc = tokenizer(text, return_tensors="pt")
            input_ids = enc["input_ids"].to(model.device)
            if inputs:
                inputs["mm_token_type_ids"] = mm_token_types(
                    input_ids, tokenizer.convert_tokens_to_ids(IMAGE_PAD), tokenizer.convert_tokens_to_ids(VIDEO_PAD))
            with torch.inference_mode():
                out = model.generate(input_ids=input_ids, attention_mask=enc["attention_mask"].to(model.device),
                                     **inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            new = out[0, input_ids.shape[1]:]
            reply = tokenizer.decode(new, skip_special_tokens=True)
        return Reply(text=reply, usage={"prompt_tokens": int(input_ids.shape[1]), "completion_tokens": len(new)},
                     latency_s=time.perf_counter() - start)
