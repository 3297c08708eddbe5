"""The 4D scene record and its geometry kernel (pure numpy)."""

from dsr.scene.io import read_record, resolve_video_path, write_record
from dsr.scene.record import (
    CENTER_METHODS,
    SCHEMA_VERSION,
    CameraTrack,
    MaskTrack,
    ObjectTrack,
    OrientationTrack,
    SceneRecord,
    Source,
    VideoInfo,
)

__all__ = [
    "CENTER_METHODS",
    "SCHEMA_VERSION",
    "CameraTrack",
    "MaskTrack",
    "ObjectTrack",
    "OrientationTrack",
    "SceneRecord",
    "Source",
    "VideoInfo",
    "read_record",
    "resolve_video_path",
    "write_record",
]
