"""The prompt a model sees, and the control arms that change only the visuals.

Default style ``dsr`` is DSR-Bench's official prompt (``dsr-paper.md`` §11): the frames, then
"These are the frames of a video. Select the best answer … Respond with only the letter (A, B, C, or D)
of the correct option.", then ``Question: …``, one ``A. text`` line per option and ``Answer: ``.
With ``timestamps_in_prompt`` each frame is preceded by its time (``<3.2 s>``), as the paper does
for models without native video time.

Arms (``evaluation.md`` §5) keep the text identical and change only the images:

* ``main`` — frames in time order;
* ``blind`` — no images at all (language and answer-format priors);
* ``single-frame`` — only the middle frame;
* ``shuffled-frames`` — frames in a seeded per-item random order;
* ``reversed-frames`` — frames in reverse order.

In the shuffled and reversed arms the k-th image keeps the k-th *time label* of the main arm, so the
text is byte-identical to the main arm and only the pixel order differs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from dsr.errors import DsrError
from dsr.evaluate.datasets import Item

ARMS: tuple[str, ...] = ("main", "blind", "single-frame", "shuffled-frames", "reversed-frames")
PROMPT_STYLES: tuple[str, ...] = ("dsr", "vlm4d")

DSR_INSTRUCTION = (
    "These are the frames of a video. Select the best answer to the following multiple-choice question "
    "based on the video. Respond with only the letter ({letters}) of the correct option."
)
QUESTION_TEMPLATE = "Question: {question}\n{options}\nAnswer: "
# VLM4D's prompt (dsr-paper.md §11), the option list on one line
VLM4D_TEMPLATE = ("{question}. Choose the closest answer from the following {n} candidates and only output your "
                  "choice as one of {letters}: {options}")
TIME_LABEL = "<{t:.1f} s>"
# numeric and open items (issue 16): the same frames, then one of these instead of the option list
FREE_INSTRUCTION = {
    "numeric": ("These are the frames of a video. Answer the following question based on the video. Respond with "
                "only the number and its unit ({unit})."),
    "open": ("These are the frames of a video. Answer the following question based on the video. Respond with only "
             "the sequence of states in time order, numbered like \"(1) Become larger. (2) Keep nearly "
             "constant.\""),
}
FREE_TEMPLATE = "Question: {question}\nAnswer: "
_UNIT_WORDS = {"m": "metres", "m/s": "metres per second", "deg": "degrees", "ratio": "a plain ratio"}


@dataclass(frozen=True)
class Prompt:
    """An ordered message: ``parts`` are ("text", str) or ("image", index into ``images``)."""

    parts: tuple[tuple[str, str | int], ...]
    images: tuple[bytes, ...]
    style: str = "dsr"

    @property
    def text(self) -> str:
        """The text parts joined (images shown as ``<image>``), for logs and snapshots."""
        return "".join(str(v) if k == "text" else "<image>" for k, v in self.parts)


def letters_phrase(letters: tuple[str, ...]) -> str:
    """("A","B","C","D") → "A, B, C, or D"; ("A","B") → "A or B"."""
    if len(letters) == 1:
        return letters[0]
    if len(letters) == 2:
        return f"{letters[0]} or {letters[1]}"
    return ", ".join(letters[:-1]) + f", or {letters[-1]}"


def question_text(item: Item) -> str:
    options = "\n".join(f"{k}. {v}" for k, v in item.options.items())
    return QUESTION_TEMPLATE.format(question=item.question, options=options)


def text_without_frames(item: Item, style: str = "dsr") -> str:
    """The prompt's text alone (instruction, question, options), for inputs that carry time themselves
    (a native video, a video file): what follows the frames in ``style``, without time labels."""
    if not item.is_mcq:
        instruction = FREE_INSTRUCTION[item.answer_format].format(unit=_UNIT_WORDS.get(item.unit or "", item.unit))
        return instruction + "\n" + FREE_TEMPLATE.format(question=item.question)
    if style == "vlm4d":
        return VLM4D_TEMPLATE.format(question=item.question.rstrip(), n=len(item.options),
                                     letters=",".join(item.letters),
                                     options="; ".join(f"{k}: {v}" for k, v in item.options.items()))
    if style not in PROMPT_STYLES:
        raise DsrError(f"unknown prompt style {style!r}")
    return DSR_INSTRUCTION.format(letters=letters_phrase(item.letters)) + "\n" + question_text(item)


def free_prompt_hash() -> str:
    """Identity of the numeric and open prompts (recorded in a run's manifest when it holds such items)."""
    blob = "|".join([*FREE_INSTRUCTION.values(), FREE_TEMPLATE, *_UNIT_WORDS.values(), "v1"])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prompt_hash(style: str = "dsr", timestamps: bool = True) -> str:
    """Identity of the prompt template (changes whenever the wording or layout changes)."""
    template = VLM4D_TEMPLATE if style == "vlm4d" else DSR_INSTRUCTION + "|" + QUESTION_TEMPLATE
    blob = "|".join([style, template, TIME_LABEL if timestamps else "", "v1"])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def arm_order(arm: str, n: int, item_id: str, seed: int) -> list[int]:
    """Positions of the served frames, in the order the arm shows them."""
    if arm not in ARMS:
        raise DsrError(f"unknown arm {arm!r} (choose from {', '.join(ARMS)})")
    if arm == "blind" or n == 0:
        return []
    if arm == "single-frame":
        return [n // 2]
    if arm == "reversed-frames":
        return list(range(n - 1, -1, -1))
    if arm == "shuffled-frames":
        digest = hashlib.sha256(f"{seed}|{item_id}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        order = rng.permutation(n).tolist()
        if n > 1 and order == list(range(n)):  # a shuffle that changes nothing is no control
            order = order[1:] + order[:1]
        return order
    return list(range(n))


def build_prompt(item: Item, jpegs: tuple[bytes, ...], timestamps_s: tuple[float, ...], *, arm: str = "main",
                 timestamps: bool = True, seed: int = 0, style: str = "dsr") -> Prompt:
    """The message for one item under one arm. ``jpegs[i]`` was taken at ``timestamps_s[i]``."""
    if style not in PROMPT_STYLES:
        raise DsrError(f"unknown prompt style {style!r}")
    order = arm_order(arm, len(jpegs), item.item_id, seed)
    labels = [timestamps_s[i] for i in (range(len(jpegs)) if arm != "single-frame" else order)]
    parts: list[tuple[str, str | int]] = []
    images: list[bytes] = []
    for slot, src in enumerate(order):
        if timestamps:
            parts.append(("text", TIME_LABEL.format(t=labels[slot]) + "\n"))
        parts.append(("image", len(images)))
        images.append(jpegs[src])
    parts.append(("text", text_without_frames(item, style)))
    # merge adjacent text parts so the text payload is stable and compact
    merged: list[tuple[str, str | int]] = []
    for kind, value in parts:
        if kind == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", str(merged[-1][1]) + str(value))
        else:
            merged.append((kind, value))
    return Prompt(parts=tuple(merged), images=tuple(images), style=style)
