"""Exports for lmms-eval and VLMEvalKit: round trips through our loaders, the hidden future, and
lmms-eval's own task loader."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.harness_export import export_lmms_eval, export_vlmevalkit
from dsr.evaluate.parse import parse_letter
from dsr.evaluate.prompt import text_without_frames
from dsr.video import probe

from .conftest import make_items


@pytest.fixture()
def good_set(tmp_path: Path, video_dir: Path) -> Path:
    rows = [r for r in make_items(video_dir) if not r["id"].startswith(("broken", "gone"))]
    rows[0]["question"] = 'Tab\tand "quotes",\nnewline?'  # survives TSV quoting
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _same_items(a, b) -> None:
    assert [it.item_id for it in a.items] == [it.item_id for it in b.items]
    for x, y in zip(a.items, b.items, strict=True):
        assert (x.question, x.options, x.answer, x.type, x.video_id) == (y.question, y.options, y.answer, y.type,
                                                                         y.video_id)


@pytest.mark.parametrize("harness", ["lmms-eval", "vlmevalkit"])
def test_export_round_trips_through_our_loader(good_set: Path, tmp_path: Path, harness: str) -> None:
    ds = load_dataset(good_set)
    out = tmp_path / harness
    path = export_lmms_eval(ds, out, task="dsr_toy") if harness == "lmms-eval" else export_vlmevalkit(
        ds, out / "dsr_toy.tsv")
    data = out / "dsr_toy.jsonl" if harness == "lmms-eval" else path
    again = load_dataset(data)
    assert again.format == ("plain" if harness == "lmms-eval" else "vlmevalkit_tsv")
    _same_items(ds, again)
    assert all(Path(it.video_path or "").is_file() for it in again.items)


def test_prediction_items_get_a_clip_without_the_hidden_future(good_set: Path, tmp_path: Path) -> None:
    ds = load_dataset(good_set)
    again = load_dataset(export_vlmevalkit(ds, tmp_path / "x" / "set.tsv"))
    for before, after in zip(ds.items, again.items, strict=True):
        full = probe(before.video_path).duration_s
        if before.type.endswith("_dir_pred"):
            clip = probe(after.video_path)
            # the final second is hidden (dsr eval's rule): the clip ends before it, and says so
            assert clip.duration_s <= full - 1.0 + 1e-6
            assert after.visible_until_s == pytest.approx(full - 1.0)
            assert "clips/" in after.video_path
        else:
            assert Path(after.video_path).resolve() == Path(before.video_path).resolve()
            assert after.visible_until_s is None


def _import_utils(folder: Path):
    spec = importlib.util.spec_from_file_location("dsr_export_utils", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lmms_utils_use_our_prompt_and_parser(good_set: Path, tmp_path: Path) -> None:
    ds = load_dataset(good_set)
    export_lmms_eval(ds, tmp_path / "t", task="dsr_toy")
    utils = _import_utils(tmp_path / "t")
    docs = [json.loads(line) for line in (tmp_path / "t" / "dsr_toy.jsonl").read_text().splitlines()]
    for doc, item in zip(docs, ds.items, strict=True):
        assert utils.doc_to_text(doc) == text_without_frames(item)
        assert Path(utils.doc_to_visual(doc)[0]).is_file()
    doc = docs[1]
    wrong = next(k for k in "ABCD" if k != doc["answer"])
    assert utils.process_results(doc, [f"The answer is {doc['answer']}."])["accuracy"]["correct"] == 1.0
    assert utils.process_results(doc, [f"({wrong})"])["accuracy"]["correct"] == 0.0
    invalid = utils.process_results(doc, ["I cannot tell."])["accuracy"]
    assert invalid == {"id": doc["id"], "type": doc["type"], "tier": parse_letter("I cannot tell.", {"A": "x"}).tier,
                       "correct": 0.0}
    assert utils.aggregate_accuracy([{"correct": 1.0}, {"correct": 0.0}, {"correct": 1.0}]) == pytest.approx(2 / 3)


def test_lmms_eval_task_loader_reads_the_export(good_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lmms_eval", reason="lmms-eval is installed by `make test` (without its dependencies)")
    from lmms_eval.tasks import TaskManager

    ds = load_dataset(good_set)
    export_lmms_eval(ds, tmp_path / "task", task="dsr_toy")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.syspath_prepend(str(tmp_path / "task"))
    manager = TaskManager(include_path=str(tmp_path / "task"), include_defaults=False)
    assert "dsr_toy" in manager.all_tasks
    task = manager.load_task_or_group(["dsr_toy"])["dsr_toy"]
    docs = list(task.test_docs())
    assert len(docs) == len(ds.items)
    first = ds.items[0]
    assert task.doc_to_text(docs[0]) == text_without_frames(first)
    assert Path(task.doc_to_visual(docs[0])[0]).is_file()
    assert task.doc_to_target(docs[0]) == first.answer
    assert task.process_results(docs[0], [first.answer])["accuracy"]["correct"] == 1.0
    sys.modules.pop("utils", None)  # lmms-eval imports the task's utils.py as a top-level module


def test_cli_export_writes_both_and_refuses_unknown_harness(good_set: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    main(["eval", "export", str(good_set), "--to", "vlmevalkit", "--out", str(tmp_path / "v" / "set.tsv")])
    assert "wrote" in capsys.readouterr().out
    main(["eval", "export", str(good_set), "--to", "lmms-eval", "--out", str(tmp_path / "l"), "--task", "dsr_cli"])
    assert (tmp_path / "l" / "dsr_cli.yaml").is_file() and (tmp_path / "l" / "utils.py").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["eval", "export", str(good_set), "--to", "openai", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "--to must be one of lmms-eval, vlmevalkit" in capsys.readouterr().err
