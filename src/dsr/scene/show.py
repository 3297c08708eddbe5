"""Seeing a record: what every view of a scene shows, and the Rerun recording (``.rrd``).

The helpers at the top (colours, labels, the world's up axis, speeds and distances) are shared by
the Rerun recording here and the matplotlib plot in :mod:`dsr.scene.plot`, so an object has the
same colour and name everywhere. Conventions (OpenCV cameras, c2w poses) are those of
:mod:`dsr.scene.frames`.

Entity layout of the recording (time lines: ``time`` in seconds and ``frame``, the sampled index):

* ``world`` — view coordinates (the up axis is inferred, z up for synthetic worlds) and ``world/axes``;
* ``world/camera`` — camera pose (Transform3D) per frame; ``world/camera/image`` — Pinhole (frustum,
  red where the pose is invalid), the video frame, ``…/boxes`` (2D boxes) and ``…/masks``
  (segmentation image) when present; ``world/camera_path`` — the camera centre over time, with
  ``…/invalid`` marking frames whose pose is invalid;
* ``world/objects/<id>`` — 3D centre per frame (cleared where unknown), ``…/trajectory`` — the whole
  path as line strips, ``…/forward`` — an agent's forward axis as an arrow;
* ``plots/distance/<id>``, ``plots/speed/<id>`` — the same curves as the PNG plot;
* ``log`` — notes such as invalid camera frames.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from dsr.errors import DsrError
from dsr.scene.record import ObjectTrack, SceneRecord

if TYPE_CHECKING:  # rerun is the optional `viz` extra, imported only when a recording is written
    import rerun as rr_t
    import rerun.blueprint as rrb_t

# tab10 without its grey: distinct, colour-blind friendlier than random hues. RGB 0-255.
OBJECT_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207),
)
CAMERA_COLOR: tuple[int, int, int] = (40, 40, 40)
CAMERA_FRUSTUM_COLOR: tuple[int, int, int] = (210, 210, 210)
INVALID_COLOR: tuple[int, int, int] = (230, 30, 30)
AXIS_NAMES = ("x", "y", "z")


def object_color(index: int) -> tuple[int, int, int]:
    """RGB 0-255 of the ``index``-th object of a record (the same in the plot and the recording)."""
    return OBJECT_PALETTE[index % len(OBJECT_PALETTE)]


def object_label(obj: ObjectTrack) -> str:
    """Human label of an object: class phrase and id, e.g. ``person (agent_0)``."""
    return f"{obj.class_phrase} ({obj.object_id})"


def world_up_axis(c2w: np.ndarray, valid: np.ndarray | None = None) -> tuple[int, int]:
    """Guess the world's up axis from the cameras: (axis index 0-2, sign ±1).

    c2w: (T, 4, 4) OpenCV camera-to-world. Cameras are usually held roughly upright, so the mean of
    their up vectors (−y in OpenCV) points near world up; records carry no up axis of their own.
    A synthetic z-up world gives (2, +1); a world in the first camera's frame gives (1, −1).
    """
    ups = -np.asarray(c2w)[:, :3, 1]
    if valid is not None and np.any(valid):
        ups = ups[np.asarray(valid, bool)]
    mean = ups.mean(axis=0)
    if not np.all(np.isfinite(mean)) or np.linalg.norm(mean) < 1e-6:
        return 2, 1
    axis = int(np.argmax(np.abs(mean)))
    return axis, 1 if mean[axis] > 0 else -1


def ground_axes(up: tuple[int, int]) -> tuple[int, int]:
    """The two horizontal world axes (a, b), ordered so that a × b = up: a top view seen from above."""
    axis, sign = up
    a, b = (axis + 1) % 3, (axis + 2) % 3
    return (a, b) if sign > 0 else (b, a)


def scene_extent(record: SceneRecord) -> float:
    """Largest side of the box holding every known camera and object position (1.0 if degenerate)."""
    pts = [record.camera.c2w[:, :3, 3]] + [o.centers_world for o in record.objects]
    allp = np.concatenate(pts)
    allp = allp[np.isfinite(allp).all(axis=1)]
    if len(allp) == 0:
        return 1.0
    side = float(np.ptp(allp, axis=0).max())
    return side if side > 1e-9 else 1.0


def speeds(positions: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Speed (T,) in units/s from positions (T, 3) at times t_s (T,); NaN where it or a neighbour is unknown.

    Central differences inside, one-sided at the ends (``np.gradient`` on uneven times).
    """
    if len(positions) < 2:
        return np.full(len(positions), np.nan)
    positions = np.asarray(positions, np.float64)
    with np.errstate(invalid="ignore"):
        vel = np.gradient(positions, np.asarray(t_s, np.float64), axis=0)
    speed = np.linalg.norm(vel, axis=1)
    # on even spacing a central difference skips frame t itself: an unknown position has no speed
    return np.where(np.isfinite(positions).all(axis=1), speed, np.nan)


def camera_distances(record: SceneRecord, obj: ObjectTrack) -> np.ndarray:
    """(T,) distance from the camera centre to the object's centre; NaN where the centre is unknown."""
    return np.linalg.norm(obj.centers_world - record.camera.c2w[:, :3, 3], axis=1)


def known_runs(known: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges [start, stop) of consecutive true values in ``known`` (T,) bool."""
    k = np.concatenate(([False], np.asarray(known, bool), [False]))
    edges = np.flatnonzero(np.diff(k.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def unit_label(record: SceneRecord) -> str:
    """What one record unit is, for axis labels."""
    if record.scale_kind == "metric":
        return "m"
    if record.meters_per_unit is not None:
        return f"units (1 unit = {record.meters_per_unit:.3g} m)"
    return f"units ({record.scale_kind.replace('_', ' ')})"


def output_paths(record_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Where ``dsr show`` (and the demo) write a record's views: ``<stem>.png`` and ``<stem>.rrd``.

    out_dir defaults to the record's folder; ``worlds/3/record.npz`` gives ``worlds/3/record.png`` and
    ``worlds/3/record.rrd``. One function, so the command, the demo and the README name the same files.
    """
    path = Path(record_path)
    folder = path.parent if out_dir is None else Path(out_dir)
    stem = path.name.removesuffix(".npz")
    return folder / f"{stem}.png", folder / f"{stem}.rrd"


@dataclass(frozen=True)
class ObjectSummary:
    """What ``dsr show --objects`` lists about one object (what ``dsr answer --targets`` needs).

    visible_frames: inclusive runs ``(first, last)`` of record frame indices where the object is visible,
    the indices ``dsr answer --interval S:E`` takes; visible_s: the same runs in seconds.
    """

    object_id: str
    class_phrase: str
    is_agent: bool
    visible_frames: tuple[tuple[int, int], ...]
    visible_s: tuple[tuple[float, float], ...]
    n_center_known: int
    has_orientation: bool


def object_summaries(record: SceneRecord) -> list[ObjectSummary]:
    """One :class:`ObjectSummary` per object of ``record``, in record order."""
    ts = record.timestamps_s
    out = []
    for obj in record.objects:
        runs = tuple((a, b - 1) for a, b in known_runs(obj.visible))
        out.append(ObjectSummary(
            object_id=obj.object_id, class_phrase=obj.class_phrase, is_agent=bool(obj.is_agent),
            visible_frames=runs, visible_s=tuple((float(ts[a]), float(ts[b])) for a, b in runs),
            n_center_known=int(obj.center_known.sum()), has_orientation=obj.orientation is not None))
    return out


def format_runs(runs: tuple[tuple[int, int], ...] | tuple[tuple[float, float], ...], *, seconds: bool = False) -> str:
    """``0:7, 10:11`` (inclusive frame runs, as ``--interval`` takes them) or ``0.00-0.70 s, ...``."""
    if not runs:
        return "never"
    if seconds:
        return ", ".join(f"{a:.2f}-{b:.2f}" for a, b in runs) + " s"
    return ", ".join(f"{a}:{b}" for a, b in runs)


# --------------------------------------------------------------------------------------------------
# Rerun


def _view_coordinates(rr: ModuleType, up: tuple[int, int]) -> rr_t.ViewCoordinates:
    name = f"RIGHT_HAND_{AXIS_NAMES[up[0]].upper()}_{'UP' if up[1] > 0 else 'DOWN'}"
    return getattr(rr.ViewCoordinates, name)


def _blueprint() -> rrb_t.Blueprint:
    import rerun.blueprint as rrb

    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(origin="world", name="3D scene"),
            rrb.Vertical(
                rrb.Spatial2DView(origin="world/camera/image", name="camera view"),
                rrb.TimeSeriesView(origin="plots/distance", name="distance to camera"),
                rrb.TimeSeriesView(origin="plots/speed", name="speed"),
            ),
            column_shares=[3, 2],
        ),
        collapse_panels=True,
    )


def _entity(rr: ModuleType, *parts: str) -> str:
    return "/".join(rr.escape_entity_path_part(p) for p in parts)


def _segmentation(record: SceneRecord, t: int) -> np.ndarray | None:
    """(H, W) uint16 class ids (object index + 1, 0 = background) at frame t, or None if no mask there.

    Where masks overlap, the later object wins (ground-truth masks from a renderer do not overlap).
    """
    seg: np.ndarray | None = None
    for i, obj in enumerate(record.objects):
        if obj.masks is None:
            continue
        mask = obj.masks.decode(t)
        if mask is None:
            continue
        if seg is None:
            seg = np.zeros(mask.shape, np.uint16)
        seg[mask] = i + 1
    return seg


def log_record_to_rerun(
    record: SceneRecord,
    rrd_path: str | os.PathLike[str],
    video_frames: np.ndarray | None = None,
    *,
    on_frame: Callable[[int], None] | None = None,
) -> Path:
    """Write a Rerun recording of ``record`` to ``rrd_path`` (no viewer, no network) and return the path.

    video_frames: (T, H, W, 3) uint8 RGB, the sampled frames in record order, or None for no images.
    on_frame: called with each frame index after it is logged (progress bars).
    The file appears atomically: a temp file beside it is renamed once the recording is complete.
    """
    try:
        import rerun as rr
    except ImportError:
        raise DsrError("writing a .rrd needs rerun-sdk: pip install 'dsr[viz]'") from None

    n = record.num_frames
    if video_frames is not None:
        video_frames = np.asarray(video_frames)
        if video_frames.ndim != 4 or video_frames.shape[0] != n or video_frames.shape[3] != 3:
            raise DsrError(f"video_frames has shape {video_frames.shape}, expected ({n}, H, W, 3)")
    target = Path(rrd_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    app_id = "dsr_" + re.sub(r"[^A-Za-z0-9_-]", "_", record.record_id)  # rerun entry names allow no "/"
    rec = rr.RecordingStream(app_id, recording_id=uuid.uuid4())
    try:
        rec.save(tmp, default_blueprint=_blueprint())
        _log_static(rr, rec, record)
        curves = _Curves.of(record)
        for t in range(n):
            _log_frame(rr, rec, record, curves, t, None if video_frames is None else video_frames[t])
            if on_frame is not None:
                on_frame(t)
        rec.flush()
        rec.disconnect()  # closes the file and writes its footer
        os.replace(tmp, target)
    finally:
        if tmp.exists():  # failed part-way: close the sink and drop the partial file
            rec.disconnect()
            tmp.unlink()
    return target


def _log_static(rr: ModuleType, rec: rr_t.RecordingStream, record: SceneRecord) -> None:
    cam = record.camera
    up = world_up_axis(cam.c2w, cam.valid)
    extent = scene_extent(record)
    rec.log("world", _view_coordinates(rr, up), static=True)
    axis_len = 0.25 * extent
    rec.log("world/axes", rr.Arrows3D(
        vectors=np.eye(3) * axis_len, colors=[(230, 60, 60), (60, 200, 60), (60, 110, 240)],
        labels=list(AXIS_NAMES), radii=0.01 * axis_len), static=True)
    # class id = object index + 1: one colour and label per object in boxes, masks and points
    rec.log("/", rr.AnnotationContext([
        rr.AnnotationInfo(id=i + 1, label=object_label(o), color=object_color(i))
        for i, o in enumerate(record.objects)]), static=True)
    positions = cam.c2w[:, :3, 3]
    rec.log("world/camera_path", rr.LineStrips3D(
        [positions], colors=[CAMERA_COLOR], radii=0.004 * extent, labels=["camera path"]), static=True)
    if not cam.valid.all():
        rec.log("world/camera_path/invalid", rr.Points3D(
            positions[~cam.valid], colors=[INVALID_COLOR], radii=0.01 * extent), static=True)
    for i, obj in enumerate(record.objects):
        runs = [obj.centers_world[a:b] for a, b in known_runs(obj.center_known) if b - a >= 2]
        if runs:
            rec.log(_entity(rr, "world", "objects", obj.object_id, "trajectory"), rr.LineStrips3D(
                runs, class_ids=[i + 1] * len(runs), radii=0.003 * extent), static=True)
    for name in ("distance", "speed"):
        for i, obj in enumerate(record.objects):
            rec.log(_entity(rr, "plots", name, obj.object_id),
                    rr.SeriesLines(colors=[object_color(i)], names=[object_label(obj)]), static=True)
    rec.log("plots/speed/camera", rr.SeriesLines(colors=[CAMERA_COLOR], names=["camera"]), static=True)


@dataclass(frozen=True)
class _Curves:
    """Per-frame values computed once per record: extent, camera speed (T,), per-object speed/distance (N, T)."""

    extent: float
    camera_speed: np.ndarray
    object_speed: np.ndarray
    object_distance: np.ndarray

    @staticmethod
    def of(record: SceneRecord) -> _Curves:
        ts = record.timestamps_s
        n = record.num_frames
        return _Curves(
            extent=scene_extent(record),
            camera_speed=speeds(record.camera.c2w[:, :3, 3], ts),
            object_speed=np.array([speeds(o.centers_world, ts) for o in record.objects]).reshape(-1, n),
            object_distance=np.array([camera_distances(record, o) for o in record.objects]).reshape(-1, n),
        )


def _log_frame(rr: ModuleType, rec: rr_t.RecordingStream, record: SceneRecord, curves: _Curves, t: int,
               image: np.ndarray | None) -> None:
    cam = record.camera
    ts = record.timestamps_s
    extent = curves.extent
    rec.set_time("time", duration=float(ts[t]))
    rec.set_time("frame", sequence=t)
    valid = bool(cam.valid[t])
    rec.log("world/camera", rr.Transform3D(translation=cam.c2w[t, :3, 3], mat3x3=cam.c2w[t, :3, :3]))
    rec.log("world/camera/image", rr.Pinhole(
        image_from_camera=cam.K[t], resolution=[record.video.width, record.video.height],
        camera_xyz=rr.ViewCoordinates.RDF, image_plane_distance=0.15 * extent,
        color=CAMERA_FRUSTUM_COLOR if valid else INVALID_COLOR))
    if not valid:
        rec.log("log", rr.TextLog(f"frame {t}: camera pose invalid (shown red, not to be trusted)",
                                  level=rr.TextLogLevel.WARN))
    if image is not None:
        rec.log("world/camera/image", rr.Image(image).compress(jpeg_quality=85))

    vis = [i for i, o in enumerate(record.objects) if o.visible[t]]
    rec.log("world/camera/image/boxes", rr.Boxes2D(
        array=np.array([record.objects[i].boxes_xyxy[t] for i in vis]).reshape(-1, 4),
        array_format=rr.Box2DFormat.XYXY, class_ids=[i + 1 for i in vis],
        labels=[object_label(record.objects[i]) for i in vis]))
    if any(o.masks is not None for o in record.objects):
        seg = _segmentation(record, t)
        if seg is None:
            rec.log("world/camera/image/masks", rr.Clear(recursive=False))
        else:
            rec.log("world/camera/image/masks", rr.SegmentationImage(seg, opacity=0.5))

    if np.isfinite(curves.camera_speed[t]):
        rec.log("plots/speed/camera", rr.Scalars(curves.camera_speed[t]))
    for i, obj in enumerate(record.objects):
        path = _entity(rr, "world", "objects", obj.object_id)
        if not obj.center_known[t]:
            # unknown here: clear the point and arrow so a stale position is not shown
            rec.log(path, rr.Clear(recursive=False))
            if obj.orientation is not None:
                rec.log(path + "/forward", rr.Clear(recursive=False))
            continue
        centre = obj.centers_world[t]
        rec.log(path, rr.Points3D([centre], class_ids=[i + 1], labels=[object_label(obj)],
                                  radii=0.015 * extent, show_labels=True))
        if obj.orientation is not None:
            if obj.orientation.known[t]:
                forward = obj.orientation.world_from_agent[t, :, 0]
                rec.log(path + "/forward", rr.Arrows3D(
                    origins=[centre], vectors=[forward * 0.12 * extent], class_ids=[i + 1],
                    radii=0.006 * extent))
            else:
                rec.log(path + "/forward", rr.Clear(recursive=False))
        rec.log(_entity(rr, "plots", "distance", obj.object_id), rr.Scalars(curves.object_distance[i, t]))
        if np.isfinite(curves.object_speed[i, t]):
            rec.log(_entity(rr, "plots", "speed", obj.object_id), rr.Scalars(curves.object_speed[i, t]))


def sampled_video_frames(record: SceneRecord, record_path: str | os.PathLike[str]) -> tuple[np.ndarray | None, str]:
    """The record's sampled frames (T, H, W, 3) uint8, or (None, why not) if the video cannot be used.

    A missing, unreadable or differently sized video is not an error for viewing: the recording is
    still useful without images, so the reason comes back as a note instead.
    """
    from dsr.scene.io import resolve_video_path
    from dsr.video import VideoError, read_frames

    path = resolve_video_path(record, record_path)
    if not path.is_file():
        return None, f"video {path} not found; the recording has no images"
    try:
        frames = read_frames(path, record.video.frame_indices)
    except VideoError as exc:
        return None, f"{exc}; the recording has no images"
    size = (record.video.height, record.video.width)
    if frames.shape[1:3] != size:
        return None, (f"video {path} is {frames.shape[2]}×{frames.shape[1]}, the record says "
                      f"{size[1]}×{size[0]}; the recording has no images")
    return frames, ""
