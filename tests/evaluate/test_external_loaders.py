"""Loaders for STI-Bench and VSI-Bench (incl. VSI-Bench-Debiased) on fixtures written in each schema."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsr.evaluate.datasets import DatasetError, load_dataset

# Rows in VSI-Bench's published schema (HF nyu-visionx/VSI-Bench: id, dataset, scene_name, question_type,
# question, options, ground_truth); the numeric types carry options = null and a number as ground truth.
VSI_ROWS = [
    {"id": 0, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": "object_counting",
     "question": "How many chair(s) are in this room?", "options": None, "ground_truth": "4"},
    {"id": 1, "dataset": "scannet", "scene_name": "scene0011_00", "question_type": "object_rel_distance",
     "question": "Which of these objects (sofa, table, lamp, door) is the closest to the tv?",
     "options": ["A. sofa", "B. table", "C. lamp", "D. door"], "ground_truth": "C"},
    {"id": 2, "dataset": "scannetpp", "scene_name": "5ee7c22ba0", "question_type": "object_rel_direction_easy",
     "question": "If I am standing by the bed and facing the desk, is the window to my left or right?",
     "options": ["A. left", "B. right"], "ground_truth": "B"},
    {"id": 3, "dataset": "scannet", "scene_name": "scene0011_00", "question_type": "room_size_estimation",
     "question": "What is the size of this room (in square meters)?", "options": None, "ground_truth": "21.4"},
]

# STI-Bench's qa.parquet schema (MINT-SJTU/STI-Bench: Video, ID, Source, Task, Question, Candidates,
# Answer, time_start, time_end); candidates run A-E.
STI_ROWS = [
    {"Video": "waymo_0012.mp4", "ID": 7, "Source": "waymo", "Task": "Displacement & Path Length", "Scene": "outdoor",
     "Question": "How far did the white car travel?",
     "Candidates": {"A": "2.1 m", "B": "5.4 m", "C": "9.8 m", "D": "14.0 m", "E": "20.3 m"},
     "Answer": "C", "time_start": 1.0, "time_end": 4.5},
    {"Video": "scannet_0042.mp4", "ID": 8, "Source": "scannet", "Task": "Ego-Centric Orientation", "Scene": "indoor",
     "Question": "How did the camera rotate?",
     "Candidates": {"A": "left 30 degrees", "B": "right 30 degrees", "C": "left 90 degrees",
                    "D": "right 90 degrees", "E": "no rotation"},
     "Answer": "E", "time_start": 0.0, "time_end": 2.0},
]


def _write_parquet(rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("container", ["parquet", "jsonl"])
def test_vsibench_loads_multiple_choice_rows_and_counts_numeric_ones(tmp_path: Path, container: str) -> None:
    path = tmp_path / f"test-00000-of-00001.{container}"
    if container == "parquet":
        _write_parquet(VSI_ROWS, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in VSI_ROWS))
    ds = load_dataset(path, videos_dir=tmp_path / "videos", check_videos=False)
    assert ds.format == "vsibench"
    assert [it.item_id for it in ds.items] == ["vsibench/1", "vsibench/2"]
    first, second = ds.items
    assert first.options == {"A": "sofa", "B": "table", "C": "lamp", "D": "door"} and first.answer == "C"
    assert first.type == "object_rel_distance" and first.video_id == "scannet/scene0011_00"
    assert first.video_path == str(tmp_path / "videos" / "scannet" / "scene0011_00.mp4")
    assert second.letters == ("A", "B") and second.answer == "B"
    numeric = [f for f in ds.findings if f.code == "numeric_question"]
    assert len(numeric) == 1 and "2 numeric" in numeric[0].message
    assert "object_counting 1" in numeric[0].message and "room_size_estimation 1" in numeric[0].message


def test_vsibench_debiased_config_with_extra_columns_loads_the_same(tmp_path: Path) -> None:
    rows = [{**r, "pruned": False} for r in VSI_ROWS]  # the debiased config may carry extra columns
    ds = load_dataset(_write_parquet(rows, tmp_path / "debiased.parquet"), check_videos=False)
    assert ds.format == "vsibench" and len(ds.items) == 2


def test_vsibench_answer_outside_options_is_dropped_with_a_finding(tmp_path: Path) -> None:
    rows = [dict(VSI_ROWS[1]), {**VSI_ROWS[2], "ground_truth": "C"}]
    ds = load_dataset(_write_parquet(rows, tmp_path / "bad.parquet"), check_videos=False)
    assert [it.item_id for it in ds.items] == ["vsibench/1"]
    assert any(f.code == "answer_not_in_options" and f.item_id == "vsibench/2" for f in ds.findings)


def test_stibench_loads_five_options_and_states_the_interval(tmp_path: Path) -> None:
    ds = load_dataset(_write_parquet(STI_ROWS, tmp_path / "qa.parquet"), videos_dir=tmp_path, check_videos=False)
    assert ds.format == "stibench"
    first = ds.by_id()["waymo_0012.mp4|7|1.0|4.5"]
    assert first.question == "From 1.0 seconds to 4.5 seconds. How far did the white car travel?"
    assert first.letters == ("A", "B", "C", "D", "E") and first.answer == "C"
    assert first.options["C"] == "9.8 m" and first.type == "Displacement & Path Length"
    assert first.video_path == str(tmp_path / "waymo_0012.mp4") and first.video_id == "waymo_0012"
    assert ds.by_id()["scannet_0042.mp4|8|0.0|2.0"].answer == "E"


def test_stibench_candidates_as_json_text_with_punctuated_keys(tmp_path: Path) -> None:
    rows = [{**STI_ROWS[0], "Candidates": json.dumps({f"{k}.": v for k, v in STI_ROWS[0]["Candidates"].items()})}]
    ds = load_dataset(_write_parquet(rows, tmp_path / "qa.parquet"), check_videos=False)
    assert ds.items[0].options["E"] == "20.3 m" and ds.items[0].answer == "C"


def test_external_format_missing_field_is_one_line_error(tmp_path: Path) -> None:
    rows = [{k: v for k, v in STI_ROWS[0].items() if k != "time_end"}]
    with pytest.raises(DatasetError, match=r"lack field.*time_end"):
        load_dataset(_write_parquet(rows, tmp_path / "qa.parquet"), format="stibench", check_videos=False)
