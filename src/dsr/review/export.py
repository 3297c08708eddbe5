"""``dsr review export``: the accepted and edited items, in the DSR-Bench schema plus provenance.

An item is exported when its outcome (:func:`dsr.review.decisions.item_outcome`) is ``accepted`` or
``edited``: every reviewer agreed (at least ``min_reviewers`` of them), or an admin resolved it. The
row is the QA as imported with the final question, options and answer, written by the qa stage's own
writers (``dsr.qa.export``), plus provenance columns:

* ``reviewers`` (list of names), ``decisions`` (each reviewer's action, e.g. ``change_answer:C``) and
  ``decided_at`` (UTC times), aligned with each other;
* ``review_status`` (accepted / edited), ``resolved_by`` / ``resolved_at`` (the admin, if any);
* ``review_detail`` (every decision with its edits and notes) and ``original`` (the imported question,
  options and answer, when the review changed them) — JSON strings in the parquet.

``video_path`` and ``record_path`` are written relative to the output file's folder (as ``dsr qa``
does), so the file loads with ``dsr.evaluate.datasets.load_dataset`` next to its videos.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from dsr.errors import DsrError
from dsr.review.db import Decision, Item, Resolution, User, read_session
from dsr.review.decisions import EXPORTED_STATUSES, Verdict, final_text, item_outcome
from dsr.review.store import item_text, verdict_of

PROVENANCE_LIST_COLUMNS = ("reviewers", "decisions", "decided_at")
PROVENANCE_TEXT_COLUMNS = ("review_status", "resolved_by", "resolved_at", "review_detail", "original")


@dataclass
class ExportReport:
    written: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"written": self.written, "statuses": dict(self.statuses)}


def _decision_word(v: Verdict) -> str:
    if v.action == "change_answer":
        return f"change_answer:{v.answer}"
    if v.action == "reject":
        return f"reject:{v.reason}"
    if v.action == "edit":
        return f"edit:{v.answer}"
    return v.action


def _relative(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return path


def refined_qas(engine: Engine, out_dir: Path, *, min_reviewers: int = 1,
                report: ExportReport | None = None) -> Iterator[dict[str, Any]]:
    """The exported QAs in import order (native QA dicts plus the provenance fields)."""
    report = report if report is not None else ExportReport()
    with read_session(engine) as session:
        names = dict(session.execute(select(User.id, User.name)).all())
        decisions: dict[int, list[Decision]] = defaultdict(list)
        for row in session.scalars(select(Decision).order_by(Decision.id)):
            decisions[row.item_pk].append(row)
        resolutions = {row.item_pk: row for row in session.scalars(select(Resolution))}
        items = list(session.scalars(select(Item).order_by(Item.position)))
    for item in items:
        text = item_text(item)
        rows = decisions.get(item.id, [])
        verdicts = [verdict_of(d) for d in rows]
        res = resolutions.get(item.id)
        outcome = item_outcome(text, verdicts, verdict_of(res) if res is not None else None,
                               min_reviewers=min_reviewers)
        report.statuses[outcome.status] += 1
        if outcome.status not in EXPORTED_STATUSES or outcome.verdict is None:
            continue
        question, options, answer = final_text(outcome.verdict, text)
        # the QA as imported (every native field, whatever the qa stage has added), with the final text
        out: dict[str, Any] = dict(item.qa)
        for key in ("id", "item_id", "video", "local_video", "choices", "question_type", "videoID"):
            out.pop(key, None)  # other loaders' names for the fields set below
        out.update(qa_id=item.item_id, video_id=item.video_id, video_path=_relative(item.video_path, out_dir),
                   record_path=_relative(item.record_path, out_dir), type=item.type, question=question,
                   options=options, answer=answer, answer_text=options[answer], visible_until_s=item.visible_until_s,
                   stability=item.stability)
        out["reviewers"] = [names.get(d.user_id, str(d.user_id)) for d in rows]
        out["decisions"] = [_decision_word(v) for v in verdicts]
        out["decided_at"] = [d.updated_at for d in rows]
        out["review_status"] = outcome.status
        out["resolved_by"] = names.get(res.user_id) if res is not None else None
        out["resolved_at"] = res.updated_at if res is not None else None
        out["review_detail"] = [{"reviewer": names.get(d.user_id, str(d.user_id)), "version": d.version,
                                 "at": d.updated_at, **v.to_json()} for d, v in zip(rows, verdicts, strict=True)]
        changed = (question, options, answer) != (item.question, dict(item.options), item.answer)
        out["original"] = ({"question": item.question, "options": dict(item.options), "answer": item.answer}
                           if changed else None)
        report.written += 1
        yield out


def export_reviewed(engine: Engine, out: str | os.PathLike[str], *, min_reviewers: int = 1) -> ExportReport:
    """Write the accepted and edited items to ``out`` (.parquet: DSR-Bench schema; .jsonl: native)."""
    from dsr.atomic import atomic_open

    target = Path(out)
    suffix = target.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise DsrError(f"{target}: export to .parquet (DSR-Bench schema) or .jsonl")
    if min_reviewers < 1:
        raise DsrError("--min-reviewers must be at least 1")
    report = ExportReport()
    qas = refined_qas(engine, target.resolve().parent, min_reviewers=min_reviewers, report=report)
    if suffix == ".jsonl":
        with atomic_open(target, "w") as fh:
            for qa in qas:
                fh.write(json.dumps(qa, ensure_ascii=False, allow_nan=False) + "\n")
        return report
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dsr.qa.export import _bench_schema  # the qa stage's DSR-Bench schema: one definition

    schema = _bench_schema()
    for name in PROVENANCE_LIST_COLUMNS:
        schema = schema.append(pa.field(name, pa.list_(pa.string())))
    for name in PROVENANCE_TEXT_COLUMNS:
        schema = schema.append(pa.field(name, pa.string()))
    rows = []
    for qa in qas:
        row = _bench_columns(qa)
        for name in PROVENANCE_LIST_COLUMNS:
            row[name] = qa[name]
        row["review_status"], row["resolved_by"], row["resolved_at"] = (
            qa["review_status"], qa["resolved_by"], qa["resolved_at"])
        row["review_detail"] = json.dumps(qa["review_detail"], ensure_ascii=False)
        row["original"] = json.dumps(qa["original"], ensure_ascii=False) if qa["original"] is not None else None
        rows.append({k: row.get(k) for k in schema.names})
    with atomic_open(target, "wb") as fh:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), fh)
    return report


def _bench_columns(qa: dict[str, Any]) -> dict[str, Any]:
    """The DSR-Bench columns of one exported QA: through the qa stage's typed QA and ``bench_row`` when the
    item came from our own export, else the benchmark's five columns plus the native fields it has."""
    from dsr.qa.export import bench_row
    from dsr.qa.schema import LETTERS, QA, QASchemaError

    if all(isinstance(qa.get(k), dict) for k in ("query", "frames", "quantity", "generator")):
        try:
            return bench_row(QA.from_json(qa))
        except QASchemaError:
            pass
    # DSR-Bench, VLM4D or plain items have no query, frames, quantity or generator
    row: dict[str, Any] = {"videoID": qa["video_id"], "question": qa["question"],
                           "options": [f"{k}. {qa['options'][k]}" for k in LETTERS if k in qa["options"]],
                           "answer": qa["answer"], "type": qa["type"]}
    for name, value in qa.items():
        if name not in row and name not in ("options",):
            row[name] = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
    return row
