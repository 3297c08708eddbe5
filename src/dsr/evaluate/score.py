"""Offline scoring: predictions made elsewhere, or an existing run re-parsed with the current parser.

``score_predictions(predictions, dataset, out_dir)`` reads a JSON list or JSON Lines file of
``{id, response}`` objects (id keys: ``item_id``, ``qa_id``, ``id``; reply keys: ``response``,
``prediction``, ``raw_response``, ``output``), joins them to the dataset **by id**, parses every reply
with :func:`dsr.evaluate.parse.parse_letter`, and writes a run directory like ``dsr eval run`` does
(manifest, results, summary). If the file also carries the other harness's reading
(``extracted_answer`` such as ``"B: right"``, ``pred_letter``, or a ``correct`` flag), every item where
our parse differs from theirs is listed in ``differences.json`` and in the report.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.evaluate.datasets import Dataset, DatasetError, _read_records
from dsr.evaluate.parse import PARSER_VERSION
from dsr.evaluate.run import _score_row, rescore_rows, write_summary
from dsr.evaluate.store import MANIFEST, RESULTS, read_manifest, read_results, write_or_check_manifest

ID_KEYS = ("item_id", "qa_id", "id", "index")
REPLY_KEYS = ("response", "prediction", "raw_response", "output")
DIFFERENCES = "differences.json"


@dataclass(frozen=True)
class ScoreOutcome:
    run_dir: Path
    n_predictions: int
    n_matched: int
    unknown_ids: list[str]
    missing: int
    differences: list[dict[str, Any]]


def _their_letter(row: dict[str, Any]) -> str | None:
    for key in ("pred_letter", "extracted_letter", "extracted_answer", "pred"):
        value = row.get(key)
        if isinstance(value, str):
            m = re.match(r"^\s*\(?([A-Z])\)?(?:\s*[:.)]|\s*$)", value)
            return m.group(1) if m else None
    return None


def score_predictions(predictions: str | Path, dataset: Dataset, out_dir: str | Path, *,
                      name: str | None = None) -> ScoreOutcome:
    """Score another harness's replies against ``dataset`` into the run directory ``out_dir``."""
    pred_path = Path(predictions)
    if not pred_path.is_file():
        raise DatasetError(f"{pred_path}: predictions file not found")
    rows = _read_records(pred_path)
    items = dataset.by_id()
    digest = hashlib.sha256(pred_path.read_bytes()).hexdigest()
    manifest = {
        "schema": "dsr.eval.run/1",
        "dataset": {"name": dataset.name, "path": dataset.path, "format": dataset.format,
                    "file_sha256": dataset.file_sha256, "content_sha256": dataset.content_hash,
                    "row_order_sha256": dataset.row_order_hash, "n_items": len(dataset.items)},
        "frame_policy": {"uses_frames": "unknown (external predictions)"},
        "arm": "main", "circular": False, "prompt": {"style": "external"},
        "model": {"backend": "external", "name": name or pred_path.stem, "predictions": str(pred_path.resolve()),
                  "predictions_sha256": digest},
        "judge": "rules only", "parser_version": PARSER_VERSION,
    }
    out = Path(out_dir)
    manifest = write_or_check_manifest(out, manifest)
    results: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, 1):
        item_id = next((str(row[k]) for k in ID_KEYS if row.get(k) is not None), None)
        reply_key = next((k for k in REPLY_KEYS if k in row), None)
        if item_id is None or reply_key is None:
            raise DatasetError(f"{pred_path}: row {n}: needs an id ({'/'.join(ID_KEYS)}) and a reply "
                               f"({'/'.join(REPLY_KEYS)})")
        item = items.get(item_id)
        if item is None:
            unknown.append(item_id)
            continue
        if item_id in seen:
            raise DatasetError(f"{pred_path}: item {item_id!r} has more than one prediction")
        seen.add(item_id)
        response = row[reply_key]
        scored = _score_row(item, None if response is None else str(response))
        results.append({"item_id": item_id, "base_id": item_id, "video_id": item.video_id,
                        "video_path": item.video_path, "question": item.question, "type": item.type,
                        "arm": "main", "manifest_hash": manifest["manifest_hash"], "gold": item.answer,
                        "n_options": len(item.options), "options": dict(item.options),
                        "parser_version": PARSER_VERSION, "response": response, "usage": {}, "latency_s": None,
                        "error": None, "frames": None, **scored})
        theirs = _their_letter(row)
        their_correct = row.get("correct") if isinstance(row.get("correct"), bool) else None
        has_theirs = any(k in row for k in ("pred_letter", "extracted_letter", "extracted_answer", "pred"))
        if (has_theirs and theirs != scored["letter"]) or (
                their_correct is not None and their_correct != scored["correct"]):
            differences.append({"item_id": item_id, "response": response, "ours": scored["letter"],
                                "our_tier": scored["tier"], "theirs": theirs, "gold": item.answer,
                                "our_correct": scored["correct"], "their_correct": their_correct})
    missing = [it for it in dataset.items if it.item_id not in seen]
    for it in missing:
        results.append({"item_id": it.item_id, "base_id": it.item_id, "video_id": it.video_id,
                        "video_path": it.video_path, "question": it.question, "type": it.type,
                        "arm": "main", "manifest_hash": manifest["manifest_hash"], "gold": it.answer,
                        "n_options": len(it.options), "options": dict(it.options),
                        "parser_version": PARSER_VERSION, "response": None, "letter": None, "tier": None,
                        "invalid": None, "correct": None, "usage": {}, "latency_s": None,
                        "error": {"reason": "no_prediction", "message": "no prediction for this item"},
                        "frames": None})
    atomic_write_text(out / RESULTS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    atomic_write_text(out / DIFFERENCES, json.dumps({"compared": len(seen), "unknown_ids": unknown,
                                                     "differences": differences}, indent=1,
                                                    ensure_ascii=False) + "\n")
    write_summary(out)
    return ScoreOutcome(run_dir=out, n_predictions=len(rows), n_matched=len(seen), unknown_ids=unknown,
                        missing=len(missing), differences=differences)


def rescore_run(run_dir: str | Path) -> dict[str, int]:
    """Re-parse a run's replies with the current parser, rewrite the rows atomically, refresh the summary.

    Returns how many rows changed letter. Idempotent; never calls a model.
    """
    out = Path(run_dir)
    manifest = read_manifest(out)
    rows = read_results(out)
    new = rescore_rows(rows)
    changed = sum(1 for a, b in zip(rows, new, strict=True) if a.get("letter") != b.get("letter"))
    atomic_write_text(out / RESULTS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))
    if manifest.get("parser_version") != PARSER_VERSION:
        manifest["rescored_with_parser"] = PARSER_VERSION
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    write_summary(out)
    tiers = Counter(r.get("tier") for r in new if not r.get("error"))
    return {"rows": len(new), "changed": changed, **{f"tier/{k}": v for k, v in tiers.items()}}
