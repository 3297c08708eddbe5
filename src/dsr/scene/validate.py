"""Whole-record checks beyond the schema: references to files outside the record."""

from __future__ import annotations

import os
from pathlib import Path

from dsr.errors import RecordError
from dsr.scene.io import read_record, resolve_video_path
from dsr.scene.record import SceneRecord


def validate_record_file(path: str | os.PathLike[str], *, check_video: bool = True) -> SceneRecord:
    """Read ``path`` (all schema checks) and check that its video file exists.

    Raises a one-line RecordError naming the file and the offending field.
    """
    record = read_record(path)
    if check_video:
        video = resolve_video_path(record, path)
        if not video.is_file():
            raise RecordError(f"video file not found: {video}", field="video.path", path=str(Path(path)))
    return record


def describe(record: SceneRecord) -> str:
    """One line summary of a record."""
    agents = sum(o.is_agent for o in record.objects)
    v = record.video
    return (f"{record.record_id}: {record.num_frames} frames over {v.timestamps_s[-1] - v.timestamps_s[0]:.1f}s "
            f"of {v.width}x{v.height} @ {v.fps:g} fps, {len(record.objects)} objects ({agents} agents), "
            f"scale {record.scale_kind}, camera by {record.camera.source.name}")
