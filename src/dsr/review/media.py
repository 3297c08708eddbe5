"""What the item page shows besides text: the clip's interval, frames, named boxes, the quantity plot.

* **Interval**: the QA's own frames (``frames.timestamps_s``) when the file has them (our exports),
  else the times in the question ("Between 1.0s and 3.5s"), else the whole visible video.
* **Boxes**: parsed from the question text, which names every object by its box (dsr-paper §7.3:
  "person with initial bounding box coordinates [x1,y1,x2,y2]"), so official DSR-Bench questions work
  too. Each box belongs to a reference time: "initial" → the interval's first frame, "final" → the last
  visible frame (predictions), plain "bounding box coordinates … at T s" (an absolute observer) → T.
* **Frames**: decoded server-side with PyAV (:mod:`dsr.video`) as JPEG, cached per item; the page uses
  them as the fallback of the HTML5 video and to draw the boxes on.
* **Quantity plot**: the QA's per-frame ``quantity`` with the thresholds of its rule, read from the
  generator's ``QAConfig`` (:mod:`dsr.qa.rules` is the one place the rules live); the rule re-derives
  the answer from the plotted values so a reviewer sees whether text and numbers agree.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from dsr.errors import DsrError

STRIP_FRAMES = 12
FRAME_MAX_SIDE = 640

_BOX = re.compile(r"\bwith\s+(?:(?P<role>initial|final)\s+)?bounding box coordinates\s*"
                  r"\[\s*(?P<x1>-?\d+(?:\.\d+)?)\s*,\s*(?P<y1>-?\d+(?:\.\d+)?)\s*,\s*"
                  r"(?P<x2>-?\d+(?:\.\d+)?)\s*,\s*(?P<y2>-?\d+(?:\.\d+)?)\s*\]")
_LABEL_CUT = re.compile(r",|;|\bbetween\b|\band\b|\bof\b|\bto\b|\bcompare\b|\bpredict\b", re.IGNORECASE)
_INTERVAL = re.compile(r"\bBetween\s+(?P<ts>\d+(?:\.\d+)?)\s*s\s+and\s+(?P<te>\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
_AT_TIME = re.compile(r"\bat\s+(?P<tv>\d+(?:\.\d+)?)\s*s\b")


@dataclass(frozen=True)
class NamedBox:
    """An object named in the question by its box. box_xyxy: pixels of the original video."""

    label: str
    role: str  # "initial", "final" or "observer"
    box_xyxy: tuple[float, float, float, float]
    time_s: float | None = None
    frame: int | None = None  # video frame index at time_s (None when the video cannot be read)


def parse_boxes(question: str) -> list[NamedBox]:
    """Every "<label> with [initial|final] bounding box coordinates [x1,y1,x2,y2]" of a question."""
    out: list[NamedBox] = []
    prev_end = 0
    for m in _BOX.finditer(question):
        prefix = question[prev_end:m.start()]
        label = _LABEL_CUT.split(prefix)[-1].strip().removeprefix("the ").strip() or "object"
        box = tuple(float(m.group(k)) for k in ("x1", "y1", "x2", "y2"))
        out.append(NamedBox(label=label, role=m.group("role") or "observer", box_xyxy=box))  # type: ignore[arg-type]
        prev_end = m.end()
    return out


def parse_times(question: str) -> dict[str, float]:
    """The times stated in a question: ``ts``/``te`` (the interval) and ``tv`` (the observer's time)."""
    out: dict[str, float] = {}
    if m := _INTERVAL.search(question):
        out["ts"], out["te"] = float(m.group("ts")), float(m.group("te"))
    if m := _AT_TIME.search(question):
        out["tv"] = float(m.group("tv"))
    return out


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    timestamps_s: np.ndarray  # (N,) float64, from the first frame

    @property
    def duration_s(self) -> float:
        return float(len(self.timestamps_s) / self.fps) if self.fps > 0 else float(self.timestamps_s[-1])

    def nearest_frame(self, time_s: float) -> int:
        return int(np.argmin(np.abs(self.timestamps_s - time_s)))


@dataclass(frozen=True)
class ItemView:
    """The item page's media plan. ``strip``: (video frame index, time s) shown as frames."""

    start_s: float
    end_s: float
    visible_until_s: float | None
    boxes: tuple[NamedBox, ...]
    strip: tuple[tuple[int, float], ...] = ()
    width: int = 0
    height: int = 0
    video_error: str | None = None
    reference_frames: tuple[int, ...] = field(default=())

    @property
    def frames(self) -> tuple[int, ...]:
        """Every frame index the page may ask for (strip + reference frames), sorted."""
        return tuple(sorted({f for f, _ in self.strip} | set(self.reference_frames)))


def _qa_frames(qa: dict[str, Any]) -> tuple[list[int], list[float], list[int]]:
    frames = qa.get("frames")
    if isinstance(frames, str):
        import json

        try:
            frames = json.loads(frames)
        except ValueError:
            frames = None
    if not isinstance(frames, dict):
        return [], [], []
    indices = [int(i) for i in frames.get("indices") or []]
    times = [float(t) for t in frames.get("timestamps_s") or []]
    record = [int(i) for i in frames.get("record_indices") or []]
    if len(times) != len(indices):
        return [], [], []
    return indices, times, record if len(record) == len(indices) else []


def build_view(question: str, qa: dict[str, Any], visible_until_s: float | None, video: VideoInfo | None,
               video_error: str | None = None) -> ItemView:
    """Plan the item page's media from the question, the QA's own fields and the probed video."""
    indices, times, record_indices = _qa_frames(qa)
    stated = parse_times(question)
    predicting = visible_until_s is not None
    if predicting:
        # a prediction is judged on everything the model sees (from the start) up to the hidden future
        start, end = 0.0, times[-1] if times else (video.duration_s if video is not None else visible_until_s)
    elif times:
        start, end = times[0], times[-1]
    elif "ts" in stated:
        start, end = stated["ts"], stated["te"]
    else:
        start = 0.0
        end = visible_until_s if visible_until_s is not None else (video.duration_s if video is not None else 0.0)
    query = qa.get("query") if isinstance(qa.get("query"), dict) else {}
    boxes: list[NamedBox] = []
    for box in parse_boxes(question):
        t: float | None
        frame: int | None = None
        if box.role == "initial":
            t = times[0] if times else stated.get("ts", start)
            frame = indices[0] if indices else None
        elif box.role == "final":
            # a prediction's frames are (last visible, hidden future)
            if times:
                t, frame = times[0] if len(times) == 2 else times[-1], indices[0] if len(times) == 2 else indices[-1]
            elif visible_until_s is not None and video is not None:
                t = visible_until_s - 0.5 / max(video.fps, 1e-6)
            else:
                t = end
        else:
            t = stated.get("tv")
            t_v = query.get("t_v") if query else None
            if t_v is not None and int(t_v) in record_indices:
                k = record_indices.index(int(t_v))
                t, frame = times[k], indices[k]
        if frame is None and t is not None and video is not None:
            frame = video.nearest_frame(t)
        boxes.append(NamedBox(box.label, box.role, box.box_xyxy, t, frame))
    strip: list[tuple[int, float]] = []
    if indices and not predicting:
        pick = np.unique(np.round(np.linspace(0, len(indices) - 1, min(STRIP_FRAMES, len(indices)))).astype(int))
        strip = [(indices[k], times[k]) for k in pick]
    elif video is not None and len(video.timestamps_s):
        first, last = video.nearest_frame(start), video.nearest_frame(end)
        if last < first:
            first, last = last, first
        picks = set(np.round(np.linspace(first, last, min(STRIP_FRAMES, last - first + 1))).astype(int).tolist())
        picks |= set(indices)  # a prediction's last visible and future frames
        strip = [(int(f), float(video.timestamps_s[f])) for f in sorted(picks) if 0 <= f < len(video.timestamps_s)]
    if video is not None:
        top = len(video.timestamps_s) - 1
        strip = [(f, t) for f, t in strip if 0 <= f <= top]
        boxes = [b if b.frame is None or 0 <= b.frame <= top else NamedBox(b.label, b.role, b.box_xyxy, b.time_s, None)
                 for b in boxes]
    refs = tuple(sorted({b.frame for b in boxes if b.frame is not None}))
    return ItemView(start_s=float(start), end_s=float(end), visible_until_s=visible_until_s, boxes=tuple(boxes),
                    strip=tuple(strip), width=video.width if video else 0, height=video.height if video else 0,
                    video_error=video_error, reference_frames=refs if video is not None else ())


class _Lru:
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class MediaCache:
    """Probed videos, decoded JPEG frames and quantity plots, kept in memory (bounded)."""

    def __init__(self, items: int = 64) -> None:
        self._probes = _Lru(256)
        self._frames = _Lru(items)
        self._plots = _Lru(items * 4)
        self._locks: dict[Any, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock_for(self, key: Any) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def video_info(self, path: str | None) -> tuple[VideoInfo | None, str | None]:
        """(info, None) or (None, one-line reason)."""
        if not path:
            return None, "the item names no local video"
        from dsr.video import VideoError, probe

        p = Path(path)
        try:
            st = p.stat()
        except OSError:
            return None, f"video not found: {p.name}"
        key = (str(p), st.st_size, st.st_mtime_ns)
        cached = self._probes.get(key)
        if cached is not None:
            return cached
        with self._lock_for(("probe", key)):
            cached = self._probes.get(key)
            if cached is None:
                try:
                    meta = probe(p)
                    cached = (VideoInfo(meta.width, meta.height, meta.fps, meta.timestamps_s), None)
                except VideoError as exc:
                    cached = (None, str(exc).replace(str(p), p.name))
                self._probes.put(key, cached)
        return cached

    def frame_jpeg(self, key: Any, path: str, wanted: tuple[int, ...], frame: int) -> bytes:
        """JPEG of ``frame``, decoding all ``wanted`` frames of the item at once on a miss."""
        frames = self._frames.get(key)
        if frames is None:
            with self._lock_for(("frames", key)):
                frames = self._frames.get(key)
                if frames is None:
                    frames = _decode_jpegs(path, wanted)
                    self._frames.put(key, frames)
        return frames[frame]

    def plot_png(self, key: Any, make: Callable[[], bytes | None]) -> bytes | None:
        png = self._plots.get(key)
        if png is None:
            png = make()
            self._plots.put(key, png if png is not None else b"")
        return png or None


def _decode_jpegs(path: str, indices: tuple[int, ...]) -> dict[int, bytes]:
    from PIL import Image

    from dsr.video import read_frames

    frames = read_frames(path, list(indices))
    out: dict[int, bytes] = {}
    for index, rgb in zip(indices, frames, strict=True):
        img = Image.fromarray(rgb)
        scale = FRAME_MAX_SIDE / max(img.size)
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        out[int(index)] = buf.getvalue()
    return out


# ---------------------------------------------------------------------------------------------- quantity


@dataclass(frozen=True)
class RuleCheck:
    """The answer the rule derives from the QA's quantity, and whether it is the generator's answer."""

    kind: str
    derived: str | None
    matches: bool | None
    error: str | None = None


def _config(qa: dict[str, Any]) -> Any:
    from dsr.qa.rules import QAConfig

    generator = qa.get("generator")
    cfg = generator.get("config") if isinstance(generator, dict) else None
    if not isinstance(cfg, dict):
        return QAConfig()
    known = {f.name for f in fields(QAConfig)}
    try:
        return QAConfig(**{k: v for k, v in cfg.items() if k in known})
    except (DsrError, TypeError, ValueError):
        return QAConfig()


def _quantity(qa: dict[str, Any]) -> tuple[str, np.ndarray, dict[str, Any]] | None:
    q = qa.get("quantity")
    if not isinstance(q, dict) or q.get("rule") not in ("magnitude", "direction", "comparison"):
        return None
    try:
        values = np.asarray(q.get("values"), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if values.size == 0 or not np.all(np.isfinite(values)):
        return None
    return str(q["rule"]), values, q


def rule_check(qa: dict[str, Any], answer_text: str) -> RuleCheck | None:
    """Re-derive the answer from the QA's quantity with its generator's rule config (None: no quantity)."""
    got = _quantity(qa)
    if got is None:
        return None
    kind, values, _ = got
    from dsr.qa.rules import answer_text as rule_answer
    from dsr.qa.rules import canonical_wording

    cfg = _config(qa)
    try:
        derived = rule_answer(kind, values if kind != "direction" else values.reshape(-1, 3), cfg)  # type: ignore[arg-type]
    except DsrError as exc:
        return RuleCheck(kind, None, None, str(exc))
    return RuleCheck(kind, derived, canonical_wording(derived) == canonical_wording(answer_text))


def quantity_png(qa: dict[str, Any], answer_text: str) -> bytes | None:
    """A PNG of the per-frame quantity with its rule's thresholds (None when the QA has no quantity)."""
    got = _quantity(qa)
    if got is None:
        return None
    kind, values, q = got
    cfg = _config(qa)
    _, times, _ = _qa_frames(qa)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    check = rule_check(qa, answer_text)
    name = str(q.get("name") or "quantity")
    if kind == "direction":
        unit = values.reshape(-1, 3) / np.maximum(np.linalg.norm(values.reshape(-1, 3), axis=1, keepdims=True), 1e-12)
        ax = fig.add_subplot(1, 1, 1)
        labels = ("x forward (+) / behind (−)", "y left (+) / right (−)", "z above (+) / below (−)")
        if len(unit) == 1:
            ax.bar(range(3), unit[0], color=["#1f77b4", "#ff7f0e", "#2ca02c"])
            ax.set_xticks(range(3), ["forward", "left", "up"])
        else:
            x = np.asarray(times) if len(times) == len(unit) else np.arange(len(unit))
            for k in range(3):
                ax.plot(x, unit[:, k], marker="o", ms=3, label=labels[k])
            ax.set_xlabel("time (s)" if len(times) == len(unit) else "frame")
            ax.legend(fontsize=7, loc="best")
        eps = cfg.direction_eps
        for sign in (1, -1):
            ax.axhline(sign * eps, color="k", ls="--", lw=0.8)
        ax.text(0.01, eps, f" ±ε = {eps:.3f}", transform=ax.get_yaxis_transform(), fontsize=7, va="bottom")
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(f"unit {name}")
    else:
        ax = fig.add_subplot(2, 1, 1)
        ax2 = fig.add_subplot(2, 1, 2, sharex=ax)
        n = len(values)
        x = np.asarray(times[-n:]) if len(times) >= n else np.arange(n)
        xlabel = "time (s)" if len(times) >= n else "step"
        if kind == "magnitude":
            ax.plot(x, values, marker="o", ms=3, color="#1f77b4", label=name)
            ratio = values[1:] / np.where(values[:-1] > 0, values[:-1], np.nan)
            ax2.plot(x[1:], ratio, marker="o", ms=3, color="#9467bd", label="ratio to previous")
            ax2.axhline(cfg.constant_low, color="k", ls="--", lw=0.8)
            ax2.axhline(cfg.constant_high, color="k", ls="--", lw=0.8)
            ax2.set_ylabel("ratio", fontsize=8)
            ax2.text(0.01, cfg.constant_high, f" constant band [{cfg.constant_low}, {cfg.constant_high}]",
                     transform=ax2.get_yaxis_transform(), fontsize=7, va="bottom")
        else:  # comparison: (n, 2) speeds of (former, latter)
            pair = values.reshape(-1, 2)
            x = x[-len(pair):] if len(x) >= len(pair) else np.arange(len(pair))
            ax.plot(x, pair[:, 0], marker="o", ms=3, label="former")
            ax.plot(x, pair[:, 1], marker="s", ms=3, label="latter")
            ratio = pair[:, 0] / np.where(pair[:, 1] > 0, pair[:, 1], np.nan)
            ax2.plot(x, ratio, marker="o", ms=3, color="#9467bd")
            ax2.axhline(cfg.speed_ratio, color="k", ls="--", lw=0.8)
            ax2.axhline(1.0 / cfg.speed_ratio, color="k", ls="--", lw=0.8)
            ax2.set_yscale("log")
            ax2.set_ylabel("former / latter", fontsize=8)
            ax2.text(0.01, cfg.speed_ratio, f" ×{cfg.speed_ratio} / ÷{cfg.speed_ratio}",
                     transform=ax2.get_yaxis_transform(), fontsize=7, va="bottom")
        ax.axhline(cfg.floor, color="r", ls=":", lw=0.8)
        ax.text(0.01, cfg.floor, f" floor {cfg.floor}", transform=ax.get_yaxis_transform(), fontsize=7,
                va="bottom", color="r")
        ax.set_ylabel(f"{name} (scene scale)", fontsize=8)
        ax.legend(fontsize=7, loc="best")
        ax2.set_xlabel(xlabel)
    title = f"rule: {check.derived}" if check is not None and check.derived else f"{kind} rule"
    if check is not None and check.matches is False:
        title += "  (differs from the generator's answer)"
    fig.suptitle(title if len(title) < 90 else title[:87] + "…", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()

