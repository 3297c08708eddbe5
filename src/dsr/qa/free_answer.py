"""Questions answered without options (issue 16): metric numbers and open state sequences.

``numeric`` — a number with a unit, computed from the record's 3D geometry:

* ``num_dis`` — the distance between two entities (objects, or an object and the camera) at one time, m;
* ``num_disp`` — an object's straight-line displacement over an interval, m;
* ``num_spd`` — an object's mean speed over an interval (path length over time), m/s;
* ``num_turn`` — the change of an agent's heading over an interval, in degrees, in the observer's frame at
  each time (positive: turned to the observer's left), unwrapped through the interval;
* ``num_dis_ratio`` — the distance between two entities at the end of an interval over the distance at its
  start ("how many times farther"): scale-free.

Metres only come from records whose scale is metric (rendered worlds, extracted records with a known scale:
``SceneRecord.scale_kind == "metric"``, times ``meters_per_unit``); a record up to scale gets the scale-free
kinds only (the ratio and the heading change), and every QA states its ``scale_kind``.

``open`` — the template questions of :mod:`dsr.qa.generate` with no options: the answer is the state
sequence ("(1) Become larger. (2) Keep nearly constant."), and the rule kind tells a scorer which states exist.

The QA type here is :class:`FreeQA`, written as JSONL (one native object per line) or as a DSR-Bench-like
parquet with ``answer_format``, ``answer_value`` and ``unit`` columns.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsr import __version__
from dsr.atomic import atomic_open
from dsr.errors import DsrError
from dsr.qa.generate import RecordContext, box_side_px, generate_record_qas, stable_hash
from dsr.qa.query import CAMERA, QAError
from dsr.qa.question_types import NUMERIC_TYPES, TYPES, NumericType
from dsr.qa.rules import QAConfig, make_config
from dsr.qa.schema import FrameRefs, Generator
from dsr.qa.templates import denote, fmt_time
from dsr.scene.frames import rotate_vectors
from dsr.scene.record import SceneRecord

ANSWER_FORMATS: tuple[str, ...] = ("mcq", "numeric", "open")
SCALE_FREE_KINDS: tuple[str, ...] = ("num_dis_ratio", "num_turn")
METRIC_KINDS: tuple[str, ...] = ("num_dis", "num_disp", "num_spd", "num_turn")
# the shortest interval of an interval question, in seconds, and the least horizontal part of a forward axis
# for a heading to exist
MIN_INTERVAL_S = 1.0
MIN_HORIZONTAL = 0.3
FREE_SCHEMA = "dsr.qa.free/1"


@dataclass(frozen=True)
class FreeQA:
    """One question whose answer is a number (``numeric``) or a state sequence (``open``), never a letter.

    answer_text: the reference answer as a person writes it ("3.42 m"; "(1) Become larger."); answer_value:
    the number (numeric only); unit: "m", "m/s", "deg" or "ratio"; scale_kind: "metric" or "scale_free";
    rule: the answer rule of an open question (which states exist); query: the entities and record frames.
    """

    qa_id: str
    video_id: str
    video_path: str | None
    record_path: str | None
    type: str
    answer_format: str
    question: str
    answer_text: str
    answer_value: float | None
    unit: str | None
    scale_kind: str
    rule: str | None
    visible_until_s: float | None
    query: dict[str, Any]
    frames: FrameRefs
    generator: Generator

    def __post_init__(self) -> None:
        if self.answer_format not in ("numeric", "open"):
            raise DsrError(f"{self.qa_id}: answer_format must be numeric or open, got {self.answer_format!r}")
        if self.answer_format == "numeric" and (self.answer_value is None or not math.isfinite(self.answer_value)):
            raise DsrError(f"{self.qa_id}: a numeric QA needs a finite answer_value")

    def to_json(self) -> dict[str, Any]:
        return {"schema": FREE_SCHEMA, "qa_id": self.qa_id, "video_id": self.video_id, "video_path": self.video_path,
                "record_path": self.record_path, "type": self.type, "answer_format": self.answer_format,
                "question": self.question, "answer_text": self.answer_text, "answer_value": self.answer_value,
                "unit": self.unit, "scale_kind": self.scale_kind, "rule": self.rule,
                "visible_until_s": self.visible_until_s, "query": self.query, "frames": self.frames.to_json(),
                "generator": self.generator.to_json()}

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> FreeQA:
        try:
            value = obj.get("answer_value")
            until = obj.get("visible_until_s")
            return FreeQA(
                qa_id=str(obj["qa_id"]), video_id=str(obj["video_id"]), video_path=obj.get("video_path"),
                record_path=obj.get("record_path"), type=str(obj["type"]), answer_format=str(obj["answer_format"]),
                question=str(obj["question"]), answer_text=str(obj["answer_text"]),
                answer_value=None if value is None else float(value), unit=obj.get("unit"),
                scale_kind=str(obj.get("scale_kind", "metric")), rule=obj.get("rule"),
                visible_until_s=None if until is None else float(until), query=dict(obj.get("query") or {}),
                frames=FrameRefs.from_json(obj["frames"]), generator=Generator.from_json(obj["generator"]))
        except (KeyError, TypeError, ValueError) as exc:
            where = obj.get("qa_id", "?") if isinstance(obj, Mapping) else "?"
            raise DsrError(f"QA {where}: not a numeric/open QA object ({exc.__class__.__name__}: {exc})") from None


def format_value(value: float, unit: str) -> str:
    """The reference answer as text: 3 significant decimals for metres, 1 for degrees."""
    if unit == "deg":
        return f"{value:.1f} degrees"
    if unit == "ratio":
        return f"{value:.2f} times"
    return f"{value:.2f} {unit}"


# ---------------------------------------------------------------------------------------------- numbers


def distance_at(positions: Mapping[str, np.ndarray], a: str, b: str, t: int) -> float:
    """World distance between entities ``a`` and ``b`` at record frame ``t`` (record units)."""
    return float(np.linalg.norm(positions[a][t] - positions[b][t]))


def displacement(positions: Mapping[str, np.ndarray], who: str, start: int, end: int) -> float:
    """Straight-line distance from ``who``'s position at ``start`` to its position at ``end`` (record units)."""
    return float(np.linalg.norm(positions[who][end] - positions[who][start]))


def mean_speed(positions: Mapping[str, np.ndarray], who: str, frames: Sequence[int], times_s: np.ndarray) -> float:
    """Path length through ``frames`` over the time they span (record units per second)."""
    p = positions[who][np.asarray(frames)]
    path = float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
    return path / float(times_s[frames[-1]] - times_s[frames[0]])


def heading_change_deg(obs_from_world: np.ndarray, forward_world: np.ndarray) -> float | None:
    """Signed change of a forward axis's heading in the observer's frame (x forward, y left, z up), degrees,
    unwrapped frame to frame; None where the axis is too close to vertical to have a heading.

    obs_from_world: (F, 4, 4) the observer's frame at each frame; forward_world: (F, 3).
    """
    local = rotate_vectors(obs_from_world, forward_world)
    horizontal = np.hypot(local[:, 0], local[:, 1])
    if not np.isfinite(local).all() or (horizontal < MIN_HORIZONTAL * np.linalg.norm(local, axis=1)).any():
        return None
    heading = np.unwrap(np.arctan2(local[:, 1], local[:, 0]))
    return float(np.degrees(heading[-1] - heading[0]))


def recompute_value(record: SceneRecord, query: Mapping[str, Any], config: QAConfig = QAConfig()) -> float:
    """A numeric QA's answer recomputed from its record and structured query (what an oracle replies)."""
    from dsr.qa.query import Geometry

    kind = NUMERIC_TYPES.get(str(query.get("type")))
    if kind is None:
        raise DsrError(f"not a numeric question type: {query.get('type')!r}")
    geom = Geometry.from_record(record, config)
    frames = [int(f) for f in query["frames"]]
    targets = [str(t) for t in query["targets"]]
    factor = metric_factor(record) if kind.unit in ("m", "m/s") else 1.0
    if factor is None:
        raise DsrError(f"{kind.key} needs a metric record")
    if kind.key == "num_dis":
        return distance_at(geom.positions, targets[0], targets[1], frames[0]) * factor
    if kind.key == "num_dis_ratio":
        return (distance_at(geom.positions, targets[0], targets[1], frames[-1])
                / distance_at(geom.positions, targets[0], targets[1], frames[0]))
    if kind.key == "num_disp":
        return displacement(geom.positions, targets[0], frames[0], frames[-1]) * factor
    if kind.key == "num_spd":
        return mean_speed(geom.positions, targets[0], frames, record.timestamps_s) * factor
    f = np.asarray(frames)
    change = heading_change_deg(geom.inverse_poses[str(query["observer"])][f], geom.forwards[targets[0]][f])
    if change is None:
        raise DsrError("the forward axis has no heading")
    return change


# ---------------------------------------------------------------------------------------------- sampling


@dataclass
class FreeReport:
    """What a numeric/open run made and why attempts failed."""

    records: int = 0
    made: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    records_failed: Counter[str] = field(default_factory=Counter)
    scale_kinds: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "qas": sum(self.made.values()), "per_type": dict(self.made),
                "failures": dict(self.failures.most_common()), "records_failed": dict(self.records_failed),
                "scale_kinds": dict(self.scale_kinds)}


def metric_factor(record: SceneRecord) -> float | None:
    """Metres per record unit when the record's scale is metric, else None."""
    if record.scale_kind != "metric":
        return None
    return float(record.meters_per_unit) if record.meters_per_unit is not None else 1.0


def _named(ctx: RecordContext, who: str, frame: int) -> str:
    if who == CAMERA:
        return "the camera"
    least = ctx.config.min_box_side * min(ctx.record.video.width, ctx.record.video.height)
    if least > 0 and box_side_px(ctx.record, who, frame) < least:
        raise QAError(f"{who} is named by a box below {least:.0f} px", "small_box")
    return "the " + denote(ctx.record, who, frame, "initial", ctx.box_cache)


def _interval(ctx: RecordContext, rng: random.Random) -> list[int]:
    usable = ctx.usable_list
    times = ctx.record.timestamps_s
    for _ in range(20):
        i, j = sorted(rng.sample(range(len(usable)), 2))
        if times[usable[j]] - times[usable[i]] >= MIN_INTERVAL_S:
            return usable[i:j + 1]
    raise QAError(f"no interval of {MIN_INTERVAL_S:g} s in the usable frames", "clip_too_short")


def _known_throughout(ctx: RecordContext, who: str, frames: Sequence[int]) -> bool:
    f = np.asarray(frames)
    if who == CAMERA:
        return bool(ctx.valid_cam[f].all())
    return bool(ctx.valid_obj[who][f].all() and ctx.valid_cam[f].all())


def numeric_attempt(ctx: RecordContext, kind: NumericType, rng: random.Random) -> tuple[dict[str, Any], str, float]:
    """One sampled numeric question of ``kind``: (query, question, value in the kind's unit) or QAError."""
    record, geom = ctx.record, ctx.geom
    factor = metric_factor(record) if kind.unit in ("m", "m/s") else 1.0
    if factor is None:
        raise QAError(f"{kind.key} needs a metric record", "not_metric")
    times = record.timestamps_s
    objects = list(ctx.objects)
    if not objects:
        raise QAError("no object", "too_few_objects")
    frames = _interval(ctx, rng)
    start, end = frames[0], frames[-1]
    ts, te = fmt_time(float(times[start])), fmt_time(float(times[end]))
    if kind.key in ("num_dis", "num_dis_ratio"):
        a = rng.choice(objects)
        b = rng.choice([CAMERA, *[o for o in objects if o != a]])
        at = [start] if kind.key == "num_dis" else [start, end]
        if not all(_known_throughout(ctx, w, at) for w in (a, b)):
            raise QAError("an entity is not located at the asked frames", "not_visible")
        if kind.key == "num_dis":
            value = distance_at(geom.positions, a, b, start) * factor
            query = {"type": kind.key, "targets": [a, b], "frames": [start]}
            text = kind.template.format(obj1=_named(ctx, a, start), obj2=_named(ctx, b, start), t=ts)
        else:
            d0 = distance_at(geom.positions, a, b, start)
            if d0 < 1e-6:
                raise QAError("the entities touch at the start", "zero_distance")
            value = distance_at(geom.positions, a, b, end) / d0
            query = {"type": kind.key, "targets": [a, b], "frames": [start, end]}
            text = kind.template.format(obj1=_named(ctx, a, start), obj2=_named(ctx, b, start), ts=ts, te=te)
        return query, text, value
    if kind.key == "num_turn":
        if not ctx.agents:
            raise QAError("no agent with an orientation", "no_agent")
        agent = rng.choice(list(ctx.agents))
        observer = rng.choice([CAMERA, *[o for o in ctx.agents if o != agent]])
        f = np.asarray(frames)
        if not (_known_throughout(ctx, agent, frames) and ctx.valid_ori[agent][f].all()):
            raise QAError("the agent's heading is not known throughout", "orientation_unknown")
        if observer != CAMERA and not (_known_throughout(ctx, observer, frames) and ctx.valid_ori[observer][f].all()):
            raise QAError("the observer is not known throughout", "observer_unknown")
        change = heading_change_deg(geom.inverse_poses[observer][f], geom.forwards[agent][f])
        if change is None:
            raise QAError("the forward axis has no heading", "no_heading")
        query = {"type": kind.key, "observer": observer, "targets": [agent], "frames": list(frames)}
        objv = "the camera" if observer == CAMERA else _named(ctx, observer, start)
        return query, kind.template.format(objv=objv, obj1=_named(ctx, agent, start), ts=ts, te=te), change
    who = rng.choice(objects)
    if not _known_throughout(ctx, who, frames):
        raise QAError("the object is not located throughout the interval", "not_visible")
    if kind.key == "num_disp":
        value = displacement(geom.positions, who, start, end) * factor
    else:
        value = mean_speed(geom.positions, who, frames, times) * factor
    query = {"type": kind.key, "targets": [who], "frames": list(frames)}
    return query, kind.template.format(obj1=_named(ctx, who, start), ts=ts, te=te), value


def numeric_qas(record: SceneRecord, config: QAConfig = QAConfig(), *, per_video: int = 10, seed: int = 0,
                report: FreeReport | None = None, record_path: str | None = None,
                video_path: str | None = None) -> Iterator[FreeQA]:
    """Up to ``per_video`` numeric QAs of ``record`` (deterministic in seed, record id and config): metric
    kinds on a metric record, the scale-free ones otherwise."""
    report = report if report is not None else FreeReport()
    report.records += 1
    ctx = RecordContext.build(record, config, seed=seed, record_path=record_path, video_path=video_path)
    scale_kind = "metric" if metric_factor(record) is not None else "scale_free"
    kinds = [NUMERIC_TYPES[k] for k in ((*METRIC_KINDS, "num_dis_ratio") if scale_kind == "metric"
                                         else SCALE_FREE_KINDS)]
    rng = random.Random(stable_hash(f"{seed}/numeric/{record.record_id}"))
    generator = Generator(dsr_version=__version__, seed=seed, config=ctx.config_json)
    made: Counter[str] = Counter()
    seen: set[str] = set()
    for attempt in range(per_video * config.attempts_per_qa):
        if sum(made.values()) >= per_video:
            break
        kind = min(kinds, key=lambda k: (made[k.key], rng.random()))  # round robin over the kinds
        try:
            query, question, value = numeric_attempt(ctx, kind, rng)
        except QAError as err:
            report.failures[f"{kind.key}/{err.reason}"] += 1
            continue
        if question in seen:
            report.failures[f"{kind.key}/duplicate"] += 1
            continue
        seen.add(question)
        made[kind.key] += 1
        report.made[kind.key] += 1
        report.scale_kinds[scale_kind] += 1
        f = np.asarray(query["frames"])
        yield FreeQA(
            qa_id=f"{record.record_id}/n{attempt:04d}", video_id=record.record_id, video_path=ctx.video_path,
            record_path=record_path, type=kind.key, answer_format="numeric", question=question,
            answer_text=format_value(value, kind.unit), answer_value=round(float(value), 6), unit=kind.unit,
            scale_kind=scale_kind, rule=None, visible_until_s=None, query=query,
            frames=FrameRefs(indices=tuple(record.video.frame_indices[f].tolist()),
                             timestamps_s=tuple(record.timestamps_s[f].tolist()), record_indices=tuple(f.tolist())),
            generator=generator)


def open_qas(record: SceneRecord, config: QAConfig = QAConfig(), *, per_video: int = 10, seed: int = 0,
             report: FreeReport | None = None, record_path: str | None = None,
             video_path: str | None = None) -> Iterator[FreeQA]:
    """The template questions with no options: the answer is the state sequence. Drawn with the paper's
    procedure (options are dropped, so no counterfactual alternatives are needed) and the same stability
    filter and thresholds as ``config``."""
    report = report if report is not None else FreeReport()
    report.records += 1
    procedural = make_config("paper", stability_k=config.stability_k, min_stability=config.min_stability)
    from dsr.qa.generate import GenerationReport

    inner = GenerationReport()
    for qa in generate_record_qas(record, procedural, per_video=per_video, seed=seed, report=inner,
                                  record_path=record_path, video_path=video_path):
        report.made[qa.type] += 1
        report.scale_kinds["scale_free"] += 1
        yield FreeQA(qa_id=qa.qa_id.replace("/", "/o", 1) if "/" in qa.qa_id else f"{qa.qa_id}/o",
                     video_id=qa.video_id, video_path=qa.video_path, record_path=qa.record_path, type=qa.type,
                     answer_format="open", question=qa.question, answer_text=qa.answer_text, answer_value=None,
                     unit=None, scale_kind="scale_free", rule=TYPES[qa.type].rule,
                     visible_until_s=qa.visible_until_s, query=qa.query.to_json(), frames=qa.frames,
                     generator=qa.generator)
    for reason, n in inner.failures.items():
        report.failures[reason if isinstance(reason, str) else "/".join(map(str, reason))] += n


# ---------------------------------------------------------------------------------------------- files


def free_bench_row(qa: FreeQA) -> dict[str, Any]:
    """A DSR-Bench-like parquet row: videoID, question, no options, the reference answer, the type, then
    answer_format / answer_value / unit and the native fields."""
    native = qa.to_json()
    row = {"videoID": qa.video_id, "question": qa.question, "options": [], "answer": qa.answer_text,
           "type": qa.type, "answer_format": qa.answer_format, "answer_value": qa.answer_value, "unit": qa.unit}
    for name in ("qa_id", "video_path", "record_path", "scale_kind", "rule", "visible_until_s"):
        row[name] = native[name]
    for name in ("query", "frames", "generator"):
        row[name] = json.dumps(native[name], ensure_ascii=False)
    return row


def free_train_entry(qa: FreeQA) -> dict[str, Any]:
    """One DSR-Train conversation (the shape of :func:`dsr.qa.export.train_entry`): the question with no
    options, and the reference answer as the model should write it ("3.42 m", the state sequence)."""
    return {"id": qa.qa_id, "video": qa.video_path,
            "conversations": [{"from": "human", "value": "<video>\n" + qa.question},
                              {"from": "gpt", "value": qa.answer_text}],
            "visible_until_s": qa.visible_until_s, "answer_format": qa.answer_format,
            "answer_value": qa.answer_value, "unit": qa.unit}


def write_free_qas(path: str | os.PathLike[str], qas: Iterable[FreeQA]) -> int:
    """JSONL (one native object per line), for ``.parquet`` the DSR-Bench-like table, for ``.json`` the
    DSR-Train conversations; atomic."""
    items = list(qas)
    if str(path).endswith(".json"):
        with atomic_open(path, "w") as fh:
            json.dump([free_train_entry(q) for q in items], fh, ensure_ascii=False, allow_nan=False, indent=0)
            fh.write("\n")
        return len(items)
    if str(path).endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([free_bench_row(q) for q in items])
        tmp = Path(f"{path}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return len(items)
    with atomic_open(path, "w") as fh:
        for qa in items:
            fh.write(json.dumps(qa.to_json(), ensure_ascii=False, allow_nan=False) + "\n")
    return len(items)


def generate_free_files(records: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], answer_format: str,
                        config: QAConfig = QAConfig(), *, per_video: int = 10, seed: int = 0,
                        on_record: Any = None) -> FreeReport:
    """Numeric or open QAs of every record into ``out``; a record that cannot be read is counted, the rest
    go on. ``on_record(path, error or None)`` after each record."""
    from dsr.scene.io import read_record

    if answer_format not in ("numeric", "open"):
        raise DsrError(f"answer format {answer_format!r} is not numeric or open")
    make = numeric_qas if answer_format == "numeric" else open_qas
    report = FreeReport()
    qas: list[FreeQA] = []
    seen_records: set[str] = set()
    for path in records:
        try:
            record = read_record(path, masks=False)
        except (DsrError, OSError, ValueError) as err:
            report.records_failed["malformed_record"] += 1
            if on_record:
                on_record(str(path), f"{path}: {err}")
            continue
        if record.record_id in seen_records:
            report.records_failed["duplicate_record"] += 1
            if on_record:
                on_record(str(path), f"{path}: record {record.record_id} given twice")
            continue
        seen_records.add(record.record_id)
        folder = Path(path).parent
        video = record.video.path if os.path.isabs(record.video.path) else str(folder / record.video.path)
        try:
            qas.extend(make(record, config, per_video=per_video, seed=seed, report=report, record_path=str(path),
                            video_path=video))
        except QAError as err:
            report.records_failed[err.reason] += 1
            if on_record:
                on_record(str(path), f"{path}: {err}")
            continue
        if on_record:
            on_record(str(path), None)
    write_free_qas(out, qas)
    return report
