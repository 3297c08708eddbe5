"""Re-scoring the published VLM4D model outputs with our parser reproduces their accuracies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.report import write_report
from dsr.evaluate.score import rescore_run, score_predictions

PUBLISHED = {
    "gpt-4o_32frame": 0.562,
    "Qwen2.5-VL-7B-Instruct_1fps": 0.433,
    "gemini-2.5-pro-preview-06-05_1fps": 0.638,
}


@pytest.mark.parametrize(("name", "published"), PUBLISHED.items())
def test_vlm4d_published_accuracy_reproduced(vlm4d_dir: Path, tmp_path: Path, name: str, published: float) -> None:
    ds = load_dataset(vlm4d_dir / "real_mc.json", check_videos=False)
    pred = vlm4d_dir / "model_outputs" / f"real_mc_direct-output__{name}.json"
    outcome = score_predictions(pred, ds, tmp_path / name)
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert outcome.n_matched == 1371 and outcome.missing == 0 and not outcome.unknown_ids
    assert abs(summary["overall"]["value"] - published) <= 0.01
    assert summary["overall"]["lo"] < summary["overall"]["value"] < summary["overall"]["hi"]
    # every item where our parse differs from the authors' graded output is listed
    theirs = json.loads(pred.read_text())
    flagged = {d["item_id"] for d in outcome.differences}
    rows = {json.loads(line)["item_id"]: json.loads(line)
            for line in (tmp_path / name / "results.jsonl").read_text().splitlines()}
    for row in theirs:
        ours = rows[row["id"]]
        if ours["correct"] != row["correct"]:
            assert row["id"] in flagged
    recorded = json.loads((tmp_path / name / "differences.json").read_text())
    assert recorded["compared"] == 1371 and len(recorded["differences"]) == len(outcome.differences)


def test_rescore_is_idempotent_and_report_lists_differences(vlm4d_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(vlm4d_dir / "real_mc.json", check_videos=False)
    # a predictions file in the generic schema, with a deliberately disagreeing "extracted_answer"
    rows = [{"item_id": "validation_1", "response": "The answer is B.", "extracted_answer": "C"},
            {"item_id": "validation_2", "response": "I cannot tell."},
            {"item_id": "not_in_dataset", "response": "A"}]
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outcome = score_predictions(pred, ds, tmp_path / "run")
    assert outcome.unknown_ids == ["not_in_dataset"] and outcome.missing == 1369
    assert [d["item_id"] for d in outcome.differences] == ["validation_1"]
    before = (tmp_path / "run" / "results.jsonl").read_text()
    assert rescore_run(tmp_path / "run")["changed"] == 0
    assert (tmp_path / "run" / "results.jsonl").read_text() == before
    md, _ = write_report([tmp_path / "run"], tmp_path / "rep", thumbnails=False, resamples=200)
    text = md.read_text()
    assert "validation_1" in text and "1 differ" in text and "no_prediction: 1369" in text
