"""Numeric answers: the one number parser for replies, and mean relative accuracy (MRA).

``parse_number(reply, unit)`` reads the quantity a reply states, converted to ``unit`` (``m``, ``m/s``,
``deg``, ``ratio``), and records the tier that decided, like the letter parser
(:mod:`dsr.evaluate.parse`). Tiers, first match wins:

1. ``tag``     — ``<answer>3.5 m</answer>`` or ``\\boxed{3.5}`` (the last one);
2. ``phrase``  — explicit answer phrases ("the answer is about 3.5 m", "Answer: 350 cm"); every
                 quantity after them must agree ("Answer: 2 m … Answer: 3 m" is invalid);
3. ``single``  — the reply states exactly one quantity of the asked dimension: every number with a
                 compatible unit, or without a unit, has the same value once converted;
4. ``words``   — no digits, and one spelled-out number ("about three and a half metres");
5. ``invalid`` — nothing above, or two different quantities ("3 or 4 m", "between 2 and 3 m"): a
                 reply that names two values is never guessed.

Numbers with a unit of another dimension ("in 2 seconds" in a distance answer) are context and are
ignored; a reply whose only quantities have the wrong dimension is invalid. Enumerations ("(1)",
"Step 2:") and list markers are not quantities. ``−``, "minus" and "negative" make a number negative.

MRA (VSI-Bench): the mean over θ ∈ {0.50, 0.55, …, 0.95} of 1[|ŷ − y| / |y| < 1 − θ], with the
thresholds 1 − θ written exactly (0.50 … 0.05) so that float rounding cannot move an edge case. A
missing prediction scores 0. For y = 0 the relative error is undefined: we score 1 when ŷ = 0 and 0
otherwise. A negative y (a clockwise turn) is compared by |ŷ − y| / |y|, so a reply with the wrong
sign has relative error ≥ 1 and scores 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from dsr.errors import DsrError
from dsr.evaluate.parse import normalise

NUMBER_PARSER_VERSION = "1"
NUMBER_TIERS: tuple[str, ...] = ("tag", "phrase", "single", "words", "invalid")
# 1 − θ for θ = 0.50, 0.55, …, 0.95, written exactly
MRA_TOLERANCES: tuple[float, ...] = (0.50, 0.45, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15, 0.10, 0.05)

# unit aliases → (dimension, factor to the dimension's base unit: m, m/s, deg, ratio)
_UNITS: dict[str, tuple[str, float]] = {}
for _names, _dim, _factor in (
    (("m", "meter", "meters", "metre", "metres"), "length", 1.0),
    (("cm", "centimeter", "centimeters", "centimetre", "centimetres"), "length", 0.01),
    (("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "length", 0.001),
    (("km", "kilometer", "kilometers", "kilometre", "kilometres"), "length", 1000.0),
    (("ft", "foot", "feet"), "length", 0.3048),
    (("in", "inch", "inches"), "length", 0.0254),
    (("m/s", "mps", "meters per second", "metres per second", "meter per second", "metre per second"),
     "speed", 1.0),
    (("km/h", "kmh", "kph", "km per hour", "kilometers per hour", "kilometres per hour"), "speed", 1 / 3.6),
    (("mph", "miles per hour"), "speed", 0.44704),
    (("cm/s", "centimeters per second", "centimetres per second"), "speed", 0.01),
    (("deg", "degree", "degrees", "°"), "angle", 1.0),
    (("rad", "radian", "radians"), "angle", 180.0 / math.pi),
    (("x", "times", "fold", "×"), "ratio", 1.0),
    (("%", "percent", "per cent"), "ratio", 0.01),
    (("s", "sec", "secs", "second", "seconds", "min", "minute", "minutes"), "time", 1.0),
):
    for _n in _names:
        _UNITS[_n] = (_dim, _factor)
UNIT_DIMENSIONS = {"m": "length", "m/s": "speed", "deg": "angle", "ratio": "ratio"}

_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_NUMBER = r"(?P<sign>[-+−]|\bminus\s+|\bnegative\s+)?(?P<num>\d+(?:[.,]\d+)*(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_QUANTITY = re.compile(_NUMBER + r"\s*(?P<unit>(?:" + _UNIT_RE + r")(?![A-Za-z]))?", re.I)
# enumerations and list markers: "(1)", "Step 2:", "#3" anywhere; "1." / "1)" at line starts when the
# reply has at least two such lines (a lone "5." is an answer, not a list)
_ENUMERATION = re.compile(r"\(\d+\)|\bstep\s+\d+\s*[:.)]|(?<![\w.])#\d+", re.I)
_LIST_MARKER = re.compile(r"^[ \t]*\d+[.)](?=[ \t])", re.M)
# explicit answer phrases only: "it is 5 m" after "it was 3 m" states two values, not an answer
_PHRASE = re.compile(r"(?:final\s+answer|the\s+answer|answer|my\s+estimate|estimate)\s*(?:is|would\s+be|:|=)?\s*"
                     r"(?:about|around|roughly|approximately|approx\.?|~|≈)?\s*", re.I)
_TAGS = (re.compile(r"<answer>(.*?)</answer>", re.I | re.S), re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}"))


@dataclass(frozen=True)
class NumberParse:
    """A parsed numeric reply: ``value`` in the asked unit (None when ``tier`` is ``invalid``)."""

    value: float | None
    tier: str
    unit_seen: str | None = None
    reason: str = ""

    @property
    def invalid(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class _Quantity:
    value: float  # in the base unit of its dimension (or as written, when it has no unit)
    dimension: str | None
    unit: str | None
    start: int


def _to_float(num: str) -> float | None:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", num):  # thousands separators: 1,250.5
        num = num.replace(",", "")
    elif num.count(",") == 1 and "." not in num:  # a decimal comma: 3,5
        num = num.replace(",", ".")
    try:
        return float(num)
    except ValueError:
        return None


def _quantities(text: str) -> list[_Quantity]:
    blank = lambda m: " " * len(m.group(0))  # noqa: E731 - keeps positions
    masked = _ENUMERATION.sub(blank, text)
    if len(_LIST_MARKER.findall(masked)) >= 2:
        masked = _LIST_MARKER.sub(blank, masked)
    out = []
    for m in _QUANTITY.finditer(masked):
        value = _to_float(m.group("num"))
        if value is None:
            continue
        if m.group("sign") and m.group("sign").strip().lower() in ("-", "−", "minus", "negative"):
            value = -value
        unit = m.group("unit")
        if unit is not None:
            dim, factor = _UNITS[unit.lower()] if unit.lower() in _UNITS else _UNITS[unit]
            if unit.lower() == "in" and not re.match(r"\s*(?:[.,;)]|$)", masked[m.end():]):
                dim, factor, unit = None, 1.0, None  # "3 in front of", not inches
            out.append(_Quantity(value * factor, dim, unit, m.start()))
        else:
            out.append(_Quantity(value, None, None, m.start()))
    return out


def _agree(values: list[float]) -> bool:
    return all(math.isclose(v, values[0], rel_tol=1e-9, abs_tol=1e-12) for v in values)


def _from_quantities(qs: list[_Quantity], dimension: str) -> tuple[float | None, str | None, str]:
    """The one value the quantities state in ``dimension``; reason when none or several."""
    relevant = [q for q in qs if q.dimension in (None, dimension)]
    if not relevant:
        return None, None, "wrong_unit" if qs else "no_number"
    if not _agree([q.value for q in relevant]):
        return None, None, "several_values"
    unit = next((q.unit for q in relevant if q.unit), None)
    return relevant[0].value, unit, ""


_SMALL = {w: i for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
     "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"))}
_TENS = {w: 10 * i for i, w in enumerate(
    ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_WORD_TOKEN = re.compile(r"[a-z]+")


def _words_value(words: list[str]) -> float | None:
    """A spelled-out number ("three hundred and five", "two point five", "one and a half")."""
    total, current, seen = 0.0, 0.0, False
    i = 0
    while i < len(words):
        w = words[i]
        if w in _SMALL:
            current += _SMALL[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w in _SCALES:
            current = max(current, 1.0) * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0.0
        elif w == "point":
            digits = []
            for d in words[i + 1:]:
                if d not in _SMALL or _SMALL[d] > 9:
                    break
                digits.append(str(_SMALL[d]))
            if not digits:
                return None
            return total + current + float("0." + "".join(digits))
        elif w == "and" and words[i + 1:i + 3] in (["a", "half"], ["one", "half"]):
            return total + current + 0.5
        elif w == "half" and not seen:
            current = 0.5
        elif w != "and":
            return None
        seen = True
        i += 1
    return total + current if seen else None


def _spelled(text: str) -> list[tuple[float, str | None]]:
    """Spelled-out numbers in ``text`` with the unit word that follows them (if any)."""
    tokens = [(m.group(0), m.start(), m.end()) for m in _WORD_TOKEN.finditer(text.lower())]
    numberish = set(_SMALL) | set(_TENS) | set(_SCALES) | {"point", "half"}
    out = []
    i = 0
    while i < len(tokens):
        if tokens[i][0] not in numberish:
            i += 1
            continue
        j = i
        while j < len(tokens) and (tokens[j][0] in numberish or tokens[j][0] in ("and", "a")):
            j += 1
        while j > i and tokens[j - 1][0] in ("and", "a"):
            j -= 1
        value = _words_value([t[0] for t in tokens[i:j]])
        unit = None
        if value is not None:
            rest = text.lower()[tokens[j - 1][2]:].lstrip()
            m = re.match(r"(" + _UNIT_RE + r")(?![a-z])", rest)
            unit = m.group(1) if m else None
            out.append((value, unit))
        i = max(j, i + 1)
    return out


def parse_number(reply: str | None, unit: str = "m") -> NumberParse:
    """The quantity ``reply`` states, in ``unit`` (``m``, ``m/s``, ``deg`` or ``ratio``); see the module doc."""
    if unit not in UNIT_DIMENSIONS:
        raise DsrError(f"unknown answer unit {unit!r} (one of {', '.join(UNIT_DIMENSIONS)})")
    dimension = UNIT_DIMENSIONS[unit]
    if not reply:
        return NumberParse(None, "invalid", reason="empty")
    text = normalise(reply)
    for pattern in _TAGS:
        hits = list(pattern.finditer(text))
        if hits:
            value, seen, why = _from_quantities(_quantities(hits[-1].group(1)), dimension)
            return NumberParse(value, "tag", seen) if value is not None else NumberParse(None, "invalid", reason=why)
    answers = []  # each answer phrase followed by a number: what follows it, up to the next one
    phrases = [m for m in _PHRASE.finditer(text) if (q := _quantities(text[m.end():m.end() + 40])) and q[0].start == 0]
    for m, nxt in zip(phrases, [*phrases[1:], None][:len(phrases)], strict=True):
        tail = [q for q in _quantities(text[m.end():nxt.start() if nxt else len(text)]) if q.dimension in (None, dimension)]
        answers.append(_from_quantities(tail, dimension))
    if answers:
        values = [v for v, _, _ in answers if v is not None]
        if len(values) == len(answers) and _agree(values):
            return NumberParse(values[-1], "phrase", answers[-1][1])
        why = next((w for v, _, w in answers if v is None), "several_values")
        return NumberParse(None, "invalid", reason=why)
    qs = _quantities(text)
    if qs:
        value, seen, why = _from_quantities(qs, dimension)
        return NumberParse(value, "single", seen) if value is not None else NumberParse(None, "invalid", reason=why)
    spelled = [(v, u) for v, u in _spelled(text) if u is None or _UNITS.get(u, ("", 0))[0] == dimension]
    if spelled:
        values = [v * (_UNITS[u][1] if u else 1.0) for v, u in spelled]
        if _agree(values):
            return NumberParse(values[0], "words", next((u for _, u in spelled if u), None))
        return NumberParse(None, "invalid", reason="several_values")
    return NumberParse(None, "invalid", reason="no_number")


def mean_relative_accuracy(prediction: float | None, target: float) -> float:
    """VSI-Bench's MRA of one prediction (see the module doc for y = 0, negative y and missing ŷ)."""
    if prediction is None or not math.isfinite(prediction):
        return 0.0
    if not math.isfinite(target):
        raise DsrError(f"MRA needs a finite target, got {target}")
    if target == 0.0:
        return 1.0 if prediction == 0.0 else 0.0
    error = abs(prediction - target) / abs(target)
    return sum(error < tol for tol in MRA_TOLERANCES) / len(MRA_TOLERANCES)
