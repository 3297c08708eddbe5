"""Dense multi-object tracking at a tracking rate, independent of the frames the questions sample.

DSR samples 32 frames however long the clip is (2.56 s apart on an 80-s video), far too sparse to follow
anyone: an association across that gap chains different people into one track, and then every answer about
that "object" is wrong. So objects are tracked through the whole clip at ``track_fps`` (every frame for clips
up to ``every_frame_s``), and the record's sampled frames read their boxes off these dense tracks.

The detector runs on the tracking frames nearest a ``detect_fps`` grid; on the frames between, every live
track's box follows the median optical flow of the corners inside it (:func:`median_flow_box`, Kalal et al.'s
median-flow idea with its forward-backward check). At the next detection the flow's accumulated drift is
spread back over those frames. The flow never starts a track or teaches the appearance model; a track's boxes
after its last detection are dropped.

Identity safety comes first (:class:`DenseTracker`): an identity switch poisons every answer about an
object, a fragmented track only loses some. Per detection frame:

1. Each live track predicts its box: constant velocity in the image, moved by the camera's image motion
   between the two frames (a similarity fitted to LK-tracked corners, :func:`camera_image_motion`).
2. A detection may join a track only through the gates: the same class, box IoU with the prediction
   ≥ ``min_iou`` or the centre within ``max_center_jump`` box diagonals, and a colour histogram close to the
   track's (Bhattacharyya ≤ ``max_appearance``). Cost = (1 − IoU) + ``appearance_weight`` · appearance.
3. Hungarian assignment over the gated pairs, established tracks (≥ ``min_hits`` observations) first, then
   the tentative ones on what is left (a matching cascade: a new track next to an established one is usually
   a duplicate box of it). **Unsure means stop**: when a track's second-best gated detection, or a
   detection's second-best gated track of the same stage, costs less than ``ambiguity_margin`` more than the
   assigned pair (two people side by side at a crossing), the track ends there and the detection starts a new
   id. Two boxes never continue one identity when the evidence cannot tell them apart.
4. Unmatched tracks coast for ``max_coast_s`` after their last detection (``max_flow_coast_s`` while the flow
   follows them), then end. A hard cut (the frame's HSV histogram jumps, as in
   :func:`dsr.extract.curate.detect_shot_cuts`) ends every track.

Afterwards :func:`reidentify` joins a track that ended to one that starts later (occlusion, a missed
crossing) only when it is unambiguous: same class, starts within ``reid_window_s``, the start lies within the
first track's extrapolated motion (radius growing with the gap), appearance ≤ ``reid_max_appearance``, no
other track passes the same motion gates on either side (appearance alone never decides), and the pair is
the mutual best by a margin — otherwise the new id stays.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from dsr.extract.adapters import box_iou
from dsr.extract.base import Estimator
from dsr.extract.camera.features import work_gray


@dataclass(frozen=True)
class DenseTrackConfig:
    track_fps: float = 10.0  # tracking rate for long clips (frames per second)
    every_frame_s: float = 12.0  # clips up to this long are tracked at every frame
    min_iou: float = 0.25  # gate: IoU of a detection with the track's predicted box …
    max_center_jump: float = 0.5  # … or its centre within this many box diagonals of the prediction
    # gate: box area ratio since the track was last seen, per 0.1 s (a person is not twice as big 0.1 s later)
    max_size_ratio: float = 1.5
    max_appearance: float = 0.5  # gate: Bhattacharyya distance of colour histograms
    appearance_weight: float = 1.0
    ambiguity_margin: float = 0.2  # competing candidates closer than this in cost = unsure: end the track
    max_coast_s: float = 0.6  # a track unmatched this long ends
    min_hits: int = 3  # tracks observed in fewer tracking frames are dropped as detector noise
    velocity_frames: int = 4  # velocity from the observations of up to this many frames back
    # re-identification after occlusion (offline, between ended and later-born tracks)
    reid_window_s: float = 3.0
    reid_max_appearance: float = 0.35
    reid_radius_diag: float = 0.6  # start within this many box diagonals of the extrapolation …
    reid_radius_growth: float = 0.3  # … plus this many per second of gap
    reid_margin: float = 0.1  # the best pair must beat the second best (both ways) by this
    # hard cuts end every track (HSV histogram distance, as dsr curate)
    cut_distance: float = 0.5
    cut_ratio: float = 4.0
    # box interpolation for the sampled frames between two observations of one track
    max_interp_s: float = 1.0  # the identity is the same at both ends; a walker moves on a line over 1 s
    # the detector runs on the tracking frames nearest a grid at this rate (None: on every tracking frame); on
    # the frames between, each live track's box follows the median optical flow of the corners inside it
    # (forward-backward checked). YOLO was 2x real time on its own at every 24-fps frame on 2 cores
    # (docs/bench-extract.md §11)
    detect_fps: float | None = 12.0
    flow_max_points: int = 40  # corners followed inside a box
    flow_min_points: int = 6  # fewer surviving the forward-backward check: the box is not propagated
    flow_fb_max_px: float = 1.0  # forward-backward disagreement (work pixels) above which a corner is dropped
    # a track the flow follows frame to frame coasts this long without a detection (YOLO-tiny missed a
    # twirling dancer at 4 detection ticks in a row, 0.7 s)
    max_flow_coast_s: float = 1.5
    flow_max_scale_step: float = 1.15  # a box that grows or shrinks more than this in one frame is not followed


@dataclass(frozen=True, eq=False)
class FrameDetection:
    """One detection handed to the tracker: box (4,) xyxy px, score, class name, appearance (K,) histogram."""

    box_xyxy: np.ndarray
    score: float
    class_name: str
    appearance: np.ndarray


@dataclass(frozen=True, eq=False)
class DenseTrack:
    """One identity over the clip.

    frame_indices: (N,) int64 video frames where the object was observed (detected and associated).
    times_s: (N,) float64 their timestamps; boxes_xyxy (N, 4) px; scores (N,); appearance: (K,) mean histogram.
    ended_by: why the online pass stopped it ("coast", "ambiguous", "cut", "end").
    """

    track_id: int
    class_name: str
    frame_indices: np.ndarray
    times_s: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    appearance: np.ndarray
    ended_by: str = "end"
    parts: tuple[int, ...] = ()  # ids of the online tracks re-identification joined into this one

    @property
    def start_s(self) -> float:
        return float(self.times_s[0])

    @property
    def end_s(self) -> float:
        return float(self.times_s[-1])


@dataclass
class _Live:
    track_id: int
    class_name: str
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # as observed (output)
    scores: list[float] = field(default_factory=list)
    appearance: np.ndarray | None = None
    # the last few observed boxes moved into the current frame's pixels by the camera's image motion since,
    # so that their differences are the object's own motion
    recent: list[np.ndarray] = field(default_factory=list)
    recent_times: list[float] = field(default_factory=list)
    predicted: np.ndarray | None = None  # box at the current frame
    detected: list[bool] = field(default_factory=list)  # per observation: a detection (else flow-propagated)
    last_detected: float = float("nan")  # time of the last detection joined to the track …
    detected_box: np.ndarray | None = None  # … and its box

    @property
    def last_time(self) -> float:
        return self.times[-1]

    @property
    def hits(self) -> int:
        return sum(self.detected)

    def velocity(self) -> np.ndarray:
        """px / s of the box centre over the recent (camera-compensated) observations."""
        dt = self.recent_times[-1] - self.recent_times[0]
        return (_center(self.recent[-1]) - _center(self.recent[0])) / dt if dt > 0 else np.zeros(2)


def _center(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _diag(box: np.ndarray) -> float:
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6))


def bhattacharyya(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two histograms (normalised here; 0 = identical, 1 = disjoint)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return 1.0
    bc = float(np.sum(np.sqrt((a / sa) * (b / sb))))
    return float(np.sqrt(max(0.0, 1.0 - min(bc, 1.0))))


def apply_similarity(box: np.ndarray, motion: np.ndarray | None) -> np.ndarray:
    """Move a box by a 2×3 image transform (the camera's image motion between two frames)."""
    if motion is None:
        return box
    corners = np.array([[box[0], box[1], 1.0], [box[2], box[3], 1.0]])
    moved = corners @ np.asarray(motion, np.float64).T
    return np.array([moved[0, 0], moved[0, 1], moved[1, 0], moved[1, 1]])


class CutDetector:
    """Hard cuts from frame to frame, online: the HSV-histogram distance to the previous frame exceeds
    ``cut_distance`` and ``cut_ratio`` times the median distance so far (dsr curate's rule, made causal)."""

    def __init__(self, config: DenseTrackConfig = DenseTrackConfig()) -> None:
        self.config = config
        self._dists: list[float] = []
        self._last: np.ndarray | None = None

    def step(self, frame_hist: np.ndarray) -> bool:
        prev, self._last = self._last, frame_hist
        if prev is None:
            return False
        d = bhattacharyya(prev, frame_hist)
        med = float(np.median(self._dists)) if self._dists else 0.0
        cut = d > self.config.cut_distance and d > self.config.cut_ratio * max(med, 1e-3)
        if not cut:
            self._dists.append(d)
        return cut


class DenseTracker:
    """The online pass (see the module docstring). Feed :meth:`update` frame by frame, then :meth:`finish`."""

    def __init__(self, config: DenseTrackConfig = DenseTrackConfig()) -> None:
        self.config = config
        self.live: list[_Live] = []
        self.done: list[DenseTrack] = []
        self._next_id = 0
        self._last_frame = -1  # the previous tracking frame (a track observed there can be flow-propagated)

    def _end(self, tr: _Live, reason: str) -> None:
        if tr.hits >= self.config.min_hits:
            assert tr.appearance is not None
            # the flow-propagated tail after the last detection ends the track: nothing confirmed it
            n = max(i for i, d in enumerate(tr.detected) if d) + 1
            self.done.append(DenseTrack(tr.track_id, tr.class_name, np.array(tr.frames[:n], np.int64),
                                        np.array(tr.times[:n]), np.array(tr.boxes[:n]), np.array(tr.scores[:n]),
                                        tr.appearance.copy(), reason))

    def _start(self, frame: int, t: float, det: FrameDetection) -> None:
        tr = _Live(self._next_id, det.class_name)
        self._next_id += 1
        self._observe(tr, frame, t, det)
        self.live.append(tr)

    def _observe(self, tr: _Live, frame: int, t: float, det: FrameDetection, detected: bool = True) -> None:
        box = np.asarray(det.box_xyxy, np.float64)
        tr.frames.append(frame)
        tr.times.append(t)
        tr.boxes.append(box)
        tr.scores.append(float(det.score))
        tr.detected.append(detected)
        if detected:  # the appearance model learns from detections only (a drifting flow box would teach it)
            tr.last_detected, tr.detected_box = t, box
            app = np.asarray(det.appearance, np.float64)
            tr.appearance = app.copy() if tr.appearance is None else 0.8 * tr.appearance + 0.2 * app
        tr.recent = [*tr.recent, box][-(self.config.velocity_frames + 1):]
        tr.recent_times = [*tr.recent_times, t][-(self.config.velocity_frames + 1):]
        tr.predicted = box

    def _follow(self, tr: _Live, frame: int, t: float, box: np.ndarray) -> None:
        """Observe the flow's box for ``tr`` (not a detection: its score and appearance carry over unchanged)."""
        assert tr.appearance is not None
        self._observe(tr, frame, t, FrameDetection(box, tr.scores[-1], tr.class_name, tr.appearance), detected=False)

    def _advance(self, t: float, camera_motion: np.ndarray | None, cut: bool) -> None:
        """Move to a new tracking frame: a cut ends every track, tracks undetected for ``max_coast_s`` end, and
        the recent boxes follow the camera's image motion (``camera_motion``: previous frame → this one)."""
        if cut:
            for tr in self.live:
                self._end(tr, "cut")
            self.live = []
        for tr in list(self.live):
            # the flow following a track unbroken since its last detection carries it for longer
            followed = tr.frames[-1] == self._last_frame
            limit = self.config.max_flow_coast_s if followed else self.config.max_coast_s
            if t - tr.last_detected > limit:
                self._end(tr, "coast")
                self.live.remove(tr)
        if camera_motion is not None and not cut:
            for tr in self.live:
                tr.recent = [apply_similarity(b, camera_motion) for b in tr.recent]

    def propagate(self, frame: int, t: float, flow: Callable[[np.ndarray], np.ndarray | None],
                  camera_motion: np.ndarray | None = None, cut: bool = False) -> None:
        """A frame without detections: each track observed at the previous tracking frame follows ``flow(box)``
        (its box moved by the image's own motion there, None where the flow is unsure; then the track only
        coasts until the next detection)."""
        self._advance(t, camera_motion, cut)
        for tr in self.live:
            moved = flow(tr.boxes[-1]) if tr.frames[-1] == self._last_frame else None
            if moved is not None:
                self._follow(tr, frame, t, moved)
        self._last_frame = frame

    def update(self, frame: int, t: float, detections: list[FrameDetection], camera_motion: np.ndarray | None = None,
               cut: bool = False, flow: Callable[[np.ndarray], np.ndarray | None] | None = None) -> None:
        """Associate one tracking frame's detections. ``camera_motion``: 2×3 map from the previous tracking frame's
        pixels to this one's (None: no camera compensation); ``cut``: a hard cut precedes this frame. ``flow``
        (as in :meth:`propagate`) for the tracks observed at the previous tracking frame: where such a track
        joins a detection after flow-propagated frames, the flow's box here against the detection is the drift,
        taken out of those frames' boxes (:func:`_remove_drift`); where none joins it, the flow's box carries it
        on (it may coast ``max_flow_coast_s``)."""
        cfg = self.config
        self._advance(t, camera_motion, cut)
        flowed: dict[int, np.ndarray] = {}  # the flow's box here for the tracks it followed to the last frame
        if flow is not None:
            for tr in self.live:
                if tr.frames[-1] == self._last_frame:
                    moved = flow(tr.boxes[-1])
                    if moved is not None:
                        flowed[tr.track_id] = moved
        self._last_frame = frame
        # predict: the recent boxes (in this frame's pixels) and the track's own velocity shift the last
        for tr in self.live:
            shift = tr.velocity() * (t - tr.last_time)
            tr.predicted = tr.recent[-1] + np.array([shift[0], shift[1], shift[0], shift[1]])
        n_t, n_d = len(self.live), len(detections)
        cost = np.full((n_t, n_d), np.inf)
        if n_t and n_d:
            pred = np.stack([tr.predicted for tr in self.live])
            dets = np.stack([np.asarray(d.box_xyxy, np.float64) for d in detections])
            iou = box_iou(pred, dets)
            for i, tr in enumerate(self.live):
                assert tr.appearance is not None and tr.predicted is not None
                for j, d in enumerate(detections):
                    if d.class_name != tr.class_name:
                        continue
                    near = np.linalg.norm(_center(tr.predicted) - _center(dets[j])) <= cfg.max_center_jump * max(
                        _diag(tr.predicted), 1.0)
                    if iou[i, j] < cfg.min_iou and not near:
                        continue
                    # against the last detected box: a flow-propagated box keeps its size, detections measure it
                    assert tr.detected_box is not None
                    ratio = _area(dets[j]) / _area(tr.detected_box)
                    bound = cfg.max_size_ratio ** max(1.0, (t - tr.last_detected) / 0.1)
                    if not 1.0 / bound <= ratio <= bound:
                        continue
                    app = bhattacharyya(tr.appearance, d.appearance)
                    if app > cfg.max_appearance:
                        continue
                    cost[i, j] = (1.0 - iou[i, j]) + cfg.appearance_weight * app
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        ended: set[int] = set()
        # matching cascade: established tracks (≥ min_hits observations) first, among themselves; then the
        # detections left over against the tentative ones (a tentative track competing with an established one
        # for a box is usually a duplicate of it, not a second identity)
        confirmed = np.array([tr.hits >= cfg.min_hits for tr in self.live], bool)
        for group in (np.flatnonzero(confirmed), np.flatnonzero(~confirmed)):
            free = np.array([j for j in range(n_d) if j not in matched_d], np.int64)
            if not len(group) or not len(free):
                continue
            sub = cost[np.ix_(group, free)]
            if not np.isfinite(sub).any():
                continue
            from scipy.optimize import linear_sum_assignment

            rows, cols = linear_sum_assignment(np.where(np.isfinite(sub), sub, 1e6))
            for r, c in zip(rows, cols, strict=True):
                i, j = int(group[r]), int(free[c])
                if not np.isfinite(cost[i, j]):
                    continue
                rival = min(np.delete(sub[r], c).min(initial=np.inf), np.delete(sub[:, c], r).min(initial=np.inf))
                if rival < cost[i, j] + cfg.ambiguity_margin:
                    ended.add(i)  # unsure: this identity stops here; the detection starts a new one below
                    continue
                matched_t.add(i)
                matched_d.add(j)
                tr = self.live[i]
                if tr.track_id in flowed and not tr.detected[-1]:
                    _remove_drift(tr, t, np.asarray(detections[j].box_xyxy, np.float64) - flowed[tr.track_id])
                self._observe(tr, frame, t, detections[j])
        for i in sorted(ended, reverse=True):
            self._end(self.live[i], "ambiguous")
            del self.live[i]
        # a track the detector missed here goes on with the flow's box (it coasts on it, see _advance)
        for tr in self.live:
            if tr.frames[-1] != frame and tr.track_id in flowed:
                self._follow(tr, frame, t, flowed[tr.track_id])
        for j, d in enumerate(detections):
            if j not in matched_d:
                self._start(frame, t, d)

    def finish(self) -> list[DenseTrack]:
        """End every live track; the tracks kept (≥ ``min_hits`` observations), ordered by start."""
        for tr in self.live:
            self._end(tr, "end")
        self.live = []
        return sorted(self.done, key=lambda d: (d.start_s, d.track_id))


def _remove_drift(tr: _Live, t: float, residual: np.ndarray) -> None:
    """Spread ``residual`` (detection − flow box at time ``t``) over the track's flow-propagated boxes since its
    last detection, in proportion to the time since it: the flow's error grows step by step from zero there."""
    k = len(tr.detected)
    while k > 0 and not tr.detected[k - 1]:
        k -= 1
    for i in range(k, len(tr.detected)):
        w = (tr.times[i] - tr.last_detected) / max(t - tr.last_detected, 1e-9)
        tr.boxes[i] = tr.boxes[i] + w * residual


def _extrapolate(track: DenseTrack, t: float, velocity_frames: int) -> np.ndarray:
    """The track's last box moved by its last observed velocity to time ``t``."""
    k = max(0, len(track.times_s) - 1 - velocity_frames)
    dt = track.times_s[-1] - track.times_s[k]
    vel = (_center(track.boxes_xyxy[-1]) - _center(track.boxes_xyxy[k])) / dt if dt > 0 else np.zeros(2)
    shift = vel * (t - track.end_s)
    return track.boxes_xyxy[-1] + np.array([shift[0], shift[1], shift[0], shift[1]])


def reidentify(tracks: list[DenseTrack], config: DenseTrackConfig = DenseTrackConfig(),
               cut_times_s: Iterable[float] = ()) -> list[DenseTrack]:
    """Join tracks across occlusions where the match is unambiguous (see the module docstring).

    Never across a hard cut (``cut_times_s``). Chains are built greedily from the cheapest unambiguous pair.
    """
    cuts = sorted(cut_times_s)
    tracks = sorted(tracks, key=lambda d: d.start_s)
    n = len(tracks)
    cost = np.full((n, n), np.inf)
    gated = np.zeros((n, n), bool)  # passes class, time, place and size (appearance not yet judged)
    for a, b in itertools.product(range(n), range(n)):
        ta, tb = tracks[a], tracks[b]
        gap = tb.start_s - ta.end_s
        if a == b or ta.class_name != tb.class_name or not 0 < gap <= config.reid_window_s:
            continue
        if any(ta.end_s < c <= tb.start_s for c in cuts):
            continue
        guess = _extrapolate(ta, tb.start_s, config.velocity_frames)
        radius = (config.reid_radius_diag + config.reid_radius_growth * gap) * _diag(ta.boxes_xyxy[-1])
        if np.linalg.norm(_center(guess) - _center(tb.boxes_xyxy[0])) > radius:
            continue
        ratio = _area(tb.boxes_xyxy[0]) / _area(ta.boxes_xyxy[-1])
        if not 0.5 <= ratio <= 2.0:
            continue
        gated[a, b] = True
        app = bhattacharyya(ta.appearance, tb.appearance)
        if app <= config.reid_max_appearance:
            cost[a, b] = app
    # where the motion gate alone (class, place, size) admits two candidates, re-identification would rest on
    # appearance alone — low-resolution colour histograms of people in dark clothes: unsure, so no join
    admitted = np.isfinite(cost) | gated
    nxt: dict[int, int] = {}
    used_b: set[int] = set()
    for flat in np.argsort(cost, axis=None):
        a, b = np.unravel_index(int(flat), cost.shape)
        c = cost[a, b]
        if not np.isfinite(c):
            break
        if a in nxt or b in used_b:
            continue
        if admitted[a].sum() > 1 or admitted[:, b].sum() > 1:
            continue
        # mutual best by a margin: no other successor of a, nor predecessor of b, comes close
        rival = min(np.delete(cost[a], b).min(initial=np.inf), np.delete(cost[:, b], a).min(initial=np.inf))
        if rival < c + config.reid_margin:
            continue
        nxt[a] = b
        used_b.add(b)
    out: list[DenseTrack] = []
    starts = [i for i in range(n) if i not in used_b]
    for s in starts:
        chain = [s]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        parts = [tracks[i] for i in chain]
        if len(parts) == 1:
            out.append(parts[0])
            continue
        weights = np.array([len(p.times_s) for p in parts], np.float64)
        out.append(DenseTrack(
            parts[0].track_id, parts[0].class_name, np.concatenate([p.frame_indices for p in parts]),
            np.concatenate([p.times_s for p in parts]), np.concatenate([p.boxes_xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.average(np.stack([p.appearance for p in parts]), axis=0, weights=weights), parts[-1].ended_by,
            tuple(p.track_id for p in parts)))
    return sorted(out, key=lambda d: (d.start_s, d.track_id))


def boxes_at(track: DenseTrack, times_s: np.ndarray, max_interp_s: float = 0.5, tolerance_s: float = 1e-3
             ) -> tuple[np.ndarray, np.ndarray]:
    """The track's boxes at ``times_s`` (T,): observed ones exactly, others interpolated linearly between two
    observations at most ``max_interp_s`` apart; NaN elsewhere. Returns (boxes (T, 4), scores (T,))."""
    times_s = np.asarray(times_s, np.float64)
    boxes = np.full((len(times_s), 4), np.nan)
    scores = np.zeros(len(times_s))
    ts = track.times_s
    for k, t in enumerate(times_s):
        i = int(np.searchsorted(ts, t))
        if i < len(ts) and abs(ts[i] - t) <= tolerance_s:
            boxes[k], scores[k] = track.boxes_xyxy[i], track.scores[i]
        elif i > 0 and abs(ts[i - 1] - t) <= tolerance_s:
            boxes[k], scores[k] = track.boxes_xyxy[i - 1], track.scores[i - 1]
        elif 0 < i < len(ts) and ts[i] - ts[i - 1] <= max_interp_s:
            w = (t - ts[i - 1]) / (ts[i] - ts[i - 1])
            boxes[k] = (1 - w) * track.boxes_xyxy[i - 1] + w * track.boxes_xyxy[i]
            scores[k] = min(track.scores[i - 1], track.scores[i])
    return boxes, scores


# --------------------------------------------------------------------------------------------------
# image features: appearance, camera image motion, frame histograms


def box_appearance(frame_rgb: np.ndarray, box_xyxy: np.ndarray, bins: tuple[int, int] = (16, 4)) -> np.ndarray:
    """(H·S,) hue–saturation histogram of the box's inner part (20% trimmed from the sides, 10% from top and
    bottom: box edges hold background), low-value pixels ignored (shadows, dark clothes carry no hue)."""
    import cv2

    h, w = frame_rgb.shape[:2]
    x1, y1, x2, y2 = box_xyxy
    bw, bh = x2 - x1, y2 - y1
    ix1, ix2 = int(max(0, x1 + 0.2 * bw)), int(min(w, x2 - 0.2 * bw + 1))
    iy1, iy2 = int(max(0, y1 + 0.1 * bh)), int(min(h, y2 - 0.1 * bh + 1))
    if ix2 - ix1 < 2 or iy2 - iy1 < 2:
        return np.zeros(bins[0] * bins[1] + 2, np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(frame_rgb[iy1:iy2, ix1:ix2]), cv2.COLOR_RGB2HSV)
    lit = (hsv[..., 2] >= 40).astype(np.uint8)
    hist = cv2.calcHist([hsv], [0, 1], lit, list(bins), [0, 180, 0, 256]).ravel()
    # two extra bins keep dark and bright-grey pixels (no reliable hue) as evidence too
    dark = float((hsv[..., 2] < 40).sum())
    grey = float(((hsv[..., 1] < 40) & (hsv[..., 2] >= 40)).sum())
    return np.concatenate([hist, [dark, grey]]).astype(np.float32)


def frame_histogram(frame_rgb: np.ndarray) -> np.ndarray:
    """HSV histogram of a whole (downscaled) frame, as dsr curate's cut detector uses."""
    import cv2

    small = cv2.resize(frame_rgb, (160, max(1, round(160 * frame_rgb.shape[0] / frame_rgb.shape[1]))),
                       interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    return cv2.calcHist([hsv], [0, 1], None, [32, 32], [0, 180, 0, 256]).ravel()


class CameraMotionTracker:
    """The camera's image motion between consecutive tracking frames: a similarity (rotation, scale,
    translation) fitted by RANSAC to corners LK-tracked at ``work_side`` px, movers rejected as outliers."""

    def __init__(self, work_side: int = 320) -> None:
        self.work_side = work_side
        self._prev: np.ndarray | None = None
        self._scale = 1.0

    def step(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        """2×3 map from the previous frame's pixels to this frame's (full resolution), None for the first frame
        or when too few corners agree."""
        return self.step_gray(*work_gray(frame_rgb, self.work_side))

    def step_gray(self, gray: np.ndarray, s: float) -> np.ndarray | None:
        """:meth:`step` on the frame's grey already at work size (``s``: work px per full-resolution px)."""
        import cv2

        prev, self._prev, self._scale = self._prev, gray, s
        if prev is None or prev.shape != gray.shape:
            return None
        pts = cv2.goodFeaturesToTrack(prev, 300, 0.01, 6)
        if pts is None or len(pts) < 12:
            return None
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, gray, pts, None, winSize=(15, 15), maxLevel=3)
        ok = st[:, 0] == 1
        if ok.sum() < 12:
            return None
        cv2.setRNGSeed(0)  # deterministic RANSAC whatever ran before
        m, inl = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.5)
        if m is None or inl is None or inl.sum() < max(12, 0.3 * ok.sum()):
            return None
        # back to full-resolution pixels: x_full = x_work / s
        m = m.astype(np.float64)
        m[:, 2] /= s
        return m


def median_flow_box(prev: np.ndarray, cur: np.ndarray, scale: float, box_xyxy: np.ndarray,
                    config: DenseTrackConfig = DenseTrackConfig()) -> np.ndarray | None:
    """The box (full-resolution px) moved from grey ``prev`` to ``cur`` (both at work size, ``scale`` work px per
    full px) by the median displacement of the corners inside it. None when fewer than ``flow_min_points``
    corners pass LK's forward-backward check or their spread (median ratio of pairwise distances) changes by more
    than ``flow_max_scale_step`` in the step (occlusion, or the flow left the object)."""
    import cv2

    h, w = prev.shape
    x1, y1, x2, y2 = np.asarray(box_xyxy, np.float64) * scale
    # the inner part of the box: its edges are mostly background, whose flow is the camera's, not the object's
    bw, bh = x2 - x1, y2 - y1
    ix1, ix2 = int(max(0, x1 + 0.15 * bw)), int(min(w, x2 - 0.15 * bw + 1))
    iy1, iy2 = int(max(0, y1 + 0.1 * bh)), int(min(h, y2 - 0.1 * bh + 1))
    if ix2 - ix1 < 3 or iy2 - iy1 < 3:
        return None
    mask = np.zeros_like(prev)
    mask[iy1:iy2, ix1:ix2] = 255
    pts = cv2.goodFeaturesToTrack(prev, config.flow_max_points, 0.01, 2, mask=mask)
    if pts is None or len(pts) < config.flow_min_points:
        return None
    win = (11, 11)
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=win, maxLevel=2)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, winSize=win, maxLevel=2)
    fb = np.linalg.norm((pts - back).reshape(-1, 2), axis=1)
    ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (fb < config.flow_fb_max_px)
    if ok.sum() < config.flow_min_points:
        return None
    a, b = pts.reshape(-1, 2)[ok].astype(np.float64), nxt.reshape(-1, 2)[ok].astype(np.float64)
    shift = np.median(b - a, axis=0)
    i, j = np.triu_indices(len(a), 1)
    da = np.linalg.norm(a[i] - a[j], axis=1)
    db = np.linalg.norm(b[i] - b[j], axis=1)
    good = da > 2.0
    ratio = float(np.median(db[good] / da[good])) if good.any() else 1.0
    if not 1.0 / config.flow_max_scale_step <= ratio <= config.flow_max_scale_step:
        return None
    # the box moves but keeps its size: the corners' spread on a non-rigid body (a twirling dancer) is a noisy
    # scale, and over a few frames it compounded into boxes the next detection's size gate refused; the drift
    # correction at that detection (DenseTracker.update) brings the size in linearly
    return (np.array([x1, y1, x2, y2]) + np.array([shift[0], shift[1], shift[0], shift[1]])) / scale


def tracking_frame_indices(timestamps_s: np.ndarray, config: DenseTrackConfig = DenseTrackConfig(),
                           must_include: np.ndarray | None = None) -> np.ndarray:
    """Video frame indices to track: every frame for clips up to ``every_frame_s``, else the first frame at or
    after each tick of a ``track_fps`` grid; ``must_include`` (the sampled frames) are always added."""
    ts = np.asarray(timestamps_s, np.float64)
    if len(ts) == 0:
        return np.zeros(0, np.int64)
    if ts[-1] - ts[0] <= config.every_frame_s:
        idx = np.arange(len(ts))
    else:
        grid = np.arange(ts[0], ts[-1] + 1e-9, 1.0 / config.track_fps)
        idx = np.unique(np.clip(np.searchsorted(ts, grid - 1e-6), 0, len(ts) - 1))
    if must_include is not None:
        idx = np.union1d(idx, np.asarray(must_include, np.int64))
    return idx.astype(np.int64)


@dataclass(frozen=True, eq=False)
class DenseTrackResult:
    """tracks after re-identification; cut_times_s where a hard cut ended every track; frames tracked;
    seconds spent per part (detect, track, camera motion)."""

    tracks: list[DenseTrack]
    cut_times_s: list[float]
    num_frames: int
    seconds: dict[str, float]
    num_detected: int = 0  # frames the detector ran on (the others were flow-propagated)


def track_frames(frames: Iterable[tuple[int, float, np.ndarray]], detect: Callable[[np.ndarray], list],
                 config: DenseTrackConfig = DenseTrackConfig(), *, compensate_camera: bool = True,
                 on_frame: Callable[[int, float, np.ndarray, list[FrameDetection]], None] | None = None
                 ) -> DenseTrackResult:
    """Detect and track objects through ``frames`` ((video index, t_s, RGB) at the tracking rate).

    ``detect(frame)`` returns objects with ``box_xyxy``, ``score`` and ``class_name`` (e.g.
    :meth:`dsr.extract.detect.YoloDetector.detect`). ``on_frame`` sees every frame and its detections (the
    pipeline keeps what it needs of the sampled frames there, so the frames themselves are never stored).
    """
    import time

    tracker = DenseTracker(config)
    cuts_seen = CutDetector(config)
    camera = CameraMotionTracker() if compensate_camera else None
    seconds = {"detect": 0.0, "track": 0.0, "camera_motion": 0.0}
    cuts: list[float] = []
    count = detections = 0
    period = 0.0 if config.detect_fps is None else 1.0 / config.detect_fps
    next_detect = -np.inf
    first_t: float | None = None
    prev_gray: np.ndarray | None = None
    for index, t, frame in frames:
        start = time.perf_counter()
        gray, scale = work_gray(frame, camera.work_side if camera is not None else 320)
        motion = camera.step_gray(gray, scale) if camera is not None else None
        cut = cuts_seen.step(frame_histogram(frame))
        if cut:
            cuts.append(float(t))
            motion = None
        mid = time.perf_counter()
        dets: list[FrameDetection] = []
        flow = None if prev_gray is None else functools.partial(median_flow_box, prev_gray, gray, scale,
                                                                config=config)
        if cut or flow is None or t >= next_detect - 1e-6:
            found = detect(frame)
            dets = [FrameDetection(np.asarray(d.box_xyxy, np.float64), float(d.score), d.class_name,
                                   box_appearance(frame, d.box_xyxy)) for d in found]
            mid2 = time.perf_counter()
            tracker.update(index, t, dets, motion, cut, flow)
            detections += 1
            # the next tick after t of a detection grid anchored at the first frame
            first_t = t if first_t is None else first_t
            next_detect = first_t + period * (np.floor((t - first_t) / period + 1e-6) + 1) if period > 0 else t
        else:
            mid2 = mid
            tracker.propagate(index, t, flow, motion)
        prev_gray = gray
        if on_frame is not None:
            on_frame(index, t, frame, dets)
        end = time.perf_counter()
        seconds["camera_motion"] += mid - start
        seconds["detect"] += mid2 - mid
        seconds["track"] += end - mid2
        count += 1
    tracks = reidentify(tracker.finish(), config, cuts)
    return DenseTrackResult(tracks, cuts, count, seconds, detections)


class DenseTrackerEstimator(Estimator):
    """Tracking role: detection-driven, identity-safe tracking at a tracking rate (:class:`DenseTracker`)."""

    name = "tracking/dense"
    role = "tracking"
    requires = ("cv2", "scipy")

    def __init__(self, config: DenseTrackConfig = DenseTrackConfig()) -> None:
        self.config = config
