"""Dataset loaders and lint: VLM4D (real), DSR-Bench parquet, QA export, plain JSONL, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsr.evaluate.datasets import DatasetError, base_id, load_dataset, rotate_options


def test_vlm4d_real_loads_1371_and_flags_duplicate_options(vlm4d_dir: Path) -> None:
    ds = load_dataset(vlm4d_dir / "real_mc.json")
    assert ds.format == "vlm4d"
    assert len(ds.items) == 1371
    dup = [f for f in ds.findings if f.code == "duplicate_options"]
    assert [f.item_id for f in dup] == ["validation_633"]
    item = ds.by_id()["validation_633"]
    assert item.options["C"] == item.options["D"] == "away from the camera"
    assert any(f.code == "answer_ambiguous" and f.item_id == "validation_633" for f in ds.findings)
    # the answer text maps to its letter
    first = ds.by_id()["validation_1"]
    assert first.answer == "B" and first.options["B"] == "there are no buses in the video"
    assert first.video_id == "aerobatics" and first.video_path is None


def test_vlm4d_local_subset_resolves_real_videos(vlm4d_dir: Path) -> None:
    ds = load_dataset(vlm4d_dir / "vlm4d_real_subset_local_davis.json")
    assert len(ds.items) == 97
    assert not [f for f in ds.findings if f.code in ("missing_video", "unreadable_video")]
    assert all(Path(it.video_path or "").is_file() for it in ds.items)


def _official_rows() -> list[dict]:
    return [
        {"videoID": "v1", "question": "Q1?", "options": ["A. left", "B. right", "C. up", "D. down"],
         "answer": "B", "type": "abs_dir"},
        {"videoID": "v1", "question": "Q2?", "options": ["A. (1) Behind|Right.", "B. x", "C. y", "D. z"],
         "answer": "A", "type": "rel_dis"},
        {"videoID": "v2", "question": "Q3?", "options": ["A. same", "B. same", "C. y", "D. z"],
         "answer": "E", "type": "non_temp"},
    ]


def test_dsr_parquet_ids_are_stable_under_reordering(tmp_path: Path) -> None:
    rows = _official_rows()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[::-1]), tmp_path / "b.parquet")
    a = load_dataset(tmp_path / "a.parquet", videos_dir=tmp_path)
    b = load_dataset(tmp_path / "b.parquet", videos_dir=tmp_path)
    assert a.format == "dsr_parquet"
    assert {it.item_id for it in a.items} == {it.item_id for it in b.items}
    assert a.content_hash == b.content_hash and a.row_order_hash != b.row_order_hash
    q2 = next(it for it in a.items if it.question == "Q2?")
    assert q2.options["A"] == "(1) Behind|Right." and q2.answer == "A" and q2.type == "rel_dis"
    assert q2.video_path == str(tmp_path / "v1.mp4")
    # the item whose answer is not among its letters is dropped with a finding; videos are missing
    assert len(a.items) == 2
    codes = {f.code for f in a.findings}
    assert {"answer_not_in_options", "missing_video"} <= codes


def test_qa_export_jsonl(tmp_path: Path, video_dir: Path) -> None:
    row = {"qa_id": "rec1/abs_dir_pred/0123456789ab", "video_id": "rec1", "video_path": "vid0.mp4",
           "record_path": "rec1.npz", "type": "abs_dir_pred", "source": "template", "question": "Where?",
           "options": {"A": "left", "B": "right", "C": "up", "D": "down"}, "answer": "C",
           "answer_text": "up", "visible_until_s": 2.0,
           "query": {"type": "abs_dir_pred", "observer": "camera", "targets": [1]}}
    path = video_dir / "qa.jsonl"
    path.write_text(json.dumps(row) + "\n")
    ds = load_dataset(path)
    it = ds.items[0]
    assert ds.format == "qa_jsonl"
    assert it.item_id == row["qa_id"] and it.video_path == str(video_dir / "vid0.mp4")
    assert it.visible_until_s == 2.0 and it.query == row["query"] and it.record_path == str(video_dir / "rec1.npz")
    assert not [f for f in ds.findings if f.code == "missing_video"]


def test_lint_flags_missing_and_corrupt_videos(toy_dataset: Path) -> None:
    ds = load_dataset(toy_dataset)
    by_code = {(f.code, f.item_id) for f in ds.findings}
    assert ("unreadable_video", "broken/q0") in by_code
    assert ("missing_video", "gone/q0") in by_code
    assert ds.by_id()["gone/q0"].answer == "B"  # answer given as option text
    qpv = next(f for f in ds.findings if f.code == "questions_per_video")
    assert "14 questions on 5 videos" in qpv.message


@pytest.mark.parametrize(("content", "message"), [
    ("[{\"id\": 1, \"question\": \"q\"", "malformed JSON"),
    ("{\"id\": \"a\", \"question\": \"q\", \"options\": [\"A. x\"], \"answer\": \"A\"}\nnot json\n", "line 2"),
    ("{\"question\": \"q\", \"options\": [\"A. x\"], \"answer\": \"A\"}\n", "no id field"),
    ("{\"id\": \"a\", \"question\": \"q\", \"answer\": \"A\"}\n", "missing field 'options'"),
    ("{\"id\": \"a\", \"question\": \"q\", \"options\": [\"A. x\", \"B. y\"], \"answer\": \"A\"}\n"
     "{\"id\": \"a\", \"question\": \"r\", \"options\": [\"A. x\", \"B. y\"], \"answer\": \"B\"}\n", "duplicate item id"),
])
def test_malformed_files_give_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(path, check_videos=False)
    assert "\n" not in str(err.value)


def test_malformed_parquet(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="cannot read parquet"):
        load_dataset(tmp_path / "x.parquet")
    pq.write_table(pa.Table.from_pylist([{"videoID": "v", "question": "q"}]), tmp_path / "y.parquet")
    with pytest.raises(DatasetError, match="lacks column"):
        load_dataset(tmp_path / "y.parquet")


def test_rotation_remaps_answer() -> None:
    from dsr.evaluate.datasets import Item

    it = Item("q1", "v", None, "?", {"A": "a", "B": "b", "C": "c", "D": "d"}, "B", "abs_dis")
    r1 = rotate_options(it, 1)
    assert r1.options == {"A": "d", "B": "a", "C": "b", "D": "c"} and r1.answer == "C"
    assert r1.options[r1.answer] == it.options[it.answer]
    assert base_id(r1.item_id) == "q1" and rotate_options(it, 0).options == it.options
