"""The one table of question-type facts (dsr-paper §7.1–§7.4, Table 7).

Every stage that needs to know something about a template type — how many targets it has, which
rule answers it, whether it is a prediction, how a report abbreviates it — reads it here, never
from the spelling of the key. Later stages (``dsr.evaluate``) import this table from ``dsr.qa``.

``TYPES`` is in DSR-Bench Table 4's column order (absolute first). ``NON_TEMPLATE`` is the key of
free-form (LLM-written) questions, which have no rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dsr.errors import DsrError

RuleKind = Literal["magnitude", "direction", "comparison"]
Viewpoint = Literal["absolute", "relative"]
FrameRule = Literal["interval", "prediction"]

NON_TEMPLATE = "non_temp"
NON_TEMPLATE_LABEL = "NonTemp"


@dataclass(frozen=True)
class QuestionType:
    """Facts about one template question type.

    key: "abs_dis" …; base: the viewpoint-free name ("dis"); viewpoint: "absolute" (observer frame
    frozen at t_v) or "relative" (the observer's frame at every frame).
    rule: the answer rule of :mod:`dsr.qa.rules` (magnitude runs, direction labels, speed comparison).
    num_targets: objects named besides the observer ("camera" allowed).
    quantity: name of the per-frame quantity in exports; per_step: it is measured between
    consecutive frames (F frames → F − 1 values), so an interval needs one frame more.
    frame_rule: "interval" (a sub-interval of the usable frames) or "prediction" (last visible frame
    → the hidden future frame; one state, no times in the question).
    agent_targets: every non-camera target must be an agent with an orientation track.
    observer_from_slot: the observer is drawn like a target slot and the QA is skipped when that draw
    is not an agent (official code, §7.4 step 4).
    observer_not_target: a relative observer is never its own target (its own orientation, speed or
    motion in its own frame is constant by construction; our choice).
    observer_invariant: the answer does not depend on the observer or t_v (distances; speeds in a
    frozen frame), so "another observer" is no alternative for it.
    label: the abbreviation of reports (DSR-Bench Table 4 style); title: words for legends.
    template: the question pattern (paper Table 7); ``{end}`` is ``QAConfig.prediction_terminal``.
    formats: answer formats the type supports (multiple choice today; numeric/open formats are
    issue 16's and will add themselves here).
    """

    key: str
    base: str
    viewpoint: Viewpoint
    rule: RuleKind
    num_targets: int
    quantity: str
    per_step: bool
    frame_rule: FrameRule
    agent_targets: bool
    observer_from_slot: bool
    observer_not_target: bool
    observer_invariant: bool
    label: str
    title: str
    template: str
    formats: tuple[str, ...] = ("mcq",)

    @property
    def is_prediction(self) -> bool:
        return self.frame_rule == "prediction"

    @property
    def is_absolute(self) -> bool:
        return self.viewpoint == "absolute"

    @property
    def min_query_frames(self) -> int:
        """Frames a query of this type needs at least (a prediction uses exactly 2)."""
        return 2 if self.is_prediction else 2 + int(self.per_step)


_REL = "Between {ts}s and {te}s, following the perspective of {objv}, "
_ABS = "Between {ts}s and {te}s, from the perspective of {objv} at {tv}s, "
_ASK = {
    "dis": "how does the distance between {obj1} and {obj2} change?",
    "dir": "how does the direction of {obj1} to {obj2} change?",
    "ori": "how does the orientation of {obj1} change?",
    "spd": "how does the speed of {obj1} change?",
    "spd_comp": "compare the speed between {obj1} and {obj2}.",
}
_PREDICTION = {"relative": "Following the perspective of {objv}, predict the moving direction of {obj1}{end}",
               "absolute": "From the perspective of {objv} at {tv}s, predict the moving direction of {obj1}{end}"}

# base: rule, targets, quantity, per step, agent targets (by viewpoint), label stem, title
_BASES: dict[str, tuple[RuleKind, int, str, bool, tuple[bool, bool], str, str]] = {
    "dis": ("magnitude", 2, "distance", False, (False, False), "Dis", "distance"),
    "dir": ("direction", 2, "direction", False, (False, False), "Dir", "direction"),
    "ori": ("direction", 1, "orientation", False, (True, True), "Ori", "orientation"),
    "spd": ("magnitude", 1, "speed", True, (True, False), "Spd", "speed"),
    "spd_comp": ("comparison", 2, "speed_pair", True, (False, False), "SpdC", "speed comparison"),
    "dir_pred": ("direction", 1, "displacement", True, (False, False), "DirP", "direction prediction"),
}


def _build() -> dict[str, QuestionType]:
    table: dict[str, QuestionType] = {}
    for viewpoint, short in (("absolute", "abs"), ("relative", "rel")):
        relative = viewpoint == "relative"
        for base, (rule, n, quantity, per_step, agents, stem, title) in _BASES.items():
            prediction = base == "dir_pred"
            template = _PREDICTION[viewpoint] if prediction else (_REL if relative else _ABS) + _ASK[base]
            table[f"{short}_{base}"] = QuestionType(
                key=f"{short}_{base}", base=base, viewpoint=viewpoint, rule=rule, num_targets=n, quantity=quantity,
                per_step=per_step, frame_rule="prediction" if prediction else "interval",
                agent_targets=agents[0] if not relative else agents[1],
                observer_from_slot=relative and base in ("ori", "spd", "spd_comp"),
                observer_not_target=relative and base in ("ori", "spd", "spd_comp", "dir_pred"),
                observer_invariant=base == "dis" or (not relative and base in ("spd", "spd_comp")),
                label=f"{short.capitalize()}{stem}", title=f"{viewpoint} {title}", template=template)
    return table


TYPES: dict[str, QuestionType] = _build()
QUESTION_TYPES: tuple[str, ...] = tuple(TYPES)
BASE_TYPES: tuple[str, ...] = tuple(_BASES)


@dataclass(frozen=True)
class NumericType:
    """A question answered by a number (issue 16, :mod:`dsr.qa.free_answer`): its unit, report label, title
    and question template."""

    key: str
    unit: str
    label: str
    title: str
    template: str


NUMERIC_TYPES: dict[str, NumericType] = {t.key: t for t in (
    NumericType("num_dis", "m", "NumDis", "distance at a time (m)",
                "How far apart are {obj1} and {obj2} at {t}s? Answer in metres."),
    NumericType("num_disp", "m", "NumDisp", "displacement over an interval (m)",
                "How far is {obj1} at {te}s from where it was at {ts}s (straight-line distance)? Answer in metres."),
    NumericType("num_spd", "m/s", "NumSpd", "mean speed over an interval (m/s)",
                "What is the mean speed of {obj1} between {ts}s and {te}s? Answer in metres per second."),
    NumericType("num_turn", "deg", "NumTurn", "heading change in the observer's frame (degrees)",
                "Between {ts}s and {te}s, following the perspective of {objv}, by how many degrees does the heading "
                "of {obj1} change? Answer in degrees, positive for a turn to the left, negative to the right."),
    NumericType("num_dis_ratio", "ratio", "NumDisR", "distance ratio end / start",
                "How many times larger is the distance between {obj1} and {obj2} at {te}s than at {ts}s? Answer "
                "with the ratio (below 1 if it shrank)."),
)}
TYPE_LABELS: dict[str, str] = {**{k: t.label for k, t in TYPES.items()}, NON_TEMPLATE: NON_TEMPLATE_LABEL,
                               **{k: t.label for k, t in NUMERIC_TYPES.items()}}


class UnknownTypeError(DsrError):
    """A question-type key that is not in the table."""


def question_type(key: str) -> QuestionType:
    """The table row of ``key``; a one-line error listing the known keys otherwise."""
    try:
        return TYPES[key]
    except (KeyError, TypeError):
        raise UnknownTypeError(f"unknown question type {key!r} (one of {', '.join(QUESTION_TYPES)})") from None


def is_prediction(key: str) -> bool:
    """Whether ``key`` is a template prediction type; False for any other key (e.g. another benchmark's)."""
    qt = TYPES.get(key)
    return qt is not None and qt.is_prediction
