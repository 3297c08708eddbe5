"""Incremental SfM (COLMAP through pycolmap) on the dense frames, poses read at the sampled frames.

World frame: COLMAP's arbitrary frame. Scale: normalised so the median depth of the triangulated static
points seen in the sampled frames is 1 (``scale_kind="normalized"``, :func:`normalize_scale`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dsr.extract.adapters import camera_track_from_w2c, intrinsics_matrix
from dsr.extract.base import Attempt, CameraEstimate, SparsePoints, VideoClip
from dsr.extract.camera.common import CameraConfig, CameraEstimator, grid_positions
from dsr.scene.frames import invert_pose, make_pose
from dsr.scene.poses import fill_poses, interpolate_poses, rotation_spikes
from dsr.scene.record import Source


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


def camera_extent(c2w: np.ndarray, known: np.ndarray) -> float:
    """Largest axis-aligned extent of the known camera centres (in the units of ``c2w``: median scene depths
    once :func:`normalize_scale` ran)."""
    return float(np.ptp(c2w[known, :3, 3], axis=0).max()) if known.any() else 0.0


def jump_share(c2w: np.ndarray, known: np.ndarray, jumps: int = 3) -> float:
    """Share of the known camera centres' path length in its ``jumps`` longest steps (0 for no path)."""
    steps = np.linalg.norm(np.diff(c2w[known, :3, 3], axis=0), axis=1)
    total = float(steps.sum())
    return float(np.sort(steps)[::-1][:jumps].sum()) / total if total > 0 else 0.0


def collapse_reason(extent: float, share: float, config: CameraConfig) -> str | None:
    """Why normalised SfM poses whose :func:`camera_extent` is ``extent`` and :func:`jump_share` is ``share`` look
    like a collapsed reconstruction (see ``CameraConfig``), or None."""
    if extent > config.max_camera_extent_depths:
        return f"the camera spans {extent:.3g}x the median scene depth (a collapsed reconstruction)"
    if extent > config.jump_extent_depths and share > config.max_jump_share:
        return (f"the camera spans {extent:.3g}x the median scene depth in a few jumps ({share:.0%} of its path in "
                "3 steps): a collapsed reconstruction")
    return None


class PycolmapCamera(CameraEstimator):
    """Incremental SfM (COLMAP via pycolmap) on the dense frames, poses read at the sampled frames."""

    name = "camera/pycolmap"
    requires = ("pycolmap", "cv2")

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
        pycolmap.set_random_seed(cfg.random_seed)
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
            extraction.sift.first_octave = cfg.sift_first_octave
            reader = pycolmap.ImageReaderOptions()
            reader.camera_model = "SIMPLE_RADIAL"
            if self.focal_px is not None:  # f, cx, cy, k of the dense frames
                h, w = clip.dense_rgb[0].shape[:2]
                reader.camera_params = f"{self.focal_px * clip.dense_scale},{w / 2.0},{h / 2.0},0"
            pycolmap.extract_features(db, image_dir, camera_mode=pycolmap.CameraMode.SINGLE,
                                      reader_options=reader, extraction_options=extraction,
                                      device=pycolmap.Device.cpu)
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = cfg.sequential_overlap
            matching = pycolmap.FeatureMatchingOptions()
            matching.num_threads = cfg.num_threads  # its default (-1) takes every core
            verification = pycolmap.TwoViewGeometryOptions()
            verification.ransac.random_seed = cfg.random_seed  # its default (-1) seeds from the clock
            pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing,
                                      verification_options=verification, device=pycolmap.Device.cpu)
            opts = pycolmap.IncrementalPipelineOptions()
            opts.num_threads = cfg.num_threads
            opts.multiple_models = True
            opts.random_seed = cfg.random_seed
            opts.min_num_matches = 10
            opts.mapper.abs_pose_min_num_inliers = 15
            opts.mapper.abs_pose_min_inlier_ratio = 0.15
            opts.ba_refine_focal_length = self.focal_px is None
            if cfg.ba_light:
                opts.ba_global_frames_ratio = opts.ba_global_points_ratio = 1.4
                opts.ba_global_max_num_iterations = 20
                opts.ba_global_max_refinements = 2
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
            # the shared cameras must span a baseline that is measurable against the scene (1% of the median
            # point distance): over nearly coincident centres any scale fits, and an orbit world's three models
            # merged at scale ~1e-8 into a trusted camera 170° off
            depth = float(np.median(np.linalg.norm(points - dst.mean(0), axis=1))) if len(points) else spread
            if (spread < 0.01 * depth or not 1e-2 < sim.scale < 1e2
                    or np.sqrt(np.mean(np.sum((sim.apply(src) - dst) ** 2, axis=1))) > 0.05 * spread):
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
        # a misregistered image turns the camera by tens of degrees and back; leave it out, so that the frames
        # around it are interpolated between its neighbours
        registered = np.flatnonzero(sfm_known)
        spikes = registered[rotation_spikes(sfm_c2w[registered, :3, :3], frames[registered], cfg.sfm_spike_deg,
                                            cfg.sfm_spike_median_factor, cfg.sfm_spike_max_share)]
        stats["rotation_spikes"] = float(len(spikes))
        if len(spikes):
            keep = np.ones(n_dense, bool)
            keep[spikes] = False
            names, frames, sfm_c2w, sfm_known = ([n for n, k in zip(names, keep, strict=True) if k], frames[keep],
                                                 sfm_c2w[keep], sfm_known[keep])
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
        c2w = fill_poses(c2w, known)
        points = SparsePoints(points_world=points_world, observations=tuple(observations))
        c2w, points, factor = normalize_scale(c2w, points)
        stats["scale_factor"] = factor
        stats["camera_extent_depths"] = camera_extent(c2w, known)
        stats["jump_share"] = jump_share(c2w, known)
        collapsed = collapse_reason(stats["camera_extent_depths"], stats["jump_share"], cfg)
        if collapsed is not None:
            problems.append(collapsed)
        track = camera_track_from_w2c(invert_pose(c2w), K, self.source, valid=known,
                                      confidence=np.where(known, 0.9, 0.0),
                                      rotation_sigma_deg=np.where(known, 0.2, 10.0))
        trusted = not problems
        reason = "ok" if trusted else "; ".join(problems)
        return CameraEstimate(track, trusted, reason, "normalized", (), points=points, method="pycolmap"), stats
