"""Question sets for the harnesses people already use: an lmms-eval task folder and a VLMEvalKit TSV.

Both exports start from any set our loaders read (:func:`dsr.evaluate.datasets.load_dataset`), so a set
made by ``dsr qa`` — or DSR-Bench, VLM4D, VSI-Bench — can be run in lmms-eval or VLMEvalKit and scored
there with the same prompt, letters and hidden future as in ``dsr eval``:

* **lmms-eval** (``export_lmms_eval``): ``<task>.yaml`` (``dataset_path: json`` over the folder's
  ``<task>.jsonl``), ``utils.py`` (``doc_to_visual``, ``doc_to_text``, ``process_results`` and the
  accuracy aggregation) and the data. ``utils.py`` imports ``dsr`` for the prompt text and the one
  letter parser, so the lmms-eval environment needs ``pip install dsr`` (the core has no torch).
* **VLMEvalKit** (``export_vlmevalkit``): one TSV in the layout of VLMEvalKit's video MCQ sets such as
  its ``DSRBench``: ``index, video, question, options`` (a JSON list of ``"A. text"``), ``answer``,
  ``task_type``, plus our ``item_id`` and ``visible_until_s``.

**The hidden future.** A harness that is handed a video shows all of it. For items whose frames must
stop early (``visible_until_s``, or the final second of a ``*_dir_pred`` item as in ``dsr eval``), the
export writes the visible part as its own clip under ``clips/`` and points the item at it, so no
harness can leak the answer of a prediction question.

Video paths in the exports are relative to the export's folder where the video lies under it, else
absolute. Both outputs load back through :func:`load_dataset` (``plain`` and ``vlmevalkit_tsv``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError
from dsr.evaluate.datasets import Dataset, Item
from dsr.evaluate.sampling import FramePolicy, visible_limit_s

HARNESSES = ("lmms-eval", "vlmevalkit")
TSV_COLUMNS = ("index", "item_id", "video_id", "video", "question", "options", "answer", "task_type", "visible_until_s")

_LMMS_UTILS = '''"""lmms-eval task functions for a question set exported by ``dsr eval export`` (needs ``pip install dsr``).

The prompt text and the letter parser are dsr's own, so scores match ``dsr eval`` item for item.
"""

from pathlib import Path

from dsr.evaluate.datasets import Item
from dsr.evaluate.parse import parse_letter
from dsr.evaluate.prompt import text_without_frames

HERE = Path(__file__).resolve().parent


def _options(doc):
    return dict(option.split(". ", 1) for option in doc["options"])


def _item(doc):
    return Item(item_id=doc["id"], video_id=doc["video"], video_path=None, question=doc["question"],
                options=_options(doc), answer=doc["answer"], type=doc["type"])


def doc_to_visual(doc):
    path = Path(doc["video"])
    return [str(path if path.is_absolute() else HERE / path)]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return text_without_frames(_item(doc))


def process_results(doc, results):
    parsed = parse_letter(results[0], _options(doc))
    return {"accuracy": {"id": doc["id"], "type": doc["type"], "tier": parsed.tier,
                         "correct": float(parsed.letter == doc["answer"])}}


def aggregate_accuracy(results):
    return sum(r["correct"] for r in results) / len(results) if results else 0.0
'''

_LMMS_YAML = """# lmms-eval task written by `dsr eval export` from {source}
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 64
  temperature: 0
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: accuracy
    aggregation: !function utils.aggregate_accuracy
    higher_is_better: true
metadata:
  version: 1
  dsr_items: {n}
"""


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it, else absolute."""
    path, root = path.resolve(), root.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def visible_clip(item: Item, out_dir: Path, policy: FramePolicy = FramePolicy()) -> tuple[Path, float | None]:
    """The item's video, or — when frames must stop early — a clip of its visible part under
    ``out_dir/clips`` (written once per video and limit); and the visibility limit applied (None: all)."""
    if not item.video_path:
        raise DsrError(f"{item.item_id}: no local video (pass --videos)")
    from dsr.video import iter_frames, probe, write_video

    video = Path(item.video_path)
    meta = probe(video)
    limit = visible_limit_s(item.type, item.visible_until_s, meta.duration_s, policy)
    if limit is None or limit >= meta.duration_s:
        return video, None
    clip = out_dir / "clips" / f"{video.stem}__until_{limit:.3f}s.mp4"
    if not clip.exists():
        frames = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for t, f in iter_frames(video) if t < limit]
        if not frames:
            raise DsrError(f"{item.item_id}: no frame before {limit:.3f} s")
        write_video(clip, frames, meta.fps)
    return clip, limit


def _rows(dataset: Dataset, out_dir: Path, progress: Callable[[int], None] | None) -> list[dict]:
    rows = []
    for it in dataset.items:
        clip, limit = visible_clip(it, out_dir)
        # the limit travels with the trimmed clip, so dsr eval shows the same frames after a round trip
        rows.append({"id": it.item_id, "video_id": it.video_id, "video": _relative(clip, out_dir), "question": it.question,
                     "options": [f"{k}. {v}" for k, v in it.options.items()], "answer": it.answer,
                     "type": it.type, "visible_until_s": limit if limit is not None else it.visible_until_s})
        if progress is not None:
            progress(1)
    return rows


def export_lmms_eval(dataset: Dataset, out_dir: str | os.PathLike[str], *, task: str | None = None,
                     progress: Callable[[int], None] | None = None) -> Path:
    """Write an lmms-eval task folder for ``dataset``; returns the YAML's path."""
    out = Path(out_dir)
    task = task or "dsr_" + "".join(c if c.isalnum() else "_" for c in dataset.name).strip("_").lower()
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(dataset, out, progress)
    data = out / f"{task}.jsonl"
    atomic_write_text(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(out / "utils.py", _LMMS_UTILS)
    yaml_path = out / f"{task}.yaml"
    # lmms-eval resolves data_files against its working directory, so the data path is absolute
    atomic_write_text(yaml_path, _LMMS_YAML.format(source=dataset.path, task=task, data=json.dumps(str(data.resolve())),
                                                   n=len(rows)))
    return yaml_path


def export_vlmevalkit(dataset: Dataset, out_path: str | os.PathLike[str], *,
                      progress: Callable[[int], None] | None = None) -> Path:
    """Write a VLMEvalKit-style video MCQ TSV for ``dataset``; videos are relative to its folder."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(dataset, out.parent, progress)
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TSV_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for index, r in enumerate(rows):
        writer.writerow({"index": index, "item_id": r["id"], "video_id": r["video_id"], "video": r["video"], "question": r["question"],
                         "options": json.dumps(r["options"], ensure_ascii=False), "answer": r["answer"],
                         "task_type": r["type"],
                         "visible_until_s": "" if r["visible_until_s"] is None else r["visible_until_s"]})
    atomic_write_text(out, buf.getvalue())
    return out
