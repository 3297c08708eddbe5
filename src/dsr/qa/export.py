"""Writing and reading QA files (the contract is ``QA_EXPORT.md`` / ``docs/qa.md``).

* ``.jsonl`` — native: one QA object per line.
* ``.parquet`` — DSR-Bench schema: ``videoID, question, options`` (4 strings "A. text"), ``answer``,
  ``type``, plus every native field as an extra column (objects JSON-encoded as strings).
* ``.json`` — DSR-Train conversations for Qwen2.5-VL fine-tuning.

Writers stream (memory stays flat in the number of QAs) and are atomic: a reader sees the old file
or the complete new one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_open
from dsr.errors import DsrError
from dsr.qa.schema import LETTERS, QA, as_qa

FORMATS = ("jsonl", "parquet", "train_json")
NATIVE_FIELDS = ("qa_id", "video_id", "video_path", "record_path", "type", "source", "question", "options",
                 "answer", "answer_text", "visible_until_s", "query", "frames", "quantity", "stability", "generator")
# our additive columns after the native fields: free-form verdicts, counterfactual distractors' provenance
EXTRA_FIELDS = ("geometric_check", "distractors")
_JSON_COLUMNS = ("options", "query", "frames", "quantity", "generator", *EXTRA_FIELDS)
# native fields that the DSR-Bench columns already carry (options as the prefixed list)
_BENCH_COLUMNS = ("question", "options", "answer", "type")


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The export format of ``path`` from ``fmt`` or its suffix (.jsonl, .parquet, .json)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise DsrError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        return fmt
    suffix = Path(path).suffix.lower()
    by_suffix = {".jsonl": "jsonl", ".parquet": "parquet", ".json": "train_json"}
    if suffix not in by_suffix:
        raise DsrError(f"cannot tell the format of {path} from its suffix (.jsonl, .parquet, .json); pass --format")
    return by_suffix[suffix]


def training_prompt(qa: QA) -> str:
    """The human turn of a DSR-Train conversation."""
    return "<video>\n" + qa.question + "\nOptions:\n" + "\n".join(
        f"{x} {text}" for x, text in zip(LETTERS, qa.options, strict=True))


def train_entry(qa: QA) -> dict[str, Any]:
    return {"id": qa.qa_id, "video": qa.video_path,
            "conversations": [{"from": "human", "value": training_prompt(qa)}, {"from": "gpt", "value": qa.answer}],
            "visible_until_s": qa.visible_until_s}


def bench_row(qa: QA) -> dict[str, Any]:
    """One DSR-Bench parquet row: the benchmark's five columns, then every native field and our additions."""
    native = qa.to_json()
    row: dict[str, Any] = {"videoID": qa.video_id, "question": qa.question,
                           "options": [f"{x}. {text}" for x, text in zip(LETTERS, qa.options, strict=True)],
                           "answer": qa.answer, "type": qa.type,
                           # issue 16: the columns numeric and open exports fill (dsr.qa.free_answer)
                           "answer_format": "mcq", "answer_value": None, "unit": None}
    for name in (*NATIVE_FIELDS, *EXTRA_FIELDS):
        if name in _BENCH_COLUMNS:
            continue
        value = native.get(name)
        row[name] = json.dumps(value, ensure_ascii=False) if name in _JSON_COLUMNS and value is not None else value
    return row


def _bench_schema() -> Any:
    import pyarrow as pa

    fields = [("videoID", pa.string()), ("question", pa.string()), ("options", pa.list_(pa.string())),
              ("answer", pa.string()), ("type", pa.string()), ("answer_format", pa.string()),
              ("answer_value", pa.float64()), ("unit", pa.string())]
    for name in (*NATIVE_FIELDS, *EXTRA_FIELDS):
        if name in _BENCH_COLUMNS:
            continue
        kind = pa.float64() if name in ("visible_until_s", "stability") else pa.string()
        fields.append((name, kind))
    return pa.schema(fields)


def qa_line(qa: QA) -> str:
    """One native JSONL line (with its newline)."""
    return json.dumps(qa.to_json(), ensure_ascii=False, allow_nan=False) + "\n"


def write_qas(path: str | os.PathLike[str], qas: Iterable[QA | Mapping[str, Any]], fmt: str | None = None,
              batch_rows: int = 4096) -> int:
    """Stream ``qas`` (typed, or native JSON objects read as QAs) into ``path`` in the format of its
    suffix (or ``fmt``); returns the count."""
    fmt = format_for(path, fmt)
    count = 0
    if fmt == "jsonl":
        with atomic_open(path, "w") as fh:
            for qa in qas:
                fh.write(qa_line(as_qa(qa)))
                count += 1
    elif fmt == "train_json":
        with atomic_open(path, "w") as fh:
            fh.write("[")
            for qa in qas:
                fh.write(("\n" if count == 0 else ",\n") + json.dumps(train_entry(as_qa(qa)), ensure_ascii=False))
                count += 1
            fh.write("\n]\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _bench_schema()
        with atomic_open(path, "wb") as fh:
            writer = pq.ParquetWriter(fh, schema)
            batch: list[dict[str, Any]] = []
            for qa in qas:
                row = bench_row(as_qa(qa))
                batch.append({k: row.get(k) for k in schema.names})
                count += 1
                if len(batch) >= batch_rows:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch or count == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            writer.close()
    return count


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[QA]:
    """QAs of a native JSONL file; a malformed line raises a one-line DsrError naming it."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise DsrError(f"{path}:{lineno}: malformed JSON ({exc})") from None
            try:
                yield QA.from_json(obj)
            except DsrError as exc:
                raise DsrError(f"{path}:{lineno}: {exc}") from None


def read_bench_parquet(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a DSR-Bench parquet with our JSON columns decoded."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    for row in rows:
        for name in _JSON_COLUMNS:
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def qa_from_bench_row(row: Mapping[str, Any]) -> QA:
    """A typed QA from a decoded row of our own DSR-Bench parquet (:func:`read_bench_parquet`)."""
    native = {name: row.get(name) for name in (*NATIVE_FIELDS, *EXTRA_FIELDS) if row.get(name) is not None}
    native.update(video_id=row["videoID"], question=row["question"], answer=row["answer"], type=row["type"])
    if "options" not in native or not isinstance(native["options"], Mapping):
        native["options"] = {x: str(o).split(". ", 1)[1] for x, o in zip(LETTERS, row["options"], strict=True)}
    return QA.from_json(native)
