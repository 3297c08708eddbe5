"""Ground truth vs extraction: does a question get the same answer from the extracted record?

Template QAs made from a ground-truth record (a rendered world) are asked again of the record extracted
from the same video: the same structured query is answered by :func:`dsr.qa.query.answer` on the
extracted record, after two maps —

* **frames**: each ground-truth frame of the query goes to the extracted frame at the same time (nearest
  timestamp, within half the extracted sampling step); repeated frames are merged;
* **objects**: each ground-truth object named by the query goes to the extracted track it overlaps most,
  one-to-one (Hungarian assignment on the mean box IoU over the frames both see at the same time,
  IoU ≥ ``min_iou``; 0.1 by default, as ``benchmarks/extract_worlds.py`` maps them).

A QA *agrees* when both answers are the same option text. One that cannot be asked of the extraction
counts as a disagreement with its reason: ``no_extraction`` (no record for the video), ``object_unmatched``
(a named object has no track), ``frames_not_sampled`` (the extraction did not sample the query's frames),
or the answer engine's own reason (``QAError.reason``, e.g. ``not_visible``). This is the label precision
of the extraction, per question type (the report's "Ground truth vs extracted records" section).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsr.errors import DsrError
from dsr.evaluate.datasets import Item
from dsr.scene.record import SceneRecord

DEFAULT_MIN_IOU = 0.1
CAMERA = "camera"


@dataclass(frozen=True)
class LabelCheck:
    """One ground-truth QA asked again of the extracted record. ``reason`` is None when it could be asked."""

    item_id: str
    video_id: str
    type: str
    gt_answer: str
    extracted_answer: str | None
    reason: str | None

    @property
    def agree(self) -> bool:
        return self.extracted_answer is not None and self.extracted_answer == self.gt_answer

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "agree": self.agree}


def frame_map(gt: SceneRecord, ext: SceneRecord, tolerance: float = 0.5) -> dict[int, int]:
    """Ground-truth frame → extracted frame at the same time: the nearest extracted timestamp, if within
    ``tolerance`` × the extracted record's median sampling step."""
    ts_ext = np.asarray(ext.timestamps_s, float)
    if len(ts_ext) == 0:
        return {}
    step = float(np.median(np.diff(ts_ext))) if len(ts_ext) > 1 else np.inf
    out = {}
    for t, ts in enumerate(np.asarray(gt.timestamps_s, float)):
        m = int(np.argmin(np.abs(ts_ext - ts)))
        if abs(ts_ext[m] - ts) <= tolerance * step + 1e-6:
            out[t] = m
    return out


def match_objects(gt: SceneRecord, ext: SceneRecord, frames: Mapping[int, int],
                  min_iou: float = DEFAULT_MIN_IOU) -> dict[str, tuple[str, float]]:
    """Ground-truth object id → (extracted object id, mean box IoU over frames both see), one-to-one."""
    from scipy.optimize import linear_sum_assignment

    from dsr.qa.generate import box_iou

    if not gt.objects or not ext.objects:
        return {}
    iou = np.zeros((len(gt.objects), len(ext.objects)))
    for i, g in enumerate(gt.objects):
        for j, e in enumerate(ext.objects):
            both = [(t, m) for t, m in frames.items() if g.visible[t] and e.visible[m]]
            if both:
                iou[i, j] = np.mean([box_iou(g.boxes_xyxy[t], e.boxes_xyxy[m]) for t, m in both])
    rows, cols = linear_sum_assignment(-iou)
    return {gt.objects[i].object_id: (ext.objects[j].object_id, float(iou[i, j]))
            for i, j in zip(rows, cols, strict=True) if iou[i, j] >= min_iou}


class _Pair:
    """A ground-truth record and the record extracted from its video, with the maps between them."""

    def __init__(self, gt: SceneRecord, ext: SceneRecord, min_iou: float) -> None:
        self.frames = frame_map(gt, ext)
        # boxes are compared only where both records sampled (nearly) the same instant
        self.objects = match_objects(gt, ext, frame_map(gt, ext, tolerance=0.25), min_iou)
        inverse = {e: g for g, (e, _) in self.objects.items()}
        # extracted tracks renamed to the ground-truth ids they match (unmatched ones get ids no query names)
        self.ext = dataclasses.replace(ext, objects=tuple(
            dataclasses.replace(o, object_id=inverse.get(o.object_id, f"unmatched:{o.object_id}"))
            for o in ext.objects))
        self._geometry: dict[str, object] = {}

    def geometry(self, config: object) -> object:
        from dsr.qa.query import Geometry

        key = repr(config)
        if key not in self._geometry:
            self._geometry[key] = Geometry.from_record(self.ext, config)  # type: ignore[arg-type]
        return self._geometry[key]


def _ask(pair: _Pair, item: Item) -> tuple[str | None, str | None]:
    """(the extracted record's answer text, None) or (None, why it cannot be asked)."""
    from dsr.qa.query import QAError, Query, answer
    from dsr.qa.question_types import TYPES
    from dsr.qa.rules import QAConfig

    query = Query.from_json(item.query or {})
    named = [w for w in (query.observer, *query.targets) if w != CAMERA]
    if any(w not in pair.objects for w in named):
        return None, "object_unmatched"
    mapped = [pair.frames.get(t) for t in query.frames]
    if any(m is None for m in mapped):
        return None, "frames_not_sampled"
    frames = tuple(dict.fromkeys(m for m in mapped if m is not None))  # merge frames that map to one
    qt = TYPES.get(query.type)
    if qt is not None and (len(frames) < qt.min_query_frames or (qt.is_prediction and len(frames) != 2)):
        return None, "frames_not_sampled"
    t_v = None
    if query.t_v is not None:
        t_v = pair.frames.get(query.t_v)
        if t_v is None:
            return None, "frames_not_sampled"
    config = QAConfig(**item.qa_config) if item.qa_config else QAConfig()
    try:
        got = answer(pair.geometry(config), dataclasses.replace(query, frames=frames, t_v=t_v), config)  # type: ignore[arg-type]
    except QAError as exc:
        return None, exc.reason
    except DsrError as exc:
        return None, str(exc).split(":")[0][:60] or "unanswerable"
    return got.text, None


def check_labels(items: Iterable[Item], extracted: Mapping[str, str | os.PathLike[str]], *,
                 min_iou: float = DEFAULT_MIN_IOU) -> list[LabelCheck]:
    """Ask every template QA in ``items`` (from ground-truth records) again of the extracted records.

    extracted: video file (any spelling of its path) → the record extracted from it. Items without a
    structured query or a record (free-form questions, other benchmarks) are left out.
    """
    from dsr.scene.io import read_record

    by_video = {_key(v): Path(p) for v, p in extracted.items()}
    pairs: dict[tuple[str, str], _Pair | None] = {}
    records: dict[str, SceneRecord] = {}
    out = []
    for item in items:
        if not item.query or not item.record_path:
            continue
        gt_answer = item.options[item.answer]
        ext_path = by_video.get(_key(item.video_path)) if item.video_path else None
        if ext_path is None:
            out.append(LabelCheck(item.item_id, item.video_id, item.type, gt_answer, None, "no_extraction"))
            continue
        key = (item.record_path, str(ext_path))
        if key not in pairs:
            for path in key:
                if path not in records:
                    records[path] = read_record(path)
            pairs[key] = _Pair(records[item.record_path], records[str(ext_path)], min_iou)
        text, why = _ask(pairs[key], item)  # type: ignore[arg-type]
        out.append(LabelCheck(item.item_id, item.video_id, item.type, gt_answer, text, why))
    return out


def records_by_video(record_paths: Iterable[str | os.PathLike[str]]) -> dict[str, Path]:
    """Video file → record, for records extracted by ``dsr extract`` (their video path is resolved)."""
    from dsr.scene.io import read_record, resolve_video_path

    out = {}
    for path in record_paths:
        out[_key(resolve_video_path(read_record(path), path))] = Path(path)
    return out


def _key(path: str | os.PathLike[str]) -> str:
    return str(Path(path).resolve())


@dataclass(frozen=True)
class TypeAgreement:
    type: str
    n: int
    agree: int
    reasons: dict[str, int]

    @property
    def rate(self) -> float:
        return self.agree / self.n if self.n else float("nan")


def agreement_per_type(checks: Sequence[LabelCheck]) -> list[TypeAgreement]:
    """Per type in Table 4's order, then ``"all"``: QAs, agreements, disagreements by reason."""
    from dsr.evaluate.stats import ordered_types

    out = []
    for t in [*ordered_types([c.type for c in checks]), "all"]:
        sel = [c for c in checks if t in ("all", c.type)]
        reasons = Counter(c.reason or "different answer" for c in sel if not c.agree)
        out.append(TypeAgreement(t, len(sel), sum(c.agree for c in sel), dict(reasons.most_common())))
    return out
