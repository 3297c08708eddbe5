"""Grounding given first-frame boxes: the user (or a benchmark) names the objects, we track them.

The issue's second grounding mode: instead of discovering movers, ``dsr extract --init-boxes FILE.json``
takes ``{object_id: {"class": phrase, "box": [x1, y1, x2, y2], "is_agent": bool}}`` at the first sampled
frame and follows each box through the sampled frames. The default tracker is normalised cross-correlation template
matching with a constant-velocity search window and a few scales (:func:`_track_ncc`); OpenCV's MIL tracker
(``cv2.TrackerMIL``, the one classical tracker in the headless build — KCF/CSRT need the contrib build,
Nano/Vit/DaSiamRPN need ONNX weights) is the alternative (``method="mil"``). On the MuJoCo worlds MIL lagged
behind moving objects (mean box IoU 0.13–0.86 vs 0.17–0.88 for NCC on one orbit clip) at 20× the cost. MIL
keeps the box size fixed, so with ``snap_to_movers`` a mover detection of similar size that overlaps the
tracked box (IoU ≥ ``snap_iou``) replaces it and the tracker restarts there. Class phrases and agent flags are kept as
given. A box that leaves the image (less than ``min_inside_frac`` of it inside) ends its track.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsr.errors import DsrError
from dsr.extract.adapters import box_iou
from dsr.extract.base import Estimator
from dsr.extract.motion import Detection


class InitBoxError(DsrError):
    """A malformed init-boxes file (one line naming the object and the problem)."""


@dataclass(frozen=True, eq=False)
class InitBox:
    """One named object at the first sampled frame: box (4,) xyxy in full-resolution pixels."""

    class_phrase: str
    box_xyxy: np.ndarray
    is_agent: bool


@dataclass(frozen=True)
class GivenTrackConfig:
    method: str = "ncc"  # "ncc" (template matching, default) or "mil" (cv2.TrackerMIL)
    search_window_px: int = 40  # search radius around the predicted box at the sampled frame rate (~5 fps)
    scales: tuple[float, ...] = (0.9, 1.0, 1.1)  # NCC: template scales tried per frame
    min_match: float = 0.45  # NCC: a best match below this is a miss
    update_match: float = 0.7  # NCC: the template is renewed from frames matched at least this well
    max_misses: int = 3  # NCC: consecutive misses that end a track
    # snapping to mover detections lets the box follow scale changes, but on the MuJoCo worlds it more
    # often jumped to a neighbour's fragment than it helped (docs/bench-extract.md §6), so it is opt-in
    snap_to_movers: bool = False
    snap_iou: float = 0.4
    snap_area_ratio: float = 2.0  # a detection snaps only if its area is within this factor of the box's
    min_inside_frac: float = 0.25
    # NCC: the box size follows the median flow of corners inside it (see _flow_scale); off = fixed scales
    flow_scale: bool = True
    flow_inset: float = 0.15  # fraction of the box trimmed on each side (its edges hold background)
    flow_min_points: int = 6
    flow_scale_range: tuple[float, float] = (0.85, 1.18)  # per sampled-frame step
    tracked_score: float = 0.5  # confidence of a frame the tracker alone placed (snapped: the detection's)


@dataclass(frozen=True, eq=False)
class GivenTrack:
    """boxes (T, 4) NaN where not visible; scores (T,); masks[t] (H, W) bool or None."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    masks: list[np.ndarray | None]


def parse_init_boxes(obj: object, width: int | None = None, height: int | None = None) -> dict[str, InitBox]:
    """Validate the JSON object of an init-boxes file (see module docstring)."""
    if not isinstance(obj, dict) or not obj:
        raise InitBoxError("init boxes must be a non-empty JSON object {object_id: {class, box, is_agent}}")
    out: dict[str, InitBox] = {}
    for oid, spec in obj.items():
        if not isinstance(spec, dict):
            raise InitBoxError(f"init box {oid!r}: expected an object with class, box, is_agent")
        phrase = spec.get("class")
        if not isinstance(phrase, str) or not phrase.strip():
            raise InitBoxError(f"init box {oid!r}: 'class' must be a non-empty string")
        box = spec.get("box")
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise InitBoxError(f"init box {oid!r}: 'box' must be [x1, y1, x2, y2]")
        try:
            arr = np.array([float(v) for v in box])
        except (TypeError, ValueError):
            raise InitBoxError(f"init box {oid!r}: 'box' must hold four numbers") from None
        if not np.isfinite(arr).all() or arr[2] <= arr[0] or arr[3] <= arr[1]:
            raise InitBoxError(f"init box {oid!r}: box {box} must be finite with x2 > x1 and y2 > y1")
        if width is not None and height is not None and (arr[2] <= 0 or arr[3] <= 0 or arr[0] >= width
                                                         or arr[1] >= height):
            raise InitBoxError(f"init box {oid!r}: box {box} lies outside the {width}x{height} frame")
        agent = spec.get("is_agent", False)
        if not isinstance(agent, bool):
            raise InitBoxError(f"init box {oid!r}: 'is_agent' must be true or false")
        out[str(oid)] = InitBox(class_phrase=phrase.strip(), box_xyxy=arr, is_agent=agent)
    return out


def read_init_boxes(path: str | os.PathLike[str]) -> dict[str, InitBox]:
    """Read and validate an init-boxes JSON file."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except OSError as err:
        raise InitBoxError(f"{p}: cannot read init boxes ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise InitBoxError(f"{p}: not valid JSON (line {err.lineno}: {err.msg})") from None
    return parse_init_boxes(obj)


def _clip_box(box: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """Box clipped to the image, and the fraction of its area that was inside."""
    clipped = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    inside = max(clipped[2] - clipped[0], 0) * max(clipped[3] - clipped[1], 0)
    return clipped, float(inside / area)


def _box_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    m = np.zeros((height, width), bool)
    x1, y1, x2, y2 = box
    m[max(0, int(y1)):min(height, int(y2) + 1), max(0, int(x1)):min(width, int(x2) + 1)] = True
    return m


def _new_tracker(frame_bgr: np.ndarray, box: np.ndarray, config: GivenTrackConfig) -> object:
    import cv2

    params = cv2.TrackerMIL_Params()
    params.samplerSearchWinSize = float(config.search_window_px)
    tracker = cv2.TrackerMIL.create(params)
    x1, y1, x2, y2 = (int(v) for v in np.round(box))
    tracker.init(frame_bgr, (x1, y1, max(2, x2 - x1), max(2, y2 - y1)))
    return tracker


def track_given_boxes(frames_rgb: np.ndarray, init: dict[str, InitBox],
                      detections: list[list[Detection]] | None = None,
                      config: GivenTrackConfig = GivenTrackConfig()) -> dict[str, GivenTrack]:
    """Follow each init box from frame 0 through ``frames_rgb`` (T, H, W, 3); see the module docstring."""
    if config.method == "ncc":
        return _track_ncc(frames_rgb, init, config)
    if config.method != "mil":
        raise DsrError(f"given-box tracker must be 'ncc' or 'mil', got {config.method!r}")
    n, height, width = frames_rgb.shape[:3]
    frames_bgr = np.ascontiguousarray(frames_rgb[..., ::-1])
    boxes = {oid: np.full((n, 4), np.nan) for oid in init}
    scores = {oid: np.zeros(n) for oid in init}
    masks: dict[str, list[np.ndarray | None]] = {oid: [None] * n for oid in init}
    trackers = {}
    for oid, ib in init.items():
        box, frac = _clip_box(ib.box_xyxy, width, height)
        if frac <= 0:
            continue
        boxes[oid][0], scores[oid][0] = box, 1.0
        masks[oid][0] = _box_mask(box, height, width)
        trackers[oid] = _new_tracker(frames_bgr[0], box, config)
    for t in range(1, n):
        predicted: dict[str, np.ndarray] = {}
        for oid, tracker in list(trackers.items()):
            ok, (x, y, w, h) = tracker.update(frames_bgr[t])
            if not ok:
                continue
            box, frac = _clip_box(np.array([x, y, x + w, y + h], dtype=np.float64), width, height)
            if frac < config.min_inside_frac:
                del trackers[oid]  # left the image: the track ends here
                continue
            predicted[oid] = box
        frame_dets = detections[t] if detections is not None and config.snap_to_movers else []
        snapped = _snap_to_detections(predicted, frame_dets, config)
        for oid, box in predicted.items():
            det = snapped.get(oid)
            if det is not None:
                box = np.clip(det.box_xyxy, 0, [width - 1, height - 1, width - 1, height - 1])
                trackers[oid] = _new_tracker(frames_bgr[t], box, config)
            boxes[oid][t] = box
            scores[oid][t] = det.score if det is not None else config.tracked_score
            masks[oid][t] = det.mask if det is not None else _box_mask(box, height, width)
    return {oid: GivenTrack(boxes[oid], scores[oid], masks[oid]) for oid in init}


def _track_ncc(frames_rgb: np.ndarray, init: dict[str, InitBox], config: GivenTrackConfig
               ) -> dict[str, GivenTrack]:
    """Template tracking by normalised cross-correlation (``cv2.matchTemplate``, TM_CCOEFF_NORMED).

    Per frame and object: search ``search_window_px`` around the constant-velocity prediction at a few
    template scales; the best match above ``min_match`` is the new box (its score the confidence), and
    matches above ``update_match`` renew the template (so it follows slow changes of appearance without
    drifting on poor matches). The frame is padded so that a box may leave the image partly.
    """
    import cv2

    n, height, width = frames_rgb.shape[:3]
    pad = int(max(config.search_window_px, 8) + max((b.box_xyxy[2:] - b.box_xyxy[:2]).max() for b in init.values()))
    padded = [cv2.copyMakeBorder(np.ascontiguousarray(f), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
              for f in frames_rgb]
    grays = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames_rgb]
    out = {}
    for oid, ib in init.items():
        boxes, scores = np.full((n, 4), np.nan), np.zeros(n)
        masks: list[np.ndarray | None] = [None] * n
        box, frac = _clip_box(ib.box_xyxy, width, height)
        if frac <= 0:
            out[oid] = GivenTrack(boxes, scores, masks)
            continue
        boxes[0], scores[0], masks[0] = box, 1.0, _box_mask(box, height, width)
        x1, y1, x2, y2 = (int(v) for v in np.round(box))
        template = padded[0][y1 + pad:y2 + pad + 1, x1 + pad:x2 + pad + 1]
        centre = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0])
        velocity = np.zeros(2)
        last_t, misses = 0, 0
        for t in range(1, n):
            guess = centre + velocity * (t - last_t)
            radius = config.search_window_px * (1 + misses)
            best = (-1.0, None, None)
            # the box's size follows the points tracked inside it (template scores hardly separate a 2% change)
            flow_scale = (_flow_scale(grays[last_t], grays[t], boxes[last_t], config) if config.flow_scale
                          else None)
            for scale in config.scales if flow_scale is None else (flow_scale,):
                th = max(4, round(template.shape[0] * scale))
                tw = max(4, round(template.shape[1] * scale))
                sx1 = round(float(guess[0]) - tw / 2 - radius) + pad
                sy1 = round(float(guess[1]) - th / 2 - radius) + pad
                sx1, sy1 = max(0, sx1), max(0, sy1)
                sx2 = min(padded[t].shape[1], sx1 + tw + 2 * radius)
                sy2 = min(padded[t].shape[0], sy1 + th + 2 * radius)
                region = padded[t][sy1:sy2, sx1:sx2]
                if region.shape[0] < th or region.shape[1] < tw:
                    continue
                resized = cv2.resize(template, (tw, th), interpolation=cv2.INTER_LINEAR)
                score_map = cv2.matchTemplate(region, resized, cv2.TM_CCOEFF_NORMED)
                _, score, _, loc = cv2.minMaxLoc(score_map)
                if scale != 1.0 and flow_scale is None:
                    score -= 0.02  # prefer the current size on near ties (no drift of scale on noise)
                if score > best[0]:
                    best = (score, (sx1 + loc[0] - pad, sy1 + loc[1] - pad, tw, th), resized)
            score, found, resized = best
            if found is None or score < config.min_match:
                misses += 1
                if misses > config.max_misses:
                    break
                continue
            fx, fy, tw, th = found
            raw = np.array([fx, fy, fx + tw - 1, fy + th - 1], dtype=np.float64)
            box, frac = _clip_box(raw, width, height)
            if frac < config.min_inside_frac:
                break  # left the image: the track ends here
            new_centre = np.array([fx + (tw - 1) / 2.0, fy + (th - 1) / 2.0])
            velocity = (new_centre - centre) / (t - last_t)
            centre, last_t, misses = new_centre, t, 0
            boxes[t], scores[t], masks[t] = box, float(np.clip(score, 0, 1)), _box_mask(box, height, width)
            template = (padded[t][fy + pad:fy + pad + th, fx + pad:fx + pad + tw]
                        if score >= config.update_match and frac >= 0.999 else resized)
        out[oid] = GivenTrack(boxes, scores, masks)
    return out


def _flow_scale(prev_gray: np.ndarray, next_gray: np.ndarray, box: np.ndarray, config: GivenTrackConfig
                ) -> float | None:
    """Scale change of an object between two frames from corners tracked inside its box (median flow).

    Corners in the inner part of the box are tracked by pyramidal Lucas–Kanade forwards and backwards;
    points that do not come back within 1 px are dropped; the scale is the median ratio of pairwise
    distances after/before. None when fewer than ``flow_min_points`` survive.
    """
    import cv2

    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    inset = config.flow_inset
    mask = np.zeros(prev_gray.shape, np.uint8)
    ix1, iy1 = max(0, int(x1 + inset * w)), max(0, int(y1 + inset * h))
    ix2, iy2 = min(prev_gray.shape[1], int(np.ceil(x2 - inset * w))), min(prev_gray.shape[0], int(np.ceil(y2 - inset * h)))
    if ix2 - ix1 < 4 or iy2 - iy1 < 4:
        return None
    mask[iy1:iy2, ix1:ix2] = 255
    pts = cv2.goodFeaturesToTrack(prev_gray, 60, 0.01, 3, mask=mask)
    if pts is None or len(pts) < config.flow_min_points:
        return None
    lk = {"winSize": (15, 15), "maxLevel": 3}
    fwd, st1, _ = cv2.calcOpticalFlowPyrLK(prev_gray, next_gray, pts, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(next_gray, prev_gray, fwd, None, **lk)
    good = (st1[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - pts)[:, 0], axis=1) < 1.0)
    if good.sum() < config.flow_min_points:
        return None
    a, b = pts[good, 0].astype(np.float64), fwd[good, 0].astype(np.float64)
    i, j = np.triu_indices(len(a), 1)
    before = np.linalg.norm(a[i] - a[j], axis=1)
    keep = before > 0.1 * max(w, h)
    if keep.sum() < config.flow_min_points:
        return None
    ratio = float(np.median(np.linalg.norm(b[i] - b[j], axis=1)[keep] / before[keep]))
    lo, hi = config.flow_scale_range
    return float(np.clip(ratio, lo, hi))


def _snap_to_detections(predicted: dict[str, np.ndarray], dets: list[Detection], config: GivenTrackConfig
                        ) -> dict[str, Detection]:
    """Greedy one-to-one match of tracked boxes to mover detections of similar size (IoU ≥ snap_iou)."""
    if not predicted or not dets:
        return {}
    ids = list(predicted)
    det_boxes = np.stack([d.box_xyxy for d in dets])
    iou = box_iou(np.stack([predicted[i] for i in ids]), det_boxes)
    area_p = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in (predicted[i] for i in ids)])
    area_d = (det_boxes[:, 2] - det_boxes[:, 0]) * (det_boxes[:, 3] - det_boxes[:, 1])
    ratio = np.maximum(area_p[:, None], area_d[None, :]) / np.maximum(np.minimum(area_p[:, None], area_d[None, :]),
                                                                       1e-9)
    iou = np.where(ratio <= config.snap_area_ratio, iou, 0.0)
    out: dict[str, Detection] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < config.snap_iou:
            break
        if ids[i] in out or j in used:
            continue
        out[ids[i]] = dets[j]
        used.add(int(j))
    return out


class GivenBoxTracker(Estimator):
    """Tracking role for given boxes: :func:`track_given_boxes` (NCC template matching, or MIL)."""

    name = "tracking/given"
    role = "tracking"
    requires = ("cv2",)

    def __init__(self, config: GivenTrackConfig = GivenTrackConfig()) -> None:
        self.config = config

    def track(self, frames_rgb: np.ndarray, init: dict[str, InitBox],
              detections: list[list[Detection]] | None = None) -> dict[str, GivenTrack]:
        return track_given_boxes(frames_rgb, init, detections, self.config)
