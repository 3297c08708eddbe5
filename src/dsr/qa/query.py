"""Structured queries and their procedural answers: ``answer(record, query) -> Answer``.

A :class:`Query` names a question type, an observer ("camera" or an agent's object id), the target
objects ("camera" allowed), the record frames used and, for absolute types, the observer frame t_v.
All frame numbers are *record* sampled-frame indices ``t in [0, record.num_frames)``.

Per-frame quantities (dsr-paper §7.1), computed with the transforms of :mod:`dsr.scene.frames`;
which type reads which quantity, and which rule answers it, is the table of
:mod:`dsr.qa.question_types`:

============ ======================================================= ==========
quantity     per frame                                               types
============ ======================================================= ==========
distance     ‖c1 − c2‖ (viewpoint-invariant)                          dis
direction    c1 − c2 in the observer frame (x forward, y left, z up)  dir
orientation  the target's forward axis in the observer frame          ori
speed        ‖p(t+1) − p(t)‖ of the target in the observer frame      spd
speed_pair   the two targets' per-step speeds, (n−1, 2)               spd_comp
displacement p(future) − p(last visible) in the observer frame        dir_pred
============ ======================================================= ==========

**Normalisation.** The rules' 0.1 floors are in π³'s units, where a scene's typical depth is about
1 (π³ normalises its point maps by their mean distance). Before any rule applies, every length of a
record is divided by its **scene scale** = the median camera-to-object-centre distance over all
(object, frame) pairs where the object is visible and its centre known (falling back to all known
centres, then to 1). The same recipe is used for every ``scale_kind`` (metric, normalized,
up_to_scale), so a record and a uniformly rescaled copy of it get identical answers. Direction
labels are scale-free. ``QAConfig.normalization="none"`` keeps record units.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsr.errors import DsrError
from dsr.qa.question_types import QUESTION_TYPES as QUESTION_TYPES  # re-exported (older imports)
from dsr.qa.question_types import TYPES, QuestionType, RuleKind, Viewpoint
from dsr.qa.rules import QAConfig, count_matching_many, format_answer, states_for
from dsr.scene.frames import (
    CAMERA,
    forward_world,
    invert_pose,
    make_pose,
    observer_track,
    positions_world,
    rotate_vectors,
    transform_points,
)
from dsr.scene.record import SceneRecord
from dsr.scene.uncertainty import scale_error_shifts


class QAError(DsrError):
    """A query that cannot be answered; ``reason`` is a short key counted by the generation report."""

    def __init__(self, message: str, reason: str = "invalid_query") -> None:
        super().__init__(message)
        self.reason = reason


def type_row(qtype: str) -> QuestionType:
    """The question-type table row of ``qtype``; QAError("invalid_query") for an unknown key."""
    row = TYPES.get(qtype) if isinstance(qtype, str) else None
    if row is None:
        raise QAError(f"unknown question type {qtype!r} (one of {', '.join(TYPES)})")
    return row


@dataclass(frozen=True)
class Query:
    """A structured question. ``frames``: increasing record frame indices (a prediction uses exactly
    two: the last visible frame and the hidden future frame).

    ``stated_viewpoint`` is only for free-form ("non_temp") queries, whose type has no table row.
    """

    type: str
    observer: str
    targets: tuple[str, ...]
    frames: tuple[int, ...]
    t_v: int | None = None
    stated_viewpoint: Viewpoint | None = None

    @property
    def qtype(self) -> QuestionType:
        # the common case without type_row's call: read for every alternative
        row = TYPES.get(self.type) if isinstance(self.type, str) else None
        return row if row is not None else type_row(self.type)

    @property
    def viewpoint(self) -> str:
        if self.stated_viewpoint is not None:
            return self.stated_viewpoint
        return type_row(self.type).viewpoint

    @property
    def frame_start(self) -> int:
        return self.frames[0]

    @property
    def frame_end(self) -> int:
        return self.frames[-1]

    def to_json(self) -> dict[str, Any]:
        """The QA_EXPORT ``query`` object (plus ``frames``, the record frames used)."""
        return {"type": self.type, "observer": self.observer, "viewpoint": self.viewpoint, "t_v": self.t_v,
                "targets": list(self.targets), "frame_start": self.frame_start, "frame_end": self.frame_end,
                "frames": list(self.frames)}

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Query:
        frames = obj.get("frames")
        if frames is None:
            frames = list(range(int(obj["frame_start"]), int(obj["frame_end"]) + 1))
        stated = None if obj["type"] in TYPES else obj.get("viewpoint")
        return Query(type=obj["type"], observer=obj["observer"], targets=tuple(obj["targets"]),
                     frames=tuple(int(f) for f in frames), t_v=None if obj.get("t_v") is None else int(obj["t_v"]),
                     stated_viewpoint=stated)


@dataclass(frozen=True, eq=False)
class Answer:
    """The procedural answer of a query. ``values`` are in the normalised scale (lengths / ``scale``)."""

    query: Query
    kind: RuleKind
    states: tuple[str, ...]
    text: str
    quantity_name: str
    values: np.ndarray
    scale: float

    @property
    def num_segments(self) -> int:
        return len(self.states)

    def quantity_json(self) -> dict[str, Any]:
        return {"name": self.quantity_name, "values": self.values.tolist(), "unit": "scene_scale",
                "scale": self.scale, "rule": self.kind}


# --------------------------------------------------------------------------------------------------
# record geometry, precomputed once per record


@dataclass(frozen=True, eq=False)
class Geometry:
    """Per-entity world arrays of one record, gathered once with :mod:`dsr.scene.frames`.

    positions[who]: (T, 3) world position (NaN = unknown); who = "camera" or an object id.
    poses[who]: (T, 4, 4) world_from_obs of the camera and of agents with an orientation (NaN rows = unknown);
    inverse_poses[who]: the same as obs_from_world.
    forwards[who]: (T, 3) unit forward axis in world, same entities as ``poses``.
    """

    record: SceneRecord
    scale: float
    positions: dict[str, np.ndarray]
    poses: dict[str, np.ndarray]
    forwards: dict[str, np.ndarray]
    inverse_poses: dict[str, np.ndarray]
    # memo of entity_sigmas with the stability floors per (entity, floors): read for every QA
    sigmas: dict[tuple[str, tuple[float, float]], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @staticmethod
    def from_record(record: SceneRecord, config: QAConfig = QAConfig()) -> Geometry:
        positions = {CAMERA: positions_world(record, CAMERA)}
        poses = {CAMERA: observer_track(record, CAMERA)}
        forwards = {CAMERA: forward_world(record, CAMERA)}
        for obj in record.objects:
            positions[obj.object_id] = positions_world(record, obj.object_id)
            if obj.is_agent and obj.orientation is not None:
                poses[obj.object_id] = observer_track(record, obj.object_id)
                forwards[obj.object_id] = forward_world(record, obj.object_id)
        return Geometry(record=record, scale=scene_scale(record, config), positions=positions, poses=poses,
                        forwards=forwards, inverse_poses={who: invert_pose(p) for who, p in poses.items()})

    def shifted(self, shift: np.ndarray) -> Geometry:
        """This geometry with every entity moved by ``shift`` (T, 3) at each frame: what a different scale of the
        camera's path gives, since extracted centres are measured from the camera (orientations and the
        normalising scale, camera-to-object distances, are unchanged)."""
        poses = {}
        for who, p in self.poses.items():
            moved = p.copy()
            moved[:, :3, 3] += shift
            poses[who] = moved
        return Geometry(record=self.record, scale=self.scale,
                        positions={who: p + shift for who, p in self.positions.items()}, poses=poses,
                        forwards=self.forwards, inverse_poses={who: invert_pose(p) for who, p in poses.items()})

    def reoriented(self, delta: np.ndarray, centres: np.ndarray) -> Geometry:
        """This geometry with the camera turned by ``delta`` (T, 3, 3) and moved to ``centres`` (T, 3) at each frame,
        and every entity, measured from the camera, carried along (:func:`dsr.scene.uncertainty.focal_error_motion`
        gives both; the normalising scale, camera-to-object distances, is unchanged)."""
        cam = self.positions[CAMERA]

        def carry(p: np.ndarray) -> np.ndarray:
            return centres + np.einsum("tij,tj->ti", delta, p - cam)

        poses = {}
        for who, p in self.poses.items():
            moved = p.copy()
            moved[:, :3, :3] = delta @ p[:, :3, :3]
            moved[:, :3, 3] = carry(p[:, :3, 3])
            poses[who] = moved
        return Geometry(record=self.record, scale=self.scale,
                        positions={who: carry(p) for who, p in self.positions.items()}, poses=poses,
                        forwards={who: np.einsum("tij,tj->ti", delta, f) for who, f in self.forwards.items()},
                        inverse_poses={who: invert_pose(p) for who, p in poses.items()})


def scene_scale(record: SceneRecord, config: QAConfig = QAConfig()) -> float:
    """The length that normalises a record (see the module docstring); 1.0 when disabled."""
    if config.normalization == "none":
        return 1.0
    dists_visible, dists_known = [], []
    for obj in record.objects:
        d = np.linalg.norm(obj.centers_cam, axis=1)
        ok = np.isfinite(d) & record.camera.valid & (d > 0)
        dists_known.append(d[ok])
        dists_visible.append(d[ok & obj.visible])
    for group in (dists_visible, dists_known):
        all_d = np.concatenate(group) if group else np.zeros(0)
        if len(all_d):
            return float(np.median(all_d))
    return 1.0


# --------------------------------------------------------------------------------------------------
# checking a query against a record


def check_query(record: SceneRecord, query: Query) -> None:
    """Raise a one-line QAError if ``query`` cannot be posed on ``record``."""
    qt = type_row(query.type)
    ids = {o.object_id for o in record.objects}
    known = ", ".join(sorted(ids)) or "none"
    n = record.num_frames
    if query.observer != CAMERA:
        if query.observer not in ids:
            raise QAError(f"observer {query.observer!r} is not an object of {record.record_id} (objects: {known})",
                          "missing_object")
        obj = record.object(query.observer)
        if not obj.is_agent or obj.orientation is None:
            raise QAError(f"observer {query.observer!r} is not an agent with an orientation", "observer_not_agent")
    if len(query.targets) != qt.num_targets:
        raise QAError(f"{query.type} needs {qt.num_targets} target(s), got {len(query.targets)}")
    for who in query.targets:
        if who != CAMERA and who not in ids:
            raise QAError(f"target {who!r} is not an object of {record.record_id} (objects: {known})",
                          "missing_object")
    if len(set(query.targets)) != len(query.targets):
        raise QAError(f"targets must differ, got {', '.join(query.targets)}")
    if qt.quantity == "orientation":
        who = query.targets[0]
        if who != CAMERA and record.object(who).orientation is None:
            raise QAError(f"orientation target {who!r} has no orientation track", "target_not_agent")
    frames = query.frames
    if not frames:
        raise QAError("a query needs frames")
    if frames[0] < 0 or frames[-1] >= n:
        raise QAError(f"interval {frames[0]}:{frames[-1]} lies outside the clip's frames 0:{n - 1}",
                      "interval_outside_clip")
    if any(b <= a for a, b in itertools.pairwise(frames)):
        raise QAError("query frames must be strictly increasing")
    if qt.is_prediction:
        if len(frames) != 2:
            raise QAError("a direction prediction uses exactly 2 frames (last visible, future)")
    elif len(frames) < qt.min_query_frames:
        raise QAError(f"{query.type} needs at least {qt.min_query_frames} frames, got {len(frames)}", "too_few_frames")
    if qt.is_absolute:
        if query.t_v is None or not 0 <= query.t_v < n:
            raise QAError(f"absolute type {query.type} needs t_v in [0, {n}), got {query.t_v}", "interval_outside_clip")
    elif query.t_v is not None:
        raise QAError(f"relative type {query.type} takes no t_v")


# --------------------------------------------------------------------------------------------------
# per-frame quantities


@dataclass(frozen=True, eq=False)
class QueryArrays:
    """The world arrays one query reads, at its frames (F = len(query.frames)).

    obs_from_world: (F, 4, 4) relative: the observer's inverse pose at each frame; absolute:
        (4, 4), its inverse pose at t_v (broadcast over the frames).
    target_positions: per target (F, 3) world positions; target_forward: (F, 3) for orientation types.
    """

    obs_from_world: np.ndarray
    target_positions: tuple[np.ndarray, ...]
    target_forward: np.ndarray | None


def gather(geom: Geometry, query: Query, *, trusted: bool = False) -> QueryArrays:
    """The arrays a query reads; raises QAError naming the first unknown value.

    ``trusted=True`` skips the finiteness checks (the sampler has already checked every frame).
    """
    qt = type_row(query.type)
    f = np.asarray(query.frames)
    track = geom.inverse_poses.get(query.observer)
    if track is None:
        raise QAError(f"observer {query.observer!r} has no pose track", "observer_not_agent")
    obs = track[query.t_v] if qt.is_absolute else track[f]
    positions = tuple(geom.positions[who][f] for who in query.targets)
    forward = None
    if qt.quantity == "orientation":
        fw = geom.forwards.get(query.targets[0])
        if fw is None:
            raise QAError(f"orientation target {query.targets[0]!r} has no orientation track", "target_not_agent")
        forward = fw[f]
    if not trusted:
        _check_known(query, f, obs, positions, forward)
    return QueryArrays(obs_from_world=obs, target_positions=positions, target_forward=forward)


def _check_known(query: Query, f: np.ndarray, obs: np.ndarray, positions: tuple[np.ndarray, ...],
                 forward: np.ndarray | None) -> None:
    """Raise QAError at the first frame where a value the query reads is unknown (NaN)."""
    if not np.isfinite(obs).all():
        if obs.ndim == 2:
            raise QAError(f"observer {query.observer!r} has no pose at t_v={query.t_v}", "observer_unknown")
        bad = ~np.isfinite(obs).all(axis=(1, 2))
        raise QAError(f"observer {query.observer!r} has no pose at frame {int(f[bad][0])}", "observer_unknown")
    for who, p in zip(query.targets, positions, strict=True):
        if not np.isfinite(p).all():
            bad = ~np.isfinite(p).all(axis=1)
            raise QAError(f"target {who!r} has no 3D centre at frame {int(f[bad][0])}", "target_unknown")
    if forward is not None and not np.isfinite(forward).all():
        bad = ~np.isfinite(forward).all(axis=1)
        raise QAError(f"target {query.targets[0]!r} has no orientation at frame {int(f[bad][0])}",
                      "orientation_unknown")


def quantity(name: str, arrays: QueryArrays, scale: float) -> np.ndarray:
    """The per-frame quantity ``name`` (``QuestionType.quantity``, §7.1), lengths divided by ``scale``.

    Arrays may carry leading batch dimensions (stability re-derivations): frames are axis −2.
    distance (F,); direction, orientation (F, 3); speed (F−1,); speed_pair (F−1, 2); displacement
    (F−1, 3) (a prediction: (1, 3), future − last visible).
    """
    obs = arrays.obs_from_world
    pos = arrays.target_positions
    if name == "distance":
        d = pos[0] - pos[1]
        return np.sqrt((d * d).sum(axis=-1)) / scale
    if name == "direction":
        return rotate_vectors(obs, pos[0] - pos[1]) / scale
    if name == "orientation":
        assert arrays.target_forward is not None
        return rotate_vectors(obs, arrays.target_forward)
    if name in ("speed", "speed_pair", "displacement"):
        steps = []
        for p in pos:
            q = transform_points(obs, p)
            steps.append((q[..., 1:, :] - q[..., :-1, :]) / scale)
        if name == "displacement":
            return steps[0]
        speeds = [np.sqrt((s * s).sum(axis=-1)) for s in steps]
        return speeds[0] if name == "speed" else np.stack(speeds, axis=-1)
    raise QAError(f"unknown quantity {name!r}")


def derive(query: Query, arrays: QueryArrays, scale: float, config: QAConfig) -> tuple[np.ndarray, list[str]]:
    """(quantity, merged states) of a query from its arrays; QAError("zero_vector") for undefined directions."""
    qt = type_row(query.type)
    values = quantity(qt.quantity, arrays, scale)
    try:
        states = states_for(qt.rule, values, config)
    except DsrError as exc:
        raise QAError(f"{query.type}: {exc}", "zero_vector" if "zero" in str(exc) else "rule_error") from None
    return values, states


def answer(record: SceneRecord | Geometry, query: Query, config: QAConfig = QAConfig()) -> Answer:
    """The procedural answer of ``query`` on a record (or its precomputed :class:`Geometry`)."""
    geom = record if isinstance(record, Geometry) else Geometry.from_record(record, config)
    check_query(geom.record, query)
    values, states = derive(query, gather(geom, query), geom.scale, config)
    qt = query.qtype
    return Answer(query=query, kind=qt.rule, states=tuple(states),
                  text=format_answer(states, qt.rule, config.answer_wording),
                  quantity_name=qt.quantity, values=values, scale=geom.scale)


# --------------------------------------------------------------------------------------------------
# stability under perturbation


def _rotations(w: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations of axis-angle vectors (..., 3) (Rodrigues:
    R = cos θ·I + sin θ·[k]× + (1 − cos θ)·k kᵀ, with k the unit axis)."""
    theta = np.sqrt((w * w).sum(axis=-1))
    k = w / np.where(theta > 0, theta, 1.0)[..., None]
    s, c = np.sin(theta), np.cos(theta)
    kx, ky, kz = k[..., 0] * s, k[..., 1] * s, k[..., 2] * s
    out = (1 - c)[..., None, None] * (k[..., :, None] * k[..., None, :])
    out[..., 0, 0] += c
    out[..., 1, 1] += c
    out[..., 2, 2] += c
    out[..., 0, 1] -= kz
    out[..., 0, 2] += ky
    out[..., 1, 0] += kz
    out[..., 1, 2] -= kx
    out[..., 2, 0] -= ky
    out[..., 2, 1] += kx
    return out


def entity_sigmas(record: SceneRecord, who: str) -> tuple[np.ndarray, np.ndarray]:
    """(T,) position sigma (record units) and (T,) rotation sigma (degrees) stated by the record."""
    if who == CAMERA:
        return record.camera.position_sigma, record.camera.rotation_sigma_deg
    obj = record.object(who)
    rot = obj.orientation.sigma_deg if obj.orientation is not None else np.zeros(record.num_frames)
    return obj.center_sigma, rot


def stability(geom: Geometry, query: Query, states: Sequence[str], config: QAConfig, rng: np.random.Generator,
              k: int | None = None) -> float:
    """Fraction of ``k`` re-derivations, under random perturbation of every entity the query reads,
    whose merged states equal ``states`` (the answer).

    Each entity (camera, objects, agents) gets per-frame position noise N(0, σ_p²) per axis and,
    where its axes are read (the observer's frame, an orientation target's forward axis), a random
    rotation of its axes with axis-angle vector ~ N(0, σ_r²·I), where σ_p = max(stated sigma,
    floor · scale) and σ_r = max(stated sigma, rotation floor); the same draw moves an entity
    everywhere it appears. The observer of a type whose answer does not depend on it (distances,
    speeds in a frozen frame) is not perturbed: nothing it could change. A record that states a scale error
    of the camera path (schema v3: drift and per-step jitter) also gets one drift and per-step jitter draws per
    sample, whose shift at each frame moves every entity alike (:func:`dsr.scene.uncertainty.scale_drift_shifts`):
    camera-to-object geometry survives it, the camera's own speed and world-frame motion do not.
    """
    return stability_many(geom, [(query, states)], config, rng, k)[0]


@dataclass(frozen=True, eq=False)
class _Draws:
    """One query's k perturbed inputs (see :func:`stability`), before they are combined.

    group: queries with equal groups stack into one computation (one type, similar frame counts; shorter
        frame axes are padded).
    """

    group: tuple[Any, ...]
    states: tuple[str, ...]
    targets: tuple[np.ndarray, ...]  # per target (k, F, 3) positions at the query frames
    obs_fixed: np.ndarray | None  # an unmoved observer's inverse pose(s): (4, 4) or (F, 4, 4)
    obs_rotvec: np.ndarray | None  # a moved observer: (k, S, 3) axis-angle draws at its rows S
    obs_rotation: np.ndarray | None  # (S, 3, 3) its world_from_obs rotation there
    obs_position: np.ndarray | None  # (k, S, 3) its perturbed position there
    forward_rotvec: np.ndarray | None  # an orientation target: (k, F, 3) axis-angle draws
    forward: np.ndarray | None  # (F, 3) its forward axis


def _entities(qt: QuestionType, query: Query) -> tuple[list[str], set[str], list[int] | tuple[int, ...],
                                                       np.ndarray | slice, int]:
    """What one query's draws perturb: (entities in draw order, those whose axes are also rotated, the
    record rows read, the query frames among them, the row of t_v)."""
    moved_observer = not qt.observer_invariant
    frames = query.frames
    t_v_row = 0
    if moved_observer and qt.is_absolute and query.t_v not in frames:
        assert query.t_v is not None
        rows: list[int] | tuple[int, ...] = sorted({*frames, query.t_v})
        local = {t: i for i, t in enumerate(rows)}
        fi: np.ndarray | slice = np.array([local[t] for t in frames])
        t_v_row = local[query.t_v]
    else:  # the usual case: the rows read are the query's own (increasing) frames
        rows, fi = frames, slice(None)
        if moved_observer and qt.is_absolute:
            t_v_row = frames.index(query.t_v)  # type: ignore[arg-type]
    entities = list(dict.fromkeys([*query.targets, *([query.observer] if moved_observer else [])]))
    rotated = {query.observer} if moved_observer else set()
    if qt.quantity == "orientation":
        rotated.add(query.targets[0])
    return entities, rotated, rows, fi, t_v_row


def _draw(geom: Geometry, query: Query, states: Sequence[str], config: QAConfig, normals: np.ndarray,
          k: int, plan: tuple[Any, ...]) -> _Draws:
    """One query's perturbed inputs from its standard normals (``plan``: its :func:`_entities`), used in a
    fixed order (per entity: positions, then the rotation of its axes where they are read), so that a
    query's stability does not depend on which other queries are computed with it."""
    qt = type_row(query.type)
    moved_observer = not qt.observer_invariant
    frames = query.frames
    entities, rotated, rows, fi, t_v_row = plan
    rows_a = np.array(rows)
    n = len(rows)
    pos: dict[str, np.ndarray] = {}
    rotvec: dict[str, np.ndarray] = {}
    floors = (config.stability_position_floor * geom.scale, config.stability_rotation_floor_deg)
    used = 0
    size = k * n * 3
    for w in entities:  # all k draws at once: arrays gain a leading (k,) axis
        sig = geom.sigmas.get((w, floors))
        if sig is None:  # (T, 1) position sigma and rotation sigma (radians), floors applied
            ps, rs = entity_sigmas(geom.record, w)
            sig = geom.sigmas[(w, floors)] = (np.maximum(ps, floors[0])[:, None],
                                              np.radians(np.maximum(rs, floors[1]))[:, None])
        pos[w] = geom.positions[w][rows_a] + normals[used:used + size].reshape(k, n, 3) * sig[0][rows_a]
        used += size
        if w in rotated:
            rotvec[w] = normals[used:used + size].reshape(k, n, 3) * sig[1][rows_a]
            used += size
    cam = geom.record.camera
    if cam.states_scale_error:
        # the camera path's scale error moves the camera and what is measured from it alike: one drift per draw,
        # and per step between the rows a jitter of sigma / sqrt(sampled steps it spans)
        drift = normals[used:used + k]
        used += k
        jitter = normals[used:used + k * (n - 1)].reshape(k, n - 1)
        used += k * (n - 1)
        shift = scale_error_shifts(cam, geom.positions[CAMERA][rows_a], geom.record.timestamps_s[rows_a], drift,
                                   jitter, np.diff(rows_a))
        for w in entities:
            pos[w] = pos[w] + shift
    obs_fixed = obs_rotvec = obs_rotation = obs_position = forward_rotvec = forward = None
    if moved_observer:
        sel = fi if not qt.is_absolute else np.array([t_v_row])
        obs_rotvec = rotvec[query.observer][:, sel]
        obs_rotation = geom.poses[query.observer][rows_a[sel], :3, :3]
        obs_position = pos[query.observer][:, sel]
    else:
        inverse = geom.inverse_poses[query.observer]
        obs_fixed = inverse[query.t_v] if qt.is_absolute else inverse[np.asarray(frames)]
    if qt.quantity == "orientation":
        who = query.targets[0]
        forward_rotvec = rotvec[who][:, fi]
        forward = geom.forwards[who][rows_a][fi]
    targets = tuple(pos[w][:, fi] for w in query.targets)
    group = (query.type, (len(frames) + 3) // 4)  # frame counts within 4 of each other: little padding
    return _Draws(group=group, states=tuple(states), targets=targets, obs_fixed=obs_fixed, obs_rotvec=obs_rotvec,
                  obs_rotation=obs_rotation, obs_position=obs_position, forward_rotvec=forward_rotvec,
                  forward=forward)


def stability_many(geom: Geometry, items: Sequence[tuple[Query, Sequence[str]]], config: QAConfig,
                   rng: np.random.Generator, k: int | None = None) -> list[float]:
    """:func:`stability` of each (query, answer states), in order, with the same draws as one call per
    item in that order; queries of one type and length are computed together (numpy's per-call cost,
    not arithmetic, dominates one query's k small arrays)."""
    k = config.stability_k if k is None else k
    if k <= 0:
        return [1.0] * len(items)
    # one draw for all items, split in item order: the same numbers as one draw per item and entity
    plans = [_entities(type_row(query.type), query) for query, _ in items]
    path_error = geom.record.camera.states_scale_error  # its draws come after the rest
    sizes = [k * len(rows) * 3 * (len(entities) + len(rotated)) + (k * len(rows) if path_error else 0)
             for entities, rotated, rows, _, _ in plans]
    normals = rng.standard_normal(sum(sizes))
    ends = np.cumsum(sizes).tolist()
    draws = [_draw(geom, query, states, config, normals[end - size:end], k, plan)
             for (query, states), size, end, plan in zip(items, sizes, ends, plans, strict=True)]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, d in enumerate(draws):
        groups.setdefault(d.group, []).append(i)
    out = [0.0] * len(items)
    for members in groups.values():
        ds = [draws[i] for i in members]
        qt = type_row(ds[0].group[0])
        lengths = [d.targets[0].shape[1] - int(qt.per_step) for d in ds]  # values each query reads
        if ds[0].obs_rotvec is not None:  # the observer's perturbed frames: (Q, k, S, 4, 4)
            world_from_obs_rot = _rotations(_stacked([d.obs_rotvec for d in ds], 1)) @ _stacked(
                [d.obs_rotation for d in ds], 0)[:, None]
            rot_t = np.swapaxes(world_from_obs_rot, -1, -2)
            obs = make_pose(rot_t, -np.einsum("...ij,...j->...i", rot_t, _stacked([d.obs_position for d in ds], 1)))
        else:  # (Q, 1, F or 1, 4, 4): the same frames in every draw
            fixed = _stacked([d.obs_fixed for d in ds], 0)
            obs = fixed[:, None] if fixed.ndim == 4 else fixed[:, None, None]
        forward = None
        if qt.quantity == "orientation":
            forward = np.einsum("qknij,qnj->qkni", _rotations(_stacked([d.forward_rotvec for d in ds], 1)),
                                _stacked([d.forward for d in ds], 0))
        arrays = QueryArrays(obs_from_world=obs, target_forward=forward,
                             target_positions=tuple(_stacked([d.targets[j] for d in ds], 1)
                                                    for j in range(qt.num_targets)))
        with np.errstate(invalid="ignore", divide="ignore"):
            values = quantity(qt.quantity, arrays, geom.scale)
        counts = count_matching_many(qt.rule, values, [d.states for d in ds], config, lengths)
        for i, c in zip(members, counts, strict=True):
            out[i] = c / k
    return out


def _stacked(arrays: list[np.ndarray], axis: int) -> np.ndarray:
    """The arrays stacked on a new first axis; where their frame ``axis`` differs in length, shorter
    ones are padded by repeating their last frame (what the padding computes is never read)."""
    first = arrays[0]
    if len(arrays) == 1:
        return first[None]
    longest = max(a.shape[axis] for a in arrays)
    if all(a.shape == first.shape for a in arrays):
        return np.stack(arrays)
    shape = list(first.shape)
    shape[axis] = longest
    out = np.empty((len(arrays), *shape))
    for i, a in enumerate(arrays):
        n = a.shape[axis]
        head = (i, *([slice(None)] * axis), slice(0, n))
        tail = (i, *([slice(None)] * axis), slice(n, None))
        out[head] = a
        out[tail] = np.take(a, [n - 1], axis=axis)
    return out
