"""The one multiple-choice letter parser: a deterministic cascade of tiers, never a guess.

``parse_letter(response, options)`` returns the chosen letter (restricted to the item's letters) or
``None``, and the tier that decided. Tiers, first match wins (``evaluation.md`` §3):

1. ``tag``          — ``<answer>C</answer>``, ``\\boxed{C}``, ```C``` (last occurrence);
2. ``phrase``       — an explicit final-answer phrase ("the answer is C", "Answer: C", "C is correct",
                      "答案是C"), last occurrence in the text;
3. ``last_line``    — the last non-empty line is a lone letter or starts with ``C.`` / ``C)`` / ``(C)`` /
                      ``C:``, else the last earlier line that is a lone letter ("B" then an
                      explanation); lines that merely echo the option list are dropped first;
4. ``lone_letter``  — the whole reply is one letter (any case), possibly with punctuation or brackets;
5. ``option_text``  — exactly one option's text occurs in the reply (longest-match wins over a
                      contained shorter option) and no other option's text does;
6. ``invalid``      — nothing above fired (scored as wrong, counted in the invalid rate).

Before the tiers, reasoning blocks (``<think>…</think>``, an unclosed ``<think>`` to the end, or
everything before a lone ``</think>``) are removed, text is NFKC-normalised (full-width letters and
brackets become ASCII), CJK brackets become ASCII brackets, zero-width characters and markdown
emphasis are dropped. The article "A" ("A cat moves left") is not read as a letter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

PARSER_VERSION = "1"
TIERS: tuple[str, ...] = ("tag", "phrase", "last_line", "lone_letter", "option_text", "judge", "invalid")

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
# NFKC leaves these CJK brackets alone; map them to ASCII so one bracket rule serves all.
_BRACKETS = str.maketrans({"【": "[", "】": "]", "〔": "(", "〕": ")", "「": "[", "」": "]", "『": "[",
                           "』": "]", "〈": "(", "〉": ")", "《": "(", "》": ")", "、": ",", "。": "."})
# Words that may follow a capital letter used as a label ("A is wrong", "B because ..."); any other
# lowercase word after "A" makes it the English article ("A cat moves left").
_LABEL_FOLLOWERS = frozenset(
    ["is", "was", "because", "since", "as", "seems", "would", "should", "appears", "fits", "matches", "best", "correct", "right", "looks"])


@dataclass(frozen=True)
class Parse:
    """A parsed reply: ``letter`` is None when the tier is ``invalid``."""

    letter: str | None
    tier: str

    @property
    def invalid(self) -> bool:
        return self.letter is None


def strip_reasoning(text: str) -> str:
    """Remove ``<think>`` blocks; an unclosed one runs to the end; a lone ``</think>`` ends the reasoning."""
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.S | re.I)
    close = list(re.finditer(r"</think>", text, flags=re.I))
    if close:
        text = text[close[-1].end():]
    opened = re.search(r"<think>", text, flags=re.I)
    if opened:
        text = text[:opened.start()]
    return text


def normalise(text: str) -> str:
    """Reasoning stripped, NFKC, ASCII brackets, no zero-width characters or markdown emphasis."""
    text = strip_reasoning(text)
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_BRACKETS)
    text = re.sub(r"(\*\*|__|\*)", "", text)
    return text.strip()


def _letter_at(text: str, pos: int, letter: str, valid: frozenset[str], *, allow_lower: bool) -> str | None:
    """Accept ``letter`` found at ``pos`` if it is a valid choice and not an English word."""
    up = letter.upper()
    if up not in valid or (letter.islower() and not allow_lower):
        return None
    rest = text[pos + 1:]
    if re.match(r"[A-Za-z0-9]", rest):  # part of a word ("About", "B2")
        return None
    follower = re.match(r"\s+([a-z]+)", rest)
    if follower:
        if letter.islower():
            return None  # "the answer is a car"
        if up == "A" and follower.group(1) not in _LABEL_FOLLOWERS:
            return None  # "A cat moves left"
    # "A or C", "B/C", "A and D": several answers, none chosen.
    if re.match(r"\s*(?:/|,|\bor\b|\band\b|&)\s*[(\[]?[A-Z](?![A-Za-z])", rest):
        return None
    return up


_TAG_PATTERNS = (
    re.compile(r"<answer>\s*[(\[]?\s*([A-Za-z])(?![A-Za-z])[^<]*</answer>", re.I),
    re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*[(\[]?([A-Za-z])[)\]]?\s*\}?\s*\}"),
    re.compile(r"`{1,3}\s*[(\[]?([A-Za-z])[)\].:]?\s*`{1,3}"),
)

_PHRASES = re.compile(
    r"(?:final\s+answer|correct\s+(?:answer|option|choice)|best\s+(?:answer|option|choice)"
    r"|right\s+(?:answer|option|choice)|answer|option|choice|i\s+(?:would\s+)?(?:choose|pick|select)"
    r"|答案|选项|选择|选)"
    r"\s*(?:is|would\s+be|should\s+be|will\s+be|:|=|为|是)?\s*(?:option|choice|letter)?\s*[:=]?\s*[(\[]?\s*"
    r"([A-Za-z])(?![A-Za-z])",
    re.I,
)
_LETTER_FIRST = re.compile(
    r"(?<![A-Za-z])(?:option\s+|choice\s+)?[(\[]?([A-Z])[)\]]?\s+(?:is|would\s+be)\s+(?:the\s+)?"
    r"(?:correct|right|best)(?![A-Za-z])",
    re.I,
)


def _tag(text: str, valid: frozenset[str]) -> str | None:
    hits: list[tuple[int, str]] = []
    for pattern in _TAG_PATTERNS:
        for m in pattern.finditer(text):
            letter = _letter_at(text, m.start(1), m.group(1), valid, allow_lower=True)
            if letter:
                hits.append((m.start(), letter))
    return max(hits)[1] if hits else None


def _phrase(text: str, valid: frozenset[str]) -> str | None:
    hits: list[tuple[int, str]] = []
    for m in _PHRASES.finditer(text):
        letter = _letter_at(text, m.start(1), m.group(1), valid, allow_lower=True)
        if letter:
            hits.append((m.start(1), letter))
    for m in _LETTER_FIRST.finditer(text):
        if m.group(1).upper() in valid and m.group(1).isupper():
            hits.append((m.start(1), m.group(1).upper()))
    return max(hits)[1] if hits else None


def _leading_letter(line: str, valid: frozenset[str]) -> str | None:
    """The letter a line starts with: ``C``, ``C.``, ``C)``, ``C:``, ``(C)``, ``[c]``; else None."""
    s = line.strip()
    m = re.match(r"[(\[]\s*([A-Za-z])\s*[)\]]", s)
    if m:
        return _letter_at(s, m.start(1), m.group(1), valid, allow_lower=True)
    m = re.match(r"([A-Za-z])(?![A-Za-z0-9])", s)
    if not m:
        return None
    # lowercase only before ")" / ":" or alone ("c", "c."); "a quick look" is the article
    if m.group(1).islower() and not re.match(r"\s*(?:[):]|\.?\s*$)", s[1:]):
        return None
    return _letter_at(s, 0, m.group(1), valid, allow_lower=True)


def _norm_words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def _is_echo_line(line: str, options: Mapping[str, str]) -> str | None:
    """The letter of an option-list line ("B. right") whose text is that option's text, else None."""
    m = re.match(r"^\s*[(\[]?([A-Z])[)\].:]\s*(.*)$", line)
    if not m or m.group(1) not in options:
        return None
    return m.group(1) if _norm_words(m.group(2)) == _norm_words(options[m.group(1)]) else None


def _last_line(text: str, options: Mapping[str, str], valid: frozenset[str]) -> str | None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    echoed = {i for i, ln in enumerate(lines) if _is_echo_line(ln, options)}
    if len({_is_echo_line(lines[i], options) for i in echoed}) >= 2:  # an option list was echoed
        lines = [ln for i, ln in enumerate(lines) if i not in echoed]
    if not lines:
        return None
    found = _leading_letter(lines[-1], valid)
    # earlier lines count only as a lone letter ("B" then an explanation), never as "B is wrong ..."
    for line in reversed(lines[:-1]):
        if found:
            break
        found = _lone_letter(line, valid) if re.fullmatch(r"[\s\W_]*[A-Za-z][\s\W_]*", line) else None
    return found


def _lone_letter(text: str, valid: frozenset[str]) -> str | None:
    m = re.fullmatch(r"[\s\W_]*([A-Za-z])[\s\W_]*", text)
    return m.group(1).upper() if m and m.group(1).upper() in valid else None


def _option_text(text: str, options: Mapping[str, str]) -> str | None:
    reply = f" {_norm_words(text)} "
    spans: list[tuple[int, int, str]] = []
    for letter, option in options.items():
        needle = _norm_words(option)
        if needle:
            spans += [(m.start(), m.end(), letter)
                      for m in re.finditer(rf"(?<= ){re.escape(needle)}(?= )", reply)]
    # a shorter option inside a longer matched option ("left" in "moving left") does not count
    kept = {letter for s, e, letter in spans
            if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    return kept.pop() if len(kept) == 1 else None


def parse_letter(response: str | None, options: Mapping[str, str]) -> Parse:
    """The letter a reply chooses among ``options`` (letter → text), and the tier that decided.

    Deterministic and total: any string (or None) gives a :class:`Parse`; unparseable replies give
    ``Parse(None, "invalid")``. Never guesses.
    """
    if not response or not options:
        return Parse(None, "invalid")
    valid = frozenset(options)
    text = normalise(response)
    if not text:
        return Parse(None, "invalid")
    for tier, found in (
        ("tag", lambda: _tag(text, valid)),
        ("phrase", lambda: _phrase(text, valid)),
        ("last_line", lambda: _last_line(text, options, valid)),
        ("lone_letter", lambda: _lone_letter(text, valid)),
        ("option_text", lambda: _option_text(text, options)),
    ):
        letter = found()
        if letter:
            return Parse(letter, tier)
    return Parse(None, "invalid")
