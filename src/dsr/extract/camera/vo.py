"""Two-view visual odometry: SIFT matches → essential matrix → recoverPose, chained over keyframes.

World frame: the first dense frame's camera. Scale: the median depth of the points triangulated along the
chain is 1 (``scale_kind="normalized"``). The triangulated points come back as ``scene_points`` (world, record
units): the object stage reads the floor's depth beside each object from them to put the size prior's depths
in the camera's units.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dsr.extract.base import Attempt, CameraEstimate, VideoClip
from dsr.extract.camera.common import OpenCVCamera, full_intrinsics, grid_positions, is_short, sampled_track
from dsr.extract.camera.features import FeatureMatcher, gray
from dsr.scene.frames import invert_pose, make_pose
from dsr.scene.poses import fill_poses, interpolate_poses, project_to_so3, rotation_angle_deg


class EssentialVOCamera(OpenCVCamera):
    """Two-view VO: SIFT matches → essential matrix (MAGSAC) → recoverPose, chained, with scale propagation.

    Guard against flipped (twisted-pair) solutions: a step whose rotation exceeds
    ``max_step_rotation_deg`` or whose cheirality inlier ratio is low is rejected and the chain is
    marked invalid from there on. A frame with less than ``min_parallax_px`` of parallax from the keyframe is
    placed by its rotation and the keyframe is kept until the baseline is measurable (then the frames in
    between are moved along it in proportion to time), for at most ``max_keyframe_steps`` dense frames or
    ``max_keyframe_rotation_deg`` of turn, after which it becomes a rotation-only keyframe.
    """

    name = "camera/vo"

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        start = time.perf_counter()
        # the chain runs on the dense frames of a vo_fps grid (unset: short_clip_vo_fps on a short clip); the
        # others (on short clips mostly the sampled frames, which make the dense set ~16 fps) are interpolated
        # between the grid frames around them
        rate = self.config.vo_fps
        if rate is None and is_short(clip, self.config):
            rate = self.config.short_clip_vo_fps
        grid = grid_positions(clip.dense_indices, clip.fps, rate)
        side = self.config.vo_max_side
        est = self._chain(clip, grid, start, side)
        every = np.arange(len(clip.dense_indices))
        if not est.trusted and len(grid) < len(every):
            # fast motion can break the chain between grid frames (DAVIS motocross-jump): every dense frame
            est = self._chain(clip, every, start, side)
            est.attempts[0].stats["grid_fallback"] = 1.0
        if not est.trusted and side is not None and max(clip.dense_rgb.shape[1:3]) > side:
            # … and features on the downscaled frames (motocross-jump again): the dense frames as they are
            est = self._chain(clip, every, start, None)
            est.attempts[0].stats["full_size_fallback"] = 1.0
        return est

    def _chain(self, clip: VideoClip, grid: np.ndarray, start: float, max_side: int | None) -> CameraEstimate:
        """VO over the dense frames at positions ``grid`` (sorted, first and last included), the other dense
        frames interpolated, with SIFT on the frames downscaled to ``max_side``; the attempt's time counts from
        ``start``."""
        import cv2

        cfg = self.config
        K = self.dense_intrinsics(clip)
        grays = [gray(clip.dense_rgb[p]) for p in grid]
        n = len(grays)
        c2w = np.tile(np.eye(4), (n, 1, 1))
        known = np.zeros(n, bool)
        known[0] = True
        scale = 1.0
        prev_depths: dict[int, float] = {}  # depth in the anchor camera (record units) keyed by pixel position
        reasons: list[str] = []
        flips = 0
        matcher = FeatureMatcher(grays, max_side=max_side)
        depth_medians: list[float] = []
        world_points: list[np.ndarray] = []
        anchor = 0
        # Keyframe VO: a frame too close to the keyframe to triangulate (parallax < min_parallax_px) is placed
        # by its rotation alone and the keyframe is kept, so the baseline grows until it can be measured; the
        # frames in between then move along that baseline in proportion to time. Stepping keyframe by keyframe
        # on every dense frame made a slow dolly stand still for seconds and then jump (translation only
        # where one step happened to exceed the parallax threshold).
        times = clip.dense_indices[grid].astype(np.float64)
        pending: list[int] = []
        j, failures = 1, 0
        while j < n:
            step = None
            p0, p1 = matcher.match(anchor, j)
            if len(p0) < cfg.min_track_points:
                reasons.append(f"dense frames {grid[anchor]}->{grid[j]}: {len(p0)} tracks")
            else:
                step = self._step(p0, p1, K, cv2)
                if step is None or step[2] < cfg.min_cheirality_ratio:
                    reasons.append(f"dense frames {grid[anchor]}->{grid[j]}: no reliable essential matrix")
                    step = None
                elif rotation_angle_deg(step[0]) > cfg.max_step_rotation_deg:
                    flips += 1
                    reasons.append(f"dense frames {grid[anchor]}->{grid[j]}: rotation {rotation_angle_deg(step[0]):.0f}° rejected "
                                   "(flip guard)")
                    step = None
            if step is None:  # blur, a flip, no model: bridge over up to max_skip frames, else stop
                failures += 1
                if failures > cfg.max_skip:
                    reasons.append(f"chain broken after dense frame {grid[anchor]}")
                    break
                j += 1
                continue
            failures = 0
            rot, t_unit, _, parallax, depths_a, depths_j, points_a = step
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
            if len(points_a):  # the step's points in the anchor camera, at this step's scale
                world_points.append(points_a * scale @ c2w[anchor, :3, :3].T + c2w[anchor, :3, 3])
            # j_from_anchor = [rot | t]  →  world_from_j = world_from_anchor @ inv(j_from_anchor)
            c2w[j] = c2w[anchor] @ invert_pose(make_pose(rot, t))
            known[j] = True
            for p in pending:
                w = (times[p] - times[anchor]) / (times[j] - times[anchor])
                c2w[p, :3, 3] = (1.0 - w) * c2w[anchor, :3, 3] + w * c2w[j, :3, 3]
            pending, anchor, j = [], j, j + 1
        # scale normalisation (extraction.md §4.4): median triangulated depth = 1
        positive = [d for d in depth_medians if d > 0]
        points = np.concatenate(world_points) if world_points else np.zeros((0, 3))
        if positive:
            unit = float(np.median(positive))
            c2w[:, :3, 3] /= unit
            points = points / unit
        grid_known_ratio = float(known.mean())
        c2w, known, _ = interpolate_poses(clip.dense_indices, clip.dense_indices[grid], c2w, known)
        c2w = fill_poses(c2w, known)
        track, valid = sampled_track(clip, c2w, known, full_intrinsics(clip, K), self.source, 0.6, 1.0)
        trusted = bool(valid.mean() >= cfg.min_valid_ratio)
        reason = "ok" if trusted else f"{(~valid).sum()}/{len(valid)} sampled frames without a pose" + (
            f" ({reasons[-1]})" if reasons else "")
        stats = {"known_dense_ratio": grid_known_ratio, "flips_rejected": float(flips),
                 "sampled_valid_ratio": float(valid.mean()), "focal_guessed": float(self.focal_px is None)}
        attempt = Attempt("vo", trusted, reason, time.perf_counter() - start, stats)
        return CameraEstimate(track, trusted, reason, "normalized", (attempt,), method="vo",
                              scene_points=points if len(points) else None)

    @staticmethod
    def _key(p: np.ndarray) -> int:
        return round(float(p[0]) * 4) * 10_000_000 + round(float(p[1]) * 4)

    def _step(self, p0: np.ndarray, p1: np.ndarray, K: np.ndarray, cv2: Any) -> tuple | None:
        """One VO step → (rot, t_unit, cheirality ratio, parallax px, depths_i, depths_next, points_i) or None;
        points_i (N, 3): the triangulated points in camera i (unit baseline).

        A step that a pure rotation explains (rotation-only residual below ``min_parallax_px``) takes its
        rotation from the homography: the essential matrix is ill-posed without parallax.
        """
        K_inv = np.linalg.inv(K)
        H, _ = cv2.findHomography(p0, p1, cv2.RANSAC, 2.0)
        rot_h, res_h = None, np.inf
        if H is not None:
            m = K_inv @ H @ K
            rot_h = project_to_so3(m / np.cbrt(np.linalg.det(m)))
            pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot_h @ K_inv).reshape(-1, 2)
            res_h = float(np.median(np.linalg.norm(pred - p1, axis=1)))
            if res_h < self.config.min_parallax_px:
                return rot_h, np.zeros(3), 1.0, 0.0, {}, {}, np.zeros((0, 3))
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
            return rot_h, np.zeros(3), 1.0, 0.0, {}, {}, np.zeros((0, 3))
        # parallax: how far points move beyond what the rotation alone explains
        pred = cv2.perspectiveTransform(p0.reshape(-1, 1, 2), K @ rot @ K_inv).reshape(-1, 2)
        parallax = float(np.median(np.linalg.norm(pred - p1, axis=1)))
        t = t.ravel()
        depths_i: dict[int, float] = {}
        depths_next: dict[int, float] = {}
        points_i = np.zeros((0, 3))
        sel = np.flatnonzero(mask.ravel() > 0)
        if len(sel) and parallax >= self.config.min_parallax_px:
            P0 = K @ np.hstack([np.eye(3), np.zeros((3, 1))])
            P1 = K @ np.hstack([rot, t[:, None]])
            X = cv2.triangulatePoints(P0, P1, p0[sel].T, p1[sel].T)
            X = (X[:3] / X[3]).T
            z1 = (X @ rot.T + t)[:, 2]
            depths_i = {self._key(p): float(z) for p, z in zip(p0[sel], X[:, 2], strict=True)}
            depths_next = {self._key(p): float(z) for p, z in zip(p1[sel], z1, strict=True)}
            points_i = X[(X[:, 2] > 0) & (z1 > 0)]  # in front of both cameras
        return rot, t, inlier_ratio, parallax, depths_i, depths_next, points_i
