"""The one multiple-choice letter parser: a deterministic cascade of tiers, never a guess.

``parse_letter(response, options)`` returns the chosen letter (restricted to the item's letters) or
``None``, and the tier that decided. Tiers, first match wins (``evaluation.md`` §3):

1. ``tag``          — ``<answer>C</answer>``, ``\\boxed{C}``; backticks ```C``` only without those;
2. ``phrase``       — an explicit answer statement ("the answer is C", "Answer: C", "C is correct",
                      "I choose C", "答案是C"); a bare mention ("option C", "选项C") only without one;
3. ``last_line``    — lines that are a lone letter, and the last line when it starts with the letter as a
                      label (``C``, ``C.``, ``C)``, ``(C)``, ``C:``, ``C because``; not "C is wrong");
                      lines that merely echo the option list are dropped first;
4. ``lone_letter``  — the whole reply is one letter (any case), possibly with punctuation or brackets;
5. ``option_text``  — exactly one option's text occurs in the reply (longest-match wins over a
                      contained shorter option) and no other option's text does;
6. ``invalid``      — nothing above fired (scored as wrong, counted in the invalid rate).

**A reply that names several letters is invalid, in every tier** (parser version 2): two different
tagged answers, answer statements ("The answer is A. ... The answer is C."), lone-letter lines
("A\nB\nC"), a list on one line ("A B C", "A, C", "A or C", "B/C"), or a tier's letter contradicted by
another statement (``Answer: B`` then a line ``C``). Self-corrections are therefore invalid too; an opt-in
judge may still read them. Arguing about an option ("A is wrong, the answer is C") is not a statement.

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

PARSER_VERSION = "2"  # 2: a reply that names several letters is invalid in every tier
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
    if _another_letter_follows(rest, valid):  # "A or C", "B/C", "A, D", "A B C", "B. C.": several answers
        return None
    return up


def _another_letter_follows(rest: str, valid: frozenset[str]) -> bool:
    """Whether ``rest`` (the text after a letter) goes on with another choice letter: a list of letters."""
    # on the same line only: a letter on the next line is judged as a line of its own
    m = re.match(r"[)\].:]?[ \t]*(?:/|,|;|&|\bor\b|\band\b|[ \t])[ \t]*[(\[]?([A-Z])(?![A-Za-z0-9])(.*)", rest)
    if not m or m.group(1) not in valid:
        return False
    # "B. A car turns": the next "A" is the article, not a second letter
    follower = re.match(r"\s+([a-z]+)", m.group(2))
    return not (m.group(1) == "A" and follower and follower.group(1) not in _LABEL_FOLLOWERS | {"or", "and"})


# Explicit answer tags; backticks are weaker (also used to quote an option) and count only without the others.
_TAG_PATTERNS = (
    re.compile(r"<answer>\s*[(\[]?\s*([A-Za-z])(?![A-Za-z])[^<]*</answer>", re.I),
    re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*[(\[]?([A-Za-z])[)\]]?\s*\}?\s*\}"),
)
_BACKTICK = re.compile(r"`{1,3}\s*[(\[]?([A-Za-z])[)\].:]?\s*`{1,3}")

_PHRASE_TAIL = (r"\s*(?:is|would\s+be|should\s+be|will\s+be|:|=|为|是)?\s*(?:option|choice|letter)?\s*[:=]?\s*"
                r"[(\[]?\s*([A-Za-z])(?![A-Za-z])")
# A statement of the answer ("the answer is C", "Answer: C", "I choose C", "答案是C") ...
_ANSWER_PHRASE = re.compile(
    r"(?:final\s+answer|correct\s+(?:answer|option|choice)|best\s+(?:answer|option|choice)"
    r"|right\s+(?:answer|option|choice)|answer|i\s+(?:would\s+)?(?:choose|pick|select)|答案|选择|选)" + _PHRASE_TAIL,
    re.I,
)
# ... versus a mention of an option ("option C", "选项C"), which decides only when nothing states an answer.
_OPTION_MENTION = re.compile(r"(?:option|choice|选项)" + _PHRASE_TAIL, re.I)
_LETTER_FIRST = re.compile(
    r"(?<![A-Za-z])(?:option\s+|choice\s+)?[(\[]?([A-Z])[)\]]?\s+(?:is|would\s+be)\s+(?:the\s+)?"
    r"(?:correct|right|best)(?![A-Za-z])",
    re.I,
)


class _Several:
    """A tier found several different letters: the reply is invalid, whatever later tiers would say."""


SEVERAL = _Several()
Found = str | _Several | None


def _one(letters: list[str]) -> Found:
    """The letter if ``letters`` name one, SEVERAL if they name more, None if empty."""
    distinct = set(letters)
    if not distinct:
        return None
    return distinct.pop() if len(distinct) == 1 else SEVERAL


def _matches(patterns: tuple[re.Pattern[str], ...], text: str, valid: frozenset[str]) -> list[str]:
    out = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            letter = _letter_at(text, m.start(1), m.group(1), valid, allow_lower=True)
            if letter:
                out.append(letter)
    return out


def _tag_letters(text: str, valid: frozenset[str]) -> list[str]:
    return _matches(_TAG_PATTERNS, text, valid)


def _tag(text: str, valid: frozenset[str]) -> Found:
    return _one(_tag_letters(text, valid)) or _one(_matches((_BACKTICK,), text, valid))


def _answer_phrase_letters(text: str, valid: frozenset[str]) -> list[str]:
    letters = _matches((_ANSWER_PHRASE,), text, valid)
    letters += [m.group(1).upper() for m in _LETTER_FIRST.finditer(text)
                if m.group(1).upper() in valid and m.group(1).isupper()]
    return letters


def _phrase(text: str, valid: frozenset[str]) -> Found:
    return _one(_answer_phrase_letters(text, valid)) or _one(_matches((_OPTION_MENTION,), text, valid))


def _leading_letter(line: str, valid: frozenset[str]) -> str | None:
    """The letter a line starts with as a label: ``C``, ``C.``, ``C)``, ``C:``, ``(C)``, ``[c]``, ``C because``;
    not a sentence about the option ("C is wrong")."""
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
    word = re.match(r"\s+([a-z]+)", s[1:])
    if word and word.group(1) not in _REASON_WORDS:
        return None
    return _letter_at(s, 0, m.group(1), valid, allow_lower=True)


# Words after a leading letter that give a reason for choosing it ("C because it turns").
_REASON_WORDS = frozenset(["because", "since", "as"])


def _norm_words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def _is_echo_line(line: str, options: Mapping[str, str]) -> str | None:
    """The letter of an option-list line ("B. right") whose text is that option's text, else None."""
    m = re.match(r"^\s*[(\[]?([A-Z])[)\].:]\s*(.*)$", line)
    if not m or m.group(1) not in options:
        return None
    return m.group(1) if _norm_words(m.group(2)) == _norm_words(options[m.group(1)]) else None


def _answer_lines(text: str, options: Mapping[str, str]) -> list[str]:
    """Non-empty lines, without an echoed option list (two or more lines repeating different options)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    echoed = {i for i, ln in enumerate(lines) if _is_echo_line(ln, options)}
    if len({_is_echo_line(lines[i], options) for i in echoed}) >= 2:
        lines = [ln for i, ln in enumerate(lines) if i not in echoed]
    return lines


def _line_letters(lines: list[str], valid: frozenset[str]) -> list[str]:
    """Letters stated by lines: each line that is a lone letter, and the last line's leading label."""
    letters = [x for x in (_lone_letter(ln, valid) for ln in lines
                           if re.fullmatch(r"[\s\W_]*[A-Za-z][\s\W_]*", ln)) if x]
    last = _leading_letter(lines[-1], valid) if lines else None
    return letters + ([last] if last else [])


def _last_line(text: str, options: Mapping[str, str], valid: frozenset[str]) -> Found:
    return _one(_line_letters(_answer_lines(text, options), valid))


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


def stated_letters(text: str, options: Mapping[str, str]) -> set[str]:
    """Every letter a (normalised) reply states as its answer: tagged answers, answer phrases, lone-letter
    lines and the last line's leading label. A reply whose tiers find one letter while it states another
    ("Answer: A" then a line "C") is invalid."""
    valid = frozenset(options)
    return set(_tag_letters(text, valid) + _answer_phrase_letters(text, valid)
               + _line_letters(_answer_lines(text, options), valid))


def parse_letter(response: str | None, options: Mapping[str, str]) -> Parse:
    """The letter a reply chooses among ``options`` (letter → text), and the tier that decided.

    Deterministic and total: any string (or None) gives a :class:`Parse`; unparseable replies, and
    replies that name several letters as their answer, give ``Parse(None, "invalid")``. Never guesses.
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
        if isinstance(letter, _Several):
            return Parse(None, "invalid")
        if letter:
            if stated_letters(text, options) - {letter}:
                return Parse(None, "invalid")
            return Parse(letter, tier)
    return Parse(None, "invalid")
