"""On-disk format of a scene record: one ``.npz`` (zip) file.

Members:

* ``record.json`` — UTF-8 JSON with the schema version, every scalar and string field, and the
  sources; readable with ``unzip -p FILE record.json``;
* one ``.npy`` member per array, named by its place in the record: ``video/frame_indices``,
  ``camera/c2w``, ``objects/<i>/boxes_xyxy``, ``objects/<i>/masks/counts``,
  ``objects/<i>/orientation/world_from_agent``, ... (see ``docs/scene-record.md``).

``numpy.load`` opens the file directly. Writes go to a temp file that is renamed into place, so a
killed writer never leaves a half-written record. Reading re-runs every schema check and reports the
first violation as a one-line :class:`~dsr.errors.RecordError` naming the file and the field.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_open
from dsr.errors import RecordError
from dsr.scene.record import (
    SCHEMA_VERSION,
    CameraTrack,
    MaskTrack,
    ObjectTrack,
    OrientationTrack,
    SceneRecord,
    Source,
    VideoInfo,
    field_prefix,
)

RECORD_SUFFIX = ".npz"
META_MEMBER = "record.json"


def _source_json(source: Source) -> dict[str, str]:
    return {"name": source.name, "version": source.version}


def record_to_parts(record: SceneRecord) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a record into its JSON metadata and its named arrays."""
    v, cam = record.video, record.camera
    arrays: dict[str, np.ndarray] = {
        "video/frame_indices": v.frame_indices,
        "video/timestamps_s": v.timestamps_s,
        "camera/K": cam.K,
        "camera/c2w": cam.c2w,
        "camera/valid": cam.valid,
        "camera/confidence": cam.confidence,
        "camera/position_sigma": cam.position_sigma,
        "camera/rotation_sigma_deg": cam.rotation_sigma_deg,
    }
    objects_meta = []
    for i, obj in enumerate(record.objects):
        p = f"objects/{i}/"
        for name in ("visible", "boxes_xyxy", "confidence", "centers_cam", "centers_world",
                     "center_sigma", "center_method"):
            arrays[p + name] = getattr(obj, name)
        meta: dict[str, Any] = {
            "object_id": obj.object_id,
            "class_phrase": obj.class_phrase,
            "is_agent": obj.is_agent,
            "track_source": _source_json(obj.track_source),
            "center_source": _source_json(obj.center_source),
            "masks": None,
            "orientation": None,
        }
        if obj.masks is not None:
            meta["masks"] = {"height": obj.masks.height, "width": obj.masks.width}
            arrays[p + "masks/counts"] = obj.masks.counts
            arrays[p + "masks/offsets"] = obj.masks.offsets
        if obj.orientation is not None:
            meta["orientation"] = {"source": _source_json(obj.orientation.source)}
            arrays[p + "orientation/world_from_agent"] = obj.orientation.world_from_agent
            arrays[p + "orientation/confidence"] = obj.orientation.confidence
            arrays[p + "orientation/sigma_deg"] = obj.orientation.sigma_deg
        objects_meta.append(meta)
    meta_all = {
        "schema_version": record.schema_version,
        "record_id": record.record_id,
        "scale_kind": record.scale_kind,
        "meters_per_unit": record.meters_per_unit,
        "video": {"path": v.path, "fps": v.fps, "width": v.width, "height": v.height,
                  "num_frames": v.num_frames, "duration_s": v.duration_s},
        "camera": {"source": _source_json(cam.source)},
        "objects": objects_meta,
    }
    return meta_all, arrays


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_parts(path: str | os.PathLike[str], meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write metadata and named arrays as a record file, atomically (no validation)."""
    target = Path(path)
    with atomic_open(target, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED,
                                                          compresslevel=1) as zf:
        # fixed member timestamps: the same record gives the same bytes
        zf.writestr(_member(META_MEMBER), json.dumps(meta, indent=1, allow_nan=False))
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(_member(name + ".npy"), buf.getvalue())
    return target


def write_record(path: str | os.PathLike[str], record: SceneRecord) -> Path:
    """Write ``record`` atomically to ``path`` (a ``.npz`` file) and return the path."""
    meta, arrays = record_to_parts(record)
    return write_parts(path, meta, arrays)


class _Reader:
    """Reads named members of an open record file, turning every failure into a RecordError."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.names = set(zf.namelist())

    def array(self, name: str) -> np.ndarray:
        member = name + ".npy"
        if member not in self.names:
            raise RecordError("array missing from file", field=name.replace("/", "."))
        try:
            with self.zf.open(member) as fh:
                return np.lib.format.read_array(io.BytesIO(fh.read()), allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise RecordError(f"unreadable array ({exc})", field=name.replace("/", ".")) from None


def _get(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(meta, dict) or key not in meta:
        raise RecordError("missing", field=f"{where}.{key}" if where else key)
    value = meta[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordError(f"has type {type(value).__name__}", field=f"{where}.{key}" if where else key)
    return value


def _source(meta: dict[str, Any], key: str, where: str) -> Source:
    src = _get(meta, key, dict, where)
    with field_prefix(f"{where}.{key}" if where else key):
        return Source(name=_get(src, "name", str, ""), version=_get(src, "version", str, ""))


def record_from_parts(meta: dict[str, Any], arr: Any) -> SceneRecord:
    """Inverse of :func:`record_to_parts`; ``arr(name)`` returns the named array."""
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if version != SCHEMA_VERSION:
        raise RecordError(f"unknown schema version {version!r} (this dsr reads {SCHEMA_VERSION})",
                          field="schema_version")
    vm = _get(meta, "video", dict, "")
    with field_prefix("video"):
        video = VideoInfo(
            path=_get(vm, "path", str, ""), fps=_get(vm, "fps", float, ""),
            width=_get(vm, "width", int, ""), height=_get(vm, "height", int, ""),
            num_frames=_get(vm, "num_frames", int, ""), duration_s=_get(vm, "duration_s", float, ""),
            frame_indices=arr("video/frame_indices"), timestamps_s=arr("video/timestamps_s"),
        )
    cm = _get(meta, "camera", dict, "")
    with field_prefix("camera"):
        camera = CameraTrack(
            K=arr("camera/K"), c2w=arr("camera/c2w"), valid=arr("camera/valid"),
            confidence=arr("camera/confidence"), position_sigma=arr("camera/position_sigma"),
            rotation_sigma_deg=arr("camera/rotation_sigma_deg"), source=_source(cm, "source", ""),
        )
    objects = []
    for i, om in enumerate(_get(meta, "objects", list, "")):
        p = f"objects/{i}/"
        with field_prefix(f"objects[{i}]"):
            masks = None
            if _get(om, "masks", (dict, type(None)), "") is not None:
                mm = om["masks"]
                with field_prefix("masks"):
                    masks = MaskTrack(height=_get(mm, "height", int, ""), width=_get(mm, "width", int, ""),
                                      counts=arr(p + "masks/counts"), offsets=arr(p + "masks/offsets"))
            orientation = None
            if _get(om, "orientation", (dict, type(None)), "") is not None:
                with field_prefix("orientation"):
                    orientation = OrientationTrack(
                        world_from_agent=arr(p + "orientation/world_from_agent"),
                        confidence=arr(p + "orientation/confidence"),
                        sigma_deg=arr(p + "orientation/sigma_deg"),
                        source=_source(om["orientation"], "source", ""),
                    )
            objects.append(ObjectTrack(
                object_id=_get(om, "object_id", str, ""), class_phrase=_get(om, "class_phrase", str, ""),
                is_agent=_get(om, "is_agent", bool, ""),
                visible=arr(p + "visible"), boxes_xyxy=arr(p + "boxes_xyxy"), confidence=arr(p + "confidence"),
                centers_cam=arr(p + "centers_cam"), centers_world=arr(p + "centers_world"),
                center_sigma=arr(p + "center_sigma"), center_method=arr(p + "center_method"),
                track_source=_source(om, "track_source", ""), center_source=_source(om, "center_source", ""),
                masks=masks, orientation=orientation,
            ))
    mpu = meta.get("meters_per_unit")
    if mpu is not None and not isinstance(mpu, int | float):
        raise RecordError(f"has type {type(mpu).__name__}", field="meters_per_unit")
    return SceneRecord(
        record_id=_get(meta, "record_id", str, ""), video=video, camera=camera, objects=tuple(objects),
        scale_kind=_get(meta, "scale_kind", str, ""), meters_per_unit=None if mpu is None else float(mpu),
        schema_version=version,
    )


def read_record(path: str | os.PathLike[str]) -> SceneRecord:
    """Read and fully validate a record; any problem raises a one-line RecordError."""
    p = Path(path)
    if not p.exists():
        raise RecordError("no such file", path=str(p))
    try:
        with zipfile.ZipFile(p) as zf:
            reader = _Reader(zf)
            if META_MEMBER not in reader.names:
                raise RecordError(f"not a scene record ({META_MEMBER} missing)")
            try:
                meta = json.loads(zf.read(META_MEMBER).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise RecordError(f"malformed JSON ({exc})", field=META_MEMBER) from None
            return record_from_parts(meta, reader.array)
    except RecordError as err:
        raise RecordError(err.message, field=err.field, path=str(p)) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise RecordError(f"unreadable or truncated record file ({exc.__class__.__name__}: {exc})",
                          path=str(p)) from None


def resolve_video_path(record: SceneRecord, record_path: str | os.PathLike[str]) -> Path:
    """The video file of ``record``, resolving a relative path against the record file's folder."""
    vp = Path(record.video.path)
    return vp if vp.is_absolute() else Path(record_path).parent / vp
