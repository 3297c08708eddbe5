"""Pose maths shared by every stage: rotation angles, projection onto SO(3), pose interpolation.

Poses are camera-to-world 4×4 matrices (``c2w = world_from_cam``, see :mod:`dsr.scene.frames`). All
functions are pure: they return new arrays and never modify their inputs.
"""

from __future__ import annotations

import numpy as np


def rotation_angle_deg(rotations: np.ndarray) -> np.ndarray:
    """Rotation angle in degrees, in [0, 180], of rotation matrices (..., 3, 3).

    ``atan2(|vee(R − Rᵀ)| / 2, (tr R − 1) / 2)``: sine and cosine of the angle from the skew and the
    symmetric parts. Unlike ``arccos((tr R − 1) / 2)`` it keeps full precision near 0° (where arccos
    loses half the digits: 1e-8 rad reads as 0) and near 180°, and it needs no SO(3) projection for the
    slightly non-orthonormal matrices of solvers and text files (their error enters to first order only).
    """
    rot = np.asarray(rotations, dtype=np.float64)
    skew = np.stack([rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0],
                     rot[..., 1, 0] - rot[..., 0, 1]], axis=-1)
    sin = 0.5 * np.linalg.norm(skew, axis=-1)
    cos = 0.5 * (np.trace(rot, axis1=-2, axis2=-1) - 1.0)
    return np.degrees(np.arctan2(sin, cos))


def project_to_so3(m: np.ndarray) -> np.ndarray:
    """The rotations (..., 3, 3) nearest to ``m`` (..., 3, 3) in the Frobenius norm (SVD, determinant +1)."""
    u, _, vt = np.linalg.svd(m)
    # u · diag(1, 1, ±1) · vt: the sign flips u's last column where u · vt would be a reflection
    u = u.copy()
    u[..., :, 2] *= np.where(np.linalg.det(u @ vt) >= 0, 1.0, -1.0)[..., None]
    return u @ vt


def fill_poses(c2w: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Poses (N, 4, 4) with the unknown ones (``known`` False) filled from their known neighbours.

    Inside the known span: slerp of the rotations and lerp of the centres by index; before the first
    / after the last known pose: a copy of it. With nothing known, the input is returned as a copy.
    """
    from scipy.spatial.transform import Rotation, Slerp

    out = np.array(c2w, dtype=np.float64, copy=True)
    idx = np.flatnonzero(known)
    if len(idx) == 0:
        return out
    missing = np.flatnonzero(~np.asarray(known, bool))
    inside = missing[(missing > idx[0]) & (missing < idx[-1])]
    if len(idx) >= 2 and len(inside):
        out[inside, :3, :3] = Slerp(idx, Rotation.from_matrix(out[idx, :3, :3]))(inside).as_matrix()
        for axis in range(3):
            out[inside, axis, 3] = np.interp(inside, idx, out[idx, axis, 3])
    out[missing[missing < idx[0]]] = out[idx[0]]
    out[missing[missing > idx[-1]]] = out[idx[-1]]
    return out


def interpolate_poses(query: np.ndarray, frames: np.ndarray, c2w: np.ndarray, known: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses at frame numbers ``query`` from poses ``c2w`` (F, 4, 4) at sorted frame numbers ``frames`` where ``known``.

    A query frame gets a pose when it is a known frame or lies between two known neighbours (slerp of the
    rotations, lerp of the centres by frame number); no extrapolation. Returns (c2w (Q, 4, 4), valid (Q,),
    position of the nearest known frame (Q,), -1 where invalid; a tie goes to the earlier frame).
    """
    from scipy.spatial.transform import Rotation

    query = np.asarray(query)
    frames = np.asarray(frames)
    out = np.tile(np.eye(4), (len(query), 1, 1))
    valid = np.zeros(len(query), bool)
    nearest = np.full(len(query), -1, np.int64)
    if len(frames) == 0 or len(query) == 0:
        return out, valid, nearest
    j = np.searchsorted(frames, query)
    jc = np.minimum(j, len(frames) - 1)
    exact = (frames[jc] == query) & known[jc]
    out[exact], valid[exact], nearest[exact] = c2w[jc[exact]], True, jc[exact]
    between = (frames[jc] != query) & (j > 0) & (j < len(frames))
    between[between] = known[j[between] - 1] & known[j[between]]
    if between.any():
        lo, hi = j[between] - 1, j[between]
        w = (query[between] - frames[lo]) / (frames[hi] - frames[lo])
        # slerp, all pairs at once: R = R_lo · exp(w · log(R_loᵀ R_hi))
        r_lo = Rotation.from_matrix(c2w[lo, :3, :3])
        step = (r_lo.inv() * Rotation.from_matrix(c2w[hi, :3, :3])).as_rotvec()
        rot = (r_lo * Rotation.from_rotvec(step * w[:, None])).as_matrix()
        idx = np.flatnonzero(between)
        out[idx, :3, :3] = rot
        out[idx, :3, 3] = (1 - w)[:, None] * c2w[lo, :3, 3] + w[:, None] * c2w[hi, :3, 3]
        valid[idx] = True
        nearest[idx] = np.where(w <= 0.5, lo, hi)
    return out, valid, nearest


def rotation_spikes(rotations: np.ndarray, times: np.ndarray, min_deg: float, median_factor: float,
                    max_share: float) -> np.ndarray:
    """(N,) bool: the rotations (N, 3, 3) at increasing ``times`` that jump away from their neighbours and back.

    Each rotation is compared with the slerp of its two neighbours at its time (the first and last: the
    extrapolation of the next two); the one furthest off is a spike while that angle exceeds both ``min_deg`` and
    ``median_factor`` times the median angle (a shaky camera deviates everywhere, a misregistered image alone).
    Spikes are taken out one at a time, worst first, and the angles recomputed without them (a spike also pulls
    its neighbours' slerps, half as far), up to ``max_share`` of the rotations. Fewer than four: none."""
    from scipy.spatial.transform import Rotation

    n = len(rotations)
    spikes = np.zeros(n, bool)
    if n < 4:
        return spikes
    t = np.asarray(times, np.float64)
    rot = Rotation.from_matrix(rotations)

    def deviation(keep: np.ndarray) -> np.ndarray:
        m = len(keep)
        lo = keep[np.clip(np.arange(m) - 1, 0, m - 3)]  # the first two after an end, else the two neighbours
        hi = keep[np.clip(np.arange(m) + 1, 2, m - 1)]
        lo[0], hi[0], lo[-1], hi[-1] = keep[1], keep[2], keep[-3], keep[-2]
        w = (t[keep] - t[lo]) / (t[hi] - t[lo])
        step = (rot[lo].inv() * rot[hi]).as_rotvec()
        predicted = rot[lo] * Rotation.from_rotvec(step * w[:, None])
        return np.degrees((predicted.inv() * rot[keep]).magnitude())

    keep = np.arange(n)
    for _ in range(int(max_share * n)):
        if len(keep) < 4:
            break
        dev = deviation(keep)
        worst = int(np.argmax(dev))
        if dev[worst] <= max(min_deg, median_factor * float(np.median(dev))):
            break
        spikes[keep[worst]] = True
        keep = np.delete(keep, worst)
    return spikes


def forward_motion_share(c2w: np.ndarray, valid: np.ndarray) -> float:
    """The share of a camera path's length travelled along the camera's own optical axis (0-1): about 1 for a
    dolly, about 0 for an orbit or a sideways track. c2w (T, 4, 4) with OpenCV axes (z forward); steps between
    consecutive valid frames, each projected on the optical axis at its start. NaN for a path that does not move."""
    poses = np.asarray(c2w, np.float64)[np.asarray(valid, bool)]
    if len(poses) < 2:
        return float("nan")
    steps = np.diff(poses[:, :3, 3], axis=0)
    length = float(np.linalg.norm(steps, axis=1).sum())
    if length <= 1e-12:
        return float("nan")
    along = np.abs(np.einsum("ij,ij->i", steps, poses[:-1, :3, 2]))
    return float(along.sum() / length)
