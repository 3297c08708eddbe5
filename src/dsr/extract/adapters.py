"""Convert each backend's native output into the record's conventions, in one named function each.

Conventions are those of :mod:`dsr.scene.frames` (OpenCV camera, c2w poses, pixels at full resolution).
Also the learned models' documented post-processing (extraction.md §1, dsr-paper.md §4), as pure numpy
functions tested against the exact I/O contracts:

* π³: ``valid = sigmoid(conf) > 0.1`` and not a depth edge at rtol 0.03; nearest upsampling to the
  video size; object centre = mean of ``local_points[mask & valid]``.
* Grounding DINO: normalised (cx, cy, w, h) boxes → xyxy pixels; box 0.35 / text 0.25; NMS at IoU 0.6.
* Orient Anything: head layouts (720+2 for DSR's ``croplargeEX2``, 900+2 for ``ronormsigma1``) →
  azimuth / polar / rotation / confidence; DSR rejects confidence < 0.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsr.scene.build import camera_track
from dsr.scene.frames import invert_pose, make_pose
from dsr.scene.record import CameraTrack, Source

PI3_CONF_THRESHOLD = 0.1  # on sigmoid(conf); π³'s conf output is a logit
PI3_EDGE_RTOL = 0.03
GDINO_BOX_THRESHOLD = 0.35
GDINO_TEXT_THRESHOLD = 0.25
GDINO_NMS_IOU = 0.6
ORIENT_MIN_CONFIDENCE = 0.6


# --------------------------------------------------------------------------------------------------
# camera poses


def c2w_from_w2c(w2c: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera (…, 3, 4) or (…, 4, 4) → camera-to-world (…, 4, 4)."""
    w2c = np.asarray(w2c, dtype=np.float64)
    return invert_pose(make_pose(w2c[..., :3, :3], w2c[..., :3, 3]))


def w2c_from_c2w(c2w: np.ndarray) -> np.ndarray:
    """Inverse of :func:`c2w_from_w2c` (returns (…, 4, 4))."""
    return invert_pose(np.asarray(c2w, dtype=np.float64))


def camera_track_from_w2c(w2c: np.ndarray, K: np.ndarray, source: Source, *, valid: np.ndarray | None = None,
                          confidence: np.ndarray | None = None, position_sigma: float | np.ndarray = 0.0,
                          rotation_sigma_deg: float | np.ndarray = 0.0) -> CameraTrack:
    """CameraTrack from OpenCV world-to-camera poses (T, 3|4, 4) — pycolmap's ``cam_from_world``, VGGT, DA3.

    The rotations are re-orthonormalised (SVD) first: solver output in float32 drifts by ~1e-6.
    """
    w2c = np.asarray(w2c, dtype=np.float64)
    u, _, vt = np.linalg.svd(w2c[..., :3, :3])
    rot = u @ vt
    c2w = c2w_from_w2c(make_pose(rot, w2c[..., :3, 3]))
    return camera_track(K, c2w, source, valid=valid, confidence=confidence, position_sigma=position_sigma,
                        rotation_sigma_deg=rotation_sigma_deg)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------------------------------
# π³


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def depth_edge(depth: np.ndarray, rtol: float = PI3_EDGE_RTOL, kernel_size: int = 3) -> np.ndarray:
    """(…, H, W) bool: pixels whose 3×3 neighbourhood depth range exceeds ``rtol`` × their depth.

    Same rule as π³'s (MoGe's) ``depth_edge(depth, rtol=...)``: (max − min over the window) / depth > rtol,
    windows clipped at the image border.
    """
    from scipy.ndimage import maximum_filter, minimum_filter

    depth = np.asarray(depth, dtype=np.float64)
    size = (1,) * (depth.ndim - 2) + (kernel_size, kernel_size)
    diff = maximum_filter(depth, size=size, mode="nearest") - minimum_filter(depth, size=size, mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(diff / depth, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return ratio > rtol


def resize_nearest(arr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(N, H, W, …) → (N, h, w, …) like ``torch.nn.functional.interpolate(mode='nearest')``."""
    h_in, w_in = arr.shape[1], arr.shape[2]
    h, w = out_hw
    rows = np.minimum(np.floor(np.arange(h) * (h_in / h)).astype(np.int64), h_in - 1)
    cols = np.minimum(np.floor(np.arange(w) * (w_in / w)).astype(np.int64), w_in - 1)
    return arr[:, rows][:, :, cols]


@dataclass(frozen=True, eq=False)
class Pi3Frames:
    """π³ output after DSR's post-processing, at the video's resolution.

    local_points: (N, h, w, 3) float64, per-frame OpenCV camera coordinates.
    valid: (N, h, w) bool.
    c2w: (N, 4, 4) float64 camera-to-world (π³'s own world: no reference frame).
    """

    local_points: np.ndarray
    valid: np.ndarray
    c2w: np.ndarray


def pi3_postprocess(local_points: np.ndarray, conf_logits: np.ndarray, camera_poses: np.ndarray,
                    out_hw: tuple[int, int]) -> Pi3Frames:
    """π³ raw output for one batch element → :class:`Pi3Frames` (dsr-paper §4).

    local_points: (N, H, W, 3); conf_logits: (N, H, W, 1) or (N, H, W) raw logits; camera_poses: (N, 4, 4)
    c2w OpenCV. A leading batch axis of size 1 is accepted and dropped.
    """
    lp = np.asarray(local_points, dtype=np.float64)
    conf = np.asarray(conf_logits, dtype=np.float64)
    poses = np.asarray(camera_poses, dtype=np.float64)
    if lp.ndim == 5:
        lp, conf, poses = lp[0], conf[0], poses[0]
    if conf.ndim == 4:
        conf = conf[..., 0]
    if lp.shape[-1] != 3 or conf.shape != lp.shape[:-1] or poses.shape != (lp.shape[0], 4, 4):
        raise ValueError(f"unexpected π³ shapes: local_points {lp.shape}, conf {conf.shape}, poses {poses.shape}")
    valid = (sigmoid(conf) > PI3_CONF_THRESHOLD) & ~depth_edge(lp[..., 2], rtol=PI3_EDGE_RTOL)
    return Pi3Frames(local_points=resize_nearest(lp, out_hw), valid=resize_nearest(valid, out_hw), c2w=poses)


def pi3_center(local_points: np.ndarray, valid: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """DSR's object centre: plain mean of (h, w, 3) points under mask ∧ valid; NaN (3,) when empty."""
    sel = np.asarray(mask, bool) & np.asarray(valid, bool)
    if not sel.any():
        return np.full(3, np.nan)
    return local_points[sel].mean(axis=0)


def intrinsics_from_points(local_points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Least-squares pinhole K (3, 3) from one frame's (h, w, 3) camera points: u = fx·x/z + cx, v = fy·y/z + cy."""
    h, w = valid.shape
    v_px, u_px = np.mgrid[0:h, 0:w].astype(np.float64)
    sel = valid & (local_points[..., 2] > 0)
    x = local_points[..., 0][sel] / local_points[..., 2][sel]
    y = local_points[..., 1][sel] / local_points[..., 2][sel]
    ax = np.stack([x, np.ones_like(x)], 1)
    fx, cx = np.linalg.lstsq(ax, u_px[sel] + 0.5, rcond=None)[0]
    ay = np.stack([y, np.ones_like(y)], 1)
    fy, cy = np.linalg.lstsq(ay, v_px[sel] + 0.5, rcond=None)[0]
    return intrinsics_matrix(fx, fy, cx, cy)


# --------------------------------------------------------------------------------------------------
# Grounding DINO


def boxes_cxcywh_norm_to_xyxy_px(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 4) normalised centre/size boxes (original Grounding DINO API) → (N, 4) xyxy pixels."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy, bw, bh = b[:, 0] * width, b[:, 1] * height, b[:, 2] * width, b[:, 3] * height
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (N, 4) × (M, 4) → (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = GDINO_NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression → kept indices, highest score first."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    iou = box_iou(boxes, boxes)
    suppressed = np.zeros(len(order), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Orient Anything

ORIENT_HEADS: dict[str, tuple[int, int, int]] = {
    # name: (polar bins, rotation bins, rotation offset deg); azimuth always 360 bins
    "croplargeEX2": (180, 180, 90),  # DSR's checkpoint: out_dim 722
    "ronormsigma1": (180, 360, 180),  # current upstream release: out_dim 902
}


@dataclass(frozen=True)
class OrientAngles:
    azimuth_deg: float
    polar_deg: float
    rotation_deg: float
    confidence: float

    @property
    def accepted(self) -> bool:
        """DSR's gate: reject orientations with confidence below 0.6."""
        return self.confidence >= ORIENT_MIN_CONFIDENCE


def orient_head_dim(layout: str) -> int:
    polar, rot, _ = ORIENT_HEADS[layout]
    return 360 + polar + rot + 2


def decode_orient_head(logits: np.ndarray, layout: str = "croplargeEX2") -> list[OrientAngles]:
    """Orient Anything head output (B, out_dim) → angles per crop; argmax per slice, softmax of the last 2."""
    if layout not in ORIENT_HEADS:
        raise ValueError(f"unknown Orient Anything head layout {layout!r} (known: {', '.join(ORIENT_HEADS)})")
    polar_bins, rot_bins, rot_offset = ORIENT_HEADS[layout]
    x = np.asarray(logits, dtype=np.float64).reshape(-1, np.shape(logits)[-1])
    if x.shape[1] != orient_head_dim(layout):
        raise ValueError(f"{layout} head has {orient_head_dim(layout)} outputs, got {x.shape[1]}")
    az = np.argmax(x[:, :360], axis=1)
    pol = np.argmax(x[:, 360:360 + polar_bins], axis=1) - 90
    rot = np.argmax(x[:, 360 + polar_bins:360 + polar_bins + rot_bins], axis=1) - rot_offset
    last = x[:, -2:] - x[:, -2:].max(axis=1, keepdims=True)
    conf = np.exp(last[:, 0]) / np.exp(last).sum(axis=1)
    return [OrientAngles(float(a), float(p), float(r), float(c)) for a, p, r, c in zip(az, pol, rot, conf, strict=True)]


def orient_angles_from_forward(forward_cam: np.ndarray) -> tuple[float, float]:
    """Inverse of DSR's Orient Anything rotation for weight-free estimators: forward axis → (azimuth, polar).

    forward_cam: (3,) forward axis in OpenCV camera coordinates. With rotation 0, the first row of
    ``Rz(270)·Rx(90)·Ry(az)·Rx(polar)`` is ``(−sin az, cos az·sin polar, −cos az·cos polar)`` (checked against
    :func:`dsr.scene.frames.agent_from_cam_orient_anything`). Note: extraction.md §1 gives
    ``(−sin az·cos pol, sin pol, −cos az·cos pol)``, which agrees only when az = 0 or polar = 0.
    Returns azimuth in [0, 360) and polar in [−90, 90]; polar is 0 when the agent faces exactly sideways.
    """
    f = np.asarray(forward_cam, dtype=np.float64)
    f = f / np.linalg.norm(f)
    cos_az = float(np.hypot(f[1], f[2]))
    if -f[2] < 0:  # polar ∈ [−90, 90] ⇒ cos(polar) ≥ 0 ⇒ sign(−f_z) = sign(cos az)
        cos_az = -cos_az
    az = float(np.degrees(np.arctan2(-f[0], cos_az)) % 360.0)
    if abs(cos_az) < 1e-12:
        return az, 0.0
    return az, float(np.degrees(np.arctan2(f[1] / cos_az, -f[2] / cos_az)))
