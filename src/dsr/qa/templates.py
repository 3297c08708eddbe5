"""Question wording, object denotation and options of template QAs (dsr-paper §7.2, §7.3, §7.6).

Question patterns are the paper's Table 7 (= official code); times are printed ``{:.1f}``. The two
prediction patterns end with ``QAConfig.prediction_terminal`` ("." by default, "" in the official
code, §14 M4). Options are built by running random attribute sequences through the *same* rules
as the answer (:mod:`dsr.qa.rules`), truncated to a random number of segments.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import numpy as np

from dsr.errors import DsrError
from dsr.qa.question_types import TYPES, QuestionType
from dsr.qa.rules import (
    DIRECTION_LABELS,
    QAConfig,
    comparison_answer,
    direction_codes,
    format_answer,
    magnitude_answer,
    magnitude_states,
    merge_states,
    merged_labels,
)
from dsr.qa.schema import LETTERS
from dsr.scene.frames import CAMERA
from dsr.scene.record import SceneRecord


def fmt_time(t_s: float) -> str:
    """Question time: one decimal, as the paper's ``{:.1f}``."""
    return f"{t_s:.1f}"


def box_text(box_xyxy: np.ndarray, width: int, height: int) -> str:
    """[x1,y1,x2,y2] as integer pixels without spaces (§7.3): truncated like the official uint32 cast,
    clipped to the frame."""
    x1, y1, x2, y2 = box_xyxy.tolist() if isinstance(box_xyxy, np.ndarray) else (float(v) for v in box_xyxy)
    if not (math.isfinite(x1) and math.isfinite(y1) and math.isfinite(x2) and math.isfinite(y2)):
        raise DsrError("cannot denote an object without a box")
    xs = [min(max(math.floor(x1), 0), width - 1), min(max(math.floor(x2), 0), width - 1)]
    ys = [min(max(math.floor(y1), 0), height - 1), min(max(math.floor(y2), 0), height - 1)]
    return f"[{xs[0]},{ys[0]},{xs[1]},{ys[1]}]"


def denote(record: SceneRecord, who: str, frame: int, role: str, cache: dict[tuple[str, int], str] | None = None) -> str:
    """How an entity is named in a question (§7.3).

    role: "observer_absolute" ("{class} with bounding box coordinates [..]", box at t_v),
    "initial" (box at the interval's first frame) or "final" (box at the last visible frame).
    The camera is always "camera". ``cache`` memoises box strings per (object, frame).
    """
    if who == CAMERA:
        return "camera"
    obj = record.object(who)
    box = cache.get((who, frame)) if cache is not None else None
    if box is None:
        box = box_text(obj.boxes_xyxy[frame], record.video.width, record.video.height)
        if cache is not None:
            cache[(who, frame)] = box
    if role == "observer_absolute":
        return f"{obj.class_phrase} with bounding box coordinates {box}"
    if role in ("initial", "final"):
        return f"{obj.class_phrase} with {role} bounding box coordinates {box}"
    raise DsrError(f"unknown denotation role {role!r}")


def question_text(qtype: str, *, objv: str, objs: list[str], ts: float | None, te: float | None,
                  tv: float | None, config: QAConfig = QAConfig()) -> str:
    """The question of a template type with its denotations and times filled in."""
    fields = {"objv": objv, "obj1": objs[0], "obj2": objs[1] if len(objs) > 1 else "",
              "ts": "" if ts is None else fmt_time(ts), "te": "" if te is None else fmt_time(te),
              "tv": "" if tv is None else fmt_time(tv), "end": config.prediction_terminal}
    return TYPES[qtype].template.format(**fields)


# --------------------------------------------------------------------------------------------------
# distractors


BATCH = 4  # random candidate sequences drawn per numpy call (3 distractors are needed)


def random_state_batch(qt: QuestionType, num_values: int, config: QAConfig,
                       rng: np.random.Generator, count: int = BATCH,
                       max_merged: int | None = None) -> Iterator[list[str]]:
    """Merged states of ``count`` random attribute sequences for type ``qt`` (official code's
    distributions, §7.6): directions U(−1,1)³ per frame (one vector for a prediction), distances
    U(0,2) per frame, speeds U(0,2) per step (relative speed U(−1,1) under parity), speed
    comparisons two U(0,2) sequences. The numbers are drawn at once; each sequence is described
    lazily, and only its first ``max_merged`` + 1 merged states are guaranteed.

    num_values: frames of the answer's interval (speed types use num_values − 1 steps).
    """
    if qt.rule == "direction":
        frames = 1 if qt.is_prediction else num_values
        codes = direction_codes(rng.uniform(-1.0, 1.0, (count * frames, 3)), config.direction_eps)
        for row in codes.reshape(count, frames).tolist():
            yield merged_labels(row, DIRECTION_LABELS)
    elif qt.quantity == "distance":
        for row in rng.uniform(0.0, 2.0, (count, num_values)).tolist():
            yield magnitude_answer(row, config, max_merged=max_merged)
    elif qt.quantity == "speed":
        if not qt.is_absolute and config.rel_speed_distractor == "official_code":
            for row in rng.uniform(-1.0, 1.0, (count, num_values - 1)).tolist():
                yield merge_states(magnitude_states(row, config, signed=True, max_merged=max_merged))
        else:
            for row in rng.uniform(0.0, 2.0, (count, num_values - 1)).tolist():
                yield magnitude_answer(row, config, max_merged=max_merged)
    elif qt.rule == "comparison":
        for pairs in rng.uniform(0.0, 2.0, (count, num_values - 1, 2)):
            yield comparison_answer(pairs, config)
    else:
        raise DsrError(f"no random distractor distribution for {qt.key!r}")


def distractor_length(num_answer: int, num_random: int, rng: random.Random) -> int:
    """Segments kept from a random description: uniform in [max(1, N−3), min(N+3, M)], lower bound 1
    when M ≤ N−3 (§7.6)."""
    hi = min(num_answer + 3, num_random)
    lo = max(1, num_answer - 3) if num_random > num_answer - 3 else 1
    return lo + int(rng.random() * (hi - lo + 1))  # randint without its call overhead


def make_options(answer_states: list[str], qt: QuestionType, num_values: int, config: QAConfig, rng: np.random.Generator, py_rng: random.Random,
                 pool: Sequence[list[str]] = (), pool_rng: random.Random | None = None,
                 ) -> tuple[tuple[str, str, str, str], str, int]:
    """Four options A–D: the answer at a uniformly random letter and three distinct distractors.

    ``rng`` draws the random sequences, ``py_rng`` the scalar choices (lengths, letter). With a
    ``pool`` (answer states of other queries) and ``pool_rng``, each distractor is replaced by a pool
    answer with probability ``config.distractor_pool_prob``.

    Returns (options, correct letter, number of rejected candidates). Raises DsrError when
    ``config.distractor_tries`` candidates do not give three distinct distractors.
    """
    wording = config.answer_wording
    kind = qt.rule
    correct = format_answer(answer_states, kind, wording)
    n = len(answer_states)
    distractors: list[str] = []
    rejected = 0
    tries = 0
    while len(distractors) < 3:
        if tries >= config.distractor_tries:
            raise DsrError(f"could not draw 3 distinct distractors in {config.distractor_tries} tries")
        batch = 3 if tries == 0 else BATCH  # rejections are rare: draw exactly 3 first
        for states in random_state_batch(qt, num_values, config, rng,
                                         min(batch, config.distractor_tries - tries), max_merged=n + 3):
            tries += 1
            states = states[:distractor_length(n, len(states), py_rng)]
            text = format_answer(states, kind, wording)
            if text == correct or text in distractors:
                rejected += 1
                continue
            distractors.append(text)
            if len(distractors) == 3:
                break
    if pool and pool_rng is not None:
        # our addition: swap distractors for answers of other queries of this type; its own random
        # stream leaves the paper's draws (and so every query, answer and letter) unchanged
        for i in range(3):
            if pool_rng.random() < config.distractor_pool_prob:
                states = pool[int(pool_rng.random() * len(pool))]
                text = format_answer(states[:distractor_length(n, len(states), pool_rng)], kind, wording)
                if text != correct and text not in distractors:
                    distractors[i] = text
    letter_index = int(py_rng.random() * 4)
    texts = [*distractors[:letter_index], correct, *distractors[letter_index:]]
    return (texts[0], texts[1], texts[2], texts[3]), LETTERS[letter_index], rejected
