"""Sampling template QAs from a scene record (dsr-paper §3, §7.4), deterministic by seed.

One *attempt* draws a type (inverse-frequency weights within the video), an observer, targets, a
sub-interval (index gap >= ``min_gap``) and, for absolute types, t_v; it truncates the interval at
the first frame where a required object is not visible (or an orientation's confidence is below
0.6, or the camera pose is invalid), derives the answer, draws the options and scores stability.
An attempt that yields no QA is counted in the :class:`GenerationReport` under its reason; nothing
is dropped silently.

**Frame policy** (§14 M5). ``uniform32``: 32 record frames uniformly over the clip; frames 0–29
are usable, 29 → 31 is the prediction step, 30–31 are hidden. ``fps1``: one record frame per
second; frames in the final second are hidden, and the prediction step runs from the last visible
frame to the clip's last frame. ``official_code``: ``uniform32``. Prediction QAs carry
``visible_until_s`` = last visible timestamp + half a video frame.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsr import __version__
from dsr.errors import DsrError
from dsr.qa.query import Geometry, QAError, Query, derive, gather, stability, stability_many, type_row
from dsr.qa.question_types import BASE_TYPES, QUESTION_TYPES, TYPES, QuestionType
from dsr.qa.rules import QAConfig, format_answer
from dsr.qa.schema import LETTERS, QA, Distractor, FrameRefs, Generator, Quantity
from dsr.qa.templates import denote, make_options, question_text
from dsr.scene.frames import CAMERA
from dsr.scene.record import SceneRecord
from dsr.video import uniform_indices

# --------------------------------------------------------------------------------------------------
# frames


@dataclass(frozen=True)
class FramePlan:
    """Record frames a record's QAs may use.

    usable: (U,) record frame indices for intervals and t_v; last_visible → future is the
    prediction step; visible_until_s hides everything after last_visible from a model.
    """

    policy: str
    usable: np.ndarray
    last_visible: int
    future: int
    visible_until_s: float


def frame_plan(record: SceneRecord, config: QAConfig = QAConfig()) -> FramePlan:
    """The frame policy applied to ``record``; QAError("clip_too_short") when too few frames remain."""
    n = record.num_frames
    ts = record.timestamps_s
    policy = "uniform32" if config.frame_policy == "official_code" else config.frame_policy
    if policy == "uniform32":
        idx = uniform_indices(n, config.num_frames)
        usable, last_visible, future = idx[:-2], int(idx[-3]), int(idx[-1])
    else:  # fps1
        grid = ts[0] + np.arange(0.0, ts[-1] - ts[0] + 1e-9, 1.0)
        nearest = np.clip(np.searchsorted(ts, grid), 1, n - 1)
        nearest = np.where(np.abs(ts[nearest - 1] - grid) <= np.abs(ts[nearest] - grid), nearest - 1, nearest)
        idx = np.unique(nearest)
        usable = idx[ts[idx] <= ts[-1] - 1.0]  # the final second is the hidden future
        if len(usable) == 0:
            raise QAError(f"{record.record_id}: clip shorter than the 1 s hidden future", "clip_too_short")
        last_visible, future = int(usable[-1]), n - 1
    if len(usable) < config.min_frames + 1 or future <= last_visible:
        raise QAError(f"{record.record_id}: only {len(usable)} usable frames under policy {policy}",
                      "clip_too_short")
    until = float(ts[last_visible]) + 0.5 / record.video.fps
    return FramePlan(policy=policy, usable=usable, last_visible=last_visible, future=future, visible_until_s=until)


# --------------------------------------------------------------------------------------------------
# report


@dataclass
class GenerationReport:
    """Counts of one generation run: QAs made per type and letter, failed attempts per reason, and the
    correct answers per type (their entropy says how evenly the answers spread over their classes)."""

    made: Counter[str] = field(default_factory=Counter)
    letters: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failures_by_type: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    records: int = 0
    records_failed: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    checks: Counter[str] = field(default_factory=Counter)  # free-form geometric checks by status
    letters_by_type: Counter[str] = field(default_factory=Counter)  # "type/letter"
    answers: Counter[str] = field(default_factory=Counter)  # "type\tanswer text"
    distractor_kinds: Counter[str] = field(default_factory=Counter)
    types_given_up: Counter[str] = field(default_factory=Counter)  # records where a type had no varied answers
    types_unaskable: Counter[str] = field(default_factory=Counter)  # extracted records without entities a type needs

    def fail(self, qtype: str, reason: str) -> None:
        self.failures[reason] += 1
        self.failures_by_type[f"{qtype}/{reason}"] += 1

    def add(self, qa: QA) -> None:
        """Count a QA that was made."""
        self.made[qa.type] += 1
        self.count_letter(qa)
        self.answers[f"{qa.type}\t{qa.answer_text}"] += 1
        for d in qa.distractors or ():
            self.distractor_kinds[d.kind] += 1

    def count_letter(self, qa: QA) -> None:
        self.letters[qa.answer] += 1
        self.letters_by_type[f"{qa.type}/{qa.answer}"] += 1

    def merge(self, other: GenerationReport) -> None:
        for name in ("made", "letters", "failures", "failures_by_type", "records_failed", "checks", "letters_by_type",
                     "answers", "distractor_kinds", "types_given_up", "types_unaskable"):
            getattr(self, name).update(getattr(other, name))
        self.attempts += other.attempts
        self.records += other.records
        self.truncated += other.truncated

    def letter_balance(self) -> dict[str, Any]:
        """χ² goodness-of-fit of the correct letters against uniform over A–D."""
        return _letter_test([self.letters.get(x, 0) for x in LETTERS])

    def answer_spread(self) -> dict[str, dict[str, Any]]:
        """Per type: entropy (bits) of the correct answer texts and of their segment counts, the
        number of distinct answers, the largest share of one answer, and per-type letter balance."""
        by_type: dict[str, Counter[str]] = {}
        for key, n in self.answers.items():
            qtype, text = key.split("\t", 1)
            by_type.setdefault(qtype, Counter())[text] += n
        out = {}
        for qtype, texts in sorted(by_type.items()):
            total = sum(texts.values())
            segments: Counter[int] = Counter()
            for text, n in texts.items():
                segments[max(1, text.count(") "))] += n
            top = texts.most_common(3)
            out[qtype] = {"qas": total, "entropy_bits": round(entropy_bits(texts), 3), "distinct": len(texts),
                          "top_share": round(top[0][1] / total, 3),
                          "top": [[t, n] for t, n in top],
                          "segment_entropy_bits": round(entropy_bits(segments), 3),
                          "segments": {str(k): v for k, v in sorted(segments.items())},
                          "letters": _letter_test([self.letters_by_type.get(f"{qtype}/{x}", 0) for x in LETTERS])}
        return out

    def to_json(self, letter_test: bool = True) -> dict[str, Any]:
        """The report; ``letter_test=False`` (the parts of a run) skips the tests and keeps the raw
        answer counts that merging needs instead of their summary."""
        letters = self.letter_balance() if letter_test else {"counts": {x: self.letters.get(x, 0) for x in LETTERS}}
        out = {"records": self.records, "records_failed": dict(self.records_failed), "attempts": self.attempts,
               "qas": sum(self.made.values()), "per_type": dict(sorted(self.made.items())),
               "letters": letters, "failed_attempts": sum(self.failures.values()),
               "failures": dict(self.failures.most_common()),
               "failures_by_type": dict(sorted(self.failures_by_type.items())), "truncated_intervals": self.truncated,
               "freeform_checks": dict(self.checks), "distractor_kinds": dict(self.distractor_kinds.most_common()),
               "types_given_up": dict(sorted(self.types_given_up.items())),
               "types_unaskable": dict(sorted(self.types_unaskable.items()))}
        if letter_test:
            out["answers"] = self.answer_spread()
        else:
            out["answer_counts"] = dict(self.answers)
            out["letters_by_type"] = dict(self.letters_by_type)
        return out

    @staticmethod
    def from_json(obj: dict[str, Any]) -> GenerationReport:
        rep = GenerationReport(made=Counter(obj["per_type"]), letters=Counter(obj["letters"]["counts"]),
                               failures=Counter(obj["failures"]), failures_by_type=Counter(obj["failures_by_type"]),
                               attempts=obj["attempts"], records=obj["records"],
                               records_failed=Counter(obj["records_failed"]), truncated=obj["truncated_intervals"],
                               checks=Counter(obj.get("freeform_checks", {})),
                               letters_by_type=Counter(obj.get("letters_by_type", {})),
                               answers=Counter(obj.get("answer_counts", {})),
                               distractor_kinds=Counter(obj.get("distractor_kinds", {})),
                               types_given_up=Counter(obj.get("types_given_up", {})),
                               types_unaskable=Counter(obj.get("types_unaskable", {})))
        rep.letters = +rep.letters
        return rep


def entropy_bits(counts: Counter[Any]) -> float:
    """Shannon entropy, in bits, of the distribution given by ``counts``."""
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values() if n) if total else 0.0


def _letter_test(counts: list[int]) -> dict[str, Any]:
    """χ² goodness of fit of four letter counts against uniform (3 degrees of freedom)."""
    total = sum(counts)
    if total == 0:
        return {"counts": dict(zip(LETTERS, counts, strict=True)), "chi2": None, "p_value": None}
    expected = total / len(counts)
    chi2 = sum((c - expected) ** 2 for c in counts) / expected
    return {"counts": dict(zip(LETTERS, counts, strict=True)), "chi2": chi2, "p_value": chi2_sf_3(chi2)}


def chi2_sf_3(x: float) -> float:
    """P(X > x) for X ~ χ² with 3 degrees of freedom, in closed form (no scipy import for a report):
    erfc(√(x/2)) + √(2x/π)·e^(−x/2)."""
    if x <= 0.0:
        return 1.0
    return math.erfc(math.sqrt(x / 2.0)) + math.sqrt(2.0 * x / math.pi) * math.exp(-x / 2.0)


# --------------------------------------------------------------------------------------------------
# one attempt


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")


def query_hash(query: Query) -> str:
    """12 hex digits identifying a structured query (type, observer, targets, frames, t_v)."""
    key = repr((query.type, query.observer, tuple(query.targets), tuple(query.frames), query.t_v))
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class RecordContext:
    """What every attempt on one record reads, computed once."""

    record: SceneRecord
    geom: Geometry
    plan: FramePlan
    config: QAConfig
    agents: tuple[str, ...]  # agents with an orientation track
    agent_classes: tuple[str, ...]
    objects: tuple[str, ...]
    valid_cam: np.ndarray  # (T,) bool
    valid_obj: dict[str, np.ndarray]  # (T,) visible and centre known
    valid_ori: dict[str, np.ndarray]  # (T,) orientation known and confident
    record_path: str | None
    video_path: str
    seed: int
    config_json: dict[str, Any]
    usable_list: list[int]
    usable_index: dict[int, int]  # record frame → its position in usable_list
    box_cache: dict[tuple[str, int], str]  # memo of box strings, filled as questions are written
    answer_pools: dict[str, list[list[str]]] = dataclasses.field(default_factory=dict)  # per type, lazily
    # counterfactual design: answers asked so far on this record, per (type, meaning), for balancing
    answer_counts: Counter[tuple[str, tuple[str, ...]]] = dataclasses.field(default_factory=Counter)
    # counterfactual design: pure functions of the record and config, memoised across attempts
    tracks: dict[tuple[Any, ...], Any] = dataclasses.field(default_factory=dict)  # quantity over usable frames
    answers: dict[Query, Any] = dataclasses.field(default_factory=dict)  # query → its Alternative (or None)
    nameable: dict[tuple[Any, ...], bool] = dataclasses.field(default_factory=dict)  # can its entities be named
    on_usable: dict[tuple[str, str], np.ndarray] = dataclasses.field(default_factory=dict)  # arrays at usable frames
    # cumulative unreadable-frame counts per (observer, targets, orientation?, absolute?)
    unreadable: dict[tuple[Any, ...], list[int]] = dataclasses.field(default_factory=dict)
    # the record states a nonzero sigma somewhere (extracted records; ground truth has none): abstention applies
    states_uncertainty: bool = False
    # who a draw may name as observer or target: every object, except on a record that states uncertainty, where an
    # object abstention would never let a question name (never tracked confidently over enough frames) is left out
    # (:func:`nameable_objects`); alternatives (distractors) still read every object
    draw_objects: tuple[str, ...] = ()
    draw_agents: tuple[str, ...] = ()
    draw_agent_classes: tuple[str, ...] = ()

    @staticmethod
    def build(record: SceneRecord, config: QAConfig, *, seed: int = 0, record_path: str | None = None,
              video_path: str | None = None) -> RecordContext:
        agents = tuple(o.object_id for o in record.objects if o.is_agent and o.orientation is not None)
        valid_obj = {o.object_id: o.visible & o.center_known for o in record.objects}
        valid_ori = {o.object_id: o.orientation.known & (o.orientation.confidence >= config.orientation_min_confidence)
                     for o in record.objects if o.orientation is not None}
        plan = frame_plan(record, config)
        uncertain = _states_uncertainty(record)
        objects = tuple(o.object_id for o in record.objects)
        nameable = nameable_objects(record, plan, config) if uncertain else objects
        draw_agents = tuple(a for a in agents if a in nameable)
        return RecordContext(
            record=record, geom=Geometry.from_record(record, config), plan=plan, config=config,
            agents=agents, agent_classes=tuple(sorted({record.object(a).class_phrase for a in agents})),
            objects=tuple(o.object_id for o in record.objects), valid_cam=record.camera.valid.copy(),
            valid_obj=valid_obj, valid_ori=valid_ori, record_path=record_path,
            video_path=video_path if video_path is not None else record.video.path, seed=seed,
            config_json=_config_json(config), usable_list=plan.usable.tolist(),
            usable_index={t: i for i, t in enumerate(plan.usable.tolist())}, box_cache={},
            states_uncertainty=uncertain, draw_objects=tuple(o for o in objects if o in nameable),
            draw_agents=draw_agents,
            draw_agent_classes=tuple(sorted({record.object(a).class_phrase for a in draw_agents})))


def nameable_objects(record: SceneRecord, plan: FramePlan, config: QAConfig) -> tuple[str, ...]:
    """Objects a question may name under abstention's track-confidence rule: every object a QA names must be
    seen, located and tracked with confidence >= ``min_track_confidence`` at each frame it reads, so an object
    needs that at ``min_frames`` consecutive usable frames (an interval's least) or at both frames of the
    prediction step. Every object when the rule is off."""
    if config.min_track_confidence <= 0:
        return tuple(o.object_id for o in record.objects)
    out = []
    for o in record.objects:
        ok = o.visible & o.center_known & (o.confidence >= config.min_track_confidence)
        run = best = 0
        for t in plan.usable:
            run = run + 1 if ok[t] else 0
            best = max(best, run)
        if best >= config.min_frames or (ok[plan.last_visible] and ok[plan.future]):
            out.append(o.object_id)
    return tuple(out)


def _states_uncertainty(record: SceneRecord) -> bool:
    """Whether any sigma of the record is nonzero (camera, its path's scale error and resets, its focal range,
    object centres, headings)."""
    cam = record.camera
    arrays = [cam.position_sigma, cam.rotation_sigma_deg]
    for o in record.objects:
        arrays += [o.center_sigma_along, o.center_sigma_across]
        if o.orientation is not None:
            arrays.append(o.orientation.sigma_deg)
    return (cam.states_scale_error or cam.scale_reset_bound > 0 or not cam.focal_known
            or any(bool(np.any(a > 0)) for a in arrays))


@functools.lru_cache(maxsize=16)
def _config_json(config: QAConfig) -> dict[str, Any]:
    return config.to_json()


def _pick(rng: random.Random, items: Sequence[Any]) -> Any:
    return items[int(rng.random() * len(items))]


def _observer(ctx: RecordContext, qt: QuestionType, rng: random.Random) -> str:
    cfg = ctx.config
    if qt.observer_from_slot:
        # the observer is drawn like a target slot; a non-agent draw skips the QA (§7.4 step 4)
        if rng.random() < cfg.camera_target_prob or not ctx.draw_objects:
            return CAMERA
        who = _pick(rng, ctx.draw_objects)
        if who not in ctx.draw_agents:
            raise QAError("observer slot drew a non-agent", "observer_not_agent")
        return who
    choice = _pick(rng, (CAMERA, *ctx.draw_agent_classes))
    if choice == CAMERA:
        return CAMERA
    return _pick(rng, [a for a in ctx.draw_agents if ctx.record.object(a).class_phrase == choice])


def _targets(ctx: RecordContext, qt: QuestionType, observer: str, rng: random.Random) -> tuple[str, ...]:
    n = qt.num_targets
    pool = list(ctx.draw_agents) if qt.agent_targets else list(ctx.draw_objects)
    camera_ok = True
    if qt.observer_not_target:
        pool = [p for p in pool if p != observer]
        camera_ok = observer != CAMERA
    slots: list[str | None] = [None] * n
    if camera_ok and rng.random() < ctx.config.camera_target_prob:
        slots[0] = CAMERA
    elif camera_ok and n == 2 and rng.random() < 0.5:
        slots[1] = CAMERA
    need = sum(s is None for s in slots)
    if len(pool) < need and camera_ok and CAMERA not in slots and ctx.states_uncertainty:
        # extracted records: a draw that leaves the camera out could only fail here, so it takes the camera in the
        # slot the draw above would have given it with the odds it would have (slot 0 twice as often as slot 1)
        slots[0 if n == 1 or rng.random() < 2.0 / 3.0 else 1] = CAMERA
        need -= 1
    if len(pool) < need:
        reason = "no_agent" if qt.agent_targets else "too_few_objects"
        raise QAError(f"{qt.key}: {len(pool)} candidate target(s), need {need}", reason)
    picks = iter(rng.sample(range(len(pool)), need))
    return tuple(s if s is not None else pool[next(picks)] for s in slots)


def askable(ctx: RecordContext, qt: QuestionType) -> bool:
    """Whether some draw of ``qt`` gets an observer and its targets on this record (:func:`_observer`,
    :func:`_targets`): enough objects (agents, where the type needs them) beside the camera's one slot."""
    observers = [CAMERA, *ctx.draw_agents]
    for observer in observers:
        pool = ctx.draw_agents if qt.agent_targets else ctx.draw_objects
        camera_ok = True
        if qt.observer_not_target:
            pool = tuple(p for p in pool if p != observer)
            camera_ok = observer != CAMERA
        if len(pool) >= qt.num_targets - int(camera_ok):
            return True
    return False


def _interval(ctx: RecordContext, rng: random.Random) -> list[int]:
    usable = ctx.plan.usable
    u = len(usable)
    gap = ctx.config.min_gap
    if u - 1 < gap:
        raise QAError(f"{u} usable frames cannot hold a gap of {gap}", "clip_too_short")
    while True:  # resample until the gap holds (§7.4 step 2); terminates since u − 1 >= gap
        i, j = sorted(rng.sample(range(u), 2))
        if j - i >= gap:
            return ctx.usable_list[i:j + 1]


def _frame_ok(ctx: RecordContext, t: int, observer: str, targets: tuple[str, ...], qt: QuestionType) -> str | None:
    """None if frame t is usable for the query, else the reason it is not."""
    if not ctx.valid_cam[t]:
        return "camera_pose_invalid"
    for who in targets:
        if who != CAMERA and not ctx.valid_obj[who][t]:
            return "not_visible"
    if qt.quantity == "orientation" and targets[0] != CAMERA and not ctx.valid_ori[targets[0]][t]:
        return "orientation_confidence"
    if not qt.is_absolute and observer != CAMERA:
        if not ctx.valid_obj[observer][t]:
            return "not_visible"
        if not ctx.valid_ori[observer][t]:
            return "orientation_confidence"
    return None


def box_side_px(record: SceneRecord, who: str, frame: int) -> float:
    """The shorter side, in pixels, of an object's box at ``frame`` as clipped to the frame."""
    x1, y1, x2, y2 = record.object(who).boxes_xyxy[frame].tolist()
    w, h = record.video.width, record.video.height
    return min(min(x2, w) - max(x1, 0.0), min(y2, h) - max(y1, 0.0))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes (0 when both are empty)."""
    ax1, ay1, ax2, ay2 = a.tolist()
    bx1, by1, bx2, by2 = b.tolist()
    iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


_TRUNCATION_REASON = {"not_visible": "too_few_visible_frames", "orientation_confidence": "orientation_confidence",
                      "camera_pose_invalid": "camera_pose_invalid"}


def render_question(record: SceneRecord, query: Query, config: QAConfig = QAConfig(),
                    box_cache: dict[tuple[str, int], str] | None = None) -> str:
    """The question text of a template query (§7.2) with its object denotations (§7.3, see
    :func:`name_entities`)."""
    qt = type_row(query.type)
    objv, objs = name_entities(record, query, config, box_cache)
    ts = record.timestamps_s
    pred = qt.is_prediction
    return question_text(query.type, objv=objv, objs=objs,
                         ts=None if pred else float(ts[query.frames[0]]),
                         te=None if pred else float(ts[query.frames[-1]]),
                         tv=None if query.t_v is None else float(ts[query.t_v]), config=config)


def name_entities(record: SceneRecord, query: Query, config: QAConfig = QAConfig(),
                  box_cache: dict[tuple[str, int], str] | None = None) -> tuple[str, list[str]]:
    """How a template query names its observer and targets (§7.3): (observer, [targets]).

    Observer: "camera"; a relative agent by its box at the first frame ("initial"; "final" for a
    prediction, whose only shown frame is the last visible one); an absolute agent by its box at t_v.
    Targets: "initial" box at the interval's first frame; a prediction target: "final" box at the
    last visible frame. Raises QAError("ambiguous_denotation") if two entities read the same, and
    QAError("small_box") if a box is below ``config.min_box_side`` of the frame.
    """
    qt = type_row(query.type)
    first = query.frames[0]
    pred = qt.is_prediction
    try:
        if query.observer == CAMERA:
            objv = "camera"
        elif qt.is_absolute:
            assert query.t_v is not None
            objv = denote(record, query.observer, query.t_v, "observer_absolute", box_cache)
        else:
            objv = denote(record, query.observer, first, "final" if pred else "initial", box_cache)
        objs = [denote(record, who, first, "final" if pred else "initial", box_cache) for who in query.targets]
    except DsrError as exc:
        raise QAError(f"{query.type}: {exc}", "not_visible") from None
    who_by_text: dict[str, str] = {}
    for text, who in zip([objv, *objs], [query.observer, *query.targets], strict=True):
        if who_by_text.setdefault(text, who) != who:  # the observer may also be a target
            raise QAError("two entities share one description", "ambiguous_denotation")
    if config.min_box_side > 0:
        # a box a few pixels wide names nothing a viewer can find (issue 10: 25 of 1,000 QAs)
        shown = [(query.observer, query.t_v if qt.is_absolute else first), *((t, first) for t in query.targets)]
        least = config.min_box_side * min(record.video.width, record.video.height)
        for who, frame in shown:
            if who != CAMERA and frame is not None and box_side_px(record, who, frame) < least:
                raise QAError(f"{who} is named by a box under {least:.1f} px", "small_box")
    return objv, objs


def answer_pool(ctx: RecordContext, qtype: str) -> list[list[str]]:
    """Answer states of ``config.distractor_pool_size`` random queries of ``qtype`` on this record.

    Drawn once per (record, type) with their own seeded generators, so the QAs stay deterministic
    and independent of the order in which types are sampled."""
    if qtype not in ctx.answer_pools:
        key = f"{ctx.seed}/{ctx.record.record_id}/{qtype}/pool"
        py_rng = random.Random(key)
        qt = TYPES[qtype]
        pool: list[list[str]] = []
        for _ in range(ctx.config.distractor_pool_size):
            try:
                query, _ = draw_query(ctx, qt, py_rng)
                pool.append(answer_states(ctx, query)[1])
            except QAError:
                continue
        ctx.answer_pools[qtype] = pool
    return ctx.answer_pools[qtype]


def draw_query(ctx: RecordContext, qt: QuestionType, py_rng: random.Random) -> tuple[Query, bool]:
    """Draw one query of type ``qt`` (§7.4): observer, interval (or the prediction step), t_v, targets;
    truncate the interval at the first unusable frame. Returns (query, truncated?) or QAError(reason)."""
    plan = ctx.plan
    observer = _observer(ctx, qt, py_rng)
    frames = [plan.last_visible, plan.future] if qt.is_prediction else _interval(ctx, py_rng)
    t_v = int(_pick(py_rng, ctx.usable_list)) if qt.is_absolute else None
    targets = _targets(ctx, qt, observer, py_rng)
    frames, truncated = usable_frames(ctx, qt, observer, targets, frames, t_v)
    return Query(type=qt.key, observer=observer, targets=targets, frames=tuple(frames), t_v=t_v), truncated


def usable_frames(ctx: RecordContext, qt: QuestionType, observer: str, targets: tuple[str, ...],
                  frames: list[int], t_v: int | None) -> tuple[list[int], bool]:
    """``frames`` truncated before the first frame where the query cannot be read, and whether they
    were truncated; QAError(reason) when too few remain or the observer is unusable at t_v."""
    # absolute observer must be seen, confidently oriented, at t_v
    if t_v is not None:
        if not ctx.valid_cam[t_v]:
            raise QAError("camera pose invalid at t_v", "camera_pose_invalid")
        if observer != CAMERA:
            if not ctx.valid_obj[observer][t_v]:
                raise QAError("observer not visible at t_v", "observer_not_visible")
            if not ctx.valid_ori[observer][t_v]:
                raise QAError("observer orientation confidence < threshold at t_v", "orientation_confidence")
    if qt.is_prediction:
        for t in frames:
            why = _frame_ok(ctx, t, observer, targets, qt)
            if why is not None:
                raise QAError(f"prediction frame {t}: {why}", f"prediction_{why}")
        # §7.4: an agent observer overlapping its target (box IoU > 0.5) makes the question ill-posed
        if (not qt.is_absolute and observer != CAMERA and targets[0] != CAMERA
                and box_iou(ctx.record.object(observer).boxes_xyxy[frames[0]],
                            ctx.record.object(targets[0]).boxes_xyxy[frames[0]]) > 0.5):
            raise QAError("observer and target overlap (IoU > 0.5)", "observer_target_overlap")
        return frames, False
    keep = len(frames)
    why = None
    for k, t in enumerate(frames):
        why = _frame_ok(ctx, t, observer, targets, qt)
        if why is not None:
            keep = k
            break
    if keep == len(frames):
        return frames, False
    need = ctx.config.min_frames + int(qt.per_step)
    if keep < need:
        raise QAError(f"{keep} frames before loss ({why})", _TRUNCATION_REASON[why or "not_visible"])
    return frames[:keep], True


def answer_states(ctx: RecordContext, query: Query) -> tuple[np.ndarray, list[str]]:
    """(quantity, merged states) of a drawn query; QAError when it has no answer or too many segments."""
    values, states = derive(query, gather(ctx.geom, query, trusted=True), ctx.geom.scale, ctx.config)
    if len(states) > ctx.config.max_segments:
        raise QAError(f"{len(states)} segments", "too_many_segments")
    return values, states


def make_qa(ctx: RecordContext, query: Query, qa_id: str, question: str, options: tuple[str, str, str, str],
            letter: str, values: np.ndarray, stab: float | None, distractors: tuple[Distractor, ...] | None = None,
            ) -> QA:
    """The typed QA of a template query with its options chosen."""
    qt, rec = query.qtype, ctx.record
    fi = np.asarray(query.frames)
    return QA(
        qa_id=qa_id, video_id=rec.record_id, video_path=ctx.video_path, record_path=ctx.record_path, type=qt.key,
        source="template", question=question, options=options, answer=letter,
        answer_text=options[LETTERS.index(letter)],
        visible_until_s=ctx.plan.visible_until_s if qt.is_prediction else None, query=query,
        frames=FrameRefs(indices=tuple(rec.video.frame_indices[fi].tolist()),
                         timestamps_s=tuple(rec.timestamps_s[fi].tolist()), record_indices=query.frames),
        quantity=Quantity(name=qt.quantity, values=values.tolist(), scale=ctx.geom.scale, rule=qt.rule),
        stability=stab, generator=Generator(dsr_version=__version__, seed=ctx.seed, config=ctx.config_json),
        distractors=distractors)


def attempt(ctx: RecordContext, qtype: str, rng: np.random.Generator, py_rng: random.Random,
            seen: set[str] | None = None) -> tuple[QA, bool]:
    """One sampling attempt of ``qtype`` with the paper's random distractors: (QA, interval truncated?)
    or QAError(reason).

    ``py_rng`` draws the scalar choices, ``rng`` the arrays (distractor sequences, perturbations)."""
    cfg, rec = ctx.config, ctx.record
    qt = TYPES[qtype]
    query, truncated = draw_query(ctx, qt, py_rng)
    qa_id = f"{rec.record_id}/{qtype}/{query_hash(query)}"
    if seen is not None and qa_id in seen:  # before any work: a saturated record repeats queries
        raise QAError("query already asked", "duplicate_query")
    values, states = answer_states(ctx, query)
    question = render_question(rec, query, cfg, ctx.box_cache)
    try:
        pool = answer_pool(ctx, qtype) if cfg.distractor_pool_prob > 0 else ()
        options, letter, rejected = make_options(states, qt, len(query.frames), cfg, rng, py_rng,
                                                 pool, random.Random(f"{qa_id}/distractor_pool"))
    except DsrError as exc:
        raise QAError(str(exc), "distractors_exhausted") from None
    if cfg.drop_rel_spd_comp_on_retry and qtype == "rel_spd_comp" and rejected:
        raise QAError("rel_spd_comp reached the distractor retry path (parity M8)", "parity_rel_spd_comp_retry")
    answer_text = options[LETTERS.index(letter)]
    stab = None
    if cfg.stability_k > 0:
        stab = stability(ctx.geom, query, states, cfg, rng)
        if stab < cfg.min_stability:
            raise QAError(f"stability {stab:.2f} < {cfg.min_stability}", "unstable")
    assert answer_text == format_answer(states, qt.rule, cfg.answer_wording)
    return make_qa(ctx, query, qa_id, question, options, letter, values, stab), truncated


# --------------------------------------------------------------------------------------------------
# a record's QAs


def type_weights(counts: dict[str, int]) -> list[float]:
    """Inverse-frequency type weights (§7.4 step 1): (Σcount + K) / (count_t + 1), K = number of types
    (the official code's 12), normalised."""
    total = sum(counts.values()) + len(counts)
    w = [total / (c + 1) for c in counts.values()]
    norm = sum(w)
    return [x / norm for x in w]


def parse_types(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """"abs_dis,rel_dir" / "all" / "abs" / "rel" / "dis" (both viewpoints) → validated type keys."""
    if spec is None or spec == "all":
        return QUESTION_TYPES
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item in QUESTION_TYPES:
            match = [item]
        elif item in ("abs", "rel"):
            viewpoint = "absolute" if item == "abs" else "relative"
            match = [k for k, t in TYPES.items() if t.viewpoint == viewpoint]
        elif item in BASE_TYPES:
            match = [k for k, t in TYPES.items() if t.base == item]
        else:
            raise DsrError(f"unknown question type {item!r} (types: {', '.join(QUESTION_TYPES)}, abs, rel, all)")
        out.extend(m for m in match if m not in out)
    if not out:
        raise DsrError("no question types selected")
    return tuple(out)


def generate_record_qas(record: SceneRecord, config: QAConfig = QAConfig(), *, per_video: int = 10, seed: int = 0,
                        types: Sequence[str] = QUESTION_TYPES, report: GenerationReport | None = None,
                        record_path: str | None = None, video_path: str | None = None) -> Iterator[QA]:
    """Up to ``per_video`` template QAs of ``record`` (lazy). Deterministic in (seed, record_id, config).

    Attempts stop after ``per_video × config.attempts_per_qa`` (``attempts_per_qa_uncertain`` for a record
    that states uncertainty, where abstention rejects most attempts); every failed attempt is counted in
    ``report`` by reason.
    """
    report = report if report is not None else GenerationReport()
    report.records += 1
    try:
        ctx = RecordContext.build(record, config, seed=seed, record_path=record_path, video_path=video_path)
    except QAError as exc:
        report.records_failed[exc.reason] += 1
        return
    yield from qas_from_context(ctx, per_video=per_video, seed=seed, types=types, report=report)


def letter_plan(seed: int, record_id: str, qtype: str, k: int) -> str:
    """The letter of a record's k-th QA of ``qtype``: every 4 in a row use each letter once, in an order
    drawn from (seed, record, type, block) (blocked randomisation; a run evens out what records leave
    over, see :func:`dsr.qa.run.balance_letters`)."""
    block = list(LETTERS)
    random.Random(f"{seed}/{record_id}/{qtype}/letters/{k // 4}").shuffle(block)
    return block[k % 4]


GIVE_UP_AFTER = 8  # "few_alternatives" failures since the type's last QA (plain budget) before it is given up


def qas_from_context(ctx: RecordContext, *, per_video: int = 10, seed: int = 0,
                     types: Sequence[str] = QUESTION_TYPES,
                     report: GenerationReport | None = None) -> Iterator[QA]:
    """The sampling loop of :func:`generate_record_qas` on an already built :class:`RecordContext`."""
    from dsr.qa.counterfactual import counterfactual_attempt  # it builds on this module

    report = report if report is not None else GenerationReport()
    ctx = dataclasses.replace(ctx, seed=seed, answer_counts=Counter())
    config, record_id = ctx.config, ctx.record.record_id
    counterfactual = config.distractors == "counterfactual"
    rng = np.random.default_rng([seed, stable_hash(record_id)])
    py_rng = random.Random(f"{seed}/{record_id}")
    counts = dict.fromkeys(types, 0)
    seen: set[str] = set()
    made = 0
    # counterfactual design: a type whose alternatives keep saying the same thing on this record (a
    # stationary scene's speeds), or whose distinct questions are all asked, is given up after
    # GIVE_UP_AFTER such failures in a row, and counted
    hopeless = dict.fromkeys(types, 0)
    # counterfactual design with no stability threshold: the stability draws are the only use of ``rng``,
    # so QAs are scored in batches (same draws, same scores as one at a time) and held until then
    deferred: list[tuple[Query, tuple[str, ...]]] | None = [] if counterfactual else None
    held: list[QA] = []
    per_qa = config.attempts_per_qa_uncertain if ctx.states_uncertainty else config.attempts_per_qa
    if ctx.states_uncertainty:
        # extracted records: a type no draw can ask (its entities are not on the record, or abstention would never
        # let a question name them) is left out, rather than spending the budget on attempts that must fail
        for qtype in [t for t in counts if not askable(ctx, TYPES[t])]:
            del counts[qtype]
            report.types_unaskable[qtype] += 1
    # the give-up count grows with the budget: other failures do not reset it, so under abstention's rejections
    # a fixed 8 gave a pan world's camera questions up after a few hundred of its thousands of attempts
    give_up_after = GIVE_UP_AFTER * max(1, per_qa // config.attempts_per_qa)
    for _ in range(per_video * per_qa):
        if made >= per_video or not counts:
            break
        qtype = py_rng.choices(list(counts), weights=type_weights(counts))[0]
        report.attempts += 1
        try:
            if counterfactual:
                letter = letter_plan(seed, record_id, qtype, counts[qtype]) if config.balance_letters else None
                qa, truncated = counterfactual_attempt(ctx, qtype, rng, py_rng, seen, letter, deferred)
            else:
                qa, truncated = attempt(ctx, qtype, rng, py_rng, seen)
        except QAError as exc:
            report.fail(qtype, exc.reason)
            if exc.reason == "few_alternatives":
                hopeless[qtype] += 1
                if hopeless[qtype] >= give_up_after:
                    del counts[qtype]
                    report.types_given_up[qtype] += 1
            continue
        hopeless[qtype] = 0
        seen.add(qa.qa_id)
        counts[qtype] += 1
        made += 1
        report.add(qa)
        report.truncated += int(truncated)
        if not deferred:
            yield qa
            continue
        held.append(qa)
        if len(held) >= STABILITY_BATCH:
            yield from _scored(ctx, held, deferred, rng)
    if deferred:
        yield from _scored(ctx, held, deferred, rng)


STABILITY_BATCH = 256  # QAs held for one batched stability computation


def _scored(ctx: RecordContext, held: list[QA], deferred: list[tuple[Query, tuple[str, ...]]],
            rng: np.random.Generator) -> Iterator[QA]:
    """The held QAs with their stability (then both lists emptied)."""
    scores = stability_many(ctx.geom, deferred, ctx.config, rng)
    out = [dataclasses.replace(qa, stability=s) for qa, s in zip(held, scores, strict=True)]
    held.clear()
    deferred.clear()
    yield from out


def describe_failure_rate(report: GenerationReport) -> str:
    made = sum(report.made.values())
    failed = sum(report.failures.values())
    rate = failed / report.attempts if report.attempts else math.nan
    return f"{made} QAs from {report.records} records; {failed} of {report.attempts} attempts failed ({rate:.0%})"
