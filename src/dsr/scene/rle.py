"""Run-length encoding of binary masks.

A mask (H, W) bool is flattened row-major (C order); its runs alternate 0, 1, 0, ... starting with
a (possibly empty) run of zeros, so ``sum(counts) == H * W``. Encoding is exact and lossless.
"""

from __future__ import annotations

import numpy as np


def rle_encode(mask: np.ndarray) -> np.ndarray:
    """mask: (H, W) bool → counts (N,) uint32, runs of alternating 0 / 1 starting with 0."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return np.zeros(1, np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def rle_decode(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """counts (N,) → mask (H, W) bool; inverse of :func:`rle_encode`."""
    runs = np.asarray(counts, dtype=np.int64)
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    if flat.size != height * width:
        raise ValueError(f"runs cover {flat.size} pixels, expected {height}x{width}")
    return flat.reshape(height, width)


def rle_area(counts: np.ndarray) -> int:
    """Number of foreground pixels."""
    return int(np.asarray(counts, dtype=np.int64)[1::2].sum())


def encode_mask_frames(masks: list[np.ndarray | None], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame masks (None = no mask) → (counts, offsets) as stored in MaskTrack."""
    chunks = [rle_encode(m) if m is not None else np.zeros(0, np.uint32) for m in masks]
    for m in masks:
        if m is not None and m.shape != (height, width):
            raise ValueError(f"mask of shape {m.shape}, expected {(height, width)}")
    offsets = np.concatenate(([0], np.cumsum([len(c) for c in chunks]))).astype(np.int64)
    counts = np.concatenate(chunks) if chunks else np.zeros(0, np.uint32)
    return counts.astype(np.uint32), offsets
