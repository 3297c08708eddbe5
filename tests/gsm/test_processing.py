"""Own video preprocessing, chat rendering with N+K placeholders, label masking, collation, data export."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dsr.gsm.processing import (
    IGNORE_INDEX,
    PromptError,
    VideoProcessing,
    collate,
    encode_conversation,
    frames_to_patches,
    prepare_sample,
    smart_resize,
)
from dsr.gsm.tiny import moving_square_video, tiny_tokenizer


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


@pytest.mark.parametrize(("hw", "expected"), [
    ((360, 640), (336, 616)),  # the paper's 640×360 frames under 230 400 px: 24×44 patches
    ((56, 56), (56, 56)),
    ((10, 10), (28, 28)),  # below min_pixels: scaled up
    ((1080, 1920), (336, 616)),
])
def test_smart_resize_golden(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert smart_resize(*hw) == expected


def test_paper_tokens_per_video() -> None:
    h, w = smart_resize(360, 640)
    assert (32 // 2) * (h // 28) * (w // 28) == 4224  # dsr-paper.md §12.2


def test_frames_to_patches_normalises_and_pads_time() -> None:
    frames = np.full((3, 56, 56, 3), 255, dtype=np.uint8)  # odd T: last frame repeated
    rows, grid = frames_to_patches(frames, VideoProcessing(num_frames=3))
    assert grid == (2, 4, 4) and rows.shape == (32, 1176)
    expected = (1.0 - 0.48145466) / 0.26862954
    torch.testing.assert_close(rows.view(32, 3, 2, 14, 14)[:, 0], torch.full((32, 2, 14, 14), expected))


def test_encode_conversation_layout_labels_and_gsm_text(tok: Any) -> None:
    human = "<video>\nWhich direction does the red square move ?\nOptions:\nA left\nB right"
    s = encode_conversation(tok, human, "B", [8], geometry_tokens=4)
    ids, labels, types = s["input_ids"], s["labels"], s["mm_token_type_ids"]
    vs, ve, vid = (tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>"))
    start = ids.index(vs)
    assert ids[start + 1:start + 13] == [vid] * 12 and ids[start + 13] == ve
    assert types[start + 1:start + 9] == [2] * 8 and types[start + 9:start + 13] == [0] * 4
    assert sum(types) == 16
    supervised = [i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX]
    assert tok.convert_ids_to_tokens(supervised) == ["B", "<|im_end|>"]  # the tiny tokenizer drops "\n"
    header = tok.convert_ids_to_tokens(ids[-4:-2])
    assert header == ["<|im_start|>", "assistant"]
    assert tok.decode(s["gsm_text_ids"]) == "Which direction does the red square move ? Options : A left B right"
    prompt = encode_conversation(tok, human, None, [8], geometry_tokens=4)
    assert prompt["input_ids"] == ids[:-2] and set(prompt["labels"]) == {IGNORE_INDEX}


def test_prompt_parity_option_reads_system_prompt_and_role_words(tok: Any) -> None:
    human = "<video>\nWhich direction ?"
    s = encode_conversation(tok, human, "B", [8], geometry_tokens=4, gsm_text="prompt")
    assert tok.decode(s["gsm_text_ids"]) == "system You are a helpful assistant . user Which direction ?"


def test_question_without_text_tokens_and_video_count_errors(tok: Any) -> None:
    with pytest.raises(PromptError, match="no text tokens"):
        encode_conversation(tok, "<video>\n  ", "A", [8], geometry_tokens=4)
    with pytest.raises(PromptError, match="2 <video> tags for 1 videos"):
        encode_conversation(tok, "<video><video> which", "A", [8], geometry_tokens=4)


def test_collate_one_text_row_per_video(tok: Any) -> None:
    frames = moving_square_video("left")
    one = prepare_sample(tok, [(frames, 0.5)], "<video> which direction ?", "A", geometry_tokens=2,
                         video_cfg=VideoProcessing(num_frames=4))
    two = prepare_sample(tok, [(frames, 0.5), (frames[:2], 1.0)], "<video> <video> which camera ?", "B",
                         geometry_tokens=2, video_cfg=VideoProcessing(num_frames=4))
    batch = collate([one, two], tok.pad_token_id)
    assert batch["video_grid_thw"].tolist() == [[2, 4, 4], [2, 4, 4], [1, 4, 4]]
    assert batch["second_per_grid_ts"].tolist() == [1.0, 1.0, 2.0]
    assert batch["pixel_values_videos"].shape == (32 + 32 + 16, 1176)
    assert batch["gsm_text_mask"].sum(1).tolist() == [3, 3, 3]
    assert torch.equal(batch["gsm_text_ids"][1], batch["gsm_text_ids"][2])
    assert batch["attention_mask"][0].sum() == len(one["input_ids"])
    assert (batch["labels"][0, len(one["input_ids"]):] == IGNORE_INDEX).all()


def test_export_reading_and_decode_failures_are_counted(synthetic_export: str, tok: Any) -> None:
    from dsr.gsm.data import DatasetError, DSRTrainDataset, read_train_json

    items = read_train_json(synthetic_export)
    assert len(items) == 5 and items[1].item_id == "broken/0"
    ds = DSRTrainDataset(items, tok, geometry_tokens=2, video_cfg=VideoProcessing(num_frames=4))
    got = [ds[i]["id"] for i in range(len(ds))]
    assert got[1] == items[2].item_id  # the broken video's slot is filled by the next sample
    assert dict(ds.skipped) == {"video_decode_failed": 1}
    assert ds[0]["video_grid_thw"] == [[2, 4, 4]]
    with pytest.raises(DatasetError, match="could be decoded"):
        DSRTrainDataset([items[1]], tok, geometry_tokens=2)[0]


def test_add_geometry_placeholders_to_another_processors_batch(tok: Any) -> None:
    from dsr.gsm.processing import add_geometry_placeholders

    human = "<video> Which direction ?"
    plain = [encode_conversation(tok, human, None, [n], geometry_tokens=0) for n in (8, 4)]
    with_k = [encode_conversation(tok, human, None, [n], geometry_tokens=3) for n in (8, 4)]
    for s, n in zip(plain, (8, 4), strict=True):
        s.update(pixel_values_videos=[torch.zeros(1)], video_grid_thw=[[2, 4, n // 2]], second_per_grid_ts=[1.0])
    batch = collate(plain, tok.pad_token_id)
    batch["pixel_values_videos"] = torch.zeros(1)
    for side in ("right", "left"):
        b = dict(batch)
        if side == "left":  # move row 1's padding to the left
            n = int(b["attention_mask"][1].sum())
            for key in ("input_ids", "attention_mask", "mm_token_type_ids", "labels"):
                b[key] = b[key].clone()
                b[key][1] = torch.roll(b[key][1], b[key].shape[1] - n)
        out = add_geometry_placeholders(b, 3, video_token_id=5, pad_id=tok.pad_token_id)
        for r, expected in enumerate(with_k):
            valid = out["attention_mask"][r].bool()
            assert out["input_ids"][r][valid].tolist() == expected["input_ids"]
            assert out["mm_token_type_ids"][r][valid].tolist() == expected["mm_token_type_ids"]
        assert bool(out["attention_mask"][1, 0] == 0) == (side == "left")
