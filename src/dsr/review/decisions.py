"""What a reviewer can decide about a question, and what an item's decisions add up to.

Pure logic, no database: :func:`check_verdict` validates a reviewer's input against the item as it was
imported, :func:`label_of` gives the label that agreement statistics compare, and :func:`item_outcome`
turns an item's decisions (plus an admin's resolution) into its status.

Actions (each has a key on the item page, see ``docs/review.md``):

* ``accept`` — the question, options and the generator's answer are right;
* ``change_answer`` — another option is the right one;
* ``edit`` — the question or option text needs fixing (the answer may change in the same edit);
* ``reject`` — the item cannot be kept, with a reason from :data:`REJECT_REASONS`;
* ``flag`` — unsure, needs discussion (not a judgement: statistics leave it out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dsr.errors import DsrError

ACTIONS: tuple[str, ...] = ("accept", "change_answer", "edit", "reject", "flag")
# The reasons a reviewer picks from (in the order of their number keys on the item page).
REJECT_REASONS: dict[str, str] = {
    "wrong_object": "a box names the wrong object, or no single object",
    "not_visible": "a named object is not visible over the interval",
    "not_determinable": "the video does not show enough to decide",
    "no_correct_option": "no option is right",
    "several_correct": "more than one option is right",
    "bad_geometry": "the per-frame quantity contradicts the video",
    "ambiguous_question": "the wording is ambiguous",
    "video_problem": "the video is missing, corrupt or cut",
    "other": "other (say why in the note)",
}
MAX_QUESTION_CHARS = 4000
MAX_OPTION_CHARS = 1000
MAX_NOTE_CHARS = 2000

Status = Literal["pending", "needs_review", "accepted", "edited", "rejected", "flagged", "disagreement"]
EXPORTED_STATUSES: tuple[str, ...] = ("accepted", "edited")


class VerdictError(DsrError):
    """A decision that does not make sense for its item (one line, says which field)."""


@dataclass(frozen=True)
class ItemText:
    """The item as imported: what every verdict is checked against and compared with."""

    question: str
    options: Mapping[str, str]
    answer: str


@dataclass(frozen=True)
class Verdict:
    """One reviewer's (or an admin's) decision on one item, normalised by :func:`check_verdict`.

    answer: the letter the decider holds right (None for reject / flag).
    question, options: the edited texts, or None where unchanged.
    """

    action: str
    answer: str | None = None
    question: str | None = None
    options: dict[str, str] | None = None
    reason: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "answer": self.answer, "question": self.question,
                "options": dict(self.options) if self.options is not None else None,
                "reason": self.reason, "note": self.note}

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> Verdict:
        opts = obj.get("options")
        return Verdict(action=str(obj["action"]), answer=obj.get("answer"), question=obj.get("question"),
                       options=dict(opts) if opts is not None else None, reason=obj.get("reason"),
                       note=str(obj.get("note") or ""))


def _clean_text(value: str, limit: int, what: str) -> str:
    text = "\n".join(line.rstrip() for line in str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    text = text.strip()
    if not text:
        raise VerdictError(f"{what} is empty")
    if len(text) > limit:
        raise VerdictError(f"{what} is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise VerdictError(f"{what} holds control characters")
    return text


def check_verdict(verdict: Verdict, item: ItemText, *, resolution: bool = False) -> Verdict:
    """The verdict validated against ``item`` and normalised (unchanged edits dropped); raises VerdictError.

    resolution: an admin's final word, which cannot be a flag.
    """
    action = verdict.action
    if action not in ACTIONS:
        raise VerdictError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if resolution and action == "flag":
        raise VerdictError("a resolution cannot be a flag: accept, change the answer, edit or reject")
    note = verdict.note.strip() if verdict.note else ""
    if len(note) > MAX_NOTE_CHARS:
        raise VerdictError(f"note is longer than {MAX_NOTE_CHARS} characters")
    letters = tuple(item.options)
    if action in ("accept", "change_answer", "reject", "flag") and (verdict.question is not None
                                                                  or verdict.options is not None):
        raise VerdictError(f"{action} carries no edited text; use edit")
    if action in ("accept", "change_answer", "edit") and verdict.reason is not None:
        raise VerdictError(f"{action} takes no reject reason")
    if action == "accept":
        if verdict.answer not in (None, item.answer):
            raise VerdictError(f"accept keeps the generator's answer {item.answer}; use change_answer for "
                               f"{verdict.answer}")
        return Verdict("accept", answer=item.answer, note=note)
    if action == "change_answer":
        if verdict.answer not in letters:
            raise VerdictError(f"answer must be one of {', '.join(letters)}, got {verdict.answer!r}")
        if verdict.answer == item.answer:
            raise VerdictError(f"{item.answer} is already the generator's answer; accept instead")
        return Verdict("change_answer", answer=verdict.answer, note=note)
    if action == "edit":
        answer = item.answer if verdict.answer is None else verdict.answer
        if answer not in letters:
            raise VerdictError(f"answer must be one of {', '.join(letters)}, got {answer!r}")
        question = None
        if verdict.question is not None:
            question = _clean_text(verdict.question, MAX_QUESTION_CHARS, "the question")
            if question == item.question:
                question = None
        options = None
        if verdict.options is not None:
            if set(verdict.options) != set(letters):
                raise VerdictError(f"edited options must have the letters {', '.join(letters)}")
            cleaned = {k: _clean_text(verdict.options[k], MAX_OPTION_CHARS, f"option {k}") for k in letters}
            if len({v.casefold() for v in cleaned.values()}) < len(cleaned):
                raise VerdictError("two options have the same text")
            options = None if cleaned == dict(item.options) else cleaned
        if question is None and options is None:
            raise VerdictError("nothing was edited (use accept or change_answer)")
        return Verdict("edit", answer=answer, question=question, options=options, note=note)
    if action == "reject":
        if verdict.reason not in REJECT_REASONS:
            raise VerdictError(f"reject needs a reason, one of {', '.join(REJECT_REASONS)}")
        if verdict.reason == "other" and not note:
            raise VerdictError("reason 'other' needs a note saying why")
        return Verdict("reject", reason=verdict.reason, note=note)
    return Verdict("flag", note=note)  # flag


def label_of(verdict: Verdict) -> str | None:
    """The label agreement statistics compare: the letter held right, "reject", or None for a flag."""
    if verdict.action == "flag":
        return None
    if verdict.action == "reject":
        return "reject"
    return verdict.answer


def final_text(verdict: Verdict, item: ItemText) -> tuple[str, dict[str, str], str]:
    """(question, options, answer) after the verdict (for keep-verdicts)."""
    return (verdict.question if verdict.question is not None else item.question,
            dict(verdict.options) if verdict.options is not None else dict(item.options),
            verdict.answer or item.answer)


def outcome_key(verdict: Verdict, item: ItemText) -> tuple[Any, ...] | None:
    """What two verdicts must share to agree: reject (any reason), or the same final item; None = flag."""
    if verdict.action == "flag":
        return None
    if verdict.action == "reject":
        return ("reject",)
    question, options, answer = final_text(verdict, item)
    return ("keep", answer, question, tuple(sorted(options.items())))


def status_of(verdict: Verdict, item: ItemText) -> Status:
    """accepted (item unchanged), edited (answer or text changed), rejected or flagged."""
    if verdict.action == "flag":
        return "flagged"
    if verdict.action == "reject":
        return "rejected"
    question, options, answer = final_text(verdict, item)
    unchanged = answer == item.answer and question == item.question and options == dict(item.options)
    return "accepted" if unchanged else "edited"


@dataclass(frozen=True)
class Outcome:
    """Where an item stands. ``verdict`` is the final one (agreed or resolved) when there is one."""

    status: Status
    verdict: Verdict | None = None
    resolved: bool = False
    labels: tuple[str, ...] = field(default=())


def item_outcome(item: ItemText, decisions: Sequence[Verdict], resolution: Verdict | None = None, *,
                 min_reviewers: int = 1) -> Outcome:
    """The item's status from its reviewers' decisions; an admin's resolution overrides them.

    Without a resolution: no decision → pending; fewer than ``min_reviewers`` → needs_review; any flag →
    flagged; decisions with different outcome keys → disagreement; otherwise the shared outcome.
    """
    labels = tuple(lbl for lbl in (label_of(d) for d in decisions) if lbl is not None)
    if resolution is not None:
        return Outcome(status_of(resolution, item), resolution, resolved=True, labels=labels)
    if not decisions:
        return Outcome("pending", labels=labels)
    if len(decisions) < min_reviewers:
        return Outcome("needs_review", labels=labels)
    if any(d.action == "flag" for d in decisions):
        return Outcome("flagged", labels=labels)
    keys = {outcome_key(d, item) for d in decisions}
    if len(keys) > 1:
        return Outcome("disagreement", labels=labels)
    return Outcome(status_of(decisions[0], item), decisions[0], labels=labels)
