"""A model backend for ``dsr eval``: answer a prompt about frames with a GSM checkpoint or a base Qwen2.5-VL.

Interface (no dependency on ``dsr.evaluate``; the CLI wraps it in ``dsr.evaluate.models.VideoBackendModel``,
which turns the harness's requests into these calls)::

    backend = create_backend("path/to/checkpoint", max_new_tokens=16)   # or GSMBackend(...)
    text = backend.generate(frames, prompt)      # frames: (T, H, W, 3) uint8 RGB, or encoded JPEG/PNG bytes
    backend.name                                   # "gsm:<dir name>" / "qwen2_5_vl:<dir name>"
    backend.identity()                             # dict for the run manifest
    backend.uses_frames                            # True

``frames`` are the frames the harness sampled (32 uniform frames in the paper's protocol); pass
``frame_interval_s`` (seconds between them) when known so temporal positions match training. The prompt is the
user text (question and options); the backend adds the video placeholders, the system prompt and the chat
rendering used in training, and for the GSM the question tokens it selects geometry with. Greedy decoding.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsr.gsm.processing import VideoProcessing, collate, prepare_sample


def as_frame_array(frames: np.ndarray | Sequence[bytes]) -> np.ndarray:
    """(T, H, W, 3) uint8 from an array or from encoded images (JPEG/PNG bytes, as the harness sends them)."""
    if isinstance(frames, np.ndarray):
        return frames
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in frames])


class GSMBackend:
    """Greedy generation with :class:`~dsr.gsm.modeling.GSMQwen2_5_VLForConditionalGeneration`.

    checkpoint: a dir from ``dsr model assemble`` / ``dsr train`` (GSM, addition or sft) or a base Qwen2.5-VL
    dir (run as plain Qwen: the paper's baseline).
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, max_new_tokens: int = 16, num_frames: int = 32,
                 max_pixels: int = 230_400, device: str = "cpu", dtype: Any = None,
                 gsm_text: str | None = None) -> None:
        import torch

        from dsr.gsm.assemble import load_tokenizer, require_files
        from dsr.gsm.configuration import load_gsm_config
        from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

        path = require_files(checkpoint, "model")
        config = load_gsm_config(str(path))  # a base Qwen2.5-VL dir runs as plain Qwen
        self.model = GSMQwen2_5_VLForConditionalGeneration.from_pretrained(str(path), config=config, dtype=dtype)
        self.model.to(device).eval()
        self.tokenizer = load_tokenizer(str(path))
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.gsm_text = gsm_text or config.gsm_text  # what training used, recorded in the checkpoint
        self.video_cfg = VideoProcessing(num_frames=num_frames, max_pixels=max_pixels)
        kind = "qwen2_5_vl" if config.gsm_strategy == "none" else config.gsm_strategy
        self.name = f"{kind}:{path.name}"
        self.uses_frames = True
        self._identity = {"backend": "dsr.gsm", "checkpoint": str(path.resolve()), "strategy": config.gsm_strategy,
                          "num_queries": config.geometry_tokens_per_video, "num_frames": num_frames,
                          "max_pixels": max_pixels, "max_new_tokens": max_new_tokens, "decoding": "greedy",
                          "gsm_text": self.gsm_text}

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def inputs(self, frames: np.ndarray | Sequence[bytes], prompt: str,
               frame_interval_s: float = 1.0) -> dict[str, Any]:
        """Model inputs (batch of one) for ``frames`` and ``prompt``."""
        frames = as_frame_array(frames)
        sample = prepare_sample(self.tokenizer, [(frames, frame_interval_s)], prompt, None,
                                geometry_tokens=self.model.config.geometry_tokens_per_video, video_cfg=self.video_cfg,
                                gsm_text=self.gsm_text)
        batch = collate([sample], self.tokenizer.pad_token_id or 0)
        batch.pop("labels")
        return {k: v.to(self.device) for k, v in batch.items()}

    def generate(self, frames: np.ndarray | Sequence[bytes], prompt: str, *, frame_interval_s: float = 1.0) -> str:
        """The model's answer text for one video and prompt (special tokens stripped)."""
        import torch

        batch = self.inputs(frames, prompt, frame_interval_s)
        with torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, batch["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()


def create_backend(checkpoint: str | os.PathLike[str], **kwargs: Any) -> GSMBackend:
    """Factory for the harness's registry (``"gsm": "dsr.gsm.eval_backend:create_backend"``)."""
    return GSMBackend(checkpoint, **kwargs)
