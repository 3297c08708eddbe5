"""Video curation (dsr-paper §2): duration filter, shot-cut detection, offline motion filter.

Each clip gets ``Keep()`` or ``Drop(reason)``-style verdicts, one row per clip in the curation table:

* duration: DSR keeps 20–120 s clips;
* shot cuts: a hard cut breaks camera tracking and object identity, so clips with cuts are dropped
  (HSV-histogram distance between consecutive dense frames, well above the clip's typical change);
* motion: "enough things move in the world" — the fraction of sampled frame pairs whose
  camera-compensated residual flow (:mod:`dsr.extract.motion`) marks at least ``min_moving_area`` of
  the frame as moving.

The paper's caption-based LLM steps run through any OpenAI-compatible endpoint (:func:`llm_motion_filter`,
:func:`llm_agent_object_classes`; the API key only from the environment). The video-frames filter with the
six scene classes (DSR-Bench, Gemini) is not implemented yet (TODO).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass

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


def curate_video(path: str | os.PathLike[str], config: CurateConfig = CurateConfig()) -> CurationRow:
    """One clip's verdict with the first failing reason (all measurements are still reported)."""
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
    return CurationRow(str(path), reason == "ok", reason, meta.duration_s, len(cuts), moving)


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


def _chat(client: object, model: str, prompt: str) -> str:
    resp = client.chat.completions.create(  # type: ignore[attr-defined]
        model=model, messages=[{"role": "system", "content": "You are a helpful assistant."},
                               {"role": "user", "content": prompt}], temperature=0.0)
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
