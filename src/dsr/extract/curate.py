"""Video curation (dsr-paper §2): duration filter, shot-cut detection, offline motion filter.

Each clip gets ``Keep()`` or ``Drop(reason)``-style verdicts, one row per clip in the curation table:

* duration: DSR keeps 20–120 s clips;
* shot cuts: a hard cut breaks camera tracking and object identity, so clips with cuts are dropped
  (HSV-histogram distance between consecutive dense frames, well above the clip's typical change);
* motion: "enough things move in the world" — the fraction of sampled frame pairs whose
  camera-compensated residual flow (:mod:`dsr.extract.motion`) marks at least ``min_moving_area`` of
  the frame as moving.

The paper's LLM steps run through any OpenAI-compatible endpoint (the API key only from the environment):
the caption-based motion filter (:func:`llm_motion_filter`) and agent/object class lists
(:func:`llm_agent_object_classes`) of DSR-Train, and the frames-based filter with the six scene classes of
DSR-Bench (:func:`llm_frames_filter`). :func:`curate_video` runs them, when asked, only on clips that passed
the offline filters, stopping at the first step that says no; :func:`curate_videos` runs a batch that
resumes after a kill from a per-row journal.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dsr.errors import DsrError


@dataclass(frozen=True)
class CurateConfig:
    min_duration_s: float = 20.0
    max_duration_s: float = 120.0
    cut_distance: float = 0.5  # Bhattacharyya distance of HSV histograms
    cut_ratio: float = 4.0  # and this many times the clip's median frame-to-frame distance
    min_moving_area: float = 0.01  # fraction of the frame moving in the world
    min_moving_pairs: float = 0.3  # fraction of sampled pairs with movers
    motion_pairs: int = 12  # pairs sampled for the motion filter


@dataclass(frozen=True)
class CurationRow:
    video: str
    keep: bool
    reason: str
    duration_s: float
    num_cuts: int
    moving_pair_frac: float
    # LLM steps (None = step not run; class lists '.'-joined as in the paper's agent_object.csv, "" = none)
    llm_caption_motion: bool | None = None
    llm_agents: str | None = None
    llm_objects: str | None = None
    llm_frames_keep: bool | None = None
    llm_scene: str | None = None


def histogram_distances(frames_rgb: np.ndarray) -> np.ndarray:
    """(N−1,) Bhattacharyya distances between HSV histograms of consecutive frames (N, H, W, 3)."""
    import cv2

    hists = []
    for f in frames_rgb:
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        h = cv2.calcHist([hsv], [0, 1], None, [32, 32], [0, 180, 0, 256])
        hists.append(cv2.normalize(h, h).flatten())
    return np.array([cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA) for a, b in itertools.pairwise(hists)])


def detect_shot_cuts(frames_rgb: np.ndarray, config: CurateConfig = CurateConfig()) -> np.ndarray:
    """Indices i where a hard cut happens between frames i and i+1."""
    if len(frames_rgb) < 2:
        return np.zeros(0, np.int64)
    d = histogram_distances(frames_rgb)
    med = float(np.median(d))
    return np.flatnonzero((d > config.cut_distance) & (d > config.cut_ratio * max(med, 1e-3)))


def moving_pair_fraction(dense_rgb: np.ndarray, config: CurateConfig = CurateConfig()) -> float:
    """Fraction of sampled consecutive dense pairs where enough of the frame moves in the world."""
    from dsr.extract.motion import moving_fraction

    if len(dense_rgb) < 2:
        return 0.0
    starts = np.unique(np.round(np.linspace(0, len(dense_rgb) - 2, config.motion_pairs)).astype(int))
    moving = [moving_fraction(dense_rgb[i], dense_rgb[i + 1]) >= config.min_moving_area for i in starts]
    return float(np.mean(moving))


def curate_video(path: str | os.PathLike[str], config: CurateConfig = CurateConfig(),
                 llm: LlmSteps | None = None, caption: str | None = None) -> CurationRow:
    """One clip's verdict with the first failing reason (all measurements are still reported).

    With ``llm``, a clip that passed the offline filters also goes through the LLM steps
    (:func:`llm_curation_fields`); ``caption`` enables the caption steps.
    """
    from dsr.extract.clip import ClipConfig, load_clip
    from dsr.video import VideoError

    try:
        clip, meta = load_clip(path, ClipConfig(num_samples=8, dense_fps=4.0, dense_max_side=320))
    except VideoError as err:
        return CurationRow(str(path), False, f"unreadable: {err}", 0.0, 0, 0.0)
    cuts = detect_shot_cuts(clip.dense_rgb, config)
    moving = moving_pair_fraction(clip.dense_rgb, config)
    reason = "ok"
    if not config.min_duration_s <= meta.duration_s <= config.max_duration_s:
        reason = f"duration {meta.duration_s:.1f}s outside [{config.min_duration_s:g}, {config.max_duration_s:g}]s"
    elif len(cuts):
        reason = f"{len(cuts)} shot cut(s), first near {clip.dense_indices[cuts[0]] / meta.fps:.1f}s"
    elif moving < config.min_moving_pairs:
        reason = f"too little world motion ({moving:.0%} of sampled pairs move)"
    row = CurationRow(str(path), reason == "ok", reason, meta.duration_s, len(cuts), moving)
    if llm is None or not row.keep:  # clips an offline filter dropped cost no LLM calls
        return row
    llm_reason, fields = llm_curation_fields(clip.frames_rgb, caption, llm)
    return replace(row, keep=llm_reason == "ok", reason=llm_reason, **fields)


def reason_kind(reason: str) -> str:
    """The reason without its clip-specific numbers, for counting drops by reason."""
    for prefix, kind in (("duration", "duration"), ("unreadable", "unreadable"), ("llm: error", "llm: error"),
                         ("too little world motion", "too little world motion")):
        if reason.startswith(prefix):
            return kind
    return "shot cuts" if "shot cut" in reason else reason


def write_curation_table(rows: list[CurationRow], path: str | os.PathLike[str]) -> None:
    """Write the table as CSV (by extension) or JSON lines, atomically."""
    import csv
    import io
    import json

    from dsr.atomic import atomic_write_text

    target = str(path)
    if target.endswith(".csv"):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0]).keys()) if rows else ["video"])
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
        atomic_write_text(target, buf.getvalue())
    elif target.endswith((".jsonl", ".json")):
        atomic_write_text(target, "".join(json.dumps(asdict(r)) + "\n" for r in rows))
    else:
        raise DsrError(f"{target}: curation table must end in .csv or .jsonl")


# --------------------------------------------------------------------------------------------------
# LLM steps on captions (dsr-paper §2; prompts paraphrase paper Fig. 7a)

MOTION_PROMPT = (
    "Here is the caption of a video:\n{caption}\n\n"
    "Ignoring camera movement and articulated motion (e.g. waving arms), do the world coordinates of at "
    "least 3 main subjects change substantially during the video? Only count objects that can be regarded "
    "as a whole, not parts of other objects. Think it over, then answer \"yes\" or \"no\" on a new last line."
)
CLASSES_PROMPT = (
    "Here is the caption of a video:\n{caption}\n\n"
    "Answer in exactly two lines. Line 1: all agent classes (things that act on their own, e.g. person, dog, "
    "car) separated by '.', or None. Line 2: the remaining foreground object classes (discrete, countable "
    "items such as a bottle or a rock, not parts of other objects) separated by '.', or None."
)


def parse_yes_no_last_line(text: str) -> bool:
    """DSR's rule: keep when the last non-empty line contains "yes" and not "no"."""
    lines = [line.strip().lower() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return False
    last = lines[-1]
    return "yes" in last and "no" not in last.replace("yes", "")


def parse_class_lines(text: str) -> tuple[list[str], list[str]] | None:
    """Two lines of '.'-separated classes ("None" = empty) → (agents, objects); None if malformed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 2:
        return None

    def split(line: str) -> list[str]:
        if line.lower().rstrip(".") == "none":
            return []
        return [c.strip().lower() for c in line.split(".") if c.strip()]

    return split(lines[0]), split(lines[1])


def _chat(client: object, model: str, content: str | list[dict[str, Any]]) -> str:
    """One chat turn; ``content`` is the user message (text, or a list of text / image_url parts)."""
    resp = client.chat.completions.create(  # type: ignore[attr-defined]
        model=model, messages=[{"role": "system", "content": "You are a helpful assistant."},
                               {"role": "user", "content": content}], temperature=0.0)
    return resp.choices[0].message.content or ""


def make_llm_client(base_url: str, api_key_env: str = "OPENAI_API_KEY") -> object:
    """OpenAI-compatible client; the key is read from ``api_key_env`` (never from disk or flags)."""
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env, "not-needed"), max_retries=2, timeout=120)


def llm_motion_filter(caption: str, client: object, model: str) -> bool:
    """Caption-based dynamic-video filter (DSR-Train)."""
    return parse_yes_no_last_line(_chat(client, model, MOTION_PROMPT.format(caption=caption)))


def llm_agent_object_classes(caption: str, client: object, model: str, retries: int = 3
                             ) -> tuple[list[str], list[str]]:
    """Agent and object class lists from a caption; retried until the answer has exactly two lines."""
    for _ in range(retries):
        parsed = parse_class_lines(_chat(client, model, CLASSES_PROMPT.format(caption=caption)))
        if parsed is not None:
            return parsed
    raise DsrError(f"LLM did not answer with two class lines after {retries} tries")


# --------------------------------------------------------------------------------------------------
# LLM step on video frames (dsr-paper §2, DSR-Bench; prompt paraphrases paper Fig. 7b)

SCENE_CATEGORIES = (
    "Sports & Recreation",
    "Transportation & Vehicle Operation",
    "Art Performance",
    "Manual Labor & Craftsmanship",
    "Daily Activities & Hobbies",
    "Nature & Wildlife",
)
FRAMES_PROMPT = (
    "The {num_frames} images above are frames taken at even intervals, in order, from one video.\n"
    "Agent classes in it: {agents}. Other object classes in it: {objects}.\n\n"
    "Say \"yes\" only if every one of these holds:\n"
    "1. The camera is not mostly showing the inside of a single moving thing (such as the cabin of a car).\n"
    "2. Setting aside camera movement, articulated movement (limbs, hands) and changes of shape, at least 3 "
    "agents (hands do not count) or objects clearly move to other places in the world.\n"
    "3. None of these objects takes up less than 1% of the image.\n"
    "4. No agent or object takes up more than half of the image.\n"
    "Count only whole, separate, countable things of the classes above that do not touch each other.\n\n"
    "Also pick the category that fits the scene best, one of: {categories}.\n"
    "Reply with exactly two lines and nothing else: \"yes\" or \"no\" on the first, the category name on the "
    "second."
)


def _normalise_category(text: str) -> str:
    return " ".join(text.lower().replace(" and ", " & ").split())


def parse_frames_answer(text: str) -> tuple[bool, str] | None:
    """Exactly two non-empty lines: yes/no (the last-line rule, on line 1) and one of SCENE_CATEGORIES.

    Returns (keep, canonical category), or None when the answer is malformed (so the caller asks again):
    more or fewer lines, a first line with neither "yes" nor "no", or a second line naming no category
    or several.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 2 or not any(word in lines[0].lower() for word in ("yes", "no")):
        return None
    named = [c for c in SCENE_CATEGORIES if _normalise_category(c) in _normalise_category(lines[1])]
    if len(named) != 1:
        return None
    return parse_yes_no_last_line(lines[0]), named[0]


def frames_as_jpeg(frames_rgb: np.ndarray, num_frames: int = 8, max_side: int = 512,
                   quality: int = 90) -> list[bytes]:
    """``num_frames`` uniformly sampled frames of (N, H, W, 3) RGB uint8, long side ≤ ``max_side``, as JPEG."""
    import cv2

    if len(frames_rgb) == 0:
        raise DsrError("the frames filter needs at least one frame")
    picks = np.unique(np.round(np.linspace(0, len(frames_rgb) - 1, num_frames)).astype(int))
    encoded = []
    for frame in frames_rgb[picks]:
        h, w = frame.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale < 1.0:
            frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise DsrError(f"could not encode a {w}x{h} frame as JPEG")
        encoded.append(buf.tobytes())
    return encoded


def _class_list(classes: list[str] | None) -> str:
    if classes is None:  # no caption step ran: let the model judge from the frames
        return "not given"
    return ", ".join(classes) or "none"


def frames_filter_content(frames_rgb: np.ndarray, agent_classes: list[str] | None,
                          object_classes: list[str] | None, num_frames: int = 8, max_side: int = 512
                          ) -> list[dict[str, Any]]:
    """The user message of the frames filter: image_url parts (base64 JPEG data URLs), then the prompt.

    Class lists are None when unknown (no caption), [] when the caption step found none.
    """
    import base64

    jpegs = frames_as_jpeg(frames_rgb, num_frames, max_side)
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(j).decode()}}
        for j in jpegs]
    prompt = FRAMES_PROMPT.format(num_frames=len(jpegs), agents=_class_list(agent_classes),
                                  objects=_class_list(object_classes),
                                  categories="; ".join(SCENE_CATEGORIES))
    return [*parts, {"type": "text", "text": prompt}]


def llm_frames_filter(frames_rgb: np.ndarray, client: object, model: str, agent_classes: list[str] | None,
                      object_classes: list[str] | None, num_frames: int = 8, max_side: int = 512, retries: int = 3
                      ) -> tuple[bool, str]:
    """DSR-Bench's motion filter and scene class from video frames → (keep?, scene category).

    Malformed answers (see :func:`parse_frames_answer`) are asked again, up to ``retries`` times in all.
    """
    content = frames_filter_content(frames_rgb, agent_classes, object_classes, num_frames, max_side)
    for _ in range(retries):
        parsed = parse_frames_answer(_chat(client, model, content))
        if parsed is not None:
            return parsed
    raise DsrError(f"LLM did not answer yes/no and a scene category in two lines after {retries} tries")


# --------------------------------------------------------------------------------------------------
# The LLM steps as one curation stage


@dataclass(frozen=True)
class LlmSteps:
    """Which LLM steps to run, and where: ``client`` from :func:`make_llm_client`."""

    client: object
    model: str
    frames: bool = False  # run the frames filter (needs a vision model)
    num_frames: int = 8
    max_side: int = 512
    retries: int = 3


def _one_line(text: str, secret: str) -> str:
    """First line of ``text``, with the API key blanked in case a server echoed it back."""
    line = (text.strip().splitlines() or [""])[0].strip()
    return line.replace(secret, "***") if secret else line


def llm_curation_fields(frames_rgb: np.ndarray, caption: str | None, llm: LlmSteps
                        ) -> tuple[str, dict[str, Any]]:
    """Run the enabled LLM steps on one clip → (reason, the row's llm_* fields).

    Order: caption motion filter, caption classes, frames filter (given the caption's classes); the first
    step that fails ends the clip ("ok" when all pass). Any error — from the endpoint, the network or a
    malformed answer after retries — is returned as "llm: error: ..." so the batch goes on.
    """
    secret = str(getattr(llm.client, "api_key", "") or "")
    fields: dict[str, Any] = {}
    try:
        agents: list[str] | None = None  # unknown without a caption
        objects: list[str] | None = None
        if caption:
            fields["llm_caption_motion"] = llm_motion_filter(caption, llm.client, llm.model)
            if not fields["llm_caption_motion"]:
                return "llm: no ≥3 movers in caption", fields
            agents, objects = llm_agent_object_classes(caption, llm.client, llm.model, llm.retries)
            fields["llm_agents"] = _one_line(".".join(agents), secret)
            fields["llm_objects"] = _one_line(".".join(objects), secret)
            if not agents:  # the paper's question generator skips videos without agents
                return "llm: no agent class in caption", fields
        if llm.frames:
            keep, scene = llm_frames_filter(frames_rgb, llm.client, llm.model, agents, objects,
                                            llm.num_frames, llm.max_side, llm.retries)
            fields.update(llm_frames_keep=keep, llm_scene=scene)
            if not keep:
                return "llm: frames filter said no", fields
    except Exception as err:  # one clip's failure must not stop the batch
        return f"llm: error: {_one_line(f'{type(err).__name__}: {err}', secret)}", fields
    return "ok", fields


def read_captions(path: str | os.PathLike[str]) -> dict[str, str]:
    """The paper's caption CSV (columns ``videoID`` = video file stem, ``caption``) → {videoID: caption}."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"videoID", "caption"} - set(reader.fieldnames or [])
            if missing:
                raise DsrError(f"{path}: caption CSV lacks column(s) {', '.join(sorted(missing))}")
            captions: dict[str, str] = {}
            for line_no, row in enumerate(reader, start=2):
                video_id, caption = (row["videoID"] or "").strip(), (row["caption"] or "").strip()
                if not video_id:
                    raise DsrError(f"{path}: line {line_no}: empty videoID")
                if captions.get(video_id, caption) != caption:
                    raise DsrError(f"{path}: line {line_no}: videoID {video_id} has two different captions")
                if caption:
                    captions[video_id] = caption
    except OSError as err:
        raise DsrError(f"{path}: cannot read caption CSV ({err.strerror or err})") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise DsrError(f"{path}: not a readable CSV ({_one_line(str(err), '')})") from None
    return captions


# --------------------------------------------------------------------------------------------------
# A resumable batch: rows are journalled one line per clip, so a killed run repeats no paid LLM call


def journal_path(table: str | os.PathLike[str]) -> str:
    """Where :func:`curate_videos` keeps finished rows until the table is written."""
    return f"{table}.partial.jsonl"


def _run_settings(config: CurateConfig, llm: LlmSteps | None, captions: dict[str, str]) -> dict[str, Any]:
    """What a row depends on besides the video; a journal from other settings is not reused."""
    import hashlib
    import json

    settings: dict[str, Any] = {"config": asdict(config), "llm": None}
    if llm is not None:
        settings["llm"] = {"base_url": str(getattr(llm.client, "base_url", "")), "model": llm.model,
                           "frames": llm.frames, "num_frames": llm.num_frames, "max_side": llm.max_side,
                           "retries": llm.retries,
                           "captions_sha256": hashlib.sha256(json.dumps(captions, sort_keys=True).encode()).hexdigest()}
    return settings


def _read_journal(path: str, settings: dict[str, Any]) -> dict[str, CurationRow]:
    """Finished rows by video; a torn last line (killed mid-write) is cut off so appends stay clean."""
    import json

    from dsr.atomic import atomic_write_bytes

    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        data = f.read()
    complete = data[: data.rfind(b"\n") + 1]
    if complete != data:
        atomic_write_bytes(path, complete)
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return {}
    if json.loads(lines[0]).get("settings") != settings:
        raise DsrError(f"{path}: an interrupted curation with other settings; rerun it with the same options "
                       "or delete this file")
    return {row.video: row for row in (CurationRow(**json.loads(line)["row"]) for line in lines[1:])}


def curate_videos(videos: list[str | os.PathLike[str]], table: str | os.PathLike[str],
                  config: CurateConfig = CurateConfig(), llm: LlmSteps | None = None,
                  captions: dict[str, str] | None = None,
                  progress: Callable[[CurationRow, bool], None] | None = None) -> list[CurationRow]:
    """Curate ``videos`` into ``table`` (CSV or JSON lines), resuming an interrupted run of the same settings.

    Each finished row is appended to :func:`journal_path` (flushed and fsynced) before the next clip starts;
    a rerun reuses those rows, so nothing is curated — or paid for — twice. The table is written atomically
    at the end and the journal removed. ``captions`` maps video file stems to captions. ``progress`` is
    called per clip with its row and whether it came from the journal.
    """
    import json

    if not str(table).endswith((".csv", ".jsonl", ".json")):
        raise DsrError(f"{table}: curation table must end in .csv or .jsonl")
    captions = captions or {}
    settings = _run_settings(config, llm, captions)
    journal = journal_path(table)
    done = _read_journal(journal, settings)
    rows = []
    Path(journal).parent.mkdir(parents=True, exist_ok=True)
    with open(journal, "a", encoding="utf-8") as log:
        if log.tell() == 0:  # a new journal (append mode starts at the end)
            log.write(json.dumps({"settings": settings}) + "\n")
        for video in videos:
            row = done.get(str(video))
            if row is None:
                row = curate_video(video, config, llm, captions.get(Path(video).stem))
                log.write(json.dumps({"row": asdict(row)}) + "\n")
                log.flush()
                os.fsync(log.fileno())
            rows.append(row)
            if progress is not None:
                progress(row, str(video) in done)
    write_curation_table(rows, table)
    os.unlink(journal)
    return rows
