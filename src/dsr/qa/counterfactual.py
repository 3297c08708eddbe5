"""Counterfactual option sets: the debiased question design (docs/qa.md, issue 10).

The paper's distractors are random attribute sequences (§7.6). They are rarely constant and their
length follows the answer's, so the option text alone gives the answer away (a blind reader scores
0.85 on our worlds). Here every option is the **true answer of a real query**:

1. draw a query as the paper does (§7.4) — the *seed*;
2. derive the answers of its *alternatives*, real queries of the same type on the same record that
   differ in one element: ``other_window`` (the same objects over another window of the same
   length), ``other_object`` (another object in a target slot; the camera keeps its slot),
   ``swapped_targets`` (the two targets in the other order, where the order matters),
   ``other_time`` (another observer frame t_v, for absolute types whose answer depends on it) and
   ``other_observer``;
3. group them by what they *mean* (:func:`dsr.qa.rules.meaning`), choose four meanings — rarer
   ones on this record first, so that answers spread over the classes the geometry allows — and
   one askable query of each;
4. ask **one of the four, drawn uniformly**; the other three answers are its options.

Because the asked query is a uniform draw from a set of four queries of one kind, no feature of an
option alone (its text, length, number of segments, states) can tell the answer: each option set is
exchangeable. Only where the record offers fewer than four distinct real answers (at least
``QAConfig.min_real_answers``) the set is completed with transforms of a real answer — the
``reversed`` or ``mirrored`` (left↔right, front↔behind) trajectory, or a one-segment ``edited``
answer — which are never asked.

Every alternative passes the checks the asked query passes (visibility over all its frames, the
observer at t_v, names a viewer can find), so any of the four could be the question.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from dsr.errors import DsrError
from dsr.qa.generate import (
    RecordContext,
    answer_states,
    draw_query,
    make_qa,
    name_entities,
    query_hash,
    render_question,
    usable_frames,
)
from dsr.qa.query import Geometry, QAError, Query, QueryArrays, derive, gather, quantity, stability
from dsr.qa.question_types import TYPES, QuestionType
from dsr.qa.rules import (
    AXIS_LABELS,
    COMPARISON_BY_CODE,
    CONSTANT,
    CONSTANT_LARGER,
    CONSTANT_SMALLER,
    DIRECTION_LABELS,
    FORMER,
    LARGER,
    LATTER,
    SAME,
    SMALLER,
    comparison_code_array,
    direction_code_array,
    format_answer,
    meaning,
    merge_states,
    segment_runs,
    states_batch,
    states_for,
)
from dsr.qa.schema import LETTERS, QA, Distractor
from dsr.scene.frames import CAMERA
from dsr.scene.uncertainty import focal_error_motion, path_stretches, stretch_scale_shift

TRANSFORMS = ("reversed", "mirrored", "edited")


@dataclass(eq=False, slots=True)  # not frozen: built ~30 times per QA, and frozen init costs 3x; never mutated
class Alternative:
    """One candidate option: a real query's answer (``query`` set) or a transform of one (``source``).

    values: the per-frame quantity (normalised) the states come from; None for an edited answer.
    """

    kind: str
    states: tuple[str, ...]
    meaning: tuple[str, ...]
    query: Query | None = None
    values: np.ndarray | None = None
    source: Query | None = None


def _alternative(ctx: RecordContext, kind: str, query: Query, values: np.ndarray | None = None,
                 states: list[str] | None = None) -> Alternative | None:
    """The answer of a real alternative query, or None when it has none (zero vector, too many segments)."""
    try:
        if values is None or states is None:
            values, states = answer_states(ctx, query)
        elif len(states) > ctx.config.max_segments:
            return None
    except QAError:
        return None
    return Alternative(kind=kind, states=tuple(states), meaning=meaning(states, query.qtype.rule), query=query,
                       values=values)


def _batched(ctx: RecordContext, kind: str, query: Query, states: tuple[str, ...] | None,
             values: np.ndarray, rule: str | None = None) -> Alternative | None:
    """An answer from :func:`states_batch` as an alternative, or None when the rule gave none (a zero
    vector) or it has too many segments."""
    if states is None or len(states) > ctx.config.max_segments:
        return None
    rule = rule or query.qtype.rule  # only magnitudes have two words for one meaning; the states are merged
    return Alternative(kind=kind, states=states, meaning=meaning(states, rule) if rule == "magnitude" else states,
                       query=query, values=values)


def _with_kind(alt: Alternative, kind: str) -> Alternative:
    """A memoised alternative under the kind it has for this seed."""
    if alt.kind == kind:
        return alt
    return Alternative(kind=kind, states=alt.states, meaning=alt.meaning, query=alt.query, values=alt.values,
                       source=alt.source)


# --------------------------------------------------------------------------------------------------
# alternatives of a seed query


def _valid_mask(ctx: RecordContext, qt: QuestionType, observer: str, targets: tuple[str, ...],
                frames: np.ndarray) -> np.ndarray:
    """(F,) which of ``frames`` a query of (observer, targets) can read (the checks of ``usable_frames``)."""
    ok = ctx.valid_cam[frames]
    for who in targets:
        if who != CAMERA:
            ok &= ctx.valid_obj[who][frames]
    if qt.quantity == "orientation" and targets[0] != CAMERA:
        ok &= ctx.valid_ori[targets[0]][frames]
    if not qt.is_absolute and observer != CAMERA:
        ok &= ctx.valid_obj[observer][frames] & ctx.valid_ori[observer][frames]
    return ok


@dataclass(frozen=True, eq=False)
class _Track:
    """One (type, observer, targets) over all usable frames, for every t_v at once (absolute types):
    each alternative of a record that reads it is a slice (memoised per record: many attempts share it).

    per_t_v: one row per usable t_v (an absolute type that reads its observer), else one row;
    values: (R, n, ...) the quantity over the rows, n = usable frames − per step;
    rows: per row, the per-value rule input as Python lists: direction / comparison codes (−1 where the
        rule has no answer) or, for magnitudes, the floats;
    bad_values: per row (magnitudes), the cumulative count of values the rule refuses (NaN, negative);
    bad_frames: the cumulative count of usable frames the (observer, targets) cannot be read at.
    """

    per_t_v: bool
    values: np.ndarray
    rows: list[list]
    bad_values: list[list[int]] | None
    bad_frames: list[int]


# observer-invariant absolute types that still read the observer at t_v (speeds in a frozen frame): they
# have no other-time alternatives, so a track is one row at the query's own t_v (a distance reads none)
_FROZEN_T_V = frozenset(k for k, t in TYPES.items() if t.is_absolute and t.observer_invariant
                        and t.quantity != "distance")


def _on_usable(ctx: RecordContext, what: str, who: str) -> np.ndarray:
    """A geometry array of one entity at the usable frames ("frames": their indices), memoised per record."""
    key = (what, who)
    hit = ctx.on_usable.get(key)
    if hit is None:
        usable = ctx.on_usable.get(("frames", ""))
        if usable is None:
            usable = ctx.on_usable[("frames", "")] = np.asarray(ctx.usable_list)
        hit = usable if what == "frames" else getattr(ctx.geom, what)[who][usable]
        ctx.on_usable[key] = hit
    return hit


def _bad_frames(ctx: RecordContext, qt: QuestionType, observer: str, targets: tuple[str, ...]) -> list[int]:
    """The cumulative count of usable frames (observer, targets) cannot be read at, memoised per record on
    what the type's checks depend on."""
    checks = (observer, targets, qt.quantity == "orientation", qt.is_absolute)
    hit = ctx.unreadable.get(checks)
    if hit is None:
        mask = _valid_mask(ctx, qt, observer, targets, _on_usable(ctx, "frames", ""))
        hit = ctx.unreadable[checks] = np.concatenate([[0], np.cumsum(~mask)]).tolist()
    return hit


def _track(ctx: RecordContext, qt: QuestionType, observer: str, targets: tuple[str, ...], t_v: int | None) -> _Track:
    """The track of (type, observer, targets) that a query at ``t_v`` reads."""
    key = (qt.key, observer, targets, t_v if qt.key in _FROZEN_T_V else None)
    hit = ctx.tracks.get(key)
    if hit is not None:
        return hit
    per_t_v = qt.is_absolute and not qt.observer_invariant
    geom, cfg = ctx.geom, ctx.config
    usable = _on_usable(ctx, "frames", "")
    track = geom.inverse_poses[observer]
    positions = tuple(_on_usable(ctx, "positions", w) for w in targets)
    forward = _on_usable(ctx, "forwards", targets[0]) if qt.quantity == "orientation" else None
    if per_t_v:
        # every (t_v, frame) pair; broadcast copies made contiguous, where einsum is 2.5× faster (same sums)
        u = len(usable)
        obs = np.ascontiguousarray(np.broadcast_to(_on_usable(ctx, "inverse_poses", observer)[:, None], (u, u, 4, 4)))
        positions = tuple(np.ascontiguousarray(np.broadcast_to(p, (u, u, 3))) for p in positions)
        if forward is not None:
            forward = np.ascontiguousarray(np.broadcast_to(forward, (u, u, 3)))
    else:
        obs = (_on_usable(ctx, "inverse_poses", observer) if not qt.is_absolute
               else track[key[3] if key[3] is not None else usable[0]])
    with np.errstate(invalid="ignore"):
        values = quantity(qt.quantity, QueryArrays(obs_from_world=obs, target_positions=positions,
                                                   target_forward=forward), geom.scale)
    if not per_t_v:
        values = values[None]
    bad_values = None
    if qt.rule == "direction":
        rows = direction_code_array(values, cfg.direction_eps).tolist()
    elif qt.rule == "comparison":  # the checks of states_batch, per step
        ok = np.isfinite(values).all(axis=-1) & (values >= 0.0).all(axis=-1)
        rows = np.where(ok, comparison_code_array(values[..., 0], values[..., 1], cfg), -1).tolist()
    else:
        rows = values.tolist()
        bad_values = []
        for row in rows:  # a handful of short rows: plain Python beats numpy's per-call cost
            cum = [0]
            for x in row:
                cum.append(cum[-1] + (not 0.0 <= x < math.inf))
            bad_values.append(cum)
    bad_frames = _bad_frames(ctx, qt, observer, targets)
    hit = ctx.tracks[key] = _Track(per_t_v=per_t_v, values=values, rows=rows, bad_values=bad_values,
                                   bad_frames=bad_frames)
    return hit


def _sliced(ctx: RecordContext, kind: str, query: Query, start: int) -> Alternative | None:
    """The answer of a query whose frames are the usable frames from ``start`` on, read off its track
    (the same values and states as :func:`states_batch` gives for them)."""
    qt = TYPES[query.type]
    tr = _track(ctx, qt, query.observer, query.targets, query.t_v)
    row = ctx.usable_index[query.t_v] if tr.per_t_v else 0
    n = len(query.frames) - int(qt.per_step)
    codes = tr.rows[row][start:start + n]
    if qt.rule == "magnitude":
        cum = tr.bad_values[row]
        if n < 2 or cum[start + n] != cum[start]:
            return None
        cfg = ctx.config
        states = tuple(merge_states(segment_runs(codes, cfg.constant_low, cfg.constant_high, cfg.floor, n)))
    else:
        if -1 in codes:
            return None
        labels = DIRECTION_LABELS if qt.rule == "direction" else COMPARISON_BY_CODE
        merged, prev = [], -1
        for c in codes:
            if c != prev:
                merged.append(labels[c])
                prev = c
        states = tuple(merged)
    return _batched(ctx, kind, query, states, tr.values[row, start:start + n], qt.rule)


def _window_alternatives(ctx: RecordContext, seed: Query, rng: random.Random, limit: int) -> list[Alternative]:
    """The seed's observer and targets over up to ``limit`` other windows of the same length, read off
    its track; steps are between consecutive usable frames, as a window's are."""
    usable = ctx.usable_list
    length = len(seed.frames)
    start = ctx.usable_index[seed.frames[0]]
    bad = _track(ctx, seed.qtype, seed.observer, seed.targets, seed.t_v).bad_frames
    starts = [s for s in range(len(usable) - length + 1) if s != start and bad[s + length] == bad[s]]
    out = []
    for s in rng.sample(starts, min(limit, len(starts))):
        query = Query(type=seed.type, observer=seed.observer, targets=seed.targets,
                      frames=tuple(usable[s:s + length]), t_v=seed.t_v)
        alt = ctx.answers[query] if query in ctx.answers else ctx.answers.setdefault(
            query, _sliced(ctx, "other_window", query, s))
        if alt is not None:
            out.append(_with_kind(alt, "other_window"))
    return out


def _run_start(ctx: RecordContext, query: Query) -> int:
    """Where the query's frames start in the usable frames, if they are a run of them (else −1)."""
    start = ctx.usable_index.get(query.frames[0], -1)
    if start < 0 or tuple(ctx.usable_list[start:start + len(query.frames)]) != query.frames:
        return -1
    return start


def _readable(ctx: RecordContext, seed: Query, observer: str, targets: tuple[str, ...], t_v: int | None,
              start: int = -1) -> bool:
    """Whether (observer, targets, t_v) can be read over all of the seed's frames (no truncation):
    the checks of ``usable_frames``, vectorised over the frames (read off the track where the seed's
    frames are the run of usable frames from ``start``)."""
    qt = seed.qtype
    if qt.is_prediction:  # two frames, and the observer-overlap rule: the sampler's own check
        try:
            _, truncated = usable_frames(ctx, qt, observer, targets, list(seed.frames), t_v)
        except QAError:
            return False
        return not truncated
    if t_v is not None and not (ctx.valid_cam[t_v] and (observer == CAMERA or (
            ctx.valid_obj[observer][t_v] and ctx.valid_ori[observer][t_v]))):
        return False
    if start >= 0 and not qt.is_prediction:
        bad = _bad_frames(ctx, qt, observer, targets)
        return bad[start + len(seed.frames)] == bad[start]
    return bool(_valid_mask(ctx, qt, observer, targets, np.asarray(seed.frames)).all())


def _variant_specs(ctx: RecordContext, seed: Query) -> list[tuple[str, str, tuple[str, ...], int | None]]:
    """Candidate alternatives over the seed's own frames, unchecked: (kind, observer, targets, t_v) for
    other objects, swapped targets, other t_v and other observers."""
    qt = seed.qtype
    out: list[tuple[str, str, tuple[str, ...], int | None]] = []

    def add(kind: str, observer: str, targets: tuple[str, ...], t_v: int | None) -> None:
        out.append((kind, observer, targets, t_v))

    pool = ctx.agents if qt.agent_targets else ctx.objects
    for slot, who in enumerate(seed.targets):
        if who == CAMERA:
            continue
        for other in pool:
            if other in seed.targets or (qt.observer_not_target and other == seed.observer):
                continue
            add("other_object", seed.observer, (*seed.targets[:slot], other, *seed.targets[slot + 1:]), seed.t_v)
    if qt.num_targets == 2 and qt.quantity != "distance":
        add("swapped_targets", seed.observer, seed.targets[::-1], seed.t_v)
    if not qt.observer_invariant:
        if qt.is_absolute:
            for t_v in ctx.usable_list:
                if t_v != seed.t_v:
                    add("other_time", seed.observer, seed.targets, t_v)
        for observer in (CAMERA, *ctx.agents):
            if observer == seed.observer or (qt.observer_not_target and observer in seed.targets):
                continue
            if qt.observer_from_slot and observer in seed.targets:
                continue
            add("other_observer", observer, seed.targets, seed.t_v)
    return out


def _answers_batch(ctx: RecordContext, variants: list[tuple[str, Query]]) -> list[Alternative]:
    """The answers of same-frame alternatives, listed per (observer, t_v) group in the order the groups
    first appear (memoised answers first)."""
    groups: dict[tuple[str, int | None], list[tuple[str, Query]]] = {}
    out: list[Alternative] = []
    for kind, query in variants:
        if query in ctx.answers:
            known = ctx.answers[query]
            if known is not None:
                out.append(_with_kind(known, kind))
        else:
            groups.setdefault((query.observer, query.t_v), []).append((kind, query))
    made: dict[tuple[str, Query], Alternative | None] = {}
    if groups:
        first = next(iter(groups.values()))[0][1]
        start = _run_start(ctx, first)
        if start >= 0 and not first.qtype.is_prediction:
            # the usual case: the frames are a run of usable frames, so each answer is a slice of its track
            for members in groups.values():
                for kind, query in members:
                    made[(kind, query)] = ctx.answers[query] = _sliced(ctx, kind, query, start)
        else:
            _answers_computed(ctx, groups, made)
    for members in groups.values():
        out.extend(alt for alt in (made[m] for m in members) if alt is not None)
    return out


def _answers_computed(ctx: RecordContext, groups: dict[tuple[str, int | None], list[tuple[str, Query]]],
                      made: dict[tuple[str, Query], Alternative | None]) -> None:
    """Same-frame answers computed afresh (predictions: their two frames are not a run of usable frames),
    one quantity computation per observer (an absolute type's observer poses at each t_v broadcast)."""
    by_observer: dict[str, list[tuple[str, Query]]] = {}
    for (observer, _), members in groups.items():
        by_observer.setdefault(observer, []).extend(members)
    geom, cfg = ctx.geom, ctx.config
    for observer, members in by_observer.items():
        qt = members[0][1].qtype
        f = np.asarray(members[0][1].frames)
        track = geom.inverse_poses[observer]
        obs = track[[q.t_v for _, q in members]][:, None] if qt.is_absolute else track[f]
        positions = tuple(np.stack([geom.positions[q.targets[slot]][f] for _, q in members])
                          for slot in range(qt.num_targets))
        forward = (np.stack([geom.forwards[q.targets[0]][f] for _, q in members])
                   if qt.quantity == "orientation" else None)
        values = quantity(qt.quantity, QueryArrays(obs_from_world=obs, target_positions=positions,
                                                   target_forward=forward), geom.scale)
        for (kind, query), v, states in zip(members, values, states_batch(qt.rule, values, cfg), strict=True):
            made[(kind, query)] = ctx.answers[query] = _batched(ctx, kind, query, states, v)


def alternatives(ctx: RecordContext, seed: Query, seed_values: np.ndarray, seed_states: list[str],
                 rng: random.Random) -> list[Alternative]:
    """The seed and up to ``config.alternatives`` real alternatives, in a random order of kinds."""
    first = _alternative(ctx, "seed", seed, seed_values, seed_states)
    out = [first] if first is not None else []
    budget = ctx.config.alternatives
    windows = [] if seed.qtype.is_prediction else _window_alternatives(ctx, seed, rng, max(2, budget // 3))
    specs = _variant_specs(ctx, seed)
    rng.shuffle(specs)
    variants: list[tuple[str, Query]] = []
    start = _run_start(ctx, seed)
    for kind, observer, targets, t_v in specs:  # checked lazily: only as many as the budget takes
        if len(variants) >= budget - len(windows):
            break
        if _readable(ctx, seed, observer, targets, t_v, start):
            variants.append((kind, Query(type=seed.type, observer=observer, targets=targets, frames=seed.frames,
                                         t_v=t_v)))
    out.extend(_answers_batch(ctx, variants))
    out.extend(windows)
    return out


# --------------------------------------------------------------------------------------------------
# transforms (fill-ins when a record offers too few real answers; never asked)

_MAGNITUDE_INNER = (CONSTANT_LARGER, CONSTANT_SMALLER, LARGER, SMALLER)  # "constant" only ends an answer
_MAGNITUDE_LAST = (CONSTANT, *_MAGNITUDE_INNER)
_COMPARISON = (FORMER, SAME, LATTER)


def _flip_axis(label: str, axis: int) -> str:
    """One axis of a direction label changed: its side flipped, or added/dropped when it has none."""
    parts = set(label.split("|"))
    pos, neg = AXIS_LABELS[axis]
    if pos in parts:
        parts = (parts - {pos}) | {neg}
    elif neg in parts:
        parts = (parts - {neg}) | {pos}
    else:
        parts.add(pos)
    order = [w for pair in AXIS_LABELS for w in pair]
    return "|".join(sorted(parts, key=order.index))


def transforms(alt: Alternative, qt: QuestionType, ctx: RecordContext, rng: random.Random) -> list[Alternative]:
    """Reversed, mirrored and edited versions of a real answer, each through the same rules."""
    assert alt.query is not None and alt.values is not None
    out: list[Alternative] = []
    cfg = ctx.config

    def add(kind: str, states: list[str]) -> None:
        if states and len(states) <= cfg.max_segments:
            out.append(Alternative(kind=kind, states=tuple(states), meaning=meaning(states, qt.rule),
                                   source=alt.query))

    values = np.asarray(alt.values)
    try:
        add("reversed", states_for(qt.rule, -values if qt.is_prediction else values[::-1], cfg))
        if qt.rule == "direction":
            for axis in (1, 0):  # left↔right, front↔behind
                mirrored = values.copy()
                mirrored[..., axis] *= -1
                add("mirrored", states_for(qt.rule, mirrored, cfg))
    except DsrError:
        pass
    states = list(alt.states)
    p = int(rng.random() * len(states))
    if qt.rule == "direction":
        choices = [lbl for lbl in {_flip_axis(states[p], a) for a in range(3)} if lbl in DIRECTION_LABELS and lbl]
    elif qt.rule == "magnitude":
        choices = list(_MAGNITUDE_LAST if p == len(states) - 1 else _MAGNITUDE_INNER)
    else:
        choices = list(_COMPARISON)
    neighbours = {states[p - 1] if p > 0 else None, states[p + 1] if p + 1 < len(states) else None, states[p]}
    choices = sorted(c for c in choices if c not in neighbours)
    if choices:
        states[p] = choices[int(rng.random() * len(choices))]
        add("edited", states)
    return out


# --------------------------------------------------------------------------------------------------
# choosing the option set and the question


def _relation(asked: Query, other: Query) -> str:
    """How an alternative differs from the asked query: "other_window", "other_object+other_time", ..."""
    kinds = []
    if other.frames != asked.frames:
        kinds.append("other_window")
    if other.targets != asked.targets:
        kinds.append("swapped_targets" if set(other.targets) == set(asked.targets) else "other_object")
    if other.t_v != asked.t_v:
        kinds.append("other_time")
    if other.observer != asked.observer:
        kinds.append("other_observer")
    return "+".join(kinds) or "same_query"


def _weighted_order(keys: list[tuple[str, ...]], weights: list[float], rng: random.Random) -> list[int]:
    """Indices in a weighted random order without replacement (Efraimidis–Spirakis keys)."""
    scored = [(rng.random() ** (1.0 / w), i) for i, w in enumerate(weights)]
    return [i for _, i in sorted(scored, reverse=True)]


def _nameable(ctx: RecordContext, query: Query) -> bool:
    """Whether :func:`name_entities` can name the query's entities (memoised per record on what it reads:
    the entities, the first frame and, for absolute types, t_v)."""
    qt = query.qtype
    key = (query.observer, query.targets, query.frames[0], query.t_v if qt.is_absolute else None, qt.is_prediction)
    ok = ctx.nameable.get(key)
    if ok is None:
        try:
            name_entities(ctx.record, query, ctx.config, ctx.box_cache)
            ok = True
        except QAError:
            ok = False
        ctx.nameable[key] = ok
    return ok


def _seed_answer(ctx: RecordContext, seed: Query) -> tuple[np.ndarray, list[str]]:
    """(values, states) of the drawn query: read off its track when its frames are a run of usable
    frames (the usual case), else :func:`answer_states` (which also names why there is no answer)."""
    start = -1 if seed.qtype.is_prediction else _run_start(ctx, seed)
    if start >= 0:
        alt = _sliced(ctx, "seed", seed, start)
        if alt is not None:
            assert alt.values is not None
            return alt.values, list(alt.states)
    return answer_states(ctx, seed)


def weakly_tracked(ctx: RecordContext, query: Query) -> str | None:
    """Why abstention's track-confidence rule refuses ``query`` (an object it names is tracked below
    ``min_track_confidence`` at a frame it reads), or None. Only records that state uncertainty apply the rule."""
    cfg, rec = ctx.config, ctx.record
    if not ctx.states_uncertainty or cfg.min_track_confidence <= 0:
        return None
    frames = list(query.frames) + ([query.t_v] if query.t_v is not None else [])
    for who in dict.fromkeys((query.observer, *query.targets)):
        if who == CAMERA:
            continue
        conf = float(np.min(rec.object(who).confidence[frames]))
        # a wrong track (a chimera, a false detection) makes every answer about it wrong
        if conf < cfg.min_track_confidence:
            return f"{who} tracked with confidence {conf:.2f} < {cfg.min_track_confidence}"
    return None


def _states_on(probe: Geometry, query: Query, ctx: RecordContext) -> tuple[str, ...]:
    """The query's answer states on a probe geometry (the record moved within a stated bound); () when the probe
    leaves it unanswerable, which differs from any answer."""
    try:
        return tuple(derive(query, gather(probe, query), probe.scale, ctx.config)[1])
    except QAError:
        return ()


def across_camera_stop(ctx: RecordContext, query: Query, states: tuple[str, ...]) -> str | None:
    """Why abstention's camera-stop rule refuses ``query``, or None. On a record whose path's scale resets at the
    camera's stops (``CameraTrack.scale_reset_bound``) and whose path has a stop, each stretch of the path between
    stops has a scale of its own, unrelated to the other stretches' and to the objects' (the record's scale is a
    compromise between them); the rule refuses a query whose answer changes when one stretch its frames touch is
    scaled by a factor within the stated bound (each stretch alone, at the bound and half way in log units, both
    ways). Queries that only read the camera's frame at each time, and distances, are untouched: the shift moves
    the camera and what it measured alike."""
    bound = ctx.record.camera.scale_reset_bound
    if bound <= 0:
        return None
    stretches = ctx.tracks.get(("path_stretches",))
    if stretches is None:
        stretches = ctx.tracks[("path_stretches",)] = path_stretches(ctx.geom.positions[CAMERA])
    if len(stretches) == 0 or stretches.max() < 1:
        return None  # no stop between two stretches of motion: one scale throughout, set with the objects'
    frames = [*query.frames, *([query.t_v] if query.t_v is not None else [])]
    spanned = stretches[min(frames):max(frames)]
    for stretch in np.unique(spanned[spanned >= 0]):
        for log_factor in (-bound, -bound / 2, bound / 2, bound):
            key = ("stop_probe", int(stretch), log_factor)
            probe = ctx.tracks.get(key)
            if probe is None:
                shift = stretch_scale_shift(ctx.geom.positions[CAMERA], stretches, int(stretch), log_factor)
                probe = ctx.tracks[key] = ctx.geom.shifted(shift)
            if _states_on(probe, query, ctx) != tuple(states):
                return (f"the answer changes when a stretch of the camera's path between stops is scaled by "
                        f"{math.exp(log_factor):.2g}x (its scale resets at each stop)")
    return None


def across_focal_range(ctx: RecordContext, query: Query, states: tuple[str, ...]) -> str | None:
    """Why abstention's focal-length rule refuses ``query``, or None. On a record whose camera states a range for its
    focal length (``CameraTrack.focal_range``: it was guessed or borrowed), every rotation the camera measured may be
    off by one factor within the range, with the path's steps turning along; the rule refuses a query whose answer
    changes when the camera's turns from the query's first frame are scaled by the range's ends or their square
    roots (:func:`~dsr.scene.uncertainty.focal_error_motion`). A query with no turn in it is untouched."""
    lo, hi = ctx.record.camera.focal_range
    if lo == hi == 1.0:
        return None
    ref = min([*query.frames, *([query.t_v] if query.t_v is not None else [])])
    for factor in sorted({lo, math.sqrt(lo), math.sqrt(hi), hi} - {1.0}):
        key = ("focal_probe", ref, factor)
        probe = ctx.tracks.get(key)
        if probe is None:
            probe = ctx.tracks[key] = ctx.geom.reoriented(*focal_error_motion(ctx.record.camera.c2w, ref, factor))
        if _states_on(probe, query, ctx) != tuple(states):
            return (f"the answer changes when the camera's turns are {factor:.2g}x as large (its focal length was "
                    f"not measured: within {lo:.2g}-{hi:.2g}x)")
    return None


def abstain(ctx: RecordContext, query: Query, states: tuple[str, ...], rng: np.random.Generator,
            defer: bool) -> float | None:
    """Issue 11's abstention for the asked query: its stability (None: left to the deferred batch) or
    QAError("low_track_confidence" / "camera_stop" / "focal_unknown" / "unstable").

    Only a record that states uncertainty can fail the four extra checks (ground truth has confidence 1,
    zero sigmas, no scale reset and a known focal length), and only then is stability scored here instead of in the batch, so ground-truth
    output is unchanged. ``min_stability`` still applies to every record, as before."""
    cfg = ctx.config
    threshold = cfg.min_stability
    if ctx.states_uncertainty:
        weak = weakly_tracked(ctx, query)
        if weak is not None:
            raise QAError(weak, "low_track_confidence")
        stop = across_camera_stop(ctx, query, states)
        if stop is not None:
            raise QAError(stop, "camera_stop")
        turned = across_focal_range(ctx, query, states)
        if turned is not None:
            raise QAError(turned, "focal_unknown")
        threshold = max(threshold, cfg.min_stability_uncertain)
    if cfg.stability_k <= 0 or (defer and threshold <= 0):
        return None
    stab = stability(ctx.geom, query, states, cfg, rng)
    if stab < threshold:
        raise QAError(f"stability {stab:.2f} < {threshold}", "unstable")
    return stab


def first_kept(ctx: RecordContext, candidates: list[Alternative], start: int, rng: np.random.Generator,
               defer: bool) -> tuple[int, float | None]:
    """The first of ``candidates`` (real queries of one option set), from ``start`` on and wrapping round, that
    :func:`abstain` keeps: (its index, its stability). Raises the refusal of ``candidates[start]`` when none is kept.

    Any of the four options could be the question (no option is told apart as the one asked), so when the drawn one
    is refused (it reads across a camera stop, a turn the unknown focal length scales, or is unstable) another is
    asked instead of dropping the whole set. The start is drawn uniformly, so every kept option can be the one
    asked (one that follows refused ones, more often). Ground truth is never refused: its draw is unchanged."""
    refusal: QAError | None = None
    for k in [*range(start, len(candidates)), *range(start)]:
        alt = candidates[k]
        assert alt.query is not None
        try:
            return k, abstain(ctx, alt.query, alt.states, rng, defer)
        except QAError as exc:
            refusal = refusal or exc
    assert refusal is not None, "no candidates"
    raise refusal


def counterfactual_attempt(ctx: RecordContext, qtype: str, rng: np.random.Generator, py_rng: random.Random,
                           seen: set[str] | None = None, letter: str | None = None,
                           deferred: list[tuple[Query, tuple[str, ...]]] | None = None) -> tuple[QA, bool]:
    """One attempt of ``qtype`` with a counterfactual option set: (QA, seed truncated?) or QAError(reason).

    ``letter``: where the answer goes (the sampling loop balances letters); a uniform draw if None.
    ``deferred``: when given and no stability threshold applies, the QA's stability is left unset and
    its (query, states) appended here, to be scored later with others (:func:`stability_many`)."""
    cfg, rec = ctx.config, ctx.record
    qt = TYPES[qtype]
    seed, truncated = draw_query(ctx, qt, py_rng)
    seed_values, seed_states = _seed_answer(ctx, seed)
    alts = alternatives(ctx, seed, seed_values, seed_states, py_rng)
    by_meaning: dict[tuple[str, ...], list[Alternative]] = {}
    for alt in alts:
        by_meaning.setdefault(alt.meaning, []).append(alt)
    if len(by_meaning) < cfg.min_real_answers:
        raise QAError(f"{len(by_meaning)} distinct answers among {len(alts)} alternatives", "few_alternatives")

    # four meanings, rarer ones (on this record, for this type) first; one askable query of each
    keys = list(by_meaning)
    weights = [1.0 / (1.0 + ctx.answer_counts[(qtype, k)]) for k in keys]
    chosen: list[tuple[Alternative, str]] = []  # (alternative, qa id)
    for i in _weighted_order(keys, weights, py_rng):
        for alt in by_meaning[keys[i]]:
            assert alt.query is not None
            qa_id = f"{rec.record_id}/{qtype}/{query_hash(alt.query)}"
            if seen is not None and qa_id in seen:
                continue
            if not _nameable(ctx, alt.query):  # any of the four could be asked
                continue
            chosen.append((alt, qa_id))
            break
        if len(chosen) == 4:
            break
    if len(chosen) < cfg.min_real_answers:
        raise QAError(f"{len(chosen)} askable distinct answers", "few_alternatives")
    # the question is one of the four, so that no option is told apart as the one asked; under abstention only
    # those whose objects are tracked confidently can be (all four on ground truth: the same draw as before)
    askable_at = [i for i, (alt, _) in enumerate(chosen)
                  if alt.query is not None and weakly_tracked(ctx, alt.query) is None]
    if not askable_at:
        raise QAError("no option's query names only confidently tracked objects", "low_track_confidence")
    first = int(py_rng.random() * len(askable_at))
    kept, stab = first_kept(ctx, [chosen[i][0] for i in askable_at], first, rng, deferred is not None)
    asked, qa_id = chosen[askable_at[kept]]
    assert asked.query is not None
    question = render_question(rec, asked.query, cfg, ctx.box_cache)

    options: list[Alternative] = [alt for alt, _ in chosen]
    if len(options) < 4:  # fill with transforms of real answers, never asked
        used = {alt.meaning for alt in options}
        fills: list[Alternative] = []
        for alt in options:
            fills.extend(t for t in transforms(alt, qt, ctx, py_rng) if t.meaning not in used)
        py_rng.shuffle(fills)
        for t in fills:
            if t.meaning not in used:
                options.append(t)
                used.add(t.meaning)
            if len(options) == 4:
                break
        if len(options) < 4:
            raise QAError("too few distinct options even with transforms", "few_alternatives")
    others = [o for o in options if o is not asked]
    py_rng.shuffle(others)
    at = int(py_rng.random() * 4) if letter is None else LETTERS.index(letter)
    options = [*others[:at], asked, *others[at:]]
    letter = LETTERS[at]
    texts = tuple(format_answer(list(o.states), qt.rule, cfg.answer_wording) for o in options)
    distractors = tuple(
        Distractor(letter=LETTERS[j], kind=(_relation(asked.query, o.query) if o.query is not None else o.kind),
                   query=o.query if o.query is not None else o.source)
        for j, o in enumerate(options) if o is not asked)
    ctx.answer_counts[(qtype, asked.meaning)] += 1
    assert asked.values is not None
    qa = make_qa(ctx, asked.query, qa_id, question, texts, letter, asked.values, stab, distractors)  # type: ignore[arg-type]
    if deferred is not None and stab is None and cfg.stability_k > 0:
        deferred.append((asked.query, asked.states))
    return qa, truncated and asked.kind == "seed"
