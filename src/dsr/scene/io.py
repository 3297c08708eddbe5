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

import ast
import functools
import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dsr.atomic import atomic_open
from dsr.errors import RecordError
from dsr.scene.record import (
    READABLE_SCHEMA_VERSIONS,
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
OBJECT_ARRAYS: tuple[str, ...] = ("visible", "boxes_xyxy", "confidence", "centers_cam", "centers_world",
                                  "center_sigma_along", "center_sigma_across", "center_sigma_shared",
                                  "center_method")


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
        for name in OBJECT_ARRAYS:
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
        "camera": {"source": _source_json(cam.source), "trusted": cam.trusted,
                   "scale_drift_sigma": cam.scale_drift_sigma, "scale_jitter_sigma": cam.scale_jitter_sigma,
                   "scale_reset_bound": cam.scale_reset_bound, "focal_range": list(cam.focal_range)},
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


@functools.lru_cache(maxsize=256)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """(dtype, shape, fortran order) of an .npy header dict; cached, since a record repeats a few headers.

    numpy's own reader parses every header with ``ast`` (a third of the time of reading a record).
    """
    d = ast.literal_eval(header.decode("latin1"))
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"malformed .npy header {header[:60]!r}")
    dtype = np.lib.format.descr_to_dtype(d["descr"])
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    shape = tuple(int(n) for n in d["shape"])
    return dtype, shape, bool(d["fortran_order"])


def _parse_npy(raw: bytes) -> np.ndarray:
    """An .npy file's bytes → a read-only array viewing them (versions 1–3, no pickles)."""
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise ValueError("not an .npy array")
    major = raw[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", raw[8:10]), 10
    elif major in (2, 3):
        (hlen,), start = struct.unpack("<I", raw[8:12]), 12
    else:
        raise ValueError(f"unknown .npy version {major}")
    dtype, shape, fortran = _npy_header(raw[start:start + hlen])
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - start - hlen != count * dtype.itemsize:
        raise ValueError(f"{len(raw) - start - hlen} data bytes for shape {shape} of {dtype}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=start + hlen)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


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
            return _parse_npy(self.zf.read(member))
        except (ValueError, TypeError, SyntaxError, OSError, zipfile.BadZipFile, EOFError) as exc:
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


def record_from_parts(meta: dict[str, Any], arr: Any, *, masks: bool = True) -> SceneRecord:
    """Inverse of :func:`record_to_parts`; ``arr(name)`` returns the named array.

    ``masks=False`` leaves the objects' masks out (``None``) without reading them.
    """
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if version not in READABLE_SCHEMA_VERSIONS or isinstance(version, bool):
        readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
        raise RecordError(f"unknown schema version {version!r} (this dsr reads {readable})", field="schema_version")
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
            # v1 had no record-level flag; v1 extraction wrote records from trusted cameras only
            trusted=True if version == 1 else _get(cm, "trusted", bool, ""),
            # v1 and v2 stated no scale error of the path
            scale_drift_sigma=_get(cm, "scale_drift_sigma", float, "") if version >= 3 else 0.0,
            # written since v3 by this dsr; a v3 file without it states no jitter
            scale_jitter_sigma=_get(cm, "scale_jitter_sigma", float, "") if "scale_jitter_sigma" in cm else 0.0,
            # v1-v3 stated no scale reset at the camera's stops
            scale_reset_bound=_get(cm, "scale_reset_bound", float, "") if version >= 4 else 0.0,
            # v1-v4 stated no error of the focal length
            focal_range=tuple(_get(cm, "focal_range", list, "")) if version >= 5 else (1.0, 1.0),
        )
    objects = []
    for i, om in enumerate(_get(meta, "objects", list, "")):
        p = f"objects/{i}/"
        with field_prefix(f"objects[{i}]"):
            mask_track = None
            if _get(om, "masks", (dict, type(None)), "") is not None and masks:
                mm = om["masks"]
                with field_prefix("masks"):
                    mask_track = MaskTrack(height=_get(mm, "height", int, ""), width=_get(mm, "width", int, ""),
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
            if version == 1:  # one isotropic sigma: the same along and across the ray, nothing shared
                sigma = arr(p + "center_sigma")
                along, across, shared = sigma, sigma, np.zeros_like(sigma)
            else:
                along, across = arr(p + "center_sigma_along"), arr(p + "center_sigma_across")
                shared = arr(p + "center_sigma_shared")
            objects.append(ObjectTrack(
                object_id=_get(om, "object_id", str, ""), class_phrase=_get(om, "class_phrase", str, ""),
                is_agent=_get(om, "is_agent", bool, ""),
                visible=arr(p + "visible"), boxes_xyxy=arr(p + "boxes_xyxy"), confidence=arr(p + "confidence"),
                centers_cam=arr(p + "centers_cam"), centers_world=arr(p + "centers_world"),
                center_sigma_along=along, center_sigma_across=across, center_sigma_shared=shared,
                center_method=arr(p + "center_method"),
                track_source=_source(om, "track_source", ""), center_source=_source(om, "center_source", ""),
                masks=mask_track, orientation=orientation,
            ))
    mpu = meta.get("meters_per_unit")
    if mpu is not None and not isinstance(mpu, int | float):
        raise RecordError(f"has type {type(mpu).__name__}", field="meters_per_unit")
    return SceneRecord(
        record_id=_get(meta, "record_id", str, ""), video=video, camera=camera, objects=tuple(objects),
        scale_kind=_get(meta, "scale_kind", str, ""), meters_per_unit=None if mpu is None else float(mpu),
    )


def read_record(path: str | os.PathLike[str], *, masks: bool = True) -> SceneRecord:
    """Read and fully validate a record; any problem raises a one-line RecordError.

    ``masks=False`` skips the objects' run-length masks (their ``masks`` are None): most of a record's
    bytes, which question generation and evaluation never look at.
    """
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
            return record_from_parts(meta, reader.array, masks=masks)
    except RecordError as err:
        raise RecordError(err.message, field=err.field, path=str(p)) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise RecordError(f"unreadable or truncated record file ({exc.__class__.__name__}: {exc})",
                          path=str(p)) from None


def resolve_video_path(record: SceneRecord, record_path: str | os.PathLike[str]) -> Path:
    """The video file of ``record``, resolving a relative path against the record file's folder."""
    vp = Path(record.video.path)
    return vp if vp.is_absolute() else Path(record_path).parent / vp
