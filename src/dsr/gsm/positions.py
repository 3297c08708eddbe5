"""M-RoPE position indices for Qwen2.5-VL sequences with GSM geometry placeholders.

Our own function, golden-tested, so positions do not drift with transformers releases
(``gsm-model.md`` §5.1): the original Qwen2.5-VL (transformers 4.51) convention.

- Text tokens: 1-D positions (same on the t, h, w axes), starting at ``max(previous positions) + 1``
  (0 for the first token).
- A vision block (image or video, ``t·h·w / m²`` placeholders) starting at ``s``: positions
  ``(⌊t_idx · second_per_grid_t · tokens_per_second⌋ + s, h_idx + s, w_idx + s)``; images use t_idx = 0.
- The ``geometry_tokens`` placeholders that follow each video's vision block (GSM) are typed as text:
  they continue at ``max(vision positions) + 1`` like the text after them.
- Padding (``attention_mask == 0``) gets position 1 (as 4.51 does); it is never attended.
"""

from __future__ import annotations

import torch


def _flush_text(chunks: list[torch.Tensor], next_pos: int, count: int) -> int:
    """Append 1-D positions for ``count`` text tokens starting at ``next_pos``; return the next free position."""
    if count:
        chunks.append(torch.arange(next_pos, next_pos + count).expand(3, -1))
    return next_pos + count


def rope_index(
    input_ids: torch.Tensor,
    *,
    image_token_id: int,
    video_token_id: int,
    spatial_merge_size: int,
    tokens_per_second: float,
    geometry_tokens: int = 0,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | list[float] | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (3, B, L) long and rope deltas (B, 1) (``max position + 1 − valid length``, for decoding).

    input_ids: (B, L). Grids are consumed in order of appearance across the batch (row 0 first), one per
    image / video block; each video block is ``t·h·w/m²`` video placeholders followed by ``geometry_tokens``
    more. A placeholder count that does not fit the grids raises ``ValueError``.
    """
    b, length = input_ids.shape
    device = input_ids.device
    positions = torch.ones(3, b, length, dtype=torch.long, device=device)
    deltas = []
    images = iter(image_grid_thw.tolist() if image_grid_thw is not None else [])
    videos = iter(video_grid_thw.tolist() if video_grid_thw is not None else [])
    seconds = iter([]) if second_per_grid_ts is None else iter(torch.as_tensor(second_per_grid_ts).tolist())
    m2 = spatial_merge_size * spatial_merge_size
    for row in range(b):
        valid = attention_mask[row].bool() if attention_mask is not None else torch.ones(length, dtype=torch.bool)
        ids = input_ids[row][valid.to(device)].tolist()
        chunks: list[torch.Tensor] = []
        next_pos = 0
        text_run = 0  # text-typed tokens seen since the last chunk was written

        i = 0
        while i < len(ids):
            tok = ids[i]
            if tok not in (image_token_id, video_token_id):
                text_run += 1
                i += 1
                continue
            next_pos = _flush_text(chunks, next_pos, text_run)
            text_run = 0
            is_video = tok == video_token_id
            try:
                grid = next(videos) if is_video else next(images)
            except StopIteration:
                raise ValueError(f"row {row}: more {'video' if is_video else 'image'} blocks than grids") from None
            t, h, w = (int(v) for v in grid)
            n = t * h * w // m2
            if ids[i:i + n] != [tok] * n:
                raise ValueError(f"row {row}: a {'video' if is_video else 'image'} block at token {i} has fewer "
                                 f"than the {n} placeholders its grid {grid} needs")
            interval = float(next(seconds, 1.0)) * tokens_per_second if is_video else 0.0
            lh, lw = h // spatial_merge_size, w // spatial_merge_size
            tt = (torch.arange(t, dtype=torch.float64) * interval).long()
            gt, gh, gw = torch.meshgrid(tt, torch.arange(lh), torch.arange(lw), indexing="ij")
            block = torch.stack([gt, gh, gw]).reshape(3, -1) + next_pos
            chunks.append(block)
            next_pos = int(block.max()) + 1
            i += n
            if is_video and geometry_tokens:
                if ids[i:i + geometry_tokens] != [tok] * geometry_tokens:
                    raise ValueError(f"row {row}: video block ending at token {i} lacks its {geometry_tokens} "
                                     "geometry placeholders")
                text_run += geometry_tokens
                i += geometry_tokens
        next_pos = _flush_text(chunks, next_pos, text_run)
        pos = torch.cat(chunks, dim=1) if chunks else torch.zeros(3, 0, dtype=torch.long)
        positions[:, row, valid.to(device)] = pos.to(device)
        deltas.append((int(pos.max()) + 1 - len(ids)) if len(ids) else 0)
    return positions, torch.tensor(deltas, dtype=torch.long, device=device).unsqueeze(1)
