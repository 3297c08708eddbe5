"""Convenience constructors for records from plain arrays (used by worlds, extractors and tests)."""

from __future__ import annotations

import numpy as np

from dsr.scene.frames import invert_pose, transform_points
from dsr.scene.record import CENTER_METHODS, CameraTrack, MaskTrack, ObjectTrack, OrientationTrack, Source
from dsr.scene.rle import encode_mask_frames

GROUND_TRUTH = Source(name="ground_truth", version="1")


def _per_frame(value: float | np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def camera_track(K: np.ndarray, c2w: np.ndarray, source: Source = GROUND_TRUTH, *,
                 valid: np.ndarray | None = None, confidence: np.ndarray | None = None,
                 position_sigma: float | np.ndarray = 0.0, rotation_sigma_deg: float | np.ndarray = 0.0,
                 trusted: bool = True) -> CameraTrack:
    """CameraTrack from K (T,3,3) or (3,3) and OpenCV c2w (T,4,4); defaults: all valid, confidence 1, trusted."""
    c2w = np.asarray(c2w, dtype=np.float64)
    n = len(c2w)
    K = np.broadcast_to(np.asarray(K, dtype=np.float64), (n, 3, 3))
    return CameraTrack(
        K=K, c2w=c2w,
        valid=np.ones(n, bool) if valid is None else valid,
        confidence=np.ones(n) if confidence is None else confidence,
        position_sigma=np.broadcast_to(np.asarray(position_sigma, dtype=np.float64), (n,)),
        rotation_sigma_deg=np.broadcast_to(np.asarray(rotation_sigma_deg, dtype=np.float64), (n,)),
        source=source, trusted=trusted,
    )


def object_track_from_world(
    object_id: str,
    class_phrase: str,
    *,
    centers_world: np.ndarray,
    c2w: np.ndarray,
    visible: np.ndarray,
    boxes_xyxy: np.ndarray,
    is_agent: bool = False,
    world_from_agent: np.ndarray | None = None,
    orientation_confidence: np.ndarray | None = None,
    masks: list[np.ndarray | None] | None = None,
    frame_size: tuple[int, int] | None = None,
    track_source: Source = GROUND_TRUTH,
    center_source: Source = GROUND_TRUTH,
    center_method: str = "ground_truth",
    center_sigma: float | np.ndarray = 0.0,
    center_sigma_along: float | np.ndarray | None = None,
    center_sigma_across: float | np.ndarray | None = None,
    center_sigma_shared: float | np.ndarray = 0.0,
    orientation_sigma_deg: float | np.ndarray = 0.0,
    confidence: np.ndarray | None = None,
) -> ObjectTrack:
    """ObjectTrack from world centres (T,3) (NaN = unknown); camera-frame centres follow from c2w.

    boxes_xyxy (T,4) are set to NaN where ``visible`` is false. ``masks`` is a per-frame list of
    (H, W) bool or None and needs ``frame_size=(height, width)``. ``center_sigma`` is an isotropic
    1-sigma, used along and across the ray unless ``center_sigma_along`` / ``center_sigma_across`` are given.
    """
    visible = np.asarray(visible, dtype=bool)
    n = len(visible)
    centers_world = np.asarray(centers_world, dtype=np.float64)
    centers_cam = transform_points(invert_pose(np.asarray(c2w, dtype=np.float64)), centers_world)
    known = np.isfinite(centers_world).all(axis=1)
    method = np.where(known, CENTER_METHODS.index(center_method), 0).astype(np.uint8)
    boxes = np.where(visible[:, None], np.asarray(boxes_xyxy, dtype=np.float64), np.nan)
    mask_track = None
    if masks is not None:
        if frame_size is None:
            raise ValueError("masks need frame_size=(height, width)")
        counts, offsets = encode_mask_frames(masks, *frame_size)
        mask_track = MaskTrack(height=frame_size[0], width=frame_size[1], counts=counts, offsets=offsets)
    orientation = None
    if world_from_agent is not None:
        rot = np.asarray(world_from_agent, dtype=np.float64)
        rot_known = np.isfinite(rot).all(axis=(1, 2))
        conf = np.where(rot_known, 1.0, 0.0) if orientation_confidence is None else orientation_confidence
        orientation = OrientationTrack(
            world_from_agent=rot, confidence=conf,
            sigma_deg=np.broadcast_to(np.asarray(orientation_sigma_deg, dtype=np.float64), (n,)),
            source=center_source,
        )
    return ObjectTrack(
        object_id=object_id, class_phrase=class_phrase, is_agent=is_agent, visible=visible, boxes_xyxy=boxes,
        confidence=np.where(visible, 1.0, 0.0) if confidence is None else confidence,
        centers_cam=centers_cam, centers_world=centers_world,
        center_sigma_along=_per_frame(center_sigma if center_sigma_along is None else center_sigma_along, n),
        center_sigma_across=_per_frame(center_sigma if center_sigma_across is None else center_sigma_across, n),
        center_sigma_shared=_per_frame(center_sigma_shared, n),
        center_method=method, track_source=track_source, center_source=center_source,
        masks=mask_track, orientation=orientation,
    )
