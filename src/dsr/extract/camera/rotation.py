"""Rotation-only camera: a camera that turns about its centre (or views a distant scene), and its checks.

World frame: the first dense frame's camera; positions are all zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dsr.extract.base import Attempt, CameraEstimate, VideoClip
from dsr.extract.camera.common import CameraConfig, OpenCVCamera, full_intrinsics, sampled_track
from dsr.extract.camera.features import alive, gray, pairs, track_sequence
from dsr.scene.frames import make_pose
from dsr.scene.poses import project_to_so3, rotation_angle_deg

# the focal lengths the rotation check considers, as multiples of the guess: a coarse log grid over [lo, hi], then
# FOCAL_FINE times its best (focal_from_homographies)
FOCAL_RANGE = (0.3, 3.0)
FOCAL_FINE = (0.95, 1.05)


def focal_from_homographies(homographies: list[np.ndarray], K_guess: np.ndarray, lo: float = FOCAL_RANGE[0],
                            hi: float = FOCAL_RANGE[1], min_shift_px: float = 3.0) -> float | None:
    """Focal length (px) under which frame-to-frame homographies are closest to rotations, or None.

    For a purely rotating camera H = K R K⁻¹, so K⁻¹HK is orthogonal only for the true focal. We search
    f over [lo, hi]·f_guess (log grid, then a finer grid around the best) minimising the summed distance of
    det-normalised K⁻¹HK to the nearest rotation. Steps that move the image less than ``min_shift_px``
    (median over its corners and centre) carry no focal information and are ignored; with none left the
    result is None. (A rotation angle read from K⁻¹HK under the guessed focal is no test: the noise of a
    static camera's homography alone reads as ~0.5°, and once gave a focal length 3× too short.)
    """
    w, h = 2.0 * K_guess[0, 2], 2.0 * K_guess[1, 2]
    probe = np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [0.0, h, 1.0], [w, h, 1.0], [w / 2, h / 2, 1.0]])

    def shift(hom: np.ndarray) -> float:
        moved = probe @ hom.T
        return float(np.median(np.linalg.norm(moved[:, :2] / moved[:, 2:] - probe[:, :2], axis=1)))

    hs = np.array([hom for hom in homographies if shift(hom) >= min_shift_px]).reshape(-1, 3, 3)
    if not len(hs):
        return None
    f0 = K_guess[0, 0]

    def costs(focals: np.ndarray) -> np.ndarray:
        """Per focal length (F,): the summed distance of every step's det-normalised K⁻¹HK to SO(3)."""
        K = np.tile(K_guess, (len(focals), 1, 1))
        K[:, 0, 0] = K[:, 1, 1] = focals
        m = np.linalg.inv(K)[:, None] @ hs[None] @ K[:, None]  # (F, N, 3, 3), all at once
        m = m / np.cbrt(np.linalg.det(m))[..., None, None]
        return np.linalg.norm(m - project_to_so3(m), axis=(-2, -1)).sum(axis=1)

    grid = f0 * np.geomspace(lo, hi, 41)
    k = int(np.argmin(costs(grid)))
    if k in (0, len(grid) - 1):
        return None  # no minimum inside the range: the steps are not rotations (a dolly's expansion ran to lo)
    best = grid[k]
    fine = best * np.geomspace(*FOCAL_FINE, 21)
    return float(fine[int(np.argmin(costs(fine)))])


def rotation_from_bearings(p0: np.ndarray, p1: np.ndarray, K: np.ndarray) -> np.ndarray:
    """cam1_from_cam0 rotation of a purely rotating camera from matched pixels (N, 2), least squares.

    The rotation that best maps the unit bearing vectors of ``p0`` onto those of ``p1`` (Kabsch). Taking it
    from the homography instead (R ~ K⁻¹HK) lets the homography's tiny, noisy perspective terms, multiplied by
    the focal length, tilt the rotation: on a static camera that gave ~1 px residuals where the tracks
    themselves moved 0.003 px (median), and static and panning clips failed the rotation check.
    """
    k_inv = np.linalg.inv(K)
    b0 = np.column_stack([p0, np.ones(len(p0))]) @ k_inv.T
    b1 = np.column_stack([p1, np.ones(len(p1))]) @ k_inv.T
    b0 /= np.linalg.norm(b0, axis=1, keepdims=True)
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(b1.T @ b0)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def rotation_errors(p0: np.ndarray, p1: np.ndarray, inliers: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation fitted to one step's inliers (:func:`rotation_from_bearings`) and every tracked point's
    reprojection error under it (N,) px → (errors, rotation)."""
    import cv2

    rot = rotation_from_bearings(p0[inliers], p1[inliers], K)
    pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot @ np.linalg.inv(K)).reshape(-1, 2)
    return np.linalg.norm(pred - p1, axis=1), rot


def rotation_residual(p0: np.ndarray, p1: np.ndarray, inliers: np.ndarray, K: np.ndarray,
                      quantile: float) -> tuple[float, np.ndarray]:
    """The ``quantile`` of :func:`rotation_errors` (px) → (residual, rotation)."""
    errors, rot = rotation_errors(p0, p1, inliers, K)
    return float(np.quantile(errors, quantile)), rot


def least_rotation_residual(p0: np.ndarray, p1: np.ndarray, inliers: np.ndarray, K_guess: np.ndarray,
                            quantile: float, num: int = 60) -> float:
    """The smallest :func:`rotation_residual` of a step over every focal length the check could settle on (a
    log grid of ``num`` over the guess × [FOCAL_RANGE[0] · FOCAL_FINE[0], FOCAL_RANGE[1] · FOCAL_FINE[1]]).

    A step whose least residual fails the check fails it whatever focal the whole clip later gives, so the
    check can stop there (the grid is ~4% apart; the caller keeps a margin for what lies between).
    """
    out = np.inf
    for f in K_guess[0, 0] * np.geomspace(FOCAL_RANGE[0] * FOCAL_FINE[0], FOCAL_RANGE[1] * FOCAL_FINE[1], num):
        K = K_guess.copy()
        K[0, 0] = K[1, 1] = f
        out = min(out, rotation_residual(p0, p1, inliers, K, quantile)[0])
    return out


def long_baseline_residuals(tracks: np.ndarray, c2w: np.ndarray, K: np.ndarray, span: int,
                            min_points: int, off_model: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """Median residual of the rotation-only model on points tracked over ``span`` dense steps, for windows
    starting every span/2 steps → [(first, last, residual px)] (windows with too few points are skipped).

    ``tracks``: the (P, n, 2) table of :func:`~dsr.extract.camera.features.track_sequence`. ``off_model`` (P, n − 1):
    the track broke the model at that step by itself; such tracks are left out of every window that holds the step.
    """
    import cv2

    n = tracks.shape[1]
    span = max(1, min(span, n - 1))
    out = []
    for i in range(0, max(1, n - span), max(1, span // 2)):
        j = min(i + span, n - 1)
        p0, p1 = pairs(tracks, i, j, None if off_model is None else ~off_model[:, i:j].any(axis=1))
        if len(p0) < min_points:
            continue
        rot = c2w[j, :3, :3].T @ c2w[i, :3, :3]  # camera j from camera i
        pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot @ np.linalg.inv(K)).reshape(-1, 2)
        out.append((i, j, float(np.median(np.linalg.norm(pred - p1, axis=1)))))
    return out


def step_homography(p0: np.ndarray, p1: np.ndarray, min_points: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One step's RANSAC homography and its inlier mask (N,) bool, or None (fewer than ``min_points`` tracks, or
    no fit)."""
    import cv2

    if len(p0) < min_points:
        return None
    H, inliers = cv2.findHomography(p0, p1, cv2.RANSAC, 2.0)
    return None if H is None else (H, inliers[:, 0].astype(bool))


@dataclass
class EarlyFailure:
    """``keep_going`` for the rotation check's tracking: it stops the LK work at the first step the rotation
    model fails at every focal length the check could settle on, while such a failure already leaves fewer than
    ``min_valid_ratio`` of the sampled frames valid (every pose after a failed step is unknown). The check's
    verdict would be "untrusted" whatever the later steps hold, and on the DAVIS clips where VO wins this
    saved most of the check's LK work (docs/bench-extract.md §17).

    Steps tracked before the stop keep their homography (``homographies``) and image motion (``flows``).
    """

    K_guess: np.ndarray
    focal_known: bool
    sampled_in_dense: np.ndarray
    config: CameraConfig
    margin_px: float = 0.1  # the least residual is a grid minimum: a step must exceed the limit by this to stop
    homographies: dict[int, tuple[np.ndarray, np.ndarray] | None] = field(default_factory=dict)
    flows: list[float] = field(default_factory=list)
    failed_step: int | None = None
    reason: str = ""

    def __call__(self, i: int, p0: np.ndarray, p1: np.ndarray) -> bool:
        cfg = self.config
        if len(p0):
            self.flows.append(float(np.median(np.linalg.norm(p1 - p0, axis=1))))
        if np.mean(self.sampled_in_dense <= i) >= cfg.min_valid_ratio:
            return True  # a failure from here on still leaves enough valid frames: only the full check decides
        fit = self.homographies[i] = step_homography(p0, p1, cfg.min_track_points)
        if fit is None:
            self.failed_step, self.reason = i, f"step {i}: {len(p0)} tracks, no homography"
            return False
        limit = cfg.max_homography_residual_px + self.margin_px
        res = rotation_residual(p0, p1, fit[1], self.K_guess, cfg.step_residual_quantile)[0]
        if res <= limit:
            return True
        if not self.focal_known:
            res = least_rotation_residual(p0, p1, fit[1], self.K_guess, cfg.step_residual_quantile)
        if res <= limit:
            return True
        self.failed_step = i
        self.reason = f"step {i}: rotation model residual {res:.1f} px at any focal length"
        return False


class RotationOnlyCamera(OpenCVCamera):
    """Degenerate-case fallback: a purely rotating camera, one rotation per dense step from the bearings of
    the step's homography inliers (:func:`rotation_from_bearings`).

    Trusted only if the rotations explain the tracks (the ``step_residual_quantile`` residual of every step
    below ``max_homography_residual_px``, and points LK-tracked over 3 s and 6 s windows within
    ``max_long_residual_px``, leaving out tracks that broke a step by more than ``long_check_off_model_px``), i.e.
    the camera really rotates about its centre or views a distant scene.
    Positions are all zero. Without a given focal length it is estimated from the homographies
    (:func:`focal_from_homographies`) when the camera rotates enough, else guessed.
    """

    name = "camera/rotation"

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        start = time.perf_counter()
        cfg = self.config
        K = self.dense_intrinsics(clip)
        grays = [gray(f) for f in clip.dense_rgb]
        n = len(grays)
        watch = EarlyFailure(K.copy(), self.focal_px is not None, clip.sampled_in_dense, cfg)
        # the LK work, once: every step and window reads this table
        tracks = track_sequence(grays, keep_going=watch if cfg.rotation_stop_early else None)
        if watch.failed_step is not None:
            stats = {"median_residual_px": float("nan"),
                     "step_flow_frac": float(np.median(watch.flows)) / max(grays[0].shape) if watch.flows
                     else float("nan"),
                     "long_baseline_residual_px": float("nan"),
                     # at most this many sampled frames could have been valid
                     "sampled_valid_ratio": float(np.mean(clip.sampled_in_dense <= watch.failed_step)),
                     "stopped_at_step": float(watch.failed_step), "focal_px": float(K[0, 0] / clip.dense_scale)}
            attempt = Attempt("rotation", False, watch.reason, time.perf_counter() - start, stats)
            return CameraEstimate(None, False, watch.reason, "normalized", (attempt,), method="rotation")
        c2w = np.tile(np.eye(4), (n, 1, 1))
        step_ok = np.ones(n - 1, bool)
        residuals = []
        reasons: list[str] = []
        steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = []  # p0, p1, H, inliers
        flows: list[float] = []  # median image motion per dense step, px
        # tracks that broke the rotation model at a step on their own (movers), kept out of the long windows; all False
        # when long_check_off_model_px is None
        off_model = np.zeros((tracks.shape[0], max(0, n - 1)), bool)
        for i in range(n - 1):
            p0, p1 = pairs(tracks, i, i + 1)
            if len(p0):
                flows.append(float(np.median(np.linalg.norm(p1 - p0, axis=1))))
            fit = watch.homographies[i] if i in watch.homographies else step_homography(p0, p1, cfg.min_track_points)
            if fit is None:
                reasons.append(f"step {i}: {len(p0)} tracks, no homography")
            steps.append(None if fit is None else (p0, p1, *fit))
        if self.focal_px is None:
            f = focal_from_homographies([st[2] for st in steps if st is not None], K)
            if f is not None:
                K[0, 0] = K[1, 1] = f
        for i, step in enumerate(steps):
            if step is None:
                step_ok[i] = False
                c2w[i + 1] = c2w[i]
                continue
            p0, p1, _, inliers = step
            errors, rot = rotation_errors(p0, p1, inliers, K)
            res = float(np.quantile(errors, cfg.step_residual_quantile))
            residuals.append(res)
            if cfg.long_check_off_model_px is not None:  # errors are in table order (pairs)
                off_model[np.flatnonzero(alive(tracks, i, i + 1))[errors > cfg.long_check_off_model_px], i] = True
            if res > cfg.max_homography_residual_px or rotation_angle_deg(rot) > cfg.max_step_rotation_deg:
                step_ok[i] = False
                reasons.append(f"step {i}: rotation model residual {res:.1f} px")
            # cam_{i+1} from cam_i is rot → world_from_{i+1} = world_from_i @ rot.T
            c2w[i + 1] = c2w[i] @ make_pose(rot.T, np.zeros(3))
        known = np.concatenate([[True], np.cumprod(step_ok).astype(bool)])
        long_res: list[tuple[int, int, float]] = []
        if known.all():
            rate = (n - 1) * clip.fps / max(1, clip.dense_indices[-1] - clip.dense_indices[0])  # dense frames/s
            # two window lengths: the long one sees slow translations, the short one keeps points in view
            # long enough on pans (a pan loses every corner it tracked over 6 s, and with them the check)
            long_res = [r for span_s in (cfg.long_baseline_s / 2, cfg.long_baseline_s)
                        for r in long_baseline_residuals(tracks, c2w, K, round(span_s * rate), cfg.min_track_points,
                                                         off_model)]
            for i, j, res in long_res:
                if res > cfg.max_long_residual_px:
                    known[i + 1:] = False  # the camera translated inside this window: no pose after i holds
                    reasons.append(f"dense frames {i}-{j}: rotation model residual {res:.1f} px "
                                   f"(parallax accumulates: the camera translates)")
                    break
        track, valid = sampled_track(clip, c2w, known, full_intrinsics(clip, K), self.source, 0.4, 2.0)
        trusted = bool(valid.mean() >= cfg.min_valid_ratio)
        reason = "ok" if trusted else (reasons[0] if reasons else "too few valid steps")
        stats = {"median_residual_px": float(np.median(residuals)) if residuals else float("nan"),
                 # how fast the image moves, as a fraction of the dense frame's long side per dense step
                 "step_flow_frac": float(np.median(flows)) / max(grays[0].shape) if flows else float("nan"),
                 "long_baseline_residual_px": max((r for *_, r in long_res), default=float("nan")),
                 "sampled_valid_ratio": float(valid.mean())}
        stats["focal_px"] = float(K[0, 0] / clip.dense_scale)
        attempt = Attempt("rotation", trusted, reason, time.perf_counter() - start, stats)
        # no translation; object depths are normalised later (median 1), hence "normalized"
        return CameraEstimate(track, trusted, reason, "normalized", (attempt,), method="rotation")
