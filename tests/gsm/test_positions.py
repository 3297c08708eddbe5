"""M-RoPE positions vs hand-computed golden values (original Qwen2.5-VL convention, geometry pads as text)."""

from __future__ import annotations

import pytest
import torch

from dsr.gsm.positions import rope_index

IMG, VID, VS, VE = 4, 5, 3, 6
KW = dict(image_token_id=IMG, video_token_id=VID, spatial_merge_size=2, tokens_per_second=2.0)


def test_text_and_image() -> None:
    ids = torch.tensor([[10, 11, VS, IMG, IMG, IMG, IMG, VE, 12]])
    pos, delta = rope_index(ids, image_grid_thw=torch.tensor([[1, 4, 4]]), **KW)
    assert pos[0, 0].tolist() == [0, 1, 2, 3, 3, 3, 3, 5, 6]
    assert pos[1, 0].tolist() == [0, 1, 2, 3, 3, 4, 4, 5, 6]
    assert pos[2, 0].tolist() == [0, 1, 2, 3, 4, 3, 4, 5, 6]
    assert delta.tolist() == [[7 - 9]]


def test_long_video_text_follows_max_vision_position() -> None:
    # T=8 temporal groups, 2 s per group, 2 tokens/s → t step 4; the last vision t is 30, so the next text is 31
    # (transformers 5.23's own get_rope_index gives 4 here: gsm-model.md §5.1).
    ids = torch.tensor([[10, VS] + [VID] * 32 + [VE]])
    pos, delta = rope_index(ids, video_grid_thw=torch.tensor([[8, 4, 4]]), second_per_grid_ts=torch.tensor([2.0]),
                            **KW)
    assert pos[0, 0, 2:34:4].tolist() == [2, 6, 10, 14, 18, 22, 26, 30]
    assert pos[1, 0, 2:6].tolist() == [2, 2, 3, 3] and pos[2, 0, 2:6].tolist() == [2, 3, 2, 3]
    assert pos[:, 0, -1].tolist() == [31, 31, 31]
    assert delta.item() == 32 - 35


def test_geometry_placeholders_are_text_after_the_vision_block() -> None:
    ids = torch.tensor([[10, VS] + [VID] * 8 + [VID] * 2 + [VE, 11]])
    pos, _ = rope_index(ids, video_grid_thw=torch.tensor([[2, 4, 4]]), second_per_grid_ts=torch.tensor([1.0]),
                        geometry_tokens=2, **KW)
    assert pos[0, 0].tolist() == [0, 1, 2, 2, 2, 2, 4, 4, 4, 4, 5, 6, 7, 8]
    assert pos[1, 0].tolist() == [0, 1, 2, 2, 3, 3, 2, 2, 3, 3, 5, 6, 7, 8]
    assert pos[2, 0].tolist() == [0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 5, 6, 7, 8]


def test_two_videos_in_one_sample_each_with_geometry() -> None:
    ids = torch.tensor([[10, VS] + [VID] * 10 + [VE, VS] + [VID] * 6 + [VE, 11]])
    pos, delta = rope_index(ids, video_grid_thw=torch.tensor([[2, 4, 4], [2, 2, 4]]),
                            second_per_grid_ts=torch.tensor([0.5, 1.0]), geometry_tokens=2, **KW)
    t, h, w = (pos[i, 0].tolist() for i in range(3))
    assert t == [0, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 5, 6, 7, 8, 8, 10, 10, 11, 12, 13, 14]
    assert h == [0, 1, 2, 2, 3, 3, 2, 2, 3, 3, 4, 5, 6, 7, 8, 8, 8, 8, 11, 12, 13, 14]
    assert w == [0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 4, 5, 6, 7, 8, 9, 8, 9, 11, 12, 13, 14]
    assert delta.item() == 15 - 22


def test_batch_with_left_padding_consumes_grids_in_order() -> None:
    row = [10, VS] + [VID] * 10 + [VE, 11]
    ids = torch.tensor([[0, 0, *row], [*row, 12, 13]])
    mask = torch.tensor([[0, 0] + [1] * 14, [1] * 16])
    pos, delta = rope_index(ids, video_grid_thw=torch.tensor([[2, 4, 4], [2, 4, 4]]),
                            second_per_grid_ts=torch.tensor([1.0, 0.5]), geometry_tokens=2, attention_mask=mask, **KW)
    assert pos[:, 0, :2].tolist() == [[1, 1]] * 3
    assert pos[0, 0, 2:].tolist() == [0, 1, 2, 2, 2, 2, 4, 4, 4, 4, 5, 6, 7, 8]
    assert pos[0, 1, :10].tolist() == [0, 1, 2, 2, 2, 2, 3, 3, 3, 3]  # second video: 0.5 s per group
    assert pos[0, 1, -2:].tolist() == [8, 9]
    assert delta.tolist() == [[9 - 14], [10 - 16]]


def test_transformers_5_23_differs_which_is_why_we_own_this() -> None:
    from transformers import Qwen2_5_VLModel

    from dsr.gsm.tiny import tiny_qwen_config

    cfg = tiny_qwen_config()
    cfg.vision_config.tokens_per_second = 2
    model = Qwen2_5_VLModel(cfg)
    ids = torch.tensor([[10, VS] + [VID] * 32 + [VE]])
    types = (ids == VID).int() * 2
    grid, secs = torch.tensor([[8, 4, 4]]), torch.tensor([2.0])
    hf, _ = model.get_rope_index(ids, types, video_grid_thw=grid, second_per_grid_ts=secs)
    ours, _ = rope_index(ids, video_grid_thw=grid, second_per_grid_ts=secs, **KW)
    torch.testing.assert_close(hf[:, :, :-1], ours[:, :, :-1])  # vision block agrees
    assert ours[0, 0, -1].item() == 31 and hf[0, 0, -1].item() != 31


@pytest.mark.parametrize("ids", [
    [10, VS] + [VID] * 7 + [VE],  # fewer placeholders than the grid needs
    [10, VS] + [VID] * 8 + [VE],  # geometry placeholders missing
])
def test_placeholder_mismatch_raises(ids: list[int]) -> None:
    with pytest.raises(ValueError):
        rope_index(torch.tensor([ids]), video_grid_thw=torch.tensor([[2, 4, 4]]), geometry_tokens=2, **KW)
