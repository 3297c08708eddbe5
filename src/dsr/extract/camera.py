"""Weight-free camera estimation: pycolmap SfM → essential-matrix VO → rotation-only homography.

All methods run on the clip's dense frames (extraction.md §3.4) and report poses at the sampled frames.
Each method returns a :class:`~dsr.extract.base.CameraEstimate` that says whether it trusts its output
and why; :class:`AutoCamera` tries them in order and records every attempt. Untrusted poses are marked
invalid; a clip whose geometry cannot be trusted gets no record.

World frame: SfM — COLMAP's arbitrary frame; VO and rotation-only — the first dense frame's camera.
Scale: normalised so the median depth of triangulated static points seen in the sampled frames is 1
(``scale_kind="normalized"``, see :func:`normalize_scale`); rotation-only has no translation at all.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dsr.extract.adapters import camera_track_from_w2c, intrinsics_matrix
from dsr.extract.base import Attempt, CameraEstimate, Estimator, SparsePoints, VideoClip
from dsr.scene.build import camera_track
from dsr.scene.frames import invert_pose, make_pose
from dsr.scene.record import CameraTrack, Source


@dataclass(frozen=True)
class CameraConfig:
    min_registered_ratio: float = 0.8  # of dense frames, for SfM to be trusted
    focal_range: tuple[float, float] = (0.3, 3.0)  # × max(W, H) (extraction.md §3.4 rule 2)
    max_radial_k: float = 0.5
    sift_max_features: int = 4096
    sift_peak_threshold: float = 0.004
    sequential_overlap: int = 10
    # SfM reconstructs only the dense frames nearest a time grid at this rate (None: every dense frame, which
    # includes every sampled frame); the sampled frames' poses are interpolated between the registered grid
    # frames around them. 3 fps: camera stage 2-5x cheaper, ATE <= 1% (docs/bench-extract-levers.md)
    sfm_fps: float | None = 3.0
    # … unless the rotation check saw the image move faster than this (fraction of the long side per dense
    # step): then consecutive grid frames share too little for SfM to register them, and SfM takes every dense
    # frame (a head-mounted walk-through: 4 of 39 grid frames registered, 78 of 187 dense frames)
    max_grid_step_flow: float = 0.05
    num_threads: int = 2
    focal_guess_factor: float = 1.2  # × max(W, H) when the focal length is unknown (COLMAP's default)
    # a known focal length (full-resolution pixels, e.g. from a calibration or EXIF): every method uses it
    # and SfM keeps it fixed. Self-calibration is weak on orbits and short clips (docs/bench-extract.md §6)
    focal_px: float | None = None
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


# --------------------------------------------------------------------------------------------------
# small geometry helpers


def rotation_angle_deg(rot: np.ndarray) -> np.ndarray:
    """Angle of rotation matrices (…, 3, 3) in degrees."""
    tr = np.clip((np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(tr))


def _project_to_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        r = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return r


def _slerp_fill(c2w: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill poses (N, 4, 4) where ``known`` is False by interpolating (or copying) from known neighbours."""
    from scipy.spatial.transform import Rotation, Slerp

    out = c2w.copy()
    idx = np.flatnonzero(known)
    if len(idx) == 0:
        return out
    rots = Rotation.from_matrix(c2w[idx, :3, :3])
    missing = np.flatnonzero(~known)
    inside = missing[(missing > idx[0]) & (missing < idx[-1])]
    if len(idx) >= 2 and len(inside):
        out[inside, :3, :3] = Slerp(idx, rots)(inside).as_matrix()
        for axis in range(3):
            out[inside, axis, 3] = np.interp(inside, idx, c2w[idx, axis, 3])
    out[missing[missing < idx[0]]] = c2w[idx[0]]
    out[missing[missing > idx[-1]]] = c2w[idx[-1]]
    return out


def grid_positions(dense_indices: np.ndarray, fps: float, rate: float | None) -> np.ndarray:
    """Positions in ``dense_indices`` of the first dense frame at or after each tick of a ``rate`` (per second)
    time grid, plus the first and last (None: all positions)."""
    if rate is None:
        return np.arange(len(dense_indices))
    times = (dense_indices - dense_indices[0]) / fps
    grid = np.arange(0.0, times[-1] + 1e-9, 1.0 / rate)
    pos = np.clip(np.searchsorted(times, grid - 1e-6), 0, len(times) - 1)
    return np.unique(np.concatenate([pos, [0, len(times) - 1]])).astype(np.int64)


def interpolate_poses(query: np.ndarray, frames: np.ndarray, c2w: np.ndarray, known: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses at frame numbers ``query`` from poses at sorted frame numbers ``frames`` where ``known``.

    A query frame gets a pose when it is a known frame or lies between two known neighbours (slerp of the
    rotations, lerp of the centres by frame number); no extrapolation. Returns (c2w (Q, 4, 4), valid (Q,),
    position of the nearest known frame (Q,), -1 where invalid).
    """
    from scipy.spatial.transform import Rotation, Slerp

    out = np.tile(np.eye(4), (len(query), 1, 1))
    valid = np.zeros(len(query), bool)
    nearest = np.full(len(query), -1, np.int64)
    for q, frame in enumerate(query):
        j = int(np.searchsorted(frames, frame))
        if j < len(frames) and frames[j] == frame:
            if known[j]:
                out[q], valid[q], nearest[q] = c2w[j], True, j
        elif 0 < j < len(frames) and known[j - 1] and known[j]:
            w = (frame - frames[j - 1]) / (frames[j] - frames[j - 1])
            out[q, :3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix(c2w[[j - 1, j], :3, :3]))([w]).as_matrix()[0]
            out[q, :3, 3] = (1 - w) * c2w[j - 1, :3, 3] + w * c2w[j, :3, 3]
            valid[q], nearest[q] = True, (j - 1 if w <= 0.5 else j)
    return out, valid, nearest


def reproject_observations(points_world: np.ndarray, point_rows: np.ndarray, c2w: np.ndarray, K: np.ndarray,
                           width: int, height: int) -> np.ndarray:
    """(u, v, point row) of ``point_rows`` seen from ``c2w`` with ``K``, where in front and inside the image."""
    if len(point_rows) == 0:
        return np.zeros((0, 3))
    cam = (points_world[point_rows.astype(np.int64)] - c2w[:3, 3]) @ c2w[:3, :3]
    front = cam[:, 2] > 1e-9
    uv = cam[front, :2] / cam[front, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= height - 1)
    return np.column_stack([uv[inside], point_rows[front][inside]])


def guess_intrinsics(width: int, height: int, factor: float) -> np.ndarray:
    f = factor * max(width, height)
    return intrinsics_matrix(f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def normalize_scale(c2w: np.ndarray, points: SparsePoints | None) -> tuple[np.ndarray, SparsePoints | None, float]:
    """Rescale a reconstruction so the median depth of points observed in the sampled frames is 1.

    Returns (c2w, points, factor) with positions multiplied by ``factor``. This is the documented scale
    normalisation of extraction.md §4.4: DSR's 0.1 floors assume π³-like units where scene depths are O(1).
    """
    if points is None or len(points.points_world) == 0:
        return c2w, points, 1.0
    depths = []
    w2c = invert_pose(c2w)
    for t, obs in enumerate(points.observations):
        if len(obs):
            p = points.points_world[obs[:, 2].astype(np.int64)]
            depths.append(p @ w2c[t, :3, :3].T[:, 2] + w2c[t, 2, 3])
    all_depths = np.concatenate(depths) if depths else np.zeros(0)
    all_depths = all_depths[all_depths > 0]
    if len(all_depths) == 0:
        return c2w, points, 1.0
    factor = 1.0 / float(np.median(all_depths))
    scaled = c2w.copy()
    scaled[:, :3, 3] *= factor
    return scaled, replace(points, points_world=points.points_world * factor), factor


# --------------------------------------------------------------------------------------------------
# pycolmap


class PycolmapCamera(Estimator):
    """Incremental SfM (COLMAP via pycolmap) on the dense frames, poses read at the sampled frames."""

    name = "camera/pycolmap"
    role = "camera"
    requires = ("pycolmap", "cv2")

    def __init__(self, config: CameraConfig = CameraConfig()) -> None:
        self.config = config

    @property
    def source(self) -> Source:
        import pycolmap

        return Source(name=self.name, version=f"pycolmap-{pycolmap.__version__}")

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        start = time.perf_counter()
        try:
            est, stats = self._run(clip)
        except Exception as exc:  # pycolmap raises plain RuntimeErrors on degenerate input
            reason = f"pycolmap failed: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            attempt = Attempt("pycolmap", False, reason, time.perf_counter() - start)
            return CameraEstimate(None, False, reason, "up_to_scale", (attempt,), method="pycolmap")
        attempt = Attempt("pycolmap", est.trusted, est.reason, time.perf_counter() - start, stats)
        return replace(est, attempts=(attempt,))

    def _run(self, clip: VideoClip) -> tuple[CameraEstimate, dict[str, float]]:
        import cv2
        import pycolmap

        pycolmap.logging.minloglevel = 2  # warnings and errors only; INFO is one line per image
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="dsr-sfm-") as tmp:
            image_dir = Path(tmp) / "images"
            image_dir.mkdir()
            sfm_pos = grid_positions(clip.dense_indices, clip.fps, cfg.sfm_fps)
            names = [f"{i:06d}.png" for i in range(len(sfm_pos))]
            for name, frame in zip(names, clip.dense_rgb[sfm_pos], strict=True):
                cv2.imwrite(str(image_dir / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            db = Path(tmp) / "db.db"
            extraction = pycolmap.FeatureExtractionOptions()
            extraction.num_threads = cfg.num_threads
            extraction.sift.max_num_features = cfg.sift_max_features
            # indoor / video frames are texture-poor: a lower peak threshold keeps enough features
            extraction.sift.peak_threshold = cfg.sift_peak_threshold
            reader = pycolmap.ImageReaderOptions()
            reader.camera_model = "SIMPLE_RADIAL"
            if cfg.focal_px is not None:  # f, cx, cy, k of the dense frames
                h, w = clip.dense_rgb[0].shape[:2]
                reader.camera_params = f"{cfg.focal_px * clip.dense_scale},{w / 2.0},{h / 2.0},0"
            pycolmap.extract_features(db, image_dir, camera_mode=pycolmap.CameraMode.SINGLE,
                                      reader_options=reader, extraction_options=extraction,
                                      device=pycolmap.Device.cpu)
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = cfg.sequential_overlap
            pycolmap.match_sequential(db, pairing_options=pairing, device=pycolmap.Device.cpu)
            opts = pycolmap.IncrementalPipelineOptions()
            opts.num_threads = cfg.num_threads
            opts.multiple_models = True
            opts.random_seed = 0
            opts.min_num_matches = 10
            opts.mapper.abs_pose_min_num_inliers = 15
            opts.mapper.abs_pose_min_inlier_ratio = 0.15
            opts.ba_refine_focal_length = cfg.focal_px is None
            models = pycolmap.incremental_mapping(db, image_dir, Path(tmp) / "sparse", options=opts)
            return self._read(clip, models, names, clip.dense_indices[sfm_pos])

    @staticmethod
    def _model_content(rec: object, s: float) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """One reconstruction → (c2w by image name, points (P, 3), observations (u, v, point row) by name)."""
        point_rows = {pid: i for i, pid in enumerate(rec.points3D.keys())}
        points = np.array([rec.points3D[pid].xyz for pid in rec.points3D], dtype=np.float64).reshape(-1, 3)
        poses: dict[str, np.ndarray] = {}
        obs: dict[str, np.ndarray] = {}
        for img in rec.images.values():
            if not img.has_pose:
                continue
            w2c = np.eye(4)
            w2c[:3, :] = img.cam_from_world().matrix()
            poses[img.name] = invert_pose(w2c)
            # COLMAP puts pixel centres at +0.5, OpenCV at 0: u_full = u_colmap / s − 0.5
            rows = [(p.xy[0] / s - 0.5, p.xy[1] / s - 0.5, point_rows[p.point3D_id])
                    for p in img.points2D if p.has_point3D() and p.point3D_id in point_rows]
            obs[img.name] = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        return poses, points, obs

    def _merge(self, models: dict, s: float) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], int]:
        """Merge partial models into the largest through images they share (Sim(3) on camera centres).

        Returns (poses, points, observations, frames left unmerged). A model joins only if it shares ≥ 3
        images and the alignment residual is below 5% of the shared cameras' spread.
        """
        from dsr.scene.align import umeyama

        order = sorted(models, key=lambda k: -models[k].num_reg_images())
        poses, points, obs = self._model_content(models[order[0]], s)
        unmerged = 0
        for key in order[1:]:
            p2, pts2, obs2 = self._model_content(models[key], s)
            common = sorted(set(p2) & set(poses))
            new = [n for n in p2 if n not in poses]
            if len(common) < 3:
                unmerged += len(new)
                continue
            src = np.array([p2[n][:3, 3] for n in common])
            dst = np.array([poses[n][:3, 3] for n in common])
            sim = umeyama(src, dst)
            spread = float(np.linalg.norm(dst - dst.mean(0), axis=1).max()) + 1e-12
            if np.sqrt(np.mean(np.sum((sim.apply(src) - dst) ** 2, axis=1))) > 0.05 * spread:
                unmerged += len(new)
                continue
            offset = len(points)
            points = np.concatenate([points, sim.apply(pts2)]) if len(pts2) else points
            for n in new:
                poses[n] = make_pose(sim.rotation @ p2[n][:3, :3], sim.apply(p2[n][:3, 3][None])[0])
                o = obs2[n].copy()
                o[:, 2] += offset
                obs[n] = o
        return poses, points, obs, unmerged

    def _read(self, clip: VideoClip, models: dict, names: list[str], frames: np.ndarray
              ) -> tuple[CameraEstimate, dict[str, float]]:
        """Poses at the sampled frames from the models of SfM images ``names`` (video frame numbers ``frames``)."""
        cfg = self.config
        if not models or max(m.num_reg_images() for m in models.values()) == 0:
            reason = "SfM registered no images (texture-poor or too little parallax)"
            return CameraEstimate(None, False, reason, "up_to_scale", ()), {"registered_ratio": 0.0}
        s = clip.dense_scale
        best = max(models, key=lambda k: models[k].num_reg_images())
        cam = next(iter(models[best].cameras.values()))
        f_dense, cx_d, cy_d, k1 = (float(v) for v in cam.params[:4])
        h_d, w_d = clip.dense_rgb.shape[1:3]
        K = intrinsics_matrix(f_dense / s, f_dense / s, cx_d / s - 0.5, cy_d / s - 0.5)
        poses, points_world, obs, unmerged = self._merge(models, s)
        n_dense = len(names)
        ratio = len(poses) / n_dense
        stats = {"registered_ratio": ratio, "num_models": float(len(models)), "unmerged_frames": float(unmerged),
                 "focal_px": f_dense / s, "radial_k": k1, "num_points": float(len(points_world))}
        problems = []
        if ratio < cfg.min_registered_ratio:
            problems.append(f"registered {len(poses)}/{n_dense} SfM frames (< {cfg.min_registered_ratio:.0%})")
        lo, hi = cfg.focal_range
        if not lo * max(h_d, w_d) <= f_dense <= hi * max(h_d, w_d):
            problems.append(f"focal {f_dense / s:.0f} px outside [{lo}, {hi}]×max(W,H)")
        if abs(k1) > cfg.max_radial_k:
            problems.append(f"radial distortion k={k1:.2f} is implausible")
        if unmerged > 0.2 * n_dense:
            problems.append(f"{len(models)} separate models ({unmerged} frames could not be merged)")
        sfm_known = np.array([name in poses for name in names])
        sfm_c2w = np.stack([poses.get(name, np.eye(4)) for name in names])
        c2w, known, nearest = interpolate_poses(clip.frame_indices, frames, sfm_c2w, sfm_known)
        observations: list[np.ndarray] = []
        for t, frame in enumerate(clip.frame_indices):
            if not known[t]:
                observations.append(np.zeros((0, 3)))
            elif frames[nearest[t]] == frame:  # an SfM image: its own feature observations
                observations.append(obs.get(names[nearest[t]], np.zeros((0, 3))))
            else:  # between SfM images: the nearest one's points, re-projected
                rows = obs.get(names[nearest[t]], np.zeros((0, 3)))[:, 2]
                observations.append(reproject_observations(points_world, rows, c2w[t], K, clip.width, clip.height))
        stats["sampled_valid_ratio"] = float(known.mean())
        if known.mean() < cfg.min_valid_ratio:
            problems.append(f"only {known.sum()}/{len(known)} sampled frames registered or between registered ones")
        if not known.any():
            return CameraEstimate(None, False, "; ".join(problems), "up_to_scale", ()), stats
        c2w = _slerp_fill(c2w, known)
        points = SparsePoints(points_world=points_world, observations=tuple(observations))
        c2w, points, factor = normalize_scale(c2w, points)
        stats["scale_factor"] = factor
        track = camera_track_from_w2c(invert_pose(c2w), K, self.source, valid=known,
                                      confidence=np.where(known, 0.9, 0.0),
                                      rotation_sigma_deg=np.where(known, 0.2, 10.0))
        trusted = not problems
        reason = "ok" if trusted else "; ".join(problems)
        return CameraEstimate(track, trusted, reason, "normalized", (), points=points, method="pycolmap"), stats


# --------------------------------------------------------------------------------------------------
# optical-flow front end shared by VO and the rotation-only model


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def chain_tracks(grays: list[np.ndarray], max_corners: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Corners of grays[0] LK-tracked step by step (forward–backward checked) to grays[-1] → (p_first, p_last)."""
    import cv2

    found = cv2.goodFeaturesToTrack(grays[0], maxCorners=max_corners, qualityLevel=0.003, minDistance=6)
    if found is None:
        return np.zeros((0, 2)), np.zeros((0, 2))
    first = found.reshape(-1, 2).astype(np.float32)
    cur, alive = first.copy(), np.ones(len(first), bool)
    for a, b in itertools.pairwise(grays):
        p0 = cur[alive].reshape(-1, 1, 2)
        if len(p0) == 0:
            break
        p1, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, winSize=(31, 31), maxLevel=5)
        p0r, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, p1, None, winSize=(31, 31), maxLevel=5)
        good = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((p0 - p0r).reshape(-1, 2), axis=1) < 2.0)
        idx = np.flatnonzero(alive)
        cur[idx] = p1.reshape(-1, 2)
        alive[idx[~good]] = False
    return first[alive].astype(np.float64), cur[alive].astype(np.float64)


def long_baseline_residuals(grays: list[np.ndarray], c2w: np.ndarray, K: np.ndarray, span: int,
                            min_points: int) -> list[tuple[int, int, float]]:
    """Median residual of the rotation-only model on points chained over ``span`` dense steps, for windows
    starting every span/2 steps → [(first, last, residual px)] (windows with too few points are skipped)."""
    import cv2

    n = len(grays)
    span = max(1, min(span, n - 1))
    out = []
    for i in range(0, max(1, n - span), max(1, span // 2)):
        j = min(i + span, n - 1)
        p0, p1 = chain_tracks(grays[i:j + 1])
        if len(p0) < min_points:
            continue
        rot = c2w[j, :3, :3].T @ c2w[i, :3, :3]  # camera j from camera i
        pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot @ np.linalg.inv(K)).reshape(-1, 2)
        out.append((i, j, float(np.median(np.linalg.norm(pred - p1, axis=1)))))
    return out


def track_pair(prev_gray: np.ndarray, next_gray: np.ndarray, pts: np.ndarray | None = None,
               max_corners: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """LK-track corners from prev to next with a forward–backward check → (pts_prev (N,2), pts_next (N,2))."""
    import cv2

    if pts is None or len(pts) < max_corners // 3:
        found = cv2.goodFeaturesToTrack(prev_gray, maxCorners=max_corners, qualityLevel=0.003, minDistance=6)
        pts = np.zeros((0, 2), np.float32) if found is None else found.reshape(-1, 2).astype(np.float32)
    if len(pts) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    p0 = pts.reshape(-1, 1, 2).astype(np.float32)
    p1, st, _ = cv2.calcOpticalFlowPyrLK(prev_gray, next_gray, p0, None, winSize=(31, 31), maxLevel=5)
    p0r, st2, _ = cv2.calcOpticalFlowPyrLK(next_gray, prev_gray, p1, None, winSize=(31, 31), maxLevel=5)
    good = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((p0 - p0r).reshape(-1, 2), axis=1) < 2.0)
    return p0.reshape(-1, 2)[good].astype(np.float64), p1.reshape(-1, 2)[good].astype(np.float64)


class FeatureMatcher:
    """SIFT keypoints per dense frame (computed once) and ratio-test matches between two frames.

    Matching rather than LK tracking survives the large image motion of fast hand-held or head-mounted
    cameras (tens of pixels per dense step). A keypoint keeps its exact coordinates in every pair it
    joins, which is what VO's scale propagation keys on.
    """

    def __init__(self, grays: list[np.ndarray], max_features: int = 2000, ratio: float = 0.8) -> None:
        import cv2

        self._sift = cv2.SIFT_create(nfeatures=max_features)
        self._grays = grays
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)
        self.ratio = ratio

    def features(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if i not in self._cache:
            kps, desc = self._sift.detectAndCompute(self._grays[i], None)
            self._cache[i] = (np.array([k.pt for k in kps], dtype=np.float64).reshape(-1, 2), desc)
        return self._cache[i]

    def match(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Matched points (N, 2) in frame i and frame j (ratio test + mutual consistency)."""
        pi, di = self.features(i)
        pj, dj = self.features(j)
        if di is None or dj is None or len(di) < 2 or len(dj) < 2:
            return np.zeros((0, 2)), np.zeros((0, 2))
        fwd = self._matcher.knnMatch(di, dj, k=2)
        back = {m.queryIdx: m.trainIdx for m in self._matcher.match(dj, di)}
        pairs = [(m.queryIdx, m.trainIdx) for m, n in (x for x in fwd if len(x) == 2)
                 if m.distance < self.ratio * n.distance and back.get(m.trainIdx) == m.queryIdx]
        if not pairs:
            return np.zeros((0, 2)), np.zeros((0, 2))
        qi, tj = np.array(pairs).T
        return pi[qi], pj[tj]


def _dense_K(clip: VideoClip, factor: float) -> np.ndarray:
    h, w = clip.dense_rgb.shape[1:3]
    return guess_intrinsics(w, h, factor)


def _full_K(clip: VideoClip, K_dense: np.ndarray) -> np.ndarray:
    s = clip.dense_scale
    return intrinsics_matrix(K_dense[0, 0] / s, K_dense[1, 1] / s, (K_dense[0, 2] + 0.5) / s - 0.5,
                             (K_dense[1, 2] + 0.5) / s - 0.5)


def _sampled_track(clip: VideoClip, c2w_dense: np.ndarray, known_dense: np.ndarray, K_full: np.ndarray,
                   source: Source, confidence: float, rot_sigma: float) -> tuple[CameraTrack, np.ndarray]:
    """Dense chain → sampled-frame CameraTrack; a sampled frame is valid where its dense pose is known."""
    pos = clip.sampled_in_dense
    valid = known_dense[pos]
    track = camera_track(K_full, c2w_dense[pos], source, valid=valid, confidence=np.where(valid, confidence, 0.0),
                         rotation_sigma_deg=np.where(valid, rot_sigma, 30.0))
    return track, valid


class _OpenCVCamera(Estimator):
    """Shared set-up of the OpenCV camera estimators: a config and an optional known focal length."""

    requires = ("cv2",)

    def __init__(self, config: CameraConfig = CameraConfig(), focal_px: float | None = None) -> None:
        self.config = config
        self.focal_px = focal_px  # full-resolution focal, if known

    def dense_intrinsics(self, clip: VideoClip) -> np.ndarray:
        """K of the dense frames: the known focal length if there is one, else the guess."""
        K = _dense_K(clip, self.config.focal_guess_factor)
        if self.focal_px is not None:
            K[0, 0] = K[1, 1] = self.focal_px * clip.dense_scale
        return K

    @property
    def source(self) -> Source:
        import cv2

        return Source(name=self.name, version=f"opencv-{cv2.__version__}")


class EssentialVOCamera(_OpenCVCamera):
    """Two-view VO: SIFT matches → essential matrix (MAGSAC) → recoverPose, chained, with scale propagation.

    Guard against flipped (twisted-pair) solutions: a step whose rotation exceeds
    ``max_step_rotation_deg`` or whose cheirality inlier ratio is low is rejected and the chain is
    marked invalid from there on. A frame with less than ``min_parallax_px`` of parallax from the keyframe is
    placed by its rotation and the keyframe is kept until the baseline is measurable (then the frames in
    between are moved along it in proportion to time), for at most ``max_keyframe_steps`` dense frames or
    ``max_keyframe_rotation_deg`` of turn, after which it becomes a rotation-only keyframe.
    """

    name = "camera/vo"
    role = "camera"
    requires = ("cv2",)

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        import cv2

        start = time.perf_counter()
        cfg = self.config
        K = self.dense_intrinsics(clip)
        grays = [_gray(f) for f in clip.dense_rgb]
        n = len(grays)
        c2w = np.tile(np.eye(4), (n, 1, 1))
        known = np.zeros(n, bool)
        known[0] = True
        scale = 1.0
        prev_depths: dict[int, float] = {}  # depth in the anchor camera (record units) keyed by pixel position
        reasons: list[str] = []
        flips = 0
        matcher = FeatureMatcher(grays)
        depth_medians: list[float] = []
        anchor = 0
        # Keyframe VO: a frame too close to the keyframe to triangulate (parallax < min_parallax_px) is placed
        # by its rotation alone and the keyframe is kept, so the baseline grows until it can be measured; the
        # frames in between then move along that baseline in proportion to time. Stepping keyframe by keyframe
        # on every dense frame made a slow dolly stand still for seconds and then jump (translation only
        # where one step happened to exceed the parallax threshold).
        times = clip.dense_indices.astype(np.float64)
        pending: list[int] = []
        j, failures = 1, 0
        while j < n:
            step = None
            p0, p1 = matcher.match(anchor, j)
            if len(p0) < cfg.min_track_points:
                reasons.append(f"frames {anchor}->{j}: {len(p0)} tracks")
            else:
                step = self._step(p0, p1, K, cv2)
                if step is None or step[2] < cfg.min_cheirality_ratio:
                    reasons.append(f"frames {anchor}->{j}: no reliable essential matrix")
                    step = None
                elif rotation_angle_deg(step[0]) > cfg.max_step_rotation_deg:
                    flips += 1
                    reasons.append(f"frames {anchor}->{j}: rotation {rotation_angle_deg(step[0]):.0f}° rejected "
                                   "(flip guard)")
                    step = None
            if step is None:  # blur, a flip, no model: bridge over up to max_skip frames, else stop
                failures += 1
                if failures > cfg.max_skip:
                    reasons.append(f"chain broken after dense frame {anchor}")
                    break
                j += 1
                continue
            failures = 0
            rot, t_unit, _, parallax, depths_a, depths_j = step
            if parallax < cfg.min_parallax_px:
                c2w[j] = c2w[anchor] @ invert_pose(make_pose(rot, np.zeros(3)))
                known[j] = True
                if j - anchor < cfg.max_keyframe_steps and rotation_angle_deg(rot) < cfg.max_keyframe_rotation_deg:
                    pending.append(j)
                    j += 1
                    continue
                # a pure rotation (or a camera at rest) for long: a new keyframe in the same place
                prev_depths, pending, anchor, j = {}, [], j, j + 1
                continue
            # scale propagation: points seen by this step and the previous one fix the step length
            ratios = [prev_depths[k] / z for k, z in depths_a.items() if k in prev_depths and z > 0]
            if len(ratios) >= 8:
                scale = float(np.median(ratios))
            t = t_unit * scale
            prev_depths = {k: z * scale for k, z in depths_j.items()}
            if prev_depths:
                depth_medians.append(float(np.median(list(prev_depths.values()))))
            # j_from_anchor = [rot | t]  →  world_from_j = world_from_anchor @ inv(j_from_anchor)
            c2w[j] = c2w[anchor] @ invert_pose(make_pose(rot, t))
            known[j] = True
            for p in pending:
                w = (times[p] - times[anchor]) / (times[j] - times[anchor])
                c2w[p, :3, 3] = (1.0 - w) * c2w[anchor, :3, 3] + w * c2w[j, :3, 3]
            pending, anchor, j = [], j, j + 1
        # scale normalisation (extraction.md §4.4): median triangulated depth = 1
        positive = [d for d in depth_medians if d > 0]
        if positive:
            c2w[:, :3, 3] /= float(np.median(positive))
        c2w = _slerp_fill(c2w, known)
        track, valid = _sampled_track(clip, c2w, known, _full_K(clip, K), self.source, 0.6, 1.0)
        trusted = bool(valid.mean() >= cfg.min_valid_ratio)
        reason = "ok" if trusted else f"{(~valid).sum()}/{len(valid)} sampled frames without a pose" + (
            f" ({reasons[-1]})" if reasons else "")
        stats = {"known_dense_ratio": float(known.mean()), "flips_rejected": float(flips),
                 "sampled_valid_ratio": float(valid.mean())}
        attempt = Attempt("vo", trusted, reason, time.perf_counter() - start, stats)
        return CameraEstimate(track, trusted, reason, "normalized", (attempt,), method="vo")

    @staticmethod
    def _key(p: np.ndarray) -> int:
        return round(float(p[0]) * 4) * 10_000_000 + round(float(p[1]) * 4)

    def _step(self, p0: np.ndarray, p1: np.ndarray, K: np.ndarray, cv2: Any) -> tuple | None:
        """One VO step → (rot, t_unit, cheirality ratio, parallax px, depths_i, depths_next) or None.

        A step that a pure rotation explains (rotation-only residual below ``min_parallax_px``) takes its
        rotation from the homography: the essential matrix is ill-posed without parallax.
        """
        K_inv = np.linalg.inv(K)
        H, _ = cv2.findHomography(p0, p1, cv2.RANSAC, 2.0)
        rot_h, res_h = None, np.inf
        if H is not None:
            m = K_inv @ H @ K
            rot_h = _project_to_so3(m / np.cbrt(np.linalg.det(m)))
            pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot_h @ K_inv).reshape(-1, 2)
            res_h = float(np.median(np.linalg.norm(pred - p1, axis=1)))
            if res_h < self.config.min_parallax_px:
                return rot_h, np.zeros(3), 1.0, 0.0, {}, {}
        E, inl = cv2.findEssentialMat(p0, p1, K, method=cv2.USAC_MAGSAC, prob=0.999, threshold=1.0)
        if E is None or E.shape != (3, 3) or inl is None or inl.sum() < 8:
            return None
        # distanceThresh: the 4-argument overload drops points beyond 50 baselines, which at video frame
        # rates is most of the scene and makes the cheirality ratio meaningless
        n_in, rot, t, mask, _ = cv2.recoverPose(E, p0, p1, K, distanceThresh=1e4, mask=inl.copy())
        inlier_ratio = float(n_in) / max(1, int(inl.sum()))
        low_parallax = res_h < 3 * self.config.min_parallax_px
        bad = inlier_ratio < self.config.min_cheirality_ratio or rotation_angle_deg(rot) > self.config.max_step_rotation_deg
        if bad and low_parallax and rot_h is not None:
            # too little parallax for a reliable essential matrix: keep the homography's rotation only
            return rot_h, np.zeros(3), 1.0, 0.0, {}, {}
        # parallax: how far points move beyond what the rotation alone explains
        pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot @ K_inv).reshape(-1, 2)
        parallax = float(np.median(np.linalg.norm(pred - p1, axis=1)))
        t = t.ravel()
        depths_i: dict[int, float] = {}
        depths_next: dict[int, float] = {}
        sel = np.flatnonzero(mask.ravel() > 0)
        if len(sel) and parallax >= self.config.min_parallax_px:
            P0 = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
            P1 = K @ np.hstack([rot, t[:, None]])
            X = cv2.triangulatePoints(P0, P1, p0[sel].T, p1[sel].T)
            X = (X[:3] / X[3]).T
            z1 = (X @ rot.T + t)[:, 2]
            depths_i = {self._key(p): float(z) for p, z in zip(p0[sel], X[:, 2], strict=True)}
            depths_next = {self._key(p): float(z) for p, z in zip(p1[sel], z1, strict=True)}
        return rot, t, inlier_ratio, parallax, depths_i, depths_next


def focal_from_homographies(homographies: list[np.ndarray], K_guess: np.ndarray, lo: float = 0.3, hi: float = 3.0,
                            min_shift_px: float = 3.0) -> float | None:
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

    hs = [hom for hom in homographies if shift(hom) >= min_shift_px]
    if not hs:
        return None
    f0 = K_guess[0, 0]

    def cost(f: float) -> float:
        K = K_guess.copy()
        K[0, 0] = K[1, 1] = f
        K_inv = np.linalg.inv(K)
        total = 0.0
        for h in hs:
            m = K_inv @ h @ K
            m = m / np.cbrt(np.linalg.det(m))
            total += float(np.linalg.norm(m - _project_to_so3(m)))
        return total

    grid = f0 * np.geomspace(lo, hi, 41)
    k = int(np.argmin([cost(f) for f in grid]))
    if k in (0, len(grid) - 1):
        return None  # no minimum inside the range: the steps are not rotations (a dolly's expansion ran to lo)
    best = grid[k]
    fine = best * np.geomspace(0.95, 1.05, 21)
    return float(fine[int(np.argmin([cost(f) for f in fine]))])


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


class RotationOnlyCamera(_OpenCVCamera):
    """Degenerate-case fallback: a purely rotating camera, one rotation per dense step from the bearings of
    the step's homography inliers (:func:`rotation_from_bearings`).

    Trusted only if the rotations explain the tracks (the ``step_residual_quantile`` residual of every step
    below ``max_homography_residual_px``, and points LK-chained over 3 s and 6 s windows within
    ``max_long_residual_px``), i.e. the camera really rotates about its centre or views a distant scene.
    Positions are all zero. Without a given focal length it is estimated from the homographies
    (:func:`focal_from_homographies`) when the camera rotates enough, else guessed.
    """

    name = "camera/rotation"
    role = "camera"
    requires = ("cv2",)

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        import cv2

        start = time.perf_counter()
        cfg = self.config
        K = self.dense_intrinsics(clip)
        grays = [_gray(f) for f in clip.dense_rgb]
        n = len(grays)
        c2w = np.tile(np.eye(4), (n, 1, 1))
        step_ok = np.ones(n - 1, bool)
        residuals = []
        reasons: list[str] = []
        steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = []  # p0, p1, H, inliers
        flows: list[float] = []  # median image motion per dense step, px
        for i in range(n - 1):
            p0, p1 = track_pair(grays[i], grays[i + 1])
            if len(p0):
                flows.append(float(np.median(np.linalg.norm(p1 - p0, axis=1))))
            H, inl = cv2.findHomography(p0, p1, cv2.RANSAC, 2.0) if len(p0) >= cfg.min_track_points else (None, None)
            if H is None:
                reasons.append(f"step {i}: {len(p0)} tracks, no homography")
            steps.append(None if H is None else (p0, p1, H, inl[:, 0].astype(bool)))
        if self.focal_px is None:
            f = focal_from_homographies([st[2] for st in steps if st is not None], K)
            if f is not None:
                K[0, 0] = K[1, 1] = f
        K_inv = np.linalg.inv(K)
        for i, step in enumerate(steps):
            if step is None:
                step_ok[i] = False
                c2w[i + 1] = c2w[i]
                continue
            p0, p1, _, inliers = step
            rot = rotation_from_bearings(p0[inliers], p1[inliers], K)
            pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot @ K_inv).reshape(-1, 2)
            res = float(np.quantile(np.linalg.norm(pred - p1, axis=1), cfg.step_residual_quantile))
            residuals.append(res)
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
                        for r in long_baseline_residuals(grays, c2w, K, round(span_s * rate), cfg.min_track_points)]
            for i, j, res in long_res:
                if res > cfg.max_long_residual_px:
                    known[i + 1:] = False  # the camera translated inside this window: no pose after i holds
                    reasons.append(f"dense frames {i}-{j}: rotation model residual {res:.1f} px "
                                   f"(parallax accumulates: the camera translates)")
                    break
        track, valid = _sampled_track(clip, c2w, known, _full_K(clip, K), self.source, 0.4, 2.0)
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


class AutoCamera(Estimator):
    """The CPU default: rotation-only check → SfM (pycolmap) → VO.

    The rotation-only model goes first because it is cheap (about a second) and, when it explains every
    step, the camera is static or only rotating — exactly the case where SfM has no parallax and fails
    after minutes of work. The first trusted result wins; every attempt (with its reason and time) is
    kept. If none is trusted the estimate is untrusted and the pipeline writes no record.
    """

    name = "camera/auto"
    role = "camera"
    requires = ("cv2",)

    def __init__(self, config: CameraConfig = CameraConfig(),
                 methods: tuple[str, ...] = ("rotation", "pycolmap", "vo")) -> None:
        self.config = config
        self.methods = methods

    def sfm_config(self, attempts: list[Attempt]) -> CameraConfig:
        """SfM on the time grid, or on every dense frame when the rotation check measured a fast-moving image."""
        flow = next((a.stats.get("step_flow_frac", float("nan")) for a in attempts if a.method == "rotation"),
                    float("nan"))
        if np.isfinite(flow) and flow > self.config.max_grid_step_flow:
            return replace(self.config, sfm_fps=None)
        return self.config

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        attempts: list[Attempt] = []
        focal: float | None = self.config.focal_px
        for method in self.methods:
            if method == "pycolmap":
                ok, why = PycolmapCamera.available()
                if not ok:
                    attempts.append(Attempt("pycolmap", False, why, 0.0))
                    continue
                est = PycolmapCamera(self.sfm_config(attempts)).estimate(clip)
                if est.track is not None and not est.trusted:
                    # a partial SfM still gives a usable focal length for the fallbacks when it is sane and
                    # covers at least half the clip (a degenerate pan once gave a "sane" focal 2× too long)
                    f = float(est.track.K[0, 0, 0])
                    lo, hi = self.config.focal_range
                    covered = est.attempts[0].stats.get("registered_ratio", 0.0) >= 0.5
                    if (focal is None and covered
                            and lo * max(clip.width, clip.height) <= f <= hi * max(clip.width, clip.height)):
                        focal = f
            elif method == "pi3":  # learned: needs the ``pi3`` package and DSR_PI3_CKPT (never downloads)
                from dsr.extract.learned import Pi3Camera

                ok, why = Pi3Camera.available()
                if not ok:
                    attempts.append(Attempt("pi3", False, why, 0.0))
                    continue
                est = Pi3Camera().estimate(clip)  # pragma: no cover - needs weights and a GPU
            elif method == "vo":
                est = EssentialVOCamera(self.config, focal).estimate(clip)
            elif method == "rotation":
                est = RotationOnlyCamera(self.config, focal).estimate(clip)
            else:
                raise ValueError(f"unknown camera method {method!r}")
            attempts.extend(est.attempts)
            if est.trusted:
                return replace(est, attempts=tuple(attempts))
        reason = "no camera method produced trusted poses: " + "; ".join(f"{a.method}: {a.reason}" for a in attempts)
        return CameraEstimate(None, False, reason, "up_to_scale", tuple(attempts))
