"""What every camera estimator shares: the config, a uniform constructor, intrinsics and the sampled track.

Every camera estimator is built the same way, ``cls(config, focal_px)`` (the registry's
:func:`~dsr.extract.registry.create_estimator` passes both), and returns a
:class:`~dsr.extract.base.CameraEstimate` from ``estimate(clip)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsr.extract.adapters import intrinsics_matrix
from dsr.extract.base import Estimator, VideoClip
from dsr.scene.build import camera_track
from dsr.scene.record import CameraTrack, Source


@dataclass(frozen=True)
class CameraConfig:
    min_registered_ratio: float = 0.8  # of dense frames, for SfM to be trusted
    focal_range: tuple[float, float] = (0.3, 3.0)  # × max(W, H) (extraction.md §3.4 rule 2)
    max_radial_k: float = 0.5
    # a camera that travels farther than this many median scene depths within one clip is a collapsed SfM
    # reconstruction (points squeezed onto the cameras), not a scene: orbit worlds gave 1e4-1e8, healthy
    # reconstructions 0.3-2.3 (docs/bench-extract.md §10.2); a long drive stays far below 100
    max_camera_extent_depths: float = 100.0
    # a milder collapse: the cameras span more than ``jump_extent_depths`` median depths and a few steps carry
    # most of the path (the 3 longest of the sampled frames' steps over ``max_jump_share`` of its length): the
    # frames sit nearly still and the reconstruction jumps. Training worlds: healthy reconstructions span at most
    # 2.2 depths; the hand-held seed 101 spans 11, with 81% of its path in 3 steps, its camera ~2 scene units
    # off, and its camera-speed QAs were wrong (docs/bench-extract.md §13). A smooth long drive spreads its path
    # over every step, so it stays trusted however far it goes
    jump_extent_depths: float = 5.0
    max_jump_share: float = 0.5
    sift_max_features: int = 4096
    sift_peak_threshold: float = 0.004
    sift_first_octave: int = -1  # COLMAP's default: SIFT starts on the image upsampled 2x (0: at its own size)
    # lighter global bundle adjustment (fewer, rarer global BAs; local BA unchanged)
    ba_light: bool = False
    sequential_overlap: int = 10
    # SfM reconstructs only the dense frames nearest a time grid at this rate (None: every dense frame, which
    # includes every sampled frame); the sampled frames' poses are interpolated between the registered grid
    # frames around them. 3 fps: camera stage 2-5x cheaper, ATE <= 1% (docs/bench-extract-levers.md)
    sfm_fps: float | None = 3.0
    # … unless the rotation check saw the image move faster than this (fraction of the long side per dense
    # step): then consecutive grid frames share too little for SfM to register them, and SfM takes every dense
    # frame (a head-mounted walk-through: 4 of 39 grid frames registered, 78 of 187 dense frames)
    max_grid_step_flow: float = 0.05
    # a registered SfM image whose rotation is this far from the slerp of its neighbours' (and this many times the
    # clip's median such angle) is a misregistration and is left out, for at most this share of the images. On the
    # training orbits and hand-helds the truth's angle never exceeded 2.3 deg (3-fps grid), while SfM had single
    # images off by 5-36 deg (orbit 300: 17.5; the held-out orbit 9951's 36 made 13 of its 40 QAs wrong;
    # docs/bench-extract.md §18)
    sfm_spike_deg: float = 4.0
    sfm_spike_median_factor: float = 5.0
    sfm_spike_max_share: float = 0.1
    # pycolmap's threads. 1 (default) is deterministic: with 2, feature extraction / matching vary between runs
    # even with every RANSAC seeded (an orbit world gave 4 different reconstructions in 4 runs), and on a busy
    # 2-core machine 2 threads were no faster (12-16 s vs 13-25 s). >1 is a faster, non-deterministic option.
    num_threads: int = 1
    # seeds pycolmap's RANSAC (two-view verification), its mapper and its global PRNG (their defaults: the clock)
    random_seed: int = 0
    focal_guess_factor: float = 1.2  # × max(W, H) when the focal length is unknown (COLMAP's default)
    # a known focal length (full-resolution pixels, e.g. from a calibration or EXIF): every method uses it
    # and SfM keeps it fixed. Self-calibration is weak on orbits and short clips (docs/bench-extract.md §6)
    focal_px: float | None = None
    # VO chains the dense frames of this time grid (None, the default: every dense frame) and interpolates the
    # rest. 6 fps made VO 2-3x cheaper on 2-s clips (the 32 sampled frames make the dense set ~16 fps) but
    # tripled its rotation drift on 24-s orbit worlds (docs/bench-extract.md §10.3)
    vo_fps: float | None = None
    # VO finds its SIFT features on the dense frames downscaled to this long side (None: as they are). 320 px is
    # the rendered worlds' frame size, where VO's error model was calibrated; on 640-px DAVIS frames it made VO
    # 4-5x cheaper (docs/bench-extract.md §11)
    vo_max_side: int | None = 320
    # a clip shorter than this (s; None: none is) is short: camera/auto tries VO before SfM, and VO chains the
    # short_clip_vo_fps grid. VO's drift grows with the path and stayed small on short clips, where SfM cost
    # 6-17 s per DAVIS clip; every world is 24 s (docs/bench-extract.md §11)
    short_clip_s: float | None = 10.0
    # VO's grid on short clips where vo_fps is unset (None: every dense frame there too). The 32 sampled frames
    # make a 2-s clip's dense set ~16 fps; 6 fps made VO 2-3x cheaper there, the DAVIS labels unchanged (96.4%)
    short_clip_vo_fps: float | None = 6.0
    max_step_rotation_deg: float = 30.0  # VO flip guard: per dense step (extraction.md §3.4)
    min_cheirality_ratio: float = 0.5
    min_track_points: int = 30
    min_valid_ratio: float = 0.8  # of sampled frames, for any method to be trusted
    max_skip: int = 3  # VO bridges over up to this many failed dense frames
    min_parallax_px: float = 1.0  # below this, a VO step is treated as pure rotation
    max_keyframe_steps: int = 12  # VO waits this many dense frames at most for parallax to build up …
    max_keyframe_rotation_deg: float = 10.0  # … or until the view has turned this far (then: a rotation keyframe)
    max_homography_residual_px: float = 1.5  # rotation-only model: reprojection error per dense step …
    # … at this quantile of the tracked points: the median fails a static camera whenever a large mover owns
    # half of the corners for a moment (MuJoCo worlds: one step of 47); translation is caught over 6 s anyway
    step_residual_quantile: float = 0.25
    # rotation-only model over long baselines: a slow translation (a dolly) leaves every dense step below
    # the per-step residual, but its parallax accumulates; points LK-chained over ``long_baseline_s``
    long_baseline_s: float = 6.0  # 3 s let a 0.7 m dolly towards objects 4–6 m away pass (2.95 px < 3)
    max_long_residual_px: float = 3.0
    # a track that breaks the rotation model at some step by more than this (px) on its own is left out of the long
    # windows that hold the step: movers (a walker 5 m away moves ~8 px a step) otherwise own the window's median
    # and refused 14 of 60 rendered pans whose camera never moved. Three times the step limit, so that a slow
    # translation's parallax (< 1 px a step) stays in: at 1.5 px a 0.26-m dolly passed (docs/bench-extract.md §20).
    # None: every track counts
    long_check_off_model_px: float | None = 4.5
    # stop the rotation check's tracking at the first step that fails at any focal length once that alone leaves
    # too few valid frames (the verdict cannot change; rotation.EarlyFailure). False: always track every step
    rotation_stop_early: bool = True



class CameraEstimator(Estimator):
    """Base of the camera estimators: a config and an optional known focal length.

    ``focal_px``: a focal length (full-resolution pixels) to use instead of estimating one; None falls back
    to ``config.focal_px`` (the user's calibration). :class:`~dsr.extract.camera.auto.AutoCamera` passes a
    partial SfM's focal to the fallbacks this way.
    """

    role = "camera"

    def __init__(self, config: CameraConfig = CameraConfig(), focal_px: float | None = None) -> None:
        self.config = config
        self.focal_px = focal_px if focal_px is not None else config.focal_px


def guess_intrinsics(width: int, height: int, factor: float) -> np.ndarray:
    """K (3, 3) with focal ``factor`` × max(width, height) and the principal point at the image centre."""
    f = factor * max(width, height)
    return intrinsics_matrix(f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def full_intrinsics(clip: VideoClip, K_dense: np.ndarray) -> np.ndarray:
    """K of the dense frames (3, 3) → K at the video's full resolution (pixel centres at integer coordinates)."""
    s = clip.dense_scale
    return intrinsics_matrix(K_dense[0, 0] / s, K_dense[1, 1] / s, (K_dense[0, 2] + 0.5) / s - 0.5,
                             (K_dense[1, 2] + 0.5) / s - 0.5)


def sampled_track(clip: VideoClip, c2w_dense: np.ndarray, known_dense: np.ndarray, K_full: np.ndarray,
                  source: Source, confidence: float, rot_sigma: float) -> tuple[CameraTrack, np.ndarray]:
    """Dense chain (D, 4, 4) → sampled-frame CameraTrack; a sampled frame is valid where its dense pose is known."""
    pos = clip.sampled_in_dense
    valid = known_dense[pos]
    track = camera_track(K_full, c2w_dense[pos], source, valid=valid, confidence=np.where(valid, confidence, 0.0),
                         rotation_sigma_deg=np.where(valid, rot_sigma, 30.0))
    return track, valid


class OpenCVCamera(CameraEstimator):
    """Shared set-up of the OpenCV camera estimators (VO, rotation-only): dense intrinsics and the source."""

    requires = ("cv2",)

    def dense_intrinsics(self, clip: VideoClip) -> np.ndarray:
        """K of the dense frames: the known focal length if there is one, else the guess."""
        h, w = clip.dense_rgb.shape[1:3]
        K = guess_intrinsics(w, h, self.config.focal_guess_factor)
        if self.focal_px is not None:
            K[0, 0] = K[1, 1] = self.focal_px * clip.dense_scale
        return K

    @property
    def source(self) -> Source:
        import cv2

        return Source(name=self.name, version=f"opencv-{cv2.__version__}")


def is_short(clip: VideoClip, config: CameraConfig) -> bool:
    """Whether the clip's dense frames span less than ``config.short_clip_s`` seconds."""
    if config.short_clip_s is None or clip.fps <= 0:
        return False
    return float(clip.dense_indices[-1] - clip.dense_indices[0]) / clip.fps < config.short_clip_s


def grid_positions(dense_indices: np.ndarray, fps: float, rate: float | None) -> np.ndarray:
    """Positions in ``dense_indices`` of the first dense frame at or after each tick of a ``rate`` (per second)
    time grid, plus the first and last (None: all positions)."""
    if rate is None:
        return np.arange(len(dense_indices))
    times = (dense_indices - dense_indices[0]) / fps
    grid = np.arange(0.0, times[-1] + 1e-9, 1.0 / rate)
    pos = np.clip(np.searchsorted(times, grid - 1e-6), 0, len(times) - 1)
    return np.unique(np.concatenate([pos, [0, len(times) - 1]])).astype(np.int64)
