"""Multiple-choice video question sets: one :class:`Item` type, loaders for each format, and a lint.

Formats (``load_dataset(path, format="auto")`` picks by extension and columns):

* ``dsr_parquet`` — the official DSR-Bench ``benchmark.parquet``: ``videoID, question, options``
  (4 strings ``"A. text"``), ``answer`` (letter), ``type``. Videos are ``{videos_dir}/{videoID}.mp4``.
  Our own parquet export (``QA_EXPORT.md``) is the same plus extra columns (``qa_id`` …), used when present.
* ``qa_jsonl`` / ``plain`` — JSON Lines (or a JSON list), one question per line. Our QA export
  (``qa_id, video_id, video_path, question, options, answer, type, visible_until_s, query,
  record_path``) and the plain schema documented in ``docs/eval.md`` (``id, video, question,
  options, answer, type``; options a letter→text object or a list; answer a letter or an option text).
* ``vlm4d`` — VLM4D's ``real_mc.json`` / ``synthetic_mc.json``: ``id, video (URL), question_type,
  question, choices {A..D}, answer`` where the answer is the option *text*.
* ``vsibench`` — VSI-Bench and VSI-Bench-Debiased (``nyu-visionx/VSI-Bench``, configs ``full`` and
  ``debiased``; parquet or JSON): ``id, dataset, scene_name, question_type, question, options`` (a
  list of ``"A. text"`` for multiple-choice types, null for numeric ones), ``ground_truth`` (a letter,
  or a number for numeric types). Videos are ``{videos_dir}/{dataset}/{scene_name}.mp4``. Numeric
  (``NA``) questions are not multiple choice: they are counted in one ``numeric_question`` finding and
  left out.
* ``vlmevalkit_tsv`` — a VLMEvalKit-style video MCQ TSV (as ``dsr eval export --to vlmevalkit`` writes):
  ``index, video, question, answer`` and either ``options`` (a JSON list of ``"A. text"``) or one column
  per letter ``A, B, C, …``; ``task_type`` or ``category`` is the type; ``item_id`` when present.
  Videos are relative to ``videos_dir`` or the TSV's folder.
* ``stibench`` — STI-Bench's ``qa.parquet`` (``MINT-SJTU/STI-Bench``): ``Video, ID, Source, Task,
  Question, Candidates`` (letter → text, up to E), ``Answer`` (letter), ``time_start, time_end``.
  Videos are ``{videos_dir}/{Video}``; the question is asked over its interval, so the item's question
  is prefixed "From {time_start} seconds to {time_end} seconds." as the official script does.

Items are identified by a stable ``item_id`` (the file's id, or a content hash for the official parquet
which has none) — results join on it, never on row position. Every load returns lint findings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsr.errors import DsrError
from dsr.qa.question_types import NON_TEMPLATE, QUESTION_TYPES
from dsr.qa.question_types import TYPE_LABELS as TYPE_LABELS  # re-exported for the report

# Table 4's column order (dsr-paper.md §13), from the question-type table of dsr.qa; other types
# (e.g. VLM4D's) follow, sorted.
TYPE_ORDER: tuple[str, ...] = (*QUESTION_TYPES, NON_TEMPLATE)
FORMATS = ("auto", "dsr_parquet", "qa_jsonl", "qa_free", "plain", "vlm4d", "vsibench", "stibench", "vlmevalkit_tsv")
FREE_FORMATS = frozenset({"numeric", "open"})
# columns that identify the external benchmarks whatever their container (parquet, JSON, JSON Lines)
_VSIBENCH_COLUMNS = frozenset({"scene_name", "question_type", "ground_truth"})
_STIBENCH_COLUMNS = frozenset({"Video", "Question", "Candidates", "Answer"})


class DatasetError(DsrError):
    """A question file that cannot be read or has no usable items."""


@dataclass(frozen=True)
class Item:
    """One question on one video: multiple choice (``answer_format`` "mcq", the default), or a number or a
    state sequence with no options (issue 16: "numeric", "open").

    options: letter → option text (no letter prefix), in letter order; empty for numeric and open items,
    whose ``answer`` is the reference answer's text. answer_value, unit: a numeric item's number and unit
    ("m", "m/s", "deg", "ratio"); rule: an open item's answer rule (which states its sequence has).
    visible_until_s: a model may see only frames with timestamp < this; None = whole video.
    video_path: a local file, or None when the dataset only names a URL (the run records a failure).
    """

    item_id: str
    video_id: str
    video_path: str | None
    question: str
    options: dict[str, str]
    answer: str
    type: str
    visible_until_s: float | None = None
    query: dict[str, Any] | None = None
    record_path: str | None = None
    qa_config: dict[str, Any] | None = None  # the generator's QAConfig (our QA exports), for the oracle
    answer_format: str = "mcq"
    answer_value: float | None = None
    unit: str | None = None
    rule: str | None = None

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(self.options)

    @property
    def is_mcq(self) -> bool:
        return self.answer_format == "mcq"

    def to_json(self) -> dict[str, Any]:
        out = {"item_id": self.item_id, "video_id": self.video_id, "video_path": self.video_path,
               "question": self.question, "options": dict(self.options), "answer": self.answer,
               "type": self.type, "visible_until_s": self.visible_until_s, "query": self.query,
               "record_path": self.record_path, "qa_config": self.qa_config}
        if not self.is_mcq:
            out.update(answer_format=self.answer_format, answer_value=self.answer_value, unit=self.unit,
                       rule=self.rule)
        return out


@dataclass(frozen=True)
class Finding:
    """One lint result. level: ``error`` (item dropped or unusable), ``warning`` or ``info``."""

    level: str
    code: str
    message: str
    item_id: str = ""


@dataclass(frozen=True)
class Dataset:
    """Items in file order plus what the lint found. ``file_sha256`` identifies the source bytes."""

    name: str
    path: str
    format: str
    items: tuple[Item, ...]
    findings: tuple[Finding, ...] = field(default=())
    file_sha256: str = ""

    @property
    def content_hash(self) -> str:
        """sha256 of the items as evaluated (order-independent: sorted by id)."""
        blob = json.dumps(sorted((it.to_json() for it in self.items), key=lambda d: d["item_id"]),
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def row_order_hash(self) -> str:
        """sha256 of the item ids in file order (detects a re-ordered file with the same content)."""
        return hashlib.sha256("\n".join(it.item_id for it in self.items).encode()).hexdigest()

    def by_id(self) -> dict[str, Item]:
        return {it.item_id: it for it in self.items}


# ---------------------------------------------------------------------------------------------- helpers

_PREFIX = re.compile(r"^\s*\(?([A-Z])\s*[.):：]\s*")


def _split_prefixed(options: Iterable[str]) -> dict[str, str]:
    """``["A. x", "B. y"]`` → ``{"A": "x", "B": "y"}``; unprefixed lists get letters in order."""
    opts = [str(o) for o in options]
    out: dict[str, str] = {}
    prefixed = [_PREFIX.match(o) for o in opts]
    if all(prefixed):
        for o, m in zip(opts, prefixed, strict=True):
            out[m.group(1)] = o[m.end():].strip()  # type: ignore[union-attr]
        if len(out) == len(opts):
            return out
    return {chr(ord("A") + i): o.strip() for i, o in enumerate(opts)}


def _options_of(raw: Any, where: str) -> dict[str, str]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = [ln for ln in raw.splitlines() if ln.strip()]
    if isinstance(raw, Mapping):
        return {str(k).strip().upper(): str(v).strip() for k, v in raw.items()}
    if isinstance(raw, Iterable):
        return _split_prefixed(raw)
    raise DatasetError(f"{where}: options must be an object or a list, got {type(raw).__name__}")


def _answer_letter(answer: Any, options: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """Gold letter from a letter or an option text; also every letter whose text equals the answer."""
    text = str(answer).strip() if answer is not None else ""
    if text.upper() in options and len(text) == 1:
        return text.upper(), [text.upper()]
    m = _PREFIX.match(text)
    if m and m.group(1) in options and text[m.end():].strip() == options[m.group(1)]:
        return m.group(1), [m.group(1)]
    matches = [k for k, v in options.items() if v.strip() == text]
    if not matches:
        matches = [k for k, v in options.items() if v.strip().lower() == text.lower()]
    return (matches[0] if matches else None), matches


def _resolve_video(value: str | None, base: Path, videos_dir: Path | None) -> str | None:
    if not value:
        return None
    if "://" in value:
        if videos_dir is not None:
            return str(videos_dir / value.rstrip("/").rsplit("/", 1)[-1])
        return None
    p = Path(value)
    if p.is_absolute():
        return str(p)
    if videos_dir is not None:
        return str(videos_dir / p)
    # relative paths are relative to the dataset's folder or, failing that, to one of its parents
    for root in (base, *base.parents[:3]):
        if (root / p).exists():
            return str(root / p)
    return str(base / p)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- loaders


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON list or JSON Lines file (one-line errors name the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: malformed JSON ({exc})") from None
    elif stripped.startswith("{") and path.suffix == ".json" and "\n{" not in stripped:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: malformed JSON ({exc})") from None
        rows = obj.get("items") or obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(rows, list):
            raise DatasetError(f"{path}: a JSON object must hold a list under 'items' or 'data'")
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: line {n}: malformed JSON ({exc.msg})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise DatasetError(f"{path}: every row must be a JSON object")
    return rows


def _item_from_row(row: Mapping[str, Any], n: int, path: Path, videos_dir: Path | None,
                   findings: list[Finding]) -> Item | None:
    where = f"{path}: row {n}"
    item_id = row.get("qa_id") or row.get("item_id") or row.get("id") or row.get("index")
    if item_id is None or str(item_id) == "":
        raise DatasetError(f"{where}: no id field (qa_id, item_id or id)")
    item_id = str(item_id)
    for key in ("question",):
        if not isinstance(row.get(key), str):
            raise DatasetError(f"{where}: missing or non-text field {key!r}")
    raw_options = row.get("options", row.get("choices"))
    if raw_options is None:
        raise DatasetError(f"{where}: missing field 'options'")
    options = _options_of(raw_options, where)
    video_value = row.get("video_path") or row.get("local_video") or row.get("video")
    video_path = _resolve_video(str(video_value) if video_value else None, path.parent, videos_dir)
    id_source = row.get("video") or video_value
    video_id = str(row.get("video_id") or row.get("videoID")
                   or (Path(str(id_source).rstrip("/")).stem if id_source else item_id))
    letter, matches = _answer_letter(row.get("answer"), options)
    if len(matches) > 1:
        findings.append(Finding("warning", "answer_ambiguous",
                                f"answer text matches options {', '.join(matches)}; gold = {letter}", item_id))
    if letter is None:
        findings.append(Finding("error", "answer_not_in_options",
                                f"answer {row.get('answer')!r} is not among the options; item dropped", item_id))
        return None
    visible = row.get("visible_until_s")
    query = row.get("query")
    if isinstance(query, str):
        query = json.loads(query) if query.strip() else None
    qtype = str(row.get("type") or row.get("question_type") or "all")
    generator = row.get("generator")
    if isinstance(generator, str):
        generator = json.loads(generator) if generator.strip() else None
    qa_config = generator.get("config") if isinstance(generator, dict) else None
    record_path = _resolve_video(str(row["record_path"]), path.parent, None) if row.get("record_path") else None
    return Item(item_id=item_id, video_id=video_id, video_path=video_path, question=row["question"],
                options=options, answer=letter, type=qtype,
                visible_until_s=float(visible) if visible is not None and visible == visible else None,
                query=query if isinstance(query, dict) else None, record_path=record_path,
                qa_config=qa_config if isinstance(qa_config, dict) else None)


def _load_rows(path: Path, rows: list[dict[str, Any]], videos_dir: Path | None,
               findings: list[Finding]) -> list[Item]:
    items = []
    for n, row in enumerate(rows, 1):
        it = _item_from_row(row, n, path, videos_dir, findings)
        if it is not None:
            items.append(it)
    return items


def _load_free(path: Path, videos_dir: Path | None, findings: list[Finding]) -> list[Item]:
    """Numeric and open QAs (``dsr qa --answer-format numeric|open``, JSONL or parquet): no options."""
    items = []
    for n, row in enumerate(_read_table_rows(path), 1):
        fmt = row.get("answer_format")
        qid = str(row.get("qa_id") or f"row{n}")
        value = row.get("answer_value")
        if fmt not in FREE_FORMATS or not row.get("question") or not row.get("answer_text", row.get("answer")):
            findings.append(Finding("error", "malformed_row", "needs answer_format, question and answer_text", qid))
            continue
        if fmt == "numeric" and (value is None or not math.isfinite(float(value))):
            findings.append(Finding("error", "malformed_row", "a numeric item needs a finite answer_value", qid))
            continue
        query = row.get("query")
        generator = row.get("generator")
        generator = json.loads(generator) if isinstance(generator, str) else generator or {}
        items.append(Item(
            item_id=qid, video_id=str(row.get("video_id") or row.get("videoID")),
            video_path=_resolve_video(row.get("video_path"), path.parent, videos_dir),
            question=str(row["question"]), options={}, answer=str(row.get("answer_text", row.get("answer"))),
            type=str(row.get("type") or "unknown"), visible_until_s=row.get("visible_until_s"),
            query=json.loads(query) if isinstance(query, str) else query, record_path=row.get("record_path"),
            qa_config=generator.get("config"), answer_format=str(fmt), answer_value=None if value is None else float(value), unit=row.get("unit"),
            rule=row.get("rule")))
    return items


def _load_dsr_parquet(path: Path, videos_dir: Path | None, findings: list[Finding]) -> list[Item]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DatasetError(f"{path}: cannot read parquet ({exc.__class__.__name__}: {exc})") from None
    cols = set(table.column_names)
    missing = {"videoID", "question", "options", "answer"} - cols
    if missing:
        raise DatasetError(f"{path}: parquet lacks column(s) {', '.join(sorted(missing))}")
    rows = table.to_pylist()
    seen: Counter[str] = Counter()
    out = []
    for n, row in enumerate(rows, 1):
        row = dict(row)
        if "qa_id" not in cols:
            # The official file has no id: derive one from content, so re-ordered files still join.
            key = json.dumps([row["videoID"], row["question"], list(row["options"]), row.get("type")],
                             ensure_ascii=False)
            base = f"{row['videoID']}/{row.get('type') or 'all'}/{hashlib.sha1(key.encode()).hexdigest()[:12]}"
            seen[base] += 1
            if seen[base] > 1:
                findings.append(Finding("warning", "duplicate_question",
                                        f"identical question repeated (copy {seen[base]})", base))
            row["item_id"] = base if seen[base] == 1 else f"{base}#{seen[base]}"
        if not row.get("video_path"):
            vdir = videos_dir or path.parent
            row["video_path"] = str(vdir / f"{row['videoID']}.mp4")
        row["video_id"] = row.get("video_id") or row["videoID"]
        it = _item_from_row(row, n, path, None, findings)
        if it is not None:
            out.append(it)
    return out


def _read_table_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet file or of a JSON / JSON Lines file."""
    if path.suffix != ".parquet":
        return _read_records(path)
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DatasetError(f"{path}: cannot read parquet ({exc.__class__.__name__}: {exc})") from None


def _require_columns(path: Path, rows: list[dict[str, Any]], needed: Iterable[str], fmt: str) -> None:
    missing = set(needed) - set(rows[0] if rows else ())
    if missing:
        raise DatasetError(f"{path}: {fmt} rows lack field(s) {', '.join(sorted(missing))}")


def _load_vsibench(path: Path, videos_dir: Path | None, findings: list[Finding]) -> list[Item]:
    rows = _read_table_rows(path)
    _require_columns(path, rows, ("id", "dataset", "scene_name", "question_type", "question", "ground_truth"),
                     "VSI-Bench")
    vdir = videos_dir or path.parent
    out: list[Item] = []
    numeric: Counter[str] = Counter()
    for n, row in enumerate(rows, 1):
        if not row.get("options"):  # numeric (NA) types carry no options
            numeric[str(row["question_type"])] += 1
            continue
        video = f"{row['dataset']}/{row['scene_name']}.mp4"
        it = _item_from_row({"id": f"vsibench/{row['id']}", "video_path": str(vdir / video),
                             "video_id": f"{row['dataset']}/{row['scene_name']}", "question": row["question"],
                             "options": row["options"], "answer": row["ground_truth"],
                             "type": row["question_type"]}, n, path, None, findings)
        if it is not None:
            out.append(it)
    if numeric:
        findings.append(Finding("info", "numeric_question",
                                f"{sum(numeric.values())} numeric (non multiple-choice) questions left out: "
                                + ", ".join(f"{t} {c}" for t, c in sorted(numeric.items()))))
    return out


def _load_stibench(path: Path, videos_dir: Path | None, findings: list[Finding]) -> list[Item]:
    rows = _read_table_rows(path)
    _require_columns(path, rows, ("Video", "ID", "Task", "Question", "Candidates", "Answer",
                                  "time_start", "time_end"), "STI-Bench")
    vdir = videos_dir or path.parent
    out: list[Item] = []
    for n, row in enumerate(rows, 1):
        ts, te = row["time_start"], row["time_end"]
        interval = f"From {ts} seconds to {te} seconds. " if ts is not None and te is not None else ""
        candidates = _options_of(row["Candidates"], f"{path}: row {n}")
        # keys may carry punctuation ("A.", "(A)"): keep the letter only
        options = {re.sub(r"[^A-Z]", "", k) or k: v for k, v in candidates.items()}
        it = _item_from_row({"id": f"{row['Video']}|{row['ID']}|{ts}|{te}", "video_path": str(vdir / row["Video"]),
                             "video_id": Path(str(row["Video"])).stem, "question": interval + str(row["Question"]),
                             "options": options, "answer": row["Answer"], "type": row["Task"]},
                            n, path, None, findings)
        if it is not None:
            out.append(it)
    return out


def _load_vlmevalkit_tsv(path: Path, videos_dir: Path | None, findings: list[Finding]) -> list[Item]:
    import csv

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read TSV ({exc})") from None
    _require_columns(path, rows, ("index", "question", "answer"), "VLMEvalKit TSV")
    letters = [c for c in (rows[0] if rows else {}) if len(c) == 1 and c.isupper()]
    if rows and "options" not in rows[0] and not letters:
        raise DatasetError(f"{path}: VLMEvalKit TSV rows need 'options' or per-letter columns A, B, ...")
    vdir = videos_dir or path.parent
    out = []
    for n, row in enumerate(rows, 1):
        options = row["options"] if "options" in row else {k: row[k] for k in letters if row.get(k)}
        visible = row.get("visible_until_s") or None
        it = _item_from_row({"id": row.get("item_id") or row["index"], "video_id": row.get("video_id"),
                             "question": row["question"],
                             "options": options, "answer": row["answer"],
                             "type": row.get("task_type") or row.get("category") or "all",
                             "video_path": str(vdir / row["video"]) if row.get("video") else None,
                             "visible_until_s": float(visible) if visible else None}, n, path, None, findings)
        if it is not None:
            out.append(it)
    return out


def detect_format(path: Path) -> str:
    if path.suffix == ".tsv":
        return "vlmevalkit_tsv"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            cols = set(pq.read_schema(path).names)
        except Exception:  # not parquet after all: the loader reports it
            return "dsr_parquet"
        if "answer_format" in cols and "answer_value" in cols and _read_table_rows(path)[:1] and \
                _read_table_rows(path)[0].get("answer_format") in FREE_FORMATS:
            return "qa_free"
        return "vsibench" if cols >= _VSIBENCH_COLUMNS else "stibench" if cols >= _STIBENCH_COLUMNS else "dsr_parquet"
    rows = _read_records(path)[:5]
    if rows and all(r.get("answer_format") in FREE_FORMATS for r in rows):
        return "qa_free"
    if rows and all(set(r) >= _VSIBENCH_COLUMNS for r in rows):
        return "vsibench"
    if rows and all(set(r) >= _STIBENCH_COLUMNS for r in rows):
        return "stibench"
    if rows and all("choices" in r and "options" not in r for r in rows):
        return "vlm4d"
    if rows and all("qa_id" in r for r in rows):
        return "qa_jsonl"
    return "plain"


def load_dataset(path: str | Path, *, videos_dir: str | Path | None = None, format: str = "auto",
                 check_videos: bool = True, name: str | None = None) -> Dataset:
    """Read a question file into a :class:`Dataset` and lint it.

    videos_dir: folder holding the videos (DSR parquet: ``{videoID}.mp4``; URLs in JSON are mapped to
    their file name in this folder). ``check_videos`` opens each distinct video once with PyAV.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: dataset file not found")
    if format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r} (choose from {', '.join(FORMATS)})")
    fmt = detect_format(p) if format == "auto" else format
    vdir = Path(videos_dir) if videos_dir else None
    findings: list[Finding] = []
    if fmt == "dsr_parquet":
        items = _load_dsr_parquet(p, vdir, findings)
    elif fmt == "vsibench":
        items = _load_vsibench(p, vdir, findings)
    elif fmt == "stibench":
        items = _load_stibench(p, vdir, findings)
    elif fmt == "vlmevalkit_tsv":
        items = _load_vlmevalkit_tsv(p, vdir, findings)
    elif fmt == "qa_free":
        items = _load_free(p, vdir, findings)
    else:
        items = _load_rows(p, _read_records(p), vdir, findings)
    if not items:
        raise DatasetError(f"{p}: no usable items")
    ids = Counter(it.item_id for it in items)
    dups = [k for k, c in ids.items() if c > 1]
    if dups:
        raise DatasetError(f"{p}: {len(dups)} duplicate item id(s), e.g. {dups[0]!r}; results join on ids")
    findings += lint(items, check_videos=check_videos)
    return Dataset(name=name or p.stem, path=str(p.resolve()), format=fmt, items=tuple(items),
                   findings=tuple(findings), file_sha256=_sha256_file(p))


# ---------------------------------------------------------------------------------------------- lint


def _video_readable(path: str) -> str | None:
    """None if PyAV opens the file and finds a video stream, else the reason."""
    import av

    p = Path(path)
    if not p.is_file():
        return "missing"
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                return "no video stream"
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return f"unreadable ({exc.__class__.__name__})"
    return None


def lint(items: Iterable[Item], *, check_videos: bool = True) -> list[Finding]:
    """Duplicate options, option counts, answers, videos (missing/unreadable), questions per video."""
    items = list(items)
    out: list[Finding] = []
    for it in items:
        if not it.is_mcq:  # numeric and open items have no options to check
            continue
        texts = Counter(v.strip().lower() for v in it.options.values())
        dup = [t for t, c in texts.items() if c > 1]
        if dup:
            letters = [k for k, v in it.options.items() if v.strip().lower() in dup]
            out.append(Finding("warning", "duplicate_options",
                               f"options {', '.join(letters)} share the text {dup[0]!r}", it.item_id))
        if len(it.options) < 2:
            out.append(Finding("error", "too_few_options", f"{len(it.options)} option(s)", it.item_id))
        if list(it.options) != [chr(ord("A") + i) for i in range(len(it.options))]:
            out.append(Finding("warning", "option_letters",
                               f"letters {''.join(it.options)} are not A, B, C, … in order", it.item_id))
        if it.answer not in it.options:
            out.append(Finding("error", "answer_not_in_options", f"answer {it.answer!r}", it.item_id))
    counts = Counter(len(it.options) for it in items if it.is_mcq)
    if counts:
        out.append(Finding("info", "option_counts",
                           ", ".join(f"{n} options: {c} items" for n, c in sorted(counts.items()))))
    formats = Counter(it.answer_format for it in items if not it.is_mcq)
    if formats:
        out.append(Finding("info", "answer_formats", ", ".join(f"{k}: {v} items" for k, v in sorted(formats.items()))))
    per_video = Counter(it.video_id for it in items)
    vals = sorted(per_video.values())
    out.append(Finding("info", "questions_per_video",
                       f"{len(items)} questions on {len(per_video)} videos; per video min {vals[0]}, "
                       f"mean {len(items) / len(per_video):.2f}, max {vals[-1]}"))
    no_path = [it for it in items if it.video_path is None]
    if no_path:
        out.append(Finding("warning", "video_not_local",
                           f"{len(no_path)} items name no local video (URL only); pass --videos"))
    if check_videos:
        status: dict[str, str | None] = {}
        for it in items:
            if it.video_path and it.video_path not in status:
                status[it.video_path] = _video_readable(it.video_path)
        for it in items:
            reason = status.get(it.video_path or "")
            if reason:
                code = "missing_video" if reason == "missing" else "unreadable_video"
                out.append(Finding("warning", code, f"{it.video_path}: {reason}", it.item_id))
    return out


def findings_summary(findings: Iterable[Finding]) -> dict[str, int]:
    """Count of findings per code (item-level codes only)."""
    return dict(Counter(f.code for f in findings if f.item_id))


def rotate_options(item: Item, shift: int) -> Item:
    """The item with option texts rotated by ``shift`` places (circular evaluation); id gets ``#rot{k}``."""
    letters = list(item.options)
    texts = [item.options[k] for k in letters]
    k = shift % len(letters)
    rotated = texts[-k:] + texts[:-k] if k else texts
    new_options = dict(zip(letters, rotated, strict=True))
    new_answer = letters[(letters.index(item.answer) + k) % len(letters)]
    return dataclasses.replace(item, item_id=f"{item.item_id}#rot{k}", options=new_options, answer=new_answer)


def base_id(item_id: str) -> str:
    """The item id without a circular-evaluation rotation suffix."""
    return re.sub(r"#rot\d+$", "", item_id)
