"""Optical-flow and SIFT front ends shared by the OpenCV camera estimators (VO, rotation-only)."""

from __future__ import annotations

import itertools

import numpy as np


def gray(frame: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 → grey (H, W) uint8."""
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
            pts = np.array([k.pt for k in kps], dtype=np.float64).reshape(-1, 2)
            # OpenCV's SIFT gathers keypoints from its worker threads in whatever order they finish, and that
            # order reaches the matcher's ties and RANSAC's samples: under load one process in three got
            # another camera. A canonical order (strongest first, then position) makes the result the same.
            resp = np.array([k.response for k in kps], dtype=np.float64)
            order = np.lexsort((pts[:, 1], pts[:, 0], -resp)) if len(kps) else np.zeros(0, np.int64)
            self._cache[i] = (pts[order], None if desc is None else desc[order])
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
