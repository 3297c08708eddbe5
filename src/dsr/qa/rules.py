"""The answer rules of DSR template questions — the only place they live (dsr-paper §7.5, §14).

Every function here is pure and works on plain numbers or numpy arrays that are already in the
*normalised* scale (see :mod:`dsr.qa.query` for how a record is normalised). Nothing else in ``dsr``
re-implements a threshold, a floor or a wording.

A rule turns a per-frame quantity into a list of **states** (short keys such as ``"larger"`` or
``"Front|Left"``); identical consecutive states are merged, and :func:`format_answer` renders the
merged states as numbered segments, "(1) Keep nearly constant. (2) Become larger.".

Project defaults follow the paper (ε = cos 70°, Table 8 wording canonicalised per §14 M2/M3, a
terminal "." on prediction questions per M4); :func:`parity_config` gives the official code's values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from dsr.errors import DsrError
from dsr.qa.question_types import RuleKind

# --------------------------------------------------------------------------------------------------
# configuration

Wording = Literal["paper", "official_code"]
FramePolicy = Literal["uniform32", "fps1", "official_code"]
Normalization = Literal["median_camera_distance", "none"]
RelSpeedDistractor = Literal["uniform_0_2", "official_code"]
Preset = Literal["debiased", "paper", "official_code"]
PRESETS: tuple[str, ...] = ("debiased", "paper", "official_code")
Distractors = Literal["counterfactual", "random"]

DIRECTION_EPS_PAPER = math.cos(math.radians(70.0))  # 0.342: angle < 70° / > 110° (paper Table 8)
DIRECTION_EPS_OFFICIAL = 0.3  # official code (§14 M1)


@dataclass(frozen=True)
class QAConfig:
    """Every knob of template QA generation (dsr-paper §7, §14). Copied verbatim into every exported
    QA (``generator.config``); ``preset`` names the preset it was built from (:func:`make_config`).

    The answer rules' thresholds and wording default to the paper's in every preset. The defaults
    of the question design are the ``debiased`` preset's (docs/qa.md): counterfactual distractors
    (every option is the true answer of a real alternative query, the asked one drawn uniformly
    among them), no object named by a box smaller than ``min_box_side`` of the frame, and letters
    balanced per type across a run. ``paper`` and ``official_code`` turn all three off.
    """

    preset: Preset = "debiased"
    parity: Literal["paper", "official_code"] = "paper"
    # answer rules (§7.5)
    constant_low: float = 0.8  # a run stays "nearly constant" while d[e]/d[s] ∈ [0.8, 1.2]
    constant_high: float = 1.2
    floor: float = 0.1  # both values below it → "nearly constant" / "nearly the same" (normalised units)
    speed_ratio: float = 1.2  # speed comparison: former faster if v1/v2 > 1.2, latter if < 1/1.2
    direction_eps: float = DIRECTION_EPS_PAPER  # §14 M1
    answer_wording: Wording = "paper"  # §14 M2/M3
    prediction_terminal: str = "."  # §14 M4: "" reproduces the official code
    # frames (§3, §14 M5)
    frame_policy: FramePolicy = "uniform32"
    num_frames: int = 32
    normalization: Normalization = "median_camera_distance"
    # sampling (§7.4)
    min_gap: int = 4  # sampled-frame index gap between interval start and end
    min_frames: int = 4  # frames left after truncation (speed types: this many *steps*)
    max_segments: int = 15
    camera_target_prob: float = 0.5
    orientation_min_confidence: float = 0.6
    attempts_per_qa: int = 10  # attempts budget = per_video × this
    # options (§7.6)
    rel_speed_distractor: RelSpeedDistractor = "uniform_0_2"
    drop_rel_spd_comp_on_retry: bool = False  # §14 M8 parity
    distractor_tries: int = 200
    # Our addition (0 = paper): each distractor is, with this probability, the answer of another
    # random query of the same type on the same record, so that common answer texts also appear as
    # wrong options (against answer-text shortcuts, docs/qa.md); pool of this many queries per type.
    distractor_pool_prob: float = 0.0
    distractor_pool_size: int = 16
    # the debiased design (our addition; the paper preset turns it off)
    distractors: Distractors = "counterfactual"  # "random": the paper's random attribute sequences (§7.6)
    alternatives: int = 24  # counterfactual: alternative queries derived per QA at most
    min_real_answers: int = 3  # counterfactual: distinct answers of real queries an option set needs
    min_box_side: float = 0.03  # no object named by a box whose shorter side is below this × the frame's
    balance_letters: bool = True  # a run's correct letters in balanced blocks of 4 per type
    # stability (our addition)
    stability_k: int = 20
    stability_position_floor: float = 0.01  # normalised units; sigma = max(record sigma / scale, floor)
    stability_rotation_floor_deg: float = 1.0
    min_stability: float = 0.0
    # abstention (issue 11; our addition). Both act only on records that state uncertainty (extracted ones):
    # ground truth has confidence 1 and zero sigmas, so its QAs are unchanged.
    min_track_confidence: float = 0.5  # drop a QA naming an object tracked below this at any of its frames
    min_stability_uncertain: float = 0.8  # min_stability where the record states a nonzero sigma
    # the attempts budget (per_video × this) where the record states a nonzero sigma: abstention rejects most
    # attempts on an extracted record, and at 10 per QA the budget, not the record, capped the yield (a pan
    # world: 3 QAs at 10, 40 at 1000, all right); duplicate queries fail before any work, so it stays cheap
    attempts_per_qa_uncertain: int = 1000

    def __post_init__(self) -> None:
        if not 0.0 < self.direction_eps < 1.0 / math.sqrt(3.0):
            # above 1/√3 some unit vectors would pass on no axis and get an empty label
            raise DsrError(f"direction_eps must be in (0, {1 / math.sqrt(3):.3f}), got {self.direction_eps}")
        if not 0.0 < self.constant_low < 1.0 < self.constant_high:
            raise DsrError("need 0 < constant_low < 1 < constant_high")
        if self.speed_ratio <= 1.0 or self.floor < 0.0:
            raise DsrError("need speed_ratio > 1 and floor >= 0")
        if self.frame_policy not in ("uniform32", "fps1", "official_code"):
            raise DsrError(f"unknown frame policy {self.frame_policy!r} (uniform32, fps1, official_code)")
        if self.answer_wording not in ("paper", "official_code"):
            raise DsrError(f"unknown answer wording {self.answer_wording!r} (paper, official_code)")
        if not 0.0 <= self.distractor_pool_prob <= 1.0 or self.distractor_pool_size < 1:
            raise DsrError("need 0 <= distractor_pool_prob <= 1 and distractor_pool_size >= 1")
        if self.normalization not in ("median_camera_distance", "none"):
            raise DsrError(f"unknown normalization {self.normalization!r}")
        if self.min_gap < 1 or self.min_frames < 2 or self.max_segments < 1 or self.num_frames < 4:
            raise DsrError("need min_gap >= 1, min_frames >= 2, max_segments >= 1, num_frames >= 4")
        if not 0.0 <= self.min_stability <= 1.0:
            raise DsrError(f"min_stability must be in [0, 1], got {self.min_stability}")
        if not 0.0 <= self.min_track_confidence <= 1.0 or not 0.0 <= self.min_stability_uncertain <= 1.0:
            raise DsrError("min_track_confidence and min_stability_uncertain must be in [0, 1]")
        if self.stability_k < 0:
            raise DsrError("stability_k must be >= 0")
        if self.attempts_per_qa < 1 or self.attempts_per_qa_uncertain < 1:
            raise DsrError("attempts_per_qa and attempts_per_qa_uncertain must be >= 1")
        if self.preset not in PRESETS:
            raise DsrError(f"unknown preset {self.preset!r} ({', '.join(PRESETS)})")
        if self.distractors not in ("counterfactual", "random"):
            raise DsrError(f"unknown distractors {self.distractors!r} (counterfactual, random)")
        if not 0.0 <= self.min_box_side < 0.5 or not 2 <= self.min_real_answers <= 4 or self.alternatives < 4:
            raise DsrError("need 0 <= min_box_side < 0.5, 2 <= min_real_answers <= 4 and alternatives >= 4")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# the paper's question design: random-sequence distractors, any box, random letters (§7.3, §7.6)
# the paper's question design; it has no abstention (its sampler never reads track confidence)
_PAPER_DESIGN: dict[str, Any] = {"distractors": "random", "min_box_side": 0.0, "balance_letters": False,
                                 "min_track_confidence": 0.0, "min_stability_uncertain": 0.0,
                                 "attempts_per_qa_uncertain": 10}


def paper_config(**overrides: Any) -> QAConfig:
    """The paper's procedure exactly (dsr-paper §7): its rules and its random-sequence distractors."""
    return replace(QAConfig(preset="paper", **_PAPER_DESIGN), **overrides)


def parity_config(**overrides: Any) -> QAConfig:
    """The official code's behaviour (§14): ε = 0.3, its wording, no "." on prediction questions,
    32 frames for every QA, U(−1,1) relative-speed distractors, and the M8 rel_spd_comp drop."""
    base = QAConfig(preset="official_code", parity="official_code", direction_eps=DIRECTION_EPS_OFFICIAL,
                    answer_wording="official_code", prediction_terminal="", frame_policy="official_code",
                    rel_speed_distractor="official_code", drop_rel_spd_comp_on_retry=True, **_PAPER_DESIGN)
    return replace(base, **overrides)


def make_config(preset: str = "debiased", **overrides: Any) -> QAConfig:
    """``preset`` "debiased" (the defaults), "paper" (:func:`paper_config`) or "official_code"
    (:func:`parity_config`), then overrides."""
    if preset == "debiased":
        return QAConfig(**overrides)
    if preset == "paper":
        return paper_config(**overrides)
    if preset == "official_code":
        return parity_config(**overrides)
    raise DsrError(f"unknown preset {preset!r} ({', '.join(PRESETS)})")


# --------------------------------------------------------------------------------------------------
# states and wording

# Distance / speed states.
CONSTANT, CONSTANT_LARGER, CONSTANT_SMALLER, LARGER, SMALLER = (
    "constant", "constant_larger", "constant_smaller", "larger", "smaller")
# Speed-comparison states.
FORMER, SAME, LATTER = "former", "same", "latter"

_MAGNITUDE_WORDS: dict[str, dict[str, str]] = {
    # §14 M2: paper Table 8 wording, canonicalised
    "paper": {
        CONSTANT: "Keep nearly constant.",
        CONSTANT_LARGER: "Keep nearly constant then become larger.",
        CONSTANT_SMALLER: "Keep nearly constant then become smaller.",
        LARGER: "Become larger.",
        SMALLER: "Become smaller.",
    },
    "official_code": {
        CONSTANT: "Keep nearly constant.",
        CONSTANT_LARGER: "Keep nearly constant and then become larger.",
        CONSTANT_SMALLER: "Keep nearly constant and then become smaller.",
        LARGER: "Become larger.",
        SMALLER: "Become smaller.",
    },
}
_COMPARISON_WORDS = {FORMER: "The former is faster.", SAME: "Nearly the same.", LATTER: "The latter is faster."}
# §14 M3: the official code's single-run phrases (the "latter" one really lacks its "(1)")
_COMPARISON_SINGLE_OFFICIAL = {
    FORMER: "(1) The former is always faster.",
    SAME: "(1) Their speed is nearly the same.",
    LATTER: "The latter is always faster.",
}

AXIS_LABELS = (("Front", "Behind"), ("Left", "Right"), ("Above", "Below"))


def merge_states(states: Sequence[str]) -> list[str]:
    """Collapse runs of identical consecutive states: [a, a, b, a] → [a, b, a]."""
    merged: list[str] = []
    for s in states:
        if not merged or merged[-1] != s:
            merged.append(s)
    return merged


def meaning(states: Sequence[str], kind: RuleKind) -> tuple[str, ...]:
    """What an answer says, so that two options never say the same thing in different words:
    "constant then larger" is "constant", then "larger" ("(1) Keep nearly constant then become
    larger. (2) Become larger." says no more than "(1) Keep nearly constant then become larger.")."""
    if kind != "magnitude":
        return tuple(merge_states(states))
    expanded: list[str] = []
    for s in states:
        expanded.extend(_EXPANDED.get(s, (s,)))
    return tuple(merge_states(expanded))


_EXPANDED = {CONSTANT_LARGER: (CONSTANT, LARGER), CONSTANT_SMALLER: (CONSTANT, SMALLER)}


def numbered(phrases: Sequence[str]) -> str:
    """["Become larger.", "Front."] → "(1) Become larger. (2) Front."."""
    return " ".join([f"({k}) {p}" for k, p in enumerate(phrases, start=1)])


def format_answer(states: Sequence[str], kind: RuleKind, wording: Wording = "paper") -> str:
    """Render merged states as the option text of a ``kind`` rule in the given wording."""
    if not states:
        raise DsrError("cannot word an empty answer")
    if kind == "magnitude":
        words = _MAGNITUDE_WORDS[wording]
        return numbered([words[s] for s in states])
    if kind == "comparison":
        if wording == "official_code" and len(states) == 1:
            return _COMPARISON_SINGLE_OFFICIAL[states[0]]
        return numbered([_COMPARISON_WORDS[s] for s in states])
    if kind == "direction":
        return numbered([f"{s}." for s in states])
    raise DsrError(f"unknown rule kind {kind!r}")


# --------------------------------------------------------------------------------------------------
# the rules


def magnitude_states(values: np.ndarray | Sequence[float], config: QAConfig = QAConfig(), *,
                     signed: bool = False, max_merged: int | None = None) -> list[str]:
    """Greedy run segmentation of distances or speeds (§7.5), before merging.

    values: (n,) float, n >= 2, non-negative, normalised scale.

    From a run start s:
    * constant run if d[s+1]/d[s] ∈ [low, high] or both < floor: extend e while d[e]/d[s] stays in
      [low, high] relative to the run's *first* value (or both < floor). Reaching the end gives
      CONSTANT; a break below gives CONSTANT_SMALLER, above CONSTANT_LARGER; the next run starts at
      the breaking frame.
    * increasing run if d[s+1]/d[s] > high: extend while each *consecutive* ratio is > high; the
      next run starts at the last increasing frame.
    * decreasing run otherwise: extend while each consecutive ratio is < low and the value stays
      >= floor; the next run starts at the last decreasing frame.

    ``signed=True`` (parity only: the official code's U(−1, 1) relative-speed distractors) accepts
    negative values and divides as numpy would. ``max_merged`` stops once more than that many
    merged states exist (distractors only need a prefix).
    """
    d = [float(x) for x in values]
    n = len(d)
    if n < 2:
        raise DsrError(f"a distance/speed answer needs at least 2 values, got {n}")
    if not signed and any(not (x >= 0.0) or x == math.inf for x in d):
        raise DsrError("distance/speed values must be finite and >= 0")
    return segment_runs(d, config.constant_low, config.constant_high, config.floor, n if max_merged is None else max_merged)


def segment_runs(d: list[float], low: float, high: float, floor: float, limit: int) -> list[str]:
    """The greedy segmentation of :func:`magnitude_states` on checked values (n >= 2)."""
    n, inf = len(d), math.inf
    # ratios are written inline (x / y if y else ...) for speed: y = 0 gives +inf for x > 0, else 1
    states: list[str] = []
    s = 0
    merged = 0
    while s < n - 1 and merged <= limit:
        if states and (len(states) == 1 or states[-1] != states[-2]):
            merged += 1  # the state appended last iteration started a new merged state
        first, nxt = d[s], d[s + 1]
        r = nxt / first if first else (inf if nxt > 0 else 1.0)
        if low <= r <= high or (first < floor and nxt < floor):
            e = s + 1
            while e < n:
                x = d[e]
                r = x / first if first else (inf if x > 0 else 1.0)
                if not (low <= r <= high or (first < floor and x < floor)):
                    break
                e += 1
            if e == n:
                states.append(CONSTANT)
                break
            states.append(CONSTANT_SMALLER if r < low else CONSTANT_LARGER)
            s = e
        elif r > high:
            e = s + 1
            while e + 1 < n:
                x, y = d[e + 1], d[e]
                if not (x / y if y else (inf if x > 0 else 1.0)) > high:
                    break
                e += 1
            states.append(LARGER)
            s = e
        else:
            e = s + 1
            while e + 1 < n:
                x, y = d[e + 1], d[e]
                if not ((x / y if y else (inf if x > 0 else 1.0)) < low and x >= floor):
                    break
                e += 1
            states.append(SMALLER)
            s = e
    return states


def magnitude_answer(values: np.ndarray | Sequence[float], config: QAConfig = QAConfig(), *,
                     max_merged: int | None = None) -> list[str]:
    """Merged distance/speed states (§7.5); with ``max_merged``, a prefix of more than that many."""
    return merge_states(magnitude_states(values, config, max_merged=max_merged))


# direction code of a unit vector: 9·(s_x+1) + 3·(s_y+1) + (s_z+1), s = +1 / 0 / −1 per axis
DIRECTION_LABELS: tuple[str, ...] = tuple(
    "|".join(lbl for lbl in (
        {1: "Front", -1: "Behind"}.get(sx, ""), {1: "Left", -1: "Right"}.get(sy, ""), {1: "Above", -1: "Below"}.get(sz, "")
    ) if lbl)
    for sx in (-1, 0, 1) for sy in (-1, 0, 1) for sz in (-1, 0, 1)
)


def direction_codes(vectors: np.ndarray, eps: float = DIRECTION_EPS_PAPER) -> np.ndarray:
    """(n, 3) vectors (x forward, y left, z up) → (n,) direction codes (§7.5).

    Each axis of the unit vector passes if its component is > eps (Front/Left/Above) or < −eps
    (Behind/Right/Below); exactly ±eps does not pass. ``DIRECTION_LABELS[code]`` is the label.
    A zero or non-finite vector has no direction and raises.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    if len(v) <= _SMALL:
        return np.array([_direction_code(x, y, z, eps) for x, y, z in v.tolist()], dtype=np.int64)
    norm = np.sqrt((v * v).sum(axis=1))
    if not ((norm > 0.0) & (norm < math.inf)).all():
        raise DsrError("direction of a zero or non-finite vector is undefined")
    # component/norm > eps, written without the division (one rounding fewer, same at exact ±eps)
    bound = eps * norm[:, None]
    sign = (v > bound).astype(np.int64) - (v < -bound)
    return sign @ _CODE_WEIGHTS + 13


_CODE_WEIGHTS = np.array([9, 3, 1], dtype=np.int64)
_SMALL = 64  # below this many vectors plain Python beats numpy's per-call overhead


def _direction_code(x: float, y: float, z: float, eps: float) -> int:
    """The same rule as the vectorised path, one vector at a time (identical floating-point steps)."""
    norm = math.sqrt(x * x + y * y + z * z)
    if not 0.0 < norm < math.inf:
        raise DsrError("direction of a zero or non-finite vector is undefined")
    bound = eps * norm
    return (9 * ((x > bound) - (x < -bound)) + 3 * ((y > bound) - (y < -bound))
            + ((z > bound) - (z < -bound)) + 13)


def direction_label(vector: np.ndarray | Sequence[float], eps: float = DIRECTION_EPS_PAPER) -> str:
    """One vector → its "Front|Left|Above"-style label (see :func:`direction_codes`)."""
    return DIRECTION_LABELS[int(direction_codes(np.asarray(vector, dtype=np.float64), eps)[0])]


def merged_labels(codes: np.ndarray | Sequence[int], labels: Sequence[str]) -> list[str]:
    """Integer state codes → their labels with identical consecutive codes merged."""
    out: list[str] = []
    prev = None
    for c in codes.tolist() if isinstance(codes, np.ndarray) else codes:
        if c != prev:
            out.append(labels[c])
            prev = c
    return out


def direction_states(vectors: np.ndarray, config: QAConfig = QAConfig()) -> list[str]:
    """(n, 3) vectors → one label per frame, before merging."""
    return [DIRECTION_LABELS[c] for c in direction_codes(vectors, config.direction_eps).tolist()]


def direction_answer(vectors: np.ndarray, config: QAConfig = QAConfig()) -> list[str]:
    """Merged direction/orientation labels; a prediction passes one displacement vector (1, 3)."""
    return merged_labels(direction_codes(vectors, config.direction_eps), DIRECTION_LABELS)


def comparison_state(v1: float, v2: float, config: QAConfig = QAConfig()) -> str:
    """One step of a speed comparison (§7.5): both < floor → SAME; v1/v2 > ratio → FORMER;
    v1/v2 < 1/ratio → LATTER; otherwise SAME (the bounds themselves are SAME).

    Written as v1 > ratio·v2 and v2 > ratio·v1 so that swapping the objects swaps the answer
    exactly, also in floating point, and a zero speed needs no division.
    """
    if v1 < config.floor and v2 < config.floor:
        return SAME
    if v1 > config.speed_ratio * v2:
        return FORMER
    if v2 > config.speed_ratio * v1:
        return LATTER
    return SAME


def comparison_answer(speeds: np.ndarray, config: QAConfig = QAConfig()) -> list[str]:
    """(n, 2) per-step speeds of (former, latter) → merged comparison states."""
    pairs = np.asarray(speeds, dtype=np.float64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) < 1:
        raise DsrError(f"speed comparison needs (n, 2) speeds, got shape {pairs.shape}")
    rows = pairs.tolist()
    if not all(0.0 <= a < math.inf and 0.0 <= b < math.inf for a, b in rows):
        raise DsrError("speeds must be finite and >= 0")
    return merge_states([comparison_state(a, b, config) for a, b in rows])


# --------------------------------------------------------------------------------------------------
# the answer of a quantity, by kind


def states_for(kind: RuleKind, values: np.ndarray | Sequence[Any], config: QAConfig = QAConfig()) -> list[str]:
    """Merged states of a per-frame quantity under the rule ``kind``."""
    if kind == "magnitude":
        return magnitude_answer(values, config)
    if kind == "direction":
        return direction_answer(np.asarray(values, dtype=np.float64).reshape(-1, 3), config)
    if kind == "comparison":
        return comparison_answer(np.asarray(values, dtype=np.float64), config)
    raise DsrError(f"unknown rule kind {kind!r}")


def answer_text(kind: RuleKind, values: np.ndarray | Sequence[Any], config: QAConfig = QAConfig()) -> str:
    """The option text of the correct answer for a per-frame quantity."""
    return format_answer(states_for(kind, values, config), kind, config.answer_wording)


# --------------------------------------------------------------------------------------------------
# many quantities at once (alternatives, stability): the same rules, vectorised where they allow


def direction_code_array(vectors: np.ndarray, eps: float = DIRECTION_EPS_PAPER) -> np.ndarray:
    """(..., 3) vectors → (...) direction codes by the rule of :func:`direction_codes` (identical
    floating-point steps); −1 where a vector is zero or non-finite (it has no direction)."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.sqrt((v * v).sum(axis=-1))  # NaN stays NaN, silently; it fails the finiteness test below
    bound = eps * norm[..., None]
    sign = (v > bound).astype(np.int64) - (v < -bound)
    codes = sign @ _CODE_WEIGHTS + 13
    return np.where((norm > 0.0) & (norm < math.inf), codes, -1)


COMPARISON_BY_CODE = (FORMER, SAME, LATTER)


def comparison_code_array(v1: np.ndarray, v2: np.ndarray, config: QAConfig = QAConfig()) -> np.ndarray:
    """Per-step speed-comparison codes (0 former, 1 same, 2 latter) by the rule of
    :func:`comparison_state`, written with the same comparisons so both give identical states."""
    both_low = (v1 < config.floor) & (v2 < config.floor)
    former = ~both_low & (v1 > config.speed_ratio * v2)
    latter = ~both_low & ~former & (v2 > config.speed_ratio * v1)
    return np.where(former, 0, np.where(latter, 2, 1))


def _merged_rows(codes: np.ndarray, labels: Sequence[str]) -> list[tuple[str, ...] | None]:
    out: list[tuple[str, ...] | None] = []
    for row in codes.tolist():
        if -1 in row:
            out.append(None)
            continue
        merged = [row[0]] + [c for p, c in itertools.pairwise(row) if c != p]
        out.append(tuple(labels[c] for c in merged))
    return out


def states_batch(kind: RuleKind, values: np.ndarray, config: QAConfig = QAConfig()) -> list[tuple[str, ...] | None]:
    """Merged states of R quantities of one length at once, each exactly as :func:`states_for`
    gives it; None for a quantity the rule cannot answer (a zero direction, a negative speed).

    values: (R, F) distances or speeds, (R, F, 3) vectors, or (R, F, 2) speed pairs.
    """
    v = np.asarray(values, dtype=np.float64)
    if kind == "direction":
        return _merged_rows(direction_code_array(v, config.direction_eps), DIRECTION_LABELS)
    if kind == "comparison":
        ok = np.isfinite(v).all(axis=(1, 2)) & (v >= 0.0).all(axis=(1, 2))
        rows = _merged_rows(comparison_code_array(v[..., 0], v[..., 1], config), COMPARISON_BY_CODE)
        return [r if good else None for r, good in zip(rows, ok.tolist(), strict=True)]
    if kind == "magnitude":
        # the checks of magnitude_states for all rows at once, then its segmentation row by row
        if v.shape[-1] < 2:
            return [None] * len(v)
        ok = (np.isfinite(v) & (v >= 0.0)).all(axis=-1).tolist()
        low, high, floor, n = config.constant_low, config.constant_high, config.floor, v.shape[-1]
        return [tuple(merge_states(segment_runs(row, low, high, floor, n))) if good else None
                for row, good in zip(v.tolist(), ok, strict=True)]
    raise DsrError(f"unknown rule kind {kind!r}")


def count_matching(kind: RuleKind, values: np.ndarray, states: Sequence[str], config: QAConfig = QAConfig()) -> int:
    """How many of R quantities (as for :func:`states_batch`) have exactly the merged ``states``."""
    return count_matching_many(kind, np.asarray(values, dtype=np.float64)[None], [states], config)[0]


def count_matching_many(kind: RuleKind, values: np.ndarray, states: Sequence[Sequence[str]],
                        config: QAConfig = QAConfig(), lengths: Sequence[int] | None = None) -> list[int]:
    """Per group q, how many of the R quantities ``values[q]`` have exactly the merged ``states[q]``.

    values: (Q, R, F) distances or speeds, (Q, R, F, 3) vectors or (Q, R, F, 2) speed pairs;
    lengths: per group, the F' <= F leading values that count (the rest is padding), default all.
    Directions and comparisons compare their per-frame codes at once: a row matches when its runs of
    equal codes are as many as its states and carry their codes in order."""
    v = np.asarray(values, dtype=np.float64)
    frames = v.shape[2]
    lengths = [frames] * len(v) if lengths is None else list(lengths)
    if kind == "magnitude":
        low, high, floor = config.constant_low, config.constant_high, config.floor
        out = []
        for group, n, want in zip(v, lengths, states, strict=True):
            if n < 2:
                out.append(0)
                continue
            group = group[:, :n]
            rows, good_rows = group.tolist(), (np.isfinite(group) & (group >= 0.0)).all(axis=-1).tolist()
            want = tuple(want)
            # a row's segmentation stops once it has more merged states than the answer: it cannot match
            out.append(sum(good and tuple(merge_states(segment_runs(row, low, high, floor, len(want)))) == want
                           for row, good in zip(rows, good_rows, strict=True)))
        return out
    if kind == "direction":
        codes = direction_code_array(v, config.direction_eps)
        index = _DIRECTION_CODE
    elif kind == "comparison":
        codes = comparison_code_array(v[..., 0], v[..., 1], config)
        codes = np.where(np.isfinite(v).all(axis=-1) & (v >= 0.0).all(axis=-1), codes, -1)
        index = _COMPARISON_CODE
    else:
        raise DsrError(f"unknown rule kind {kind!r}")
    q, r, f = codes.shape
    if q == 1 and lengths[0] == f:  # one group, no padding (a single query's score): the runs directly
        ref = np.array([index[s] for s in states[0]])
        start = np.ones((r, f), dtype=bool)
        np.not_equal(codes[0, :, 1:], codes[0, :, :-1], out=start[:, 1:])
        rows = (start.sum(axis=1) == len(ref)) & (codes[0] >= 0).all(axis=1)
        if not rows.any():
            return [0]
        return [int((codes[0][rows][start[rows]].reshape(-1, len(ref)) == ref).all(axis=1).sum())]
    if any(n != f for n in lengths):  # padding repeats each group's last code: it adds no run
        last = np.asarray(lengths)[:, None, None] - 1
        codes = np.where(np.arange(f) <= last, codes, np.take_along_axis(codes, np.broadcast_to(last, (q, r, 1)),
                                                                          axis=-1))
    longest = max(len(s) for s in states)
    # each row's run codes, left-aligned and padded with −2 (no code); a row matches its group's padded
    # reference when it also has exactly as many runs
    start = np.ones(codes.shape, dtype=bool)
    np.not_equal(codes[..., 1:], codes[..., :-1], out=start[..., 1:])
    runs = start.sum(axis=-1)
    firsts = np.full((q, r, max(f, longest)), -2, dtype=np.int64)
    qi, ri, fi = np.nonzero(start)
    firsts[qi, ri, np.cumsum(start, axis=-1)[qi, ri, fi] - 1] = codes[qi, ri, fi]
    ref = np.full((q, 1, longest), -2, dtype=np.int64)
    for j, want in enumerate(states):
        ref[j, 0, :len(want)] = [index[s] for s in want]
    lengths = np.array([len(s) for s in states])[:, None]
    match = (runs == lengths) & (codes >= 0).all(axis=-1) & (firsts[..., :longest] == ref).all(axis=-1)
    return match.sum(axis=-1).tolist()


_DIRECTION_CODE = {label: c for c, label in enumerate(DIRECTION_LABELS)}
_COMPARISON_CODE = {label: c for c, label in enumerate(COMPARISON_BY_CODE)}


# --------------------------------------------------------------------------------------------------
# normalising released-benchmark variants (§14 M2)

_VARIANTS = (
    ("Becomes larger.", "Become larger."),
    ("Becomes smaller.", "Become smaller."),
    ("and then becomes larger.", "then become larger."),
    ("and then becomes smaller.", "then become smaller."),
    ("and then become larger.", "then become larger."),
    ("and then become smaller.", "then become smaller."),
    ("then becomes larger.", "then become larger."),
    ("then becomes smaller.", "then become smaller."),
    ("(1) The former is always faster.", "(1) The former is faster."),
    ("(1) Their speed is nearly the same.", "(1) Nearly the same."),
)


def canonical_wording(text: str) -> str:
    """Map released-benchmark and official-code answer variants onto the project's canonical wording."""
    out = " ".join(text.split())
    for old, new in _VARIANTS:
        out = out.replace(old, new)
    if out == "The latter is always faster.":
        out = "(1) The latter is faster."
    return out
