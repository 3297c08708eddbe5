"""Video → scene record with the CPU default, and a resumable batch runner.

:func:`extract_video` runs the stages (decode → cuts → camera → movers → tracking → lifting → orientation)
and returns an :class:`ExtractOutcome`: ``ok`` with a record, or ``skipped``/``failed`` with a one-line
reason and no record. It never writes a record from geometry it does not trust.

:func:`run_extract` processes many videos: one ``<id>.npz`` record per ok video, written atomically, then a
``<id>.done.json`` completion marker; a rerun with the same settings skips videos that have a marker, so a
killed run resumes without losing or duplicating work, and a rerun with other settings redoes them.
``report.json`` (the settings and their hash, counts by status and reason, time per stage) is rewritten
after every video. Record ids hash the video's bytes, not its path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError
from dsr.extract.base import Attempt, CameraEstimate, VideoClip
from dsr.extract.camera import CameraConfig
from dsr.extract.camera.auto import DEFAULT_METHODS
from dsr.extract.clip import ClipConfig, load_clip, sampled_indices
from dsr.extract.curate import CurateConfig, detect_shot_cuts
from dsr.extract.detect import detector_precision
from dsr.extract.detected import (
    DetectGroundingConfig,
    DetectionJob,
    detect_and_track,
    sampled_objects,
    unexplained_movers,
)
from dsr.extract.given import GivenTrackConfig, InitBox, parse_init_boxes, track_given_boxes
from dsr.extract.lift import (
    GENERIC_PHRASE,
    FloorScaleConfig,
    LiftConfig,
    LiftResult,
    dense_centers,
    fit_ground_plane,
    floor_scale,
    ground_height_line,
    has_class_height,
    interpolate_gaps,
    lift_centers,
    normalize_object_depths,
    scale_lifted,
    smooth_centers,
    smoothed_track_noise,
)
from dsr.extract.motion import (
    BackgroundConfig,
    MotionConfig,
    MotionGrounder,
    camera_is_static,
    detect_by_background,
)
from dsr.extract.orient import HeadingConfig, fuse_torso_and_velocity, velocity_heading
from dsr.extract.people import PeopleConfig
from dsr.extract.registry import create_estimator
from dsr.extract.tracking import TrackerConfig, associate_tracks
from dsr.extract.uncertainty import (
    UncertaintyConfig,
    camera_focal_range,
    camera_scale_drift,
    camera_scale_jitter,
    camera_scale_reset,
    camera_sigma_key,
    camera_sigmas,
    center_camera_key,
    center_sigmas,
    frame_to_frame_sigma,
    heading_sigma,
    track_confidence,
)
from dsr.scene.classes import has_front
from dsr.scene.frames import invert_pose, transform_points
from dsr.scene.poses import rotation_angle_deg
from dsr.scene.record import (
    CameraTrack,
    MaskTrack,
    ObjectTrack,
    OrientationTrack,
    SceneRecord,
    Source,
    VideoInfo,
)
from dsr.scene.rle import encode_mask_frames
from dsr.video import ProbeMismatch, VideoError, VideoMeta, probe, probe_packets

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class ExtractConfig:
    clip: ClipConfig = field(default_factory=ClipConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    camera_methods: tuple[str, ...] = DEFAULT_METHODS
    motion: MotionConfig = field(default_factory=MotionConfig)
    background: BackgroundConfig | None = field(default_factory=BackgroundConfig)  # None: flow movers only
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    lift: LiftConfig = field(default_factory=LiftConfig)
    floor: FloorScaleConfig = field(default_factory=FloorScaleConfig)  # VO: size-prior depths in camera units
    heading: HeadingConfig = field(default_factory=HeadingConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    given: GivenTrackConfig = field(default_factory=GivenTrackConfig)
    # COCO objects detected and tracked densely (YOLOv3-tiny + the identity-safe tracker); movers no detected
    # object explains are kept as class-agnostic objects. None: movers only (the session-1/2 default)
    detection: DetectGroundingConfig | None = field(default_factory=DetectGroundingConfig)
    # detected people: MediaPipe Pose masks and torso facing (None: box masks and velocity headings)
    people: PeopleConfig | None = field(default_factory=PeopleConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)  # the calibrated error model
    keep_empty: bool = False  # write records for clips without detectable objects
    reject_cuts: bool = True


@dataclass
class ExtractOutcome:
    video: str
    record_id: str
    status: str  # ok | skipped | failed
    reason: str
    record: SceneRecord | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    camera_attempts: list[dict] = field(default_factory=list)
    num_objects: int = 0
    duration_s: float = 0.0
    config_hash: str = ""
    camera_sigma_key: str = ""  # which camera sigmas the record got (extract/uncertainty.py camera_sigma_key)

    def summary(self) -> dict:
        """Everything but the record, JSON-ready (the completion marker's content)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "record"}


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, fn: Callable, *args: object, **kwargs: object) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def record_id_for(path: str | os.PathLike[str]) -> str:
    """Stable id from the video's content: the file stem plus a short SHA-256 of its bytes.

    The same file extracted from two folders (or machines) gets the same id, and so the same QA sample
    (question sampling is seeded by the id); two different 'clip.mp4's never collide. Raises
    :class:`~dsr.video.VideoError` when the file cannot be read.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as err:
        raise VideoError(f"{p}: cannot read ({err.strerror or err})") from None
    return f"{p.stem}-{digest[:12]}"


def config_fingerprint(config: ExtractConfig, init_boxes: dict[str, InitBox] | None = None) -> tuple[dict, str]:
    """The settings that determine a record (JSON-ready) and their SHA-256 (16 hex digits), for resuming."""
    settings: dict[str, Any] = {"extract": asdict(config), "init_boxes": None}
    if init_boxes is not None:
        settings["init_boxes"] = {k: {"class": b.class_phrase, "box": [float(v) for v in b.box_xyxy],
                                      "is_agent": b.is_agent} for k, b in sorted(init_boxes.items())}
    text = json.dumps(settings, sort_keys=True, default=str)
    return json.loads(text), hashlib.sha256(text.encode()).hexdigest()[:16]


def _attempt_dict(a: Attempt) -> dict:
    return {"method": a.method, "ok": a.ok, "reason": a.reason, "seconds": round(a.seconds, 3),
            "stats": {k: (round(v, 4) if np.isfinite(v) else None) for k, v in a.stats.items()}}


@dataclass(frozen=True, eq=False)
class TrackedObject:
    """One object's 2D track before lifting: boxes (T, 4) NaN where unseen, masks, scores, identity."""

    object_id: str
    class_phrase: str
    is_agent: bool  # may be an agent: its class has a front (dsr.scene.classes) or the user said so
    boxes_xyxy: np.ndarray
    masks: list[np.ndarray | None]
    scores: np.ndarray
    track_source: Source | None = None  # how it was grounded and tracked (None: the caller's default)
    # (T, 3) the torso normal in camera coordinates (people, MediaPipe), NaN where not measured
    torso_forward_cam: np.ndarray | None = None


def build_objects(clip: VideoClip, camera: CameraEstimate, config: ExtractConfig, video_path: str | None = None,
                  meta: VideoMeta | None = None, notes: list[str] | None = None,
                  detection: DetectionJob | None = None) -> list[ObjectTrack]:
    """Detected objects (dense tracks) + movers nothing detected explains → centres → headings (may be empty).

    ``notes`` collects one-line remarks for the outcome (e.g. the detector is not installed). ``detection``:
    :func:`detect_and_track` already running (it needs only the frames; see :func:`extract_clip`).
    """
    track = camera.track
    assert track is not None
    # the movers need only the frames and the camera: they run while the detector (other thread) finishes
    movers, grounding = _movers(clip, track, config)
    detected: list[TrackedObject] = []
    objects_2d = []
    if config.detection is not None:
        from dsr.extract.registry import EstimatorError

        try:
            result = detection.result() if detection is not None else detect_and_track(
                clip, video_path, None if meta is None else meta.timestamps_s, config.detection)
        except EstimatorError as err:
            if notes is not None:
                notes.append(f"movers only: {err}")
        else:
            objects_2d = sampled_objects(result, clip, config.detection)
            people = _people_poses(clip, track.K, objects_2d, config, notes)
            # the detector's arithmetic on this machine: bf16 and f32 can differ near the score threshold
            detected_source = Source(name="grounding/yolov3-tiny+tracking/dense",
                                     version=f"1+{detector_precision(config.detection.detector)}")
            counts: Counter[str] = Counter()
            for obj in objects_2d:
                name = f"{obj.class_name.replace(' ', '_')}_{counts[obj.class_name]}"
                counts[obj.class_name] += 1
                masks = _box_masks(obj.boxes_xyxy, clip.height, clip.width)
                forward = None
                if id(obj) in people:
                    poses = people[id(obj)]
                    masks = [p.mask if p is not None and p.mask is not None and p.mask.any() else m
                             for p, m in zip(poses, masks, strict=True)]
                    forward = np.array([p.forward_cam if p is not None else np.full(3, np.nan) for p in poses])
                detected.append(TrackedObject(name, obj.class_name, has_front(obj.class_name), obj.boxes_xyxy,
                                              masks, obj.scores,
                                              detected_source, forward))
    # a mover a detected object accounts for is that object seen twice: the detection (with its class) wins
    keep = unexplained_movers([m[0] for m in movers], objects_2d, config.detection) if objects_2d and \
        config.detection is not None else [True] * len(movers)
    kept = [m for m, k in zip(movers, keep, strict=True) if k]
    mover_source = Source(name=f"{grounding}+tracking/iou", version="1")
    for k, (boxes, masks, scores) in enumerate(kept):
        detected.append(TrackedObject(f"mover_{k}", GENERIC_PHRASE, has_front(GENERIC_PHRASE), boxes, masks, scores,
                                      mover_source))
    return lift_objects(clip, camera, detected, config, mover_source)


def _movers(clip: VideoClip, track: CameraTrack, config: ExtractConfig
            ) -> tuple[list[tuple[np.ndarray, list[np.ndarray | None], np.ndarray]], str]:
    """Moving regions tracked over the sampled frames → ([(boxes (T, 4), masks, scores (T,))], grounding name)."""
    if config.background is not None and camera_is_static(track.c2w, track.valid, config.background):
        # no parallax: a warped temporal-median background outlines movers whole (flow only finds their edges)
        dets = detect_by_background(clip.frames_rgb, track.c2w, track.K, track.valid, config.motion,
                                    config.background)
        grounding = "grounding/background"
    else:
        dets = MotionGrounder(config.motion).detect_clip(clip)
        grounding = "grounding/motion"
    tracks = associate_tracks([np.array([d.box_xyxy for d in frame]).reshape(-1, 4) for frame in dets], config.tracker,
                              times_s=clip.timestamps_s)
    # weak residuals along the whole track = parallax noise, not a mover
    tracks = [tr for tr in tracks
              if np.median([dets[t][j].score for t, j in tr.members.items()]) >= config.motion.min_track_score]
    n = len(clip.frames_rgb)
    movers = []
    for tr in tracks:
        boxes = np.full((n, 4), np.nan)
        masks: list[np.ndarray | None] = [None] * n
        scores = np.zeros(n)
        for t, j in tr.members.items():
            boxes[t] = dets[t][j].box_xyxy
            masks[t] = dets[t][j].mask
            scores[t] = dets[t][j].score
        movers.append((boxes, masks, scores))
    return movers, grounding


def _people_poses(clip: VideoClip, K: np.ndarray, objects: list, config: ExtractConfig, notes: list[str] | None
                  ) -> dict[int, list]:
    """MediaPipe Pose on every person box at the sampled frames: {id(object): [PersonPose | None] * T}.

    The boxes are shared out among ``config.people.workers`` Pose graphs running side by side: this runs after
    the detector has finished, so the other core is free, and each call is independent of the others (static
    image mode), so the poses are the same whichever graph computes them."""
    if config.people is None or not any(o.class_name == "person" for o in objects):
        return {}
    from dsr.extract.registry import EstimatorError

    try:
        estimators = _people_estimators(config.people)
    except EstimatorError as err:
        if notes is not None:
            notes.append(f"no person masks or torso facing: {err}")
        return {}
    min_px = config.people.min_box_px
    tasks = [(k, t, box) for k, obj in enumerate(objects) if obj.class_name == "person"
             for t, box in enumerate(obj.boxes_xyxy) if np.isfinite(box).all() and box[3] - box[1] >= min_px]

    def run(estimator: Any, part: list[tuple[int, int, np.ndarray]]) -> list[tuple[int, int, Any]]:
        return [(k, t, estimator.estimate(clip.frames_rgb[t], box, K[t])) for k, t, box in part]

    with _PEOPLE_LOCK, ThreadPoolExecutor(len(estimators), thread_name_prefix="dsr-people") as pool:
        # one MediaPipe graph per worker, graphs shared by every clip of the process, one clip at a time
        done = pool.map(run, estimators, [tasks[i::len(estimators)] for i in range(len(estimators))])
        poses = {(k, t): pose for part in done for k, t, pose in part}
    return {id(obj): [poses.get((k, t)) for t in range(len(obj.boxes_xyxy))]
            for k, obj in enumerate(objects) if obj.class_name == "person"}


_PEOPLE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _people_estimators(config: PeopleConfig) -> tuple[Any, ...]:
    """``config.workers`` people estimators, built once per process and config: loading MediaPipe's Pose graph
    took 1.4 s of every clip with a person (a 2-s DAVIS clip's whole budget is 2 s), and in static-image mode
    a graph keeps nothing from one call to the next."""
    return tuple(create_estimator("orientation/mediapipe-torso", config=config) for _ in range(config.workers))


def _box_masks(boxes_xyxy: np.ndarray, height: int, width: int) -> list[np.ndarray | None]:
    """Per frame, the box as a mask (None where there is no box): segmentation/box."""
    out: list[np.ndarray | None] = []
    for b in boxes_xyxy:
        if not np.isfinite(b).all():
            out.append(None)
            continue
        m = np.zeros((height, width), bool)
        m[max(0, int(b[1])):min(height, int(b[3]) + 1), max(0, int(b[0])):min(width, int(b[2]) + 1)] = True
        out.append(m)
    return out


def build_given_objects(clip: VideoClip, camera: CameraEstimate, init: dict[str, InitBox],
                        config: ExtractConfig) -> list[ObjectTrack]:
    """Objects named by first-frame boxes → MIL tracks (snapped to movers) → centres → headings."""
    dets = MotionGrounder(config.motion).detect_clip(clip) if config.given.snap_to_movers else None
    given = track_given_boxes(clip.frames_rgb, init, dets, config.given)
    tracked = [TrackedObject(oid, init[oid].class_phrase, init[oid].is_agent, g.boxes_xyxy, g.masks, g.scores)
               for oid, g in given.items() if np.isfinite(g.boxes_xyxy).all(axis=1).any()]
    return lift_objects(clip, camera, tracked, config, Source(name=f"grounding/given+tracking/{config.given.method}",
                                                                         version="1"))


def lift_objects(clip: VideoClip, camera: CameraEstimate, tracked: list[TrackedObject], config: ExtractConfig,
                 track_source: Source) -> list[ObjectTrack]:
    """2D tracks → centres (the chain) → headings → record ObjectTracks."""
    track = camera.track
    assert track is not None
    if not tracked:
        return []
    plane = None
    if camera.points is not None:
        plane = fit_ground_plane(camera.points.points_world, track.c2w[track.valid], config.lift)
    # without SfM points there is no geometry to calibrate object sizes against: the size prior runs with
    # class heights. Under VO the floor beside the objects' feet then puts those depths in the camera's units
    # (floor_scale); otherwise (rotation-only: no translation; VO without readings) object depths are
    # normalised to median 1, a unit nothing ties to the camera's path (docs/extract.md)
    no_points = camera.points is None
    lift_cfg = LiftConfig(**{**asdict(config.lift), "allow_unscaled_size_prior": no_points,
                             "use_sfm_points": False})
    if camera.dense is not None:  # π³: the paper's centre, mean of the local points under the mask
        lifted_all = [dense_centers(obj.masks, camera.dense) for obj in tracked]
    else:
        heights = _ground_line_heights(tracked, track, config) if no_points else {}
        lifted_all = [lift_centers(obj.masks, np.nan_to_num(obj.boxes_xyxy), track.K, track.c2w, camera.points,
                                   obj.class_phrase, lift_cfg, plane, heights.get(id(obj))) for obj in tracked]
        if no_points:
            factor = None
            if camera.scene_points is not None:  # VO: put the class heights' metres in the camera's units
                factor = floor_scale([obj.boxes_xyxy for obj in tracked], [r.centers_cam[:, 2] for r in lifted_all],
                                     track.K, track.c2w, track.valid, camera.scene_points, config.floor)
            lifted_all = scale_lifted(lifted_all, factor) if factor is not None else \
                normalize_object_depths(lifted_all)[0]
    up_world = -track.c2w[track.valid, :3, 1].mean(axis=0) if track.valid.any() else np.array([0.0, -1.0, 0.0])
    center_source = Source(name="lifting/dense-mean" if camera.dense is not None else "lifting/chain", version="1")
    center_camera = center_camera_key(track.source.name, track.c2w, track.valid, config.uncertainty)
    objects = []
    for obj, lifted in zip(tracked, lifted_all, strict=True):
        boxes = obj.boxes_xyxy
        source = obj.track_source or track_source
        lifted = _only_trusted_frames(lifted, track.valid)
        visible = np.isfinite(boxes).all(axis=1)
        raw_world = transform_points(track.c2w, lifted.centers_cam)
        smoothed = smooth_centers(raw_world, clip.timestamps_s, config.lift.smooth_half_window,
                                  config.lift.smooth_degree)
        centers_world, method, sigma = interpolate_gaps(smoothed,
                                                        lifted.method, lifted.sigma, clip.timestamps_s,
                                                        config.lift.max_interpolation_gap)
        lifted = _only_trusted_frames(
            LiftResult(transform_points(invert_pose(track.c2w), centers_world), method, sigma), track.valid)
        centers_world = transform_points(track.c2w, lifted.centers_cam)
        # the heading's noise: measured on the track when it was smoothed, else the chain's a-priori sigma
        noise = (smoothed_track_noise(raw_world, smoothed, config.lift) if config.lift.smooth_half_window > 0
                 else lifted.sigma)
        if not np.isfinite(centers_world).all(axis=1).any():
            continue  # seen but never located in 3D: nothing to ask about (and not a valid record object)
        along, across, shared = center_sigmas(lifted.centers_cam, lifted.method, config.uncertainty,
                                              center_camera, has_class_height(obj.class_phrase))
        # a heading is a difference of two centres: their frame-to-frame (not shared) error bounds its noise. A
        # track's own scatter about its smoothed curve vanishes on short tracks (3 frames fit a line exactly),
        # and such headings passed the 0.6 gate 30-130° off on the worlds
        noise = np.maximum(noise, frame_to_frame_sigma(along, across, shared))
        depth = np.linalg.norm(np.nan_to_num(lifted.centers_cam), axis=1)
        scale_rel = np.divide(shared, depth, out=np.zeros_like(shared), where=depth > 0)
        rot, oconf, osig = velocity_heading(centers_world, noise, clip.timestamps_s, up_world, config.heading,
                                            scale_rel, track.c2w[:, :3, 3])
        orient_source = "orientation/velocity"
        if obj.torso_forward_cam is not None and np.isfinite(obj.torso_forward_cam).any():
            # the torso's facing (people), front/back resolved by the walking direction, where trusted frames
            torso_world = np.einsum("tij,tj->ti", track.c2w[:, :3, :3], obj.torso_forward_cam)
            torso_world[~track.valid] = np.nan
            rot, oconf, osig = fuse_torso_and_velocity(torso_world, rot, oconf, osig, up_world, config.heading)
            orient_source = "orientation/mediapipe-torso+velocity"
        orientation = OrientationTrack(world_from_agent=rot, confidence=oconf,
                                       sigma_deg=heading_sigma(osig, config.uncertainty),
                                       source=Source(name=orient_source, version="1"))
        # an agent has a front (its class, or the user's word for given boxes) and a measured orientation
        is_agent = obj.is_agent and bool(orientation.known.any())
        counts, offsets = encode_mask_frames([m if v else None for m, v in zip(obj.masks, visible, strict=True)],
                                             clip.height, clip.width)
        objects.append(ObjectTrack(
            object_id=obj.object_id, class_phrase=obj.class_phrase, is_agent=is_agent, visible=visible,
            boxes_xyxy=boxes, confidence=track_confidence(obj.scores, visible, source.name, config.uncertainty),
            centers_cam=lifted.centers_cam, centers_world=centers_world, center_sigma_along=along,
            center_sigma_across=across, center_sigma_shared=shared, center_method=lifted.method,
            track_source=source, center_source=center_source,
            masks=MaskTrack(height=clip.height, width=clip.width, counts=counts, offsets=offsets),
            orientation=orientation if is_agent else None,
        ))
    return objects


def _ground_line_heights(tracked: list[TrackedObject], track: CameraTrack, config: ExtractConfig
                         ) -> dict[int, np.ndarray]:
    """People's pixel heights from the feet's row (:func:`dsr.extract.lift.ground_height_line`), for a camera
    that does not move at all (no translation and no rotation: the horizon row stays put); {} otherwise."""
    if config.background is None or not camera_is_static(track.c2w, track.valid, config.background):
        return {}
    if rotation_angle_deg(track.c2w[track.valid, :3, :3] @ track.c2w[track.valid][0, :3, :3].T).max(initial=0) > 1.0:
        return {}
    people = [obj for obj in tracked if obj.class_phrase == "person"]
    boxes = np.concatenate([obj.boxes_xyxy[track.valid] for obj in people]) if people else np.zeros((0, 4))
    line = ground_height_line(boxes)
    if line is None:
        return {}
    a, horizon = line
    return {id(obj): a * (obj.boxes_xyxy[:, 3] - horizon) for obj in people}


def _only_trusted_frames(lifted: LiftResult, valid: np.ndarray) -> LiftResult:
    """Centres in frames whose camera pose is untrusted become unknown (their world position would be wrong)."""
    keep = valid & (lifted.method > 0)
    return LiftResult(np.where(keep[:, None], lifted.centers_cam, np.nan), np.where(keep, lifted.method, 0).astype(
        np.uint8), np.where(keep, lifted.sigma, 0.0))


def extract_clip(clip: VideoClip, meta: VideoMeta, video_path: str, record_id: str,
                 config: ExtractConfig = ExtractConfig(), timer: _Timer | None = None, *,
                 init_boxes: dict[str, InitBox] | None = None,
                 camera: CameraEstimate | None = None, detection: DetectionJob | None = None) -> ExtractOutcome:
    """Run camera and object stages on a decoded clip (see :func:`extract_video`).

    ``init_boxes``: objects named at the first sampled frame (grounding given boxes) instead of discovered
    movers. ``camera``: a camera estimate of this clip computed before (reused, e.g. by benchmarks that
    compare grounding modes); None runs the camera stage. ``detection``: :func:`detect_and_track` already
    running for this clip (``extract_video`` starts it before decoding); None starts it here when needed.
    """
    stop = threading.Event()  # set on leaving: a detection started here stops with the clip
    try:
        return _extract_clip(clip, meta, video_path, record_id, config, timer, init_boxes, camera, detection, stop)
    finally:
        stop.set()


def _extract_clip(clip: VideoClip, meta: VideoMeta, video_path: str, record_id: str, config: ExtractConfig,
                  timer: _Timer | None, init_boxes: dict[str, InitBox] | None, camera: CameraEstimate | None,
                  detection: DetectionJob | None, stop: threading.Event) -> ExtractOutcome:
    timer = timer or _Timer()
    out = ExtractOutcome(video=video_path, record_id=record_id, status="failed", reason="",
                         stage_seconds=timer.seconds, duration_s=meta.duration_s)
    if config.reject_cuts:
        cuts = timer.run("cuts", detect_shot_cuts, clip.dense_rgb, config.curate)
        if len(cuts):
            cut_s = clip.dense_indices[cuts[0] + 1] / meta.fps
            out.status, out.reason = "skipped", f"hard scene cut: at {cut_s:.1f}s"
            return out
    if init_boxes is not None:
        parse_init_boxes({k: {"class": b.class_phrase, "box": b.box_xyxy.tolist(), "is_agent": b.is_agent}
                          for k, b in init_boxes.items()}, clip.width, clip.height)  # raises on boxes off-frame
    notes: list[str] = []
    with ThreadPoolExecutor(1, thread_name_prefix="dsr-detect") as pool:
        # detection and dense tracking need only the frames: they run on the second core while the camera stage
        # (single-threaded SfM, which releases the GIL) runs on the first
        if detection is None and init_boxes is None and config.detection is not None:
            alone = threading.Event()
            detection = DetectionJob(pool.submit(timer.run, "detection", detect_and_track, clip, video_path,
                                                 meta.timestamps_s, config.detection, stop=stop, alone=alone), alone)
        if camera is None:
            estimator = create_estimator("camera/auto", config=config.camera, methods=config.camera_methods)
            camera = timer.run("camera", estimator.estimate, clip)
        out.camera_attempts = [_attempt_dict(a) for a in camera.attempts]
        if camera.track is None or not camera.trusted:
            out.status, out.reason = "skipped", f"untrusted geometry: {camera.reason}"
            stop.set()  # the detector stops at its next frame; leaving the pool waits for it
            return out
        if init_boxes is not None:
            objects = timer.run("objects", build_given_objects, clip, camera, init_boxes, config)
        else:
            objects = timer.run("objects", build_objects, clip, camera, config, video_path, meta, notes, detection)
    out.num_objects = len(objects)
    if not objects and not config.keep_empty:
        out.status, out.reason = "skipped", "no moving objects detected"
        return out
    video = VideoInfo(path=str(Path(video_path).resolve()), fps=meta.fps, width=clip.width, height=clip.height,
                      num_frames=meta.num_frames, duration_s=meta.duration_s, frame_indices=clip.frame_indices,
                      timestamps_s=clip.timestamps_s)
    used = next((a.stats for a in reversed(camera.attempts) if a.ok), {})
    out.camera_sigma_key = camera_sigma_key(camera.track.source.name, used, config.uncertainty)
    position_sigma, rotation_sigma = camera_sigmas(out.camera_sigma_key, camera.track.valid, config.uncertainty)
    camera_track = replace(camera.track, position_sigma=position_sigma, rotation_sigma_deg=rotation_sigma,
                           trusted=camera.trusted,
                           scale_drift_sigma=camera_scale_drift(out.camera_sigma_key, config.uncertainty),
                           scale_jitter_sigma=camera_scale_jitter(out.camera_sigma_key, config.uncertainty),
                           scale_reset_bound=camera_scale_reset(out.camera_sigma_key, config.uncertainty),
                           focal_range=camera_focal_range(out.camera_sigma_key, used, float(camera.track.K[0, 0, 0]),
                                                          max(clip.width, clip.height), config.uncertainty))
    out.record = SceneRecord(record_id=record_id, video=video, camera=camera_track, objects=tuple(objects),
                             scale_kind=camera.scale_kind)
    lost = "" if init_boxes is None else f" ({len(init_boxes) - len(objects)} given box(es) never tracked or located)"
    note = "".join(f"; {n}" for n in notes)
    out.status, out.reason = "ok", f"camera by {camera.method}, {len(objects)} object(s){lost}{note}"
    return out


def extract_video(path: str | os.PathLike[str], config: ExtractConfig = ExtractConfig(), *,
                  init_boxes: dict[str, InitBox] | None = None, record_id: str | None = None) -> ExtractOutcome:
    """One video → outcome. Bad input never raises: it becomes a failed/skipped outcome with a reason.

    ``record_id``: the id if already computed (:func:`record_id_for`, a hash of the file's bytes).
    """
    timer = _Timer()
    try:
        rid = record_id or record_id_for(path)
    except VideoError as err:
        return ExtractOutcome(video=str(path), record_id=f"{Path(path).stem}-unreadable", status="failed",
                              reason=f"unreadable video: {err}")
    try:
        # the container's packets list the frames in a fraction of a decode; load_clip checks the decoded frames
        meta = timer.run("decode", lambda p: probe_packets(p) or probe(p), path)
    except VideoError as err:
        return ExtractOutcome(video=str(path), record_id=rid, status="failed", reason=f"unreadable video: {err}",
                              stage_seconds=timer.seconds)
    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="dsr-detect") as pool:
        # the detector decodes the file itself and needs only the sampled frames' indices: it starts now, on
        # the second core, while this thread decodes the clip (on short clips it was the longest stage)
        detection = None
        if init_boxes is None and config.detection is not None and meta.num_frames >= config.clip.min_frames:
            alone = threading.Event()
            detection = DetectionJob(pool.submit(timer.run, "detection", detect_and_track, None, str(path),
                                                 meta.timestamps_s, config.detection,
                                                 sampled=sampled_indices(meta, config.clip), stop=stop, alone=alone),
                                     alone)
        try:
            try:
                clip, meta = timer.run("decode", load_clip, path, config.clip, meta)
            except ProbeMismatch:
                if not meta.from_packets:
                    raise
                # the decoder disagrees with the packets: count by decoding, and detect after the clip is read
                # (the detector already started from the packets' frame list)
                stop.set()
                detection = None
                meta = timer.run("decode", probe, path)
                clip, meta = timer.run("decode", load_clip, path, config.clip, meta)
            return extract_clip(clip, meta, str(path), rid, config, timer, init_boxes=init_boxes,
                                detection=detection)
        except VideoError as err:
            return ExtractOutcome(video=str(path), record_id=rid, status="failed", reason=f"unreadable video: {err}",
                                  stage_seconds=timer.seconds, duration_s=meta.duration_s)
        except DsrError as err:
            return ExtractOutcome(video=str(path), record_id=rid, status="failed", reason=str(err),
                                  stage_seconds=timer.seconds, duration_s=meta.duration_s)
        finally:
            stop.set()  # a clip skipped or failed: the detector stops at its next frame (leaving the pool waits)


def find_videos(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted, de-duplicated list of video files."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_SUFFIXES and q.is_file()))
        elif p.exists():
            found.append(p)
        else:
            raise DsrError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for p in found:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(p)
    return unique


def marker_path(out_dir: Path, record_id: str) -> Path:
    return out_dir / f"{record_id}.done.json"


def summarize(out_dir: Path, config: dict | None = None, config_hash: str | None = None) -> dict:
    """Aggregate the completion markers in ``out_dir`` of the run with ``config_hash`` into the run report.

    Markers of other settings (an earlier run with, e.g., another ``--camera``) are not counted; their
    number is reported as ``stale_markers``. ``config_hash=None`` counts every marker.
    """
    rows = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.done.json"))]
    current = [r for r in rows if config_hash is None or r.get("config_hash") == config_hash]
    by_status = Counter(r["status"] for r in current)
    by_reason = Counter(f"{r['status']}: {r['reason'].split(':')[0]}" for r in current if r["status"] != "ok")
    stage_totals: Counter[str] = Counter()
    for r in current:
        stage_totals.update(r.get("stage_seconds", {}))
    video_minutes = sum(r.get("duration_s", 0.0) for r in current) / 60.0
    return {
        "config_hash": config_hash,
        "config": config,
        "videos": len(current),
        "stale_markers": len(rows) - len(current),
        "by_status": dict(by_status),
        "by_reason": dict(by_reason),
        "stage_seconds": {k: round(v, 3) for k, v in stage_totals.items()},
        "seconds_per_video_minute": {k: round(v / video_minutes, 2) for k, v in stage_totals.items()}
        if video_minutes > 0 else {},
        "items": current,
    }


def _finished(marker: Path, config_hash: str) -> bool:
    """A video is done when its marker exists and was written with the same settings."""
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("config_hash") == config_hash
    except (OSError, ValueError):
        return False  # a marker that cannot be read is redone


def extract_into(path: str | os.PathLike[str], out_dir: Path, config: ExtractConfig = ExtractConfig(), *,
                 init_boxes: dict[str, InitBox] | None = None) -> ExtractOutcome | None:
    """Extract one video into ``out_dir`` (record, then its completion marker, each written atomically);
    None when its marker shows it was done before with the same settings (:func:`config_fingerprint`).

    The unit of work of :func:`run_extract` and of ``dsr pipeline`` workers, so both write exactly the same
    files. A marker of other settings is redone, and the video's record replaced — or removed, when the new
    settings write none (a record must not outlive its settings).
    """
    from dsr.scene.io import write_record

    _, config_hash = config_fingerprint(config, init_boxes)
    try:
        rid: str | None = record_id_for(path)
    except VideoError:
        rid = None  # extract_video turns it into a failed outcome; it is retried on every rerun
    marker = marker_path(out_dir, rid or f"{Path(path).stem}-unreadable")
    if rid is not None and _finished(marker, config_hash):
        return None
    outcome = extract_video(path, config, init_boxes=init_boxes, record_id=rid)
    outcome.config_hash = config_hash
    record_file = out_dir / f"{outcome.record_id}.npz"
    if outcome.record is not None:
        write_record(record_file, outcome.record)
    else:
        record_file.unlink(missing_ok=True)
    atomic_write_text(marker, json.dumps(outcome.summary(), indent=1))
    return outcome


def run_extract(inputs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                config: ExtractConfig = ExtractConfig(),
                progress: Callable[[str, ExtractOutcome | None], None] | None = None, *,
                init_boxes: dict[str, InitBox] | None = None) -> dict:
    """Extract every video under ``inputs`` into ``out_dir``; resumable; returns the report dict.

    Resuming is keyed on the settings (:func:`config_fingerprint`): a video whose marker was written with
    other settings is extracted again and its record replaced (or removed, when the new run writes none).
    ``report.json`` holds the settings and their hash. ``init_boxes`` (grounding given first-frame boxes)
    applies to a single video only.
    """
    out = Path(out_dir)
    videos = find_videos(inputs)
    if init_boxes is not None and len(videos) != 1:
        raise DsrError(f"init boxes name the objects of one video; got {len(videos)} videos")
    settings, config_hash = config_fingerprint(config, init_boxes)
    out.mkdir(parents=True, exist_ok=True)
    for path in videos:
        outcome = extract_into(path, out, config, init_boxes=init_boxes)
        if outcome is not None:
            atomic_write_text(out / "report.json", json.dumps(summarize(out, settings, config_hash), indent=1))
        if progress:
            progress(str(path), outcome)
    report = summarize(out, settings, config_hash)
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    return report
