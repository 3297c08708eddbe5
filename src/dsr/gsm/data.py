"""DSR-Train conversation JSON → training samples (own frame sampling and patchify; no torchvision).

Format (``/work/helpers/QA_EXPORT.md``): a JSON list of ``{"id", "video": path or [paths],
"conversations": [{"from": "human", "value": "<video>\\n..."}, {"from": "gpt", "value": "A"}],
"visible_until_s"}``; relative video paths are resolved against the JSON file's folder.

A video that fails to decode is skipped and counted by reason (:attr:`DSRTrainDataset.skipped`); its slot is
filled by the next sample that decodes, so batch shapes stay fixed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsr.errors import DsrError
from dsr.gsm.processing import PromptError, VideoProcessing, prepare_sample
from dsr.video import VideoError, probe, read_frames, uniform_indices


class DatasetError(DsrError):
    """A training export that cannot be used as a whole (unreadable, wrong shape, nothing decodes)."""


@dataclass(frozen=True)
class TrainItem:
    item_id: str
    videos: tuple[str, ...]
    human: str
    answer: str
    visible_until_s: float | None


def read_train_json(path: str | os.PathLike[str], limit: int | None = None) -> list[TrainItem]:
    """Parse a DSR-Train conversation export; a malformed entry is a one-line :class:`DatasetError`."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{p}: cannot read DSR-Train JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, list):
        raise DatasetError(f"{p}: expected a JSON list of conversations")
    items = []
    for i, entry in enumerate(raw[:limit] if limit is not None else raw):
        try:
            videos = entry["video"] if isinstance(entry["video"], list) else [entry["video"]]
            turns = entry["conversations"]
            human = next(t["value"] for t in turns if t["from"] == "human")
            answer = next(t["value"] for t in turns if t["from"] == "gpt")
        except (KeyError, TypeError, StopIteration):
            raise DatasetError(f"{p}: entry {i} lacks video / human / gpt fields") from None
        resolved = tuple(str(v if Path(v).is_absolute() else p.parent / v) for v in videos)
        vis = entry.get("visible_until_s")
        items.append(TrainItem(str(entry.get("id", i)), resolved, str(human), str(answer),
                               None if vis is None else float(vis)))
    return items


def sample_video(path: str, num_frames: int, visible_until_s: float | None = None) -> tuple[np.ndarray, float]:
    """``num_frames`` uniformly spaced frames (T, H, W, 3) uint8 among those shown before ``visible_until_s``,
    and the mean seconds between the sampled frames."""
    meta = probe(path)
    visible = meta.num_frames
    if visible_until_s is not None:
        visible = int(np.searchsorted(meta.timestamps_s, visible_until_s, side="left"))
        if visible == 0:
            raise VideoError(f"{path}: no frame before visible_until_s={visible_until_s}")
    idx = uniform_indices(visible, num_frames)
    frames = read_frames(path, idx.tolist())
    stamps = meta.timestamps_s[idx]
    interval = float(np.mean(np.diff(stamps))) if len(idx) > 1 else 1.0 / max(meta.fps, 1e-6)
    return frames, interval


class DSRTrainDataset:
    """Map-style dataset of model-ready samples (see :func:`dsr.gsm.processing.prepare_sample`)."""

    def __init__(self, items: list[TrainItem], tokenizer: Any, *, geometry_tokens: int,
                 video_cfg: VideoProcessing = VideoProcessing(), gsm_text: str = "question") -> None:
        if not items:
            raise DatasetError("the training export holds no conversations")
        self.items = items
        self.tokenizer = tokenizer
        self.geometry_tokens = geometry_tokens
        self.video_cfg = video_cfg
        self.gsm_text = gsm_text
        self.skipped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict[str, Any]:
        """Decode and encode one item; raises VideoError / PromptError."""
        item = self.items[index]
        videos = [sample_video(v, self.video_cfg.num_frames, item.visible_until_s) for v in item.videos]
        sample = prepare_sample(self.tokenizer, videos, item.human, item.answer,
                                geometry_tokens=self.geometry_tokens, video_cfg=self.video_cfg,
                                gsm_text=self.gsm_text)
        sample["id"] = item.item_id
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        for step in range(len(self.items)):
            i = (index + step) % len(self.items)
            try:
                return self.load(i)
            except VideoError:
                self.skipped["video_decode_failed"] += 1
            except PromptError as exc:
                # A question with no text tokens is a data bug worth stopping for (one line).
                raise DatasetError(f"sample {self.items[i].item_id}: {exc}") from None
        raise DatasetError(f"none of the {len(self.items)} training videos could be decoded")
