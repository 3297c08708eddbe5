"""What a question shows: thumbnails over its interval, with times and the boxes of the objects it names.

For our own QAs (a result row with the structured ``query`` and its ``record_path``) the thumbnails span
the query's frames: the first and last frame of the interval and evenly spaced ones between; a
prediction shows the frames up to the last visible one and then the hidden future frame; an absolute
type adds the observer's frame ``t_v``. Every named object's box is drawn where it is visible, in the
object's colour of ``dsr show`` (:func:`dsr.scene.show.object_color`) and labelled with its id. For
other datasets the thumbnails are spread over the frames the model was served. Captions give the time,
the video frame and the frame's role ("boxes named in the question", "hidden from the model").
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

CAMERA = "camera"


@dataclass(frozen=True)
class Thumb:
    """One JPEG tile and its caption."""

    jpeg: bytes
    caption: str


def question_thumbnails(row: dict[str, Any], *, count: int = 5, side: int = 240) -> list[Thumb]:
    """Thumbnails of the question in ``row`` (a result row); [] when its video or record cannot be read."""
    from dsr.errors import DsrError
    from dsr.video import VideoError

    try:
        if row.get("query") and row.get("record_path"):
            return _from_query(row, count, side)
        return _from_served(row, count, side)
    except (DsrError, VideoError, OSError, ValueError, KeyError, IndexError):
        return []


def _pick(frames: list[int], count: int) -> list[int]:
    """Up to ``count`` of ``frames``, first and last always, the rest evenly spaced."""
    if len(frames) <= count:
        return list(frames)
    idx = np.unique(np.round(np.linspace(0, len(frames) - 1, count)).astype(int))
    return [frames[i] for i in idx]


def _from_query(row: dict[str, Any], count: int, side: int) -> list[Thumb]:
    from dsr.qa.query import Query
    from dsr.qa.question_types import TYPES
    from dsr.scene.io import read_record
    from dsr.video import read_frames

    query = Query.from_json(row["query"])
    record = read_record(row["record_path"])
    qt = TYPES.get(query.type)
    prediction = qt is not None and qt.is_prediction
    named = [w for w in (query.observer, *query.targets) if w != CAMERA]
    if prediction:  # context up to the last visible frame, then the hidden future
        last, future = query.frames[0], query.frames[-1]
        step = max(1, (future - last) // 2)
        shown = [*sorted({max(0, last - k * step) for k in range(count - 1)}), future]
    else:
        shown = _pick(list(query.frames), count)
        if query.t_v is not None and query.t_v not in shown:  # leave a tile for the observer's frame
            shown = _pick(list(query.frames), max(2, count - 1))
    roles = {f: [] for f in shown}
    denote = query.frames[0]  # where the question's boxes are drawn from (the last visible frame if predicting)
    if named:
        roles.setdefault(denote, []).append("boxes named in the question")
    if query.t_v is not None:
        roles.setdefault(query.t_v, []).append("observer's frame (t_v)")
    if prediction:
        roles.setdefault(query.frames[-1], []).append("hidden from the model (the answer's frame)")
    order = sorted(roles)
    video = row.get("video_path") or record.video.path
    pixels = read_frames(video, [int(record.video.frame_indices[t]) for t in order])
    index = {o.object_id: i for i, o in enumerate(record.objects)}
    out = []
    for t, img in zip(order, pixels, strict=True):
        boxes = [(record.objects[index[w]].boxes_xyxy[t], index[w], w) for w in named
                 if w in index and record.objects[index[w]].visible[t]]
        caption = f"t = {record.timestamps_s[t]:.2f} s · frame {int(record.video.frame_indices[t])}"
        if roles[t]:
            caption += " · " + "; ".join(roles[t])
        out.append(Thumb(_tile(img, boxes, side, hidden=prediction and t == query.frames[-1]), caption))
    return out


def _from_served(row: dict[str, Any], count: int, side: int) -> list[Thumb]:
    from dsr.video import probe, read_frames, uniform_indices

    path = row.get("video_path")
    if not path:
        return []
    served = row.get("frames") or {}
    indices = list(served.get("indices") or [])
    stamps = list(served.get("timestamps_s") or [])
    if not indices:
        meta = probe(path)
        indices = uniform_indices(meta.num_frames, count).tolist()
        stamps = [i / meta.fps for i in indices] if getattr(meta, "fps", None) else []
    picked = _pick(list(range(len(indices))), count)
    pixels = read_frames(path, [indices[k] for k in picked])
    out = []
    for k, img in zip(picked, pixels, strict=True):
        when = f"t = {stamps[k]:.2f} s · " if k < len(stamps) else ""
        out.append(Thumb(_tile(img, [], side), f"{when}frame {indices[k]} (served)"))
    return out


def _tile(img: np.ndarray, boxes: list[tuple[np.ndarray, int, str]], side: int, *, hidden: bool = False) -> bytes:
    """The frame scaled to ``side`` px (longer side) with boxes and labels drawn, as JPEG."""
    from PIL import Image, ImageDraw, ImageFont

    from dsr.scene.show import object_color

    pil = Image.fromarray(img)
    scale = side / max(pil.size)
    pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(pil)
    try:
        font: Any = ImageFont.load_default(size=max(10, side // 18))
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    for box, index, name in boxes:
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        colour = object_color(index)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=max(2, side // 120))
        tx, ty = x1, max(0.0, y1 - font.size - 4) if hasattr(font, "size") else y1
        left, top, right, bottom = draw.textbbox((tx, ty), name, font=font)
        draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=colour)
        draw.text((tx, ty), name, fill=(255, 255, 255), font=font)
    if hidden:  # a red frame around what the model never sees
        draw.rectangle([0, 0, pil.width - 1, pil.height - 1], outline=(220, 30, 30), width=max(3, side // 60))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
