"""Local Qwen2.5-VL through Hugging Face transformers, from a checkpoint folder (CPU or GPU).

Frames are given as images in the order of the prompt (with the time labels of
:mod:`dsr.bench.prompt` as text), wrapped in Qwen's chat format::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n
    <0.0 s>\\n<|vision_start|><|image_pad|><|vision_end|> … question …<|im_end|>\\n<|im_start|>assistant\\n

Greedy decoding (``do_sample=False``), ``max_new_tokens`` tokens. Calls are serialised with a lock
(one model in memory; run with ``--concurrency 1`` for clean latencies). Heavy imports stay inside.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsr.bench.models import ModelError, Reply, Request
from dsr.bench.prompt import Prompt
from dsr.errors import DsrError

SYSTEM = "You are a helpful assistant."
IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"


def chat_text(prompt: Prompt) -> str:
    """The prompt in Qwen2.5-VL's chat format, one image slot per image part."""
    body = "".join(str(v) if k == "text" else IMAGE_SLOT for k, v in prompt.parts)
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n"
            f"<|im_start|>assistant\n")


@dataclass
class QwenVLModel:
    """Qwen2.5-VL from ``checkpoint`` (a folder with config, weights and processor files)."""

    checkpoint: str
    max_new_tokens: int = 64
    device: str | None = None
    dtype: str = "auto"
    min_pixels: int | None = None
    max_pixels: int | None = 768 * 28 * 28
    uses_frames: bool = True
    name: str = ""
    _loaded: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        path = Path(self.checkpoint)
        if not (path / "config.json").is_file():
            raise DsrError(f"{path}: not a transformers checkpoint folder (no config.json)")
        self.name = self.name or path.name

    def identity(self) -> dict[str, Any]:
        import json

        import torch
        import transformers

        cfg = json.loads((Path(self.checkpoint) / "config.json").read_text())
        return {"backend": "hf-transformers", "checkpoint": str(Path(self.checkpoint).resolve()),
                "architectures": cfg.get("architectures"), "transformers": transformers.__version__,
                "torch": torch.__version__, "device": self._device(), "dtype": self.dtype,
                "decoding": {"do_sample": False, "max_new_tokens": self.max_new_tokens},
                "pixels": {"min": self.min_pixels, "max": self.max_pixels}, "input": "images"}

    def _device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

            # The image processor and tokenizer are loaded on their own (not as AutoProcessor), so the
            # video processor, which needs torchvision, is never required for image input.
            size = None
            if self.max_pixels or self.min_pixels:
                size = {"longest_edge": self.max_pixels or 16384 * 28 * 28, "shortest_edge": self.min_pixels or 56 * 56}
            image_processor = AutoImageProcessor.from_pretrained(self.checkpoint, **({"size": size} if size else {}))
            tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
            dtype = torch.bfloat16 if self.dtype == "auto" and self._device() == "cuda" else (
                torch.float32 if self.dtype == "auto" else getattr(torch, self.dtype))
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(self.checkpoint, dtype=dtype)
            model.to(self._device()).eval()
            self._loaded = (image_processor, tokenizer, model)
        return self._loaded

    def generate(self, request: Request) -> Reply:
        import torch
        from PIL import Image

        start = time.perf_counter()
        with self._lock:
            try:
                image_processor, tokenizer, model = self._load()
            except (OSError, ValueError) as exc:
                raise ModelError("model_error", f"cannot load {self.checkpoint}: {exc}") from None
            text = chat_text(request.prompt)
            inputs: dict[str, Any] = {}
            if request.prompt.images:
                images = [Image.open(io.BytesIO(j)).convert("RGB") for j in request.prompt.images]
                vision = image_processor(images=images, return_tensors="pt")
                merge = int(getattr(image_processor, "merge_size", 2))
                # one <|image_pad|> per merged patch group, as Qwen2.5-VL's processor expands it
                for thw in vision["image_grid_thw"]:
                    n = int(thw.prod()) // (merge * merge)
                    text = text.replace(IMAGE_SLOT, "<|vision_start|>" + "<|placeholder|>" * n + "<|vision_end|>", 1)
                text = text.replace("<|placeholder|>", "<|image_pad|>")
                inputs = {"pixel_values": vision["pixel_values"].to(model.device, model.dtype),
                          "image_grid_thw": vision["image_grid_thw"].to(model.device)}
            enc = tokenizer(text, return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(input_ids=enc["input_ids"].to(model.device),
                                     attention_mask=enc["attention_mask"].to(model.device), **inputs,
                                     max_new_tokens=self.max_new_tokens, do_sample=False)
            new = out[0, enc["input_ids"].shape[1]:]
            reply = tokenizer.decode(new, skip_special_tokens=True)
        return Reply(text=reply, usage={"prompt_tokens": int(enc["input_ids"].shape[1]),
                                        "completion_tokens": len(new)},
                     latency_s=time.perf_counter() - start)
