"""Open answers: the one parser that maps a free-text reply to a state sequence, and its scores.

An open question is a template question without options; its gold answer is the procedural state
sequence of :mod:`dsr.qa.rules` ("(1) Keep nearly constant then become larger. (2) Become smaller.").
``parse_sequence(reply, kind)`` reads the sequence a reply states for a rule ``kind`` (``magnitude``,
``comparison``, ``direction``) and records the tier that decided, like the letter parser:

1. ``canonical`` — the reply is the sequence in our own wording (numbered segments);
2. ``numbered``  — numbered segments, "(1) …", "1. …", "1) …", each read through the synonyms;
3. ``sequence``  — unnumbered, in order, split at sequence words ("first … then … finally", "followed
                   by", "after that", ";", "→");
4. ``invalid``   — nothing readable, a segment with no state word, contradictory or hedged segments
                   ("increases or decreases", "front and behind"), or two sequences (a numbering that
                   starts again): never guessed.

Before the tiers, reasoning blocks are removed (the letter parser's normalisation) and each segment is cut
at its explanation ("because …", "since …", "due to …").

**The form compared.** The rules word a constant run that breaks as one state ("Keep nearly constant then
become larger.") while a person writes two ("stays the same, then grows"). Both sides are compared in the
*expanded* form: compound states split into their parts and repeats merged, so the two read the same.
:func:`sequence_scores` gives exact match (1/0) and a normalised edit similarity
1 − Levenshtein(pred, gold) / max(len) on that form (0 for an invalid reply).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dsr.errors import DsrError
from dsr.evaluate.parse import normalise
from dsr.qa.rules import (
    AXIS_LABELS,
    CONSTANT,
    CONSTANT_LARGER,
    CONSTANT_SMALLER,
    FORMER,
    LARGER,
    LATTER,
    SAME,
    SMALLER,
    RuleKind,
    format_answer,
    merge_states,
)

SEQUENCE_PARSER_VERSION = "1"
SEQUENCE_TIERS: tuple[str, ...] = ("canonical", "numbered", "sequence", "invalid")
_EXPAND = {CONSTANT_LARGER: (CONSTANT, LARGER), CONSTANT_SMALLER: (CONSTANT, SMALLER)}

# magnitude words; "no change" phrases are matched before the rest so "does not change" is constant
_MAGNITUDE_WORDS: tuple[tuple[str, str], ...] = (
    (CONSTANT, r"(?:keeps?|keeping|stays?|staying|remains?|remaining|holds?)\s+(?:nearly\s+|almost\s+|roughly\s+|"
               r"about\s+|more\s+or\s+less\s+)?(?:constant|the\s+same|unchanged|steady|stable|similar|flat)"
               r"|(?:does\s+not|doesn't|do\s+not|don't|did\s+not|didn't|hardly|barely)\s+change|no\s+(?:real\s+)?change"
               r"|unchanged|constant|steady|stable|the\s+same"),
    (LARGER, r"becom(?:e|es|ing)\s+(?:larger|bigger|greater|longer|farther|further|higher|faster)"
             r"|increas(?:e|es|ed|ing)|grow(?:s|n|ing)?|grew|ris(?:e|es|ing)|rose|larger|bigger|greater|longer"
             r"|farther|further\s+apart|higher|speed(?:s|ing)?\s+up|sped\s+up|accelerat(?:e|es|ed|ing)|faster|goes\s+up"),
    (SMALLER, r"becom(?:e|es|ing)\s+(?:smaller|shorter|closer|lower|slower)"
              r"|decreas(?:e|es|ed|ing)|shrink(?:s|ing)?|shrank|dro(?:p|ps|pped|pping)|fall(?:s|ing)?|fell|smaller"
              r"|shorter|closer|nearer|lower|slow(?:s|ed|ing)?\s+down|decelerat(?:e|es|ed|ing)|slower|goes\s+down"),
)
_COMPARISON_WORDS: tuple[tuple[str, str], ...] = (
    (SAME, r"(?:nearly|almost|roughly|about|approximately)?\s*(?:the\s+)?same(?:\s+speed)?|similar|equal(?:ly)?"
           r"|as\s+fast\s+as"),
    (FORMER, r"(?:the\s+)?(?:former|first(?:\s+(?:one|object))?)\s+(?:is\s+|was\s+|moves\s+|goes\s+)?(?:always\s+)?"
             r"(?:faster|quicker)|(?:the\s+)?(?:latter|second(?:\s+(?:one|object))?)\s+(?:is\s+|was\s+|moves\s+)?"
             r"(?:always\s+)?slower"),
    (LATTER, r"(?:the\s+)?(?:latter|second(?:\s+(?:one|object))?)\s+(?:is\s+|was\s+|moves\s+|goes\s+)?(?:always\s+)?"
             r"(?:faster|quicker)|(?:the\s+)?(?:former|first(?:\s+(?:one|object))?)\s+(?:is\s+|was\s+|moves\s+)?"
             r"(?:always\s+)?slower"),
)
_AXIS_WORDS: tuple[tuple[int, int, str], ...] = (  # (axis, sign, pattern); sign +1 = Front/Left/Above
    (0, 1, r"front|forwards?|ahead"), (0, -1, r"behind|backwards?|back|rear"),
    (1, 1, r"left"), (1, -1, r"right"),
    (2, 1, r"above|upwards?|up|higher"), (2, -1, r"below|downwards?|down|under(?:neath)?|beneath|lower"),
)
_HEDGE = re.compile(r"\b(?:or|either|maybe|perhaps|possibly|might|unclear|cannot\s+tell|can't\s+tell|not\s+sure|"
                    r"alternatively|otherwise)\b", re.I)
_ANSWER_PHRASE = re.compile(r"\b(?:final\s+answer|answer)\s*[:=]", re.I)
_EXPLANATION = re.compile(r"\b(?:because|since|due\s+to|as\s+a\s+result|which\s+means|so\s+that|given\s+that)\b.*",
                          re.I | re.S)
_NUMBERING = re.compile(r"(?:^|(?<=[\s.;:,]))(?:\((\d+)\)|(\d+)[.)](?=\s))", re.M)
_SEQUENCERS = re.compile(r"\b(?:and\s+then|then|after\s+that|afterwards|followed\s+by|finally|next|later|"
                         r"eventually|subsequently|at\s+last)\b|;|→|->|=>", re.I)
_LEADING = re.compile(r"^\s*(?:final\s+answer|answer|the\s+answer\s+is)\s*[:=]?\s*", re.I)


@dataclass(frozen=True)
class SequenceParse:
    """A parsed open reply: ``states`` in the expanded form (None when ``tier`` is ``invalid``)."""

    states: tuple[str, ...] | None
    tier: str
    reason: str = ""

    @property
    def invalid(self) -> bool:
        return self.states is None


def expand_states(states: Sequence[str]) -> tuple[str, ...]:
    """Compound magnitude states split into their parts, then consecutive repeats merged."""
    flat: list[str] = []
    for s in states:
        flat.extend(_EXPAND.get(s, (s,)))
    return tuple(merge_states(flat))


def _segments_numbered(text: str) -> list[str] | None:
    """Segments of a numbered reply; None if unnumbered; [] when the numbering restarts or skips."""
    marks = list(_NUMBERING.finditer(text))
    if not marks:
        return None
    numbers = [int(m.group(1) or m.group(2)) for m in marks]
    if numbers != list(range(1, len(numbers) + 1)):
        return []  # "(1) … (1) …": two sequences, or a broken list
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [text[m.end():end] for m, end in zip(marks, ends, strict=True)]


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _canonical_phrases(kind: RuleKind) -> dict[str, str]:
    """Our own wording of each single state of ``kind`` (both wordings) → the state."""
    from dsr.qa.rules import DIRECTION_LABELS

    states = {"magnitude": (CONSTANT, CONSTANT_LARGER, CONSTANT_SMALLER, LARGER, SMALLER),
              "comparison": (FORMER, SAME, LATTER), "direction": tuple(x for x in DIRECTION_LABELS if x)}[kind]
    phrases = {}
    for wording in ("paper", "official_code"):
        for state in states:
            text = format_answer([state], kind, wording)
            phrases[re.sub(r"^\(1\)\s*", "", text).strip().lower()] = state
    return phrases


def _states_in(segment: str, kind: RuleKind) -> list[str]:
    """The states one segment states, in order (a direction segment states one label)."""
    segment = _EXPLANATION.sub("", segment)
    if _HEDGE.search(re.sub(r"more\s+or\s+less", "", segment, flags=re.I)):
        raise _Unreadable("hedged")
    if kind == "direction":
        signs = [0, 0, 0]
        for axis, sign, pattern in _AXIS_WORDS:
            if re.search(rf"\b(?:{pattern})\b", segment, re.I):
                if signs[axis] == -sign:
                    raise _Unreadable("contradiction")
                signs[axis] = sign
        if not any(signs):
            raise _Unreadable("no_state")
        return ["|".join(AXIS_LABELS[a][0 if s > 0 else 1] for a, s in enumerate(signs) if s)]
    table = _MAGNITUDE_WORDS if kind == "magnitude" else _COMPARISON_WORDS
    found: list[tuple[int, int, str]] = []
    for state, pattern in table:
        for m in re.finditer(rf"\b(?:{pattern})\b", segment, re.I):
            found.append((m.start(), m.end(), state))
    # a match inside a longer one ("constant" in "keep nearly constant") does not count twice
    found = [f for f in found if not any(o[0] <= f[0] and f[1] <= o[1] and (o[1] - o[0]) > (f[1] - f[0])
                                         for o in found)]
    if not found:
        raise _Unreadable("no_state")
    found.sort()
    states = [s for _, _, s in found]
    return states


def parse_sequence(reply: str | None, kind: RuleKind) -> SequenceParse:
    """The state sequence ``reply`` states for a rule ``kind`` (see the module doc)."""
    if kind not in ("magnitude", "comparison", "direction"):
        raise DsrError(f"unknown rule kind {kind!r}")
    if not reply:
        return SequenceParse(None, "invalid", "empty")
    text = normalise(reply)
    if len(_ANSWER_PHRASE.findall(text)) > 1:  # "Answer: … Answer: …" states two answers
        return SequenceParse(None, "invalid", "several_sequences")
    text = _LEADING.sub("", text)
    numbered = _segments_numbered(text)
    if numbered == []:
        return SequenceParse(None, "invalid", "several_sequences")
    pieces = numbered if numbered is not None else [p for p in _SEQUENCERS.split(text) if p.strip()]
    if not pieces:
        return SequenceParse(None, "invalid", "no_state")
    if numbered is not None:
        phrases = _canonical_phrases(kind)
        exact = [phrases.get(p.strip().lower()) for p in numbered]
        if all(exact):
            return SequenceParse(expand_states([x for x in exact if x]), "canonical")
    states: list[str] = []
    try:
        for piece in pieces:
            # a numbered segment may still say "keep constant then grow"
            for sub in (_SEQUENCERS.split(piece) if numbered is not None else [piece]):
                if sub.strip(" .,:;-"):
                    states.extend(_states_in(sub, kind))
    except _Unreadable as why:
        return SequenceParse(None, "invalid", why.reason)
    return SequenceParse(expand_states(states), "numbered" if numbered is not None else "sequence")


def _levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def sequence_scores(parsed: SequenceParse, gold_states: Sequence[str]) -> tuple[float, float]:
    """(exact match, normalised edit similarity) of a parsed reply against the gold states."""
    gold = expand_states(gold_states)
    if parsed.states is None:
        return 0.0, 0.0
    distance = _levenshtein(parsed.states, gold)
    return float(parsed.states == gold), 1.0 - distance / max(len(parsed.states), len(gold), 1)
