"""Tracking by detection: greedy IoU association of per-frame detections into tracks (SORT without Kalman).

Weight-free and deterministic. A detection joins the live track with the highest IoU above
``min_iou`` (or, failing that, the nearest box centre within ``max_center_jump`` box diagonals, which
keeps fast movers whose boxes stop overlapping at low frame rates). Tracks survive ``max_gap`` missed
frames; tracks seen in fewer than ``min_frames`` frames are dropped as noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsr.extract.adapters import box_iou
from dsr.extract.base import Estimator


@dataclass(frozen=True)
class TrackerConfig:
    min_iou: float = 0.2
    max_center_jump: float = 0.75  # × box diagonal
    max_gap: int = 3
    stitch_gap: int = 4  # frames between a track's end and another's start that stitching may bridge
    min_frames: int = 4
    min_frame_frac: float = 0.25  # and at least this fraction of the sampled frames
    # never link detections further apart in time than this: at DSR's 32 frames over a long video (2.56 s
    # apart on 80 s) the nearest box is usually someone else, and a chained track poisons every answer
    max_link_s: float = 1.0


@dataclass
class Track:
    """Detections of one object: frame index → detection index in that frame."""

    track_id: int
    members: dict[int, int] = field(default_factory=dict)
    last_frame: int = -1
    last_box: np.ndarray = field(default_factory=lambda: np.zeros(4))


def _center_distance(a: np.ndarray, b: np.ndarray) -> float:
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    return float(np.linalg.norm(ca - cb))


def associate_tracks(boxes_per_frame: list[np.ndarray], config: TrackerConfig = TrackerConfig(),
                     times_s: np.ndarray | None = None) -> list[Track]:
    """boxes_per_frame[t]: (N_t, 4) xyxy → tracks (kept ones only, ordered by first frame).

    ``times_s`` (T,): the frames' timestamps; detections more than ``max_link_s`` apart are never linked (a
    track ends instead), and the minimum length counts only frames that could be linked at all.
    """
    if times_s is not None and len(boxes_per_frame) > 1:
        times = np.asarray(times_s, np.float64)
        if np.median(np.diff(times)) > config.max_link_s:
            return []  # frames too far apart to follow anything
        # split into runs of frames close enough in time, track each run on its own
        breaks = np.flatnonzero(np.diff(times) > config.max_link_s) + 1
        out: list[Track] = []
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(times)], strict=True):
            for tr in associate_tracks(boxes_per_frame[lo:hi], config):
                out.append(Track(tr.track_id, {t + lo: j for t, j in tr.members.items()}, tr.last_frame + lo,
                                 tr.last_box))
        return sorted(out, key=lambda tr: (min(tr.members), tr.track_id))
    live: list[Track] = []
    done: list[Track] = []
    next_id = 0
    for t, boxes in enumerate(boxes_per_frame):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for tr in list(live):
            if t - tr.last_frame > config.max_gap + 1:
                live.remove(tr)
                done.append(tr)
        taken: set[int] = set()
        if live and len(boxes):
            iou = box_iou(np.stack([tr.last_box for tr in live]), boxes)
            pairs = sorted(((iou[i, j], i, j) for i in range(len(live)) for j in range(len(boxes))), reverse=True)
            used_tracks: set[int] = set()
            for score, i, j in pairs:
                if score < config.min_iou or i in used_tracks or j in taken:
                    continue
                used_tracks.add(i)
                taken.add(j)
                live[i].members[t] = j
                live[i].last_frame, live[i].last_box = t, boxes[j]
            for i, tr in enumerate(live):
                if i in used_tracks:
                    continue
                diag = float(np.hypot(tr.last_box[2] - tr.last_box[0], tr.last_box[3] - tr.last_box[1]))
                free = [j for j in range(len(boxes)) if j not in taken]
                if not free:
                    break
                dist = [_center_distance(tr.last_box, boxes[j]) for j in free]
                k = int(np.argmin(dist))
                if dist[k] <= config.max_center_jump * max(diag, 1.0):
                    j = free[k]
                    taken.add(j)
                    tr.members[t] = j
                    tr.last_frame, tr.last_box = t, boxes[j]
        for j in range(len(boxes)):
            if j not in taken:
                live.append(Track(track_id=next_id, members={t: j}, last_frame=t, last_box=boxes[j]))
                next_id += 1
    done.extend(live)
    done = stitch_tracks(done, boxes_per_frame, config)
    need = max(config.min_frames, int(np.ceil(config.min_frame_frac * len(boxes_per_frame))))
    kept = [tr for tr in done if len(tr.members) >= need]
    return sorted(kept, key=lambda tr: (min(tr.members), tr.track_id))


def _centers(track: Track, boxes_per_frame: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    frames = np.array(sorted(track.members))
    boxes = np.array([np.asarray(boxes_per_frame[t]).reshape(-1, 4)[track.members[t]] for t in frames])
    return frames, np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2])


def stitch_tracks(tracks: list[Track], boxes_per_frame: list[np.ndarray], config: TrackerConfig = TrackerConfig()
                  ) -> list[Track]:
    """Join a track that ends with one that starts ≤ ``stitch_gap`` frames later where the first one's
    constant-velocity extrapolation lands within ``max_center_jump`` box diagonals of the second's start.

    Fast movers at low sampling rates change box size and position too much between detections for IoU
    association; this recovers their identity instead of splitting them into short tracks.
    """
    tracks = sorted(tracks, key=lambda tr: min(tr.members))
    merged = True
    while merged:
        merged = False
        for a in tracks:
            fa, ca = _centers(a, boxes_per_frame)
            vel = (ca[-1] - ca[0]) / max(1, fa[-1] - fa[0]) if len(fa) > 1 else np.zeros(2)
            last = np.asarray(boxes_per_frame[fa[-1]]).reshape(-1, 4)[a.members[fa[-1]]]
            diag = float(np.hypot(last[2] - last[0], last[3] - last[1]))
            for b in tracks:
                if b is a:
                    continue
                fb, cb = _centers(b, boxes_per_frame)
                gap = fb[0] - fa[-1]
                if not 0 < gap <= config.stitch_gap + 1:
                    continue
                predicted = ca[-1] + vel * gap
                if np.linalg.norm(predicted - cb[0]) <= config.max_center_jump * max(diag, 1.0) * (1 + 0.5 * gap):
                    a.members.update(b.members)
                    a.last_frame, a.last_box = b.last_frame, b.last_box
                    tracks.remove(b)
                    merged = True
                    break
            if merged:
                break
    return tracks


class IouTracker(Estimator):
    """Tracking role: :func:`associate_tracks` over per-frame detections."""

    name = "tracking/iou"
    role = "tracking"

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config

    def track(self, boxes_per_frame: list[np.ndarray]) -> list[Track]:
        return associate_tracks(boxes_per_frame, self.config)
