"""Free-form (non-template) QAs written by an LLM from 3D trajectories (dsr-paper §8).

The prompt gives the viewpoint, the sampled timestamps and every tracked object's per-frame 3D
centre in the viewpoint frame (x forward, y left, z up; lengths / scene scale, 2 decimals), and
asks for ONE question that 2D knowledge alone cannot answer, four answers and the correct letter,
as exactly 6 lines. Replies are validated strictly (6 lines, a letter, distinct options, every box
string a known object's, no perspective words in the question) and retried. Where the question is
a recognisable superlative over objects ("which ... is closest to ... at the end"), the claimed
answer is re-derived from the record and disagreements are flagged in ``geometric_check``.

Any OpenAI-compatible ``/chat/completions`` endpoint works; the API key is read from the
environment variable named in the settings and never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dsr import __version__
from dsr.errors import DsrError
from dsr.qa.generate import GenerationReport, frame_plan, stable_hash
from dsr.qa.query import Geometry, QAError, Query
from dsr.qa.question_types import NON_TEMPLATE
from dsr.qa.rules import QAConfig
from dsr.qa.schema import LETTERS, QA, FrameRefs, Generator, Quantity
from dsr.qa.templates import denote, fmt_time
from dsr.scene.frames import CAMERA, points_in_observer
from dsr.scene.record import SceneRecord

if TYPE_CHECKING:
    from dsr.qa.run import FreeFormSettings

SYSTEM_PROMPT = "You are a helpful assistant."
MIN_GAP = 3  # §8: sub-interval index gap >= 3 for non-template QAs
MAX_TRIALS = 50
_BOX = re.compile(r"\[\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\]")
_PREFIX = re.compile(r"^\(?([A-Da-d])[\).:]\s+")
_LETTER = re.compile(r"^(?:(?:correct|answer)[a-z ]*[:\-]\s*)?\(?([A-D])\)?\.?$", re.IGNORECASE)


class LLMError(DsrError):
    """The endpoint failed or never produced a valid reply."""


@dataclass(frozen=True)
class FreeFormInput:
    """What the prompt shows: viewpoint text, times, object descriptions and their positions."""

    viewpoint: str  # "relative" / "absolute"
    observer: str
    viewpoint_text: str
    t_v: int | None
    frames: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    object_ids: tuple[str, ...]
    descriptions: tuple[str, ...]
    positions: np.ndarray  # (objects, frames, 3) in the viewpoint frame, lengths / scene scale


def build_prompt(inp: FreeFormInput) -> str:
    """The user message (the paper's inputs and constraints, in our words)."""
    coords = {d: np.round(inp.positions[i], 2).tolist() for i, d in enumerate(inp.descriptions)}
    times = ", ".join(f"{t:.1f}s" for t in inp.timestamps_s)
    return (
        f"From the viewpoint of {inp.viewpoint_text}, these are the 3D coordinates (x, y, z) of some objects "
        f"between {fmt_time(inp.timestamps_s[0])}s and {fmt_time(inp.timestamps_s[-1])}s. "
        "+x points forward, +y points left and +z points up. "
        f"The coordinates were collected at these timestamps: {times}.\n"
        f"{json.dumps(coords)}\n\n"
        "From how the 3D relationships between these objects change over time, write ONE multiple-choice "
        "question that cannot be answered with 2D knowledge alone, and 4 answers of which exactly one is "
        "correct. Do not describe the viewpoint or perspective in the question. Do not ask anything "
        "quantitative or tied to exact coordinates. Refer to every object by its full description exactly "
        "as written above, bounding box included.\n"
        "Output exactly 6 lines and nothing else: line 1 the question; lines 2-5 the four answers; "
        "line 6 the letter (A, B, C or D) of the correct answer."
    )


@dataclass(frozen=True)
class ParsedReply:
    question: str
    options: tuple[str, str, str, str]
    letter: str


def parse_reply(text: str, descriptions: tuple[str, ...]) -> ParsedReply:
    """Validate an LLM reply strictly; raise LLMError saying what is wrong."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) != 6:
        raise LLMError(f"expected 6 non-empty lines, got {len(lines)}")
    question = lines[0]
    if question.lower().startswith("question:"):
        question = question.split(":", 1)[1].strip()
    options = []
    for want, line in zip(LETTERS, lines[1:5], strict=True):
        m = _PREFIX.match(line)
        if m:
            if m.group(1).upper() != want:
                raise LLMError(f"answer line labelled {m.group(1)!r} where {want!r} was expected")
            line = line[m.end():].strip()
        if not line:
            raise LLMError(f"answer {want} is empty")
        options.append(line)
    m = _LETTER.match(lines[5])
    if not m:
        raise LLMError(f"last line must be the correct letter, got {lines[5][:40]!r}")
    if len({o.lower() for o in options}) != 4:
        raise LLMError("answers are not distinct")
    if not question.endswith("?"):
        raise LLMError("the question must end with '?'")
    if re.search(r"\b(perspective|viewpoint|point of view)\b", question, re.IGNORECASE):
        raise LLMError("the question describes the perspective")
    known_boxes = {b for d in descriptions for b in _BOX.findall(d)}
    for part in (question, *options):
        for box in _BOX.findall(part):
            if re.sub(r"\s", "", box) not in known_boxes:
                raise LLMError(f"unknown bounding box {box}")
    if not any(d in part for d in descriptions for part in (question, *options)):
        raise LLMError("no object is named by its description")
    return ParsedReply(question=question, options=tuple(options), letter=m.group(1).upper())  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# geometric check


_SUPERLATIVES = (  # (pattern, rule, pick) — path length first: "travelled the farthest" is not a distance
    (r"\b(moved|moves|move|travel+ed|travels|covered|covers)\b.*\b(most|farthest|furthest|longest)\b",
     "path_length", "max"),
    (r"\b(closest|nearest)\b", "distance", "min"),
    (r"\b(farthest|furthest)\b", "distance", "max"),
    (r"\b(highest|topmost)\b", "height", "max"),
    (r"\blowest\b", "height", "min"),
    (r"\bleftmost\b|\bfurthest (to the )?left\b|\bmost to the left\b", "left", "max"),
    (r"\brightmost\b|\bfurthest (to the )?right\b|\bmost to the right\b", "left", "min"),
)


def geometric_check(question: str, options: tuple[str, ...], letter: str, inp: FreeFormInput) -> dict[str, Any]:
    """Re-derive a superlative answer from the positions; status agree / disagree / unchecked."""
    q = question.lower()
    rule = pick = None
    for pattern, r, p in _SUPERLATIVES:
        if re.search(pattern, q):
            rule, pick = r, p
            break
    if rule is None:
        return {"status": "unchecked", "why": "not a recognised superlative question"}
    option_objects = []
    for opt in options:
        hits = [i for i, d in enumerate(inp.descriptions) if d in opt]
        if len(hits) != 1:
            return {"status": "unchecked", "why": "options do not each name exactly one object", "rule": rule}
        option_objects.append(hits[0])
    pos = inp.positions
    if rule == "path_length":
        score = np.linalg.norm(np.diff(pos, axis=1), axis=2).sum(axis=1)
    else:
        if re.search(r"\b(start|beginning|initially|first)\b", q):
            frame = 0
        elif re.search(r"\b(end|final|finally|last)\b", q):
            frame = -1
        else:
            return {"status": "unchecked", "why": "no time phrase (start/end)", "rule": rule}
        p = pos[:, frame]
        score = {"distance": np.linalg.norm(p, axis=1), "height": p[:, 2], "left": p[:, 1]}[rule]
    cand = score[option_objects]
    best = int(np.argmax(cand) if pick == "max" else np.argmin(cand))
    ordered = np.sort(cand)
    margin = float(abs(ordered[-1] - ordered[-2]) if pick == "max" else abs(ordered[1] - ordered[0]))
    expected = LETTERS[best]
    status = "agree" if expected == letter else "disagree"
    if margin < 0.02:  # too close to call in the normalised scale
        status = "unchecked"
    return {"status": status, "rule": f"{pick}_{rule}", "expected": expected, "claimed": letter,
            "scores": [round(float(s), 4) for s in cand], "margin": round(margin, 4)}


# --------------------------------------------------------------------------------------------------
# sampling inputs and calling the endpoint


def sample_input(record: SceneRecord, geom: Geometry, config: QAConfig, rng: np.random.Generator) -> FreeFormInput:
    """One random viewpoint, interval and object set (§8), truncated on loss of visibility."""
    plan = frame_plan(record, config)
    usable = plan.usable
    agents = [o.object_id for o in record.objects
              if o.is_agent and o.orientation is not None]
    viewpoint = "absolute" if rng.random() < 0.5 else "relative"
    choices = [CAMERA, *agents]
    observer = choices[int(rng.integers(len(choices)))]
    u = len(usable)
    if u - 1 < MIN_GAP:
        raise QAError("clip too short", "clip_too_short")
    while True:
        i, j = sorted(rng.choice(u, size=2, replace=False).tolist())
        if j - i >= MIN_GAP:
            break
    frames = usable[i:j + 1].tolist()
    t_v = int(usable[int(rng.integers(u))]) if viewpoint == "absolute" else None
    conf_ok = {o.object_id: o.orientation.known & (o.orientation.confidence >= config.orientation_min_confidence)
               for o in record.objects if o.orientation is not None}
    if observer != CAMERA:
        obs = record.object(observer)
        at = t_v if t_v is not None else frames[0]
        if not (obs.visible[at] and obs.center_known[at] and conf_ok[observer][at]):
            raise QAError("observer not visible or not confidently oriented", "observer_not_visible")
    skip = {observer} if viewpoint == "relative" else set()
    ids = [o.object_id for o in record.objects
           if o.object_id not in skip and o.visible[frames[0]] and o.center_known[frames[0]]]
    if not ids:
        raise QAError("no object visible at the interval start", "freeform_no_objects")
    keep = len(frames)
    for k, t in enumerate(frames):
        ok = record.camera.valid[t] and all(record.object(o).visible[t] and record.object(o).center_known[t]
                                            for o in ids)
        if viewpoint == "relative" and observer != CAMERA:
            obs = record.object(observer)
            ok = ok and bool(obs.visible[t] and obs.center_known[t] and conf_ok[observer][t])
        if not ok:
            keep = k
            break
    if keep < config.min_frames:
        raise QAError(f"{keep} frames before loss of visibility", "too_few_visible_frames")
    frames = frames[:keep]
    f = np.asarray(frames)
    track = geom.poses[observer]
    poses = track[f] if viewpoint == "relative" else np.broadcast_to(track[t_v], (len(f), 4, 4))
    positions = np.stack([points_in_observer(geom.positions[o][f], poses) for o in ids]) / geom.scale
    descriptions = tuple(denote(record, o, frames[0], "initial") for o in ids)
    if len(set(descriptions)) != len(descriptions):
        raise QAError("two objects share one description", "ambiguous_denotation")
    if observer == CAMERA:
        vtext = "camera" if t_v is None else f"camera at {fmt_time(float(record.timestamps_s[t_v]))}s"
    elif viewpoint == "relative":
        vtext = denote(record, observer, frames[0], "initial")
    else:
        vtext = f"{denote(record, observer, t_v, 'observer_absolute')} at {fmt_time(float(record.timestamps_s[t_v]))}s"
    return FreeFormInput(viewpoint=viewpoint, observer=observer, viewpoint_text=vtext, t_v=t_v, frames=tuple(frames),
                         timestamps_s=tuple(float(record.timestamps_s[t]) for t in frames), object_ids=tuple(ids),
                         descriptions=descriptions, positions=positions)


def chat(settings: FreeFormSettings, messages: list[dict[str, str]], *, seed: int | None = None) -> str:
    """One chat-completions call; returns the reply text or raises LLMError (never shows the key)."""
    import httpx

    headers = {"Content-Type": "application/json"}
    key = os.environ.get(settings.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body: dict[str, Any] = {"model": settings.model, "messages": messages, "temperature": 0.7}
    if seed is not None:
        body["seed"] = seed
    url = settings.base_url.rstrip("/") + "/chat/completions"
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=settings.timeout_s)
    except httpx.HTTPError as exc:
        raise LLMError(f"{url}: {exc.__class__.__name__}: {exc}") from None
    if resp.status_code != 200:
        raise LLMError(f"{url}: HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        return str(resp.json()["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"{url}: reply is not a chat completion") from None


def ask(settings: FreeFormSettings, inp: FreeFormInput, *, seed: int | None = None) -> tuple[ParsedReply, int]:
    """Prompt, validate, retry: (parsed reply, attempts used) or LLMError with the last problem."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": build_prompt(inp)}]
    last = "no attempt"
    for attempt_no in range(1, settings.retries + 2):
        try:
            return parse_reply(chat(settings, messages, seed=seed), inp.descriptions), attempt_no
        except LLMError as exc:
            last = str(exc)
    raise LLMError(f"no valid reply after {settings.retries + 1} attempts: {last}")


def final_question(inp: FreeFormInput, question: str) -> str:
    """§8 post-processing: viewpoint and interval prefix, question with a lower-case first letter."""
    lead = "Following the perspective of" if inp.viewpoint == "relative" else "From the perspective of"
    body = question[:1].lower() + question[1:]
    return (f"{lead} {inp.viewpoint_text}, between {fmt_time(inp.timestamps_s[0])}s and "
            f"{fmt_time(inp.timestamps_s[-1])}s, {body}")


def generate_freeform_qas(record: SceneRecord, settings: FreeFormSettings, config: QAConfig = QAConfig(), *,
                          seed: int = 0, report: GenerationReport | None = None, record_path: str | None = None,
                          video_path: str | None = None) -> list[QA]:
    """Up to ``settings.per_video`` free-form QAs of one record; failures are counted in ``report``."""
    report = report if report is not None else GenerationReport()
    geom = Geometry.from_record(record, config)
    rng = np.random.default_rng([seed, stable_hash(record.record_id), 8])
    qas: list[QA] = []
    trials = 0
    while len(qas) < settings.per_video and trials < MAX_TRIALS:
        trials += 1
        report.attempts += 1
        try:
            inp = sample_input(record, geom, config, rng)
        except QAError as exc:
            report.fail(NON_TEMPLATE, exc.reason)
            continue
        try:
            reply, _ = ask(settings, inp, seed=int(rng.integers(2**31)))
        except LLMError:
            report.fail(NON_TEMPLATE, "llm_invalid_output")
            break  # the endpoint is not cooperating: do not spend 50 trials on it
        check = geometric_check(reply.question, reply.options, reply.letter, inp)
        query = Query(type=NON_TEMPLATE, observer=inp.observer, targets=inp.object_ids, frames=inp.frames,
                      t_v=inp.t_v, stated_viewpoint=inp.viewpoint)  # type: ignore[arg-type]
        question = final_question(inp, reply.question)
        digest = hashlib.sha1(json.dumps([query.to_json(), question], sort_keys=True).encode()).hexdigest()[:12]
        fi = np.asarray(inp.frames)
        qa = QA(
            qa_id=f"{record.record_id}/{NON_TEMPLATE}/{digest}", video_id=record.record_id,
            video_path=video_path if video_path is not None else record.video.path, record_path=record_path,
            type=NON_TEMPLATE, source="free_form", question=question, options=reply.options, answer=reply.letter,
            answer_text=reply.options[LETTERS.index(reply.letter)], visible_until_s=None, query=query,
            frames=FrameRefs(indices=tuple(record.video.frame_indices[fi].tolist()),
                             timestamps_s=tuple(record.timestamps_s[fi].tolist()), record_indices=inp.frames),
            quantity=Quantity(name="object_positions", values=inp.positions.tolist(), scale=geom.scale,
                              objects=inp.object_ids),
            stability=None,
            generator=Generator(dsr_version=__version__, seed=seed, config=config.to_json(), llm_model=settings.model),
            geometric_check=check)
        report.add(qa)
        report.checks[check["status"]] += 1
        qas.append(qa)
    return qas
