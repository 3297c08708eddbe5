"""Object masks + camera geometry → 3D centres, by a documented chain (extraction.md §3.5, §4.1 item 4).

Per object and sampled frame, the first method that succeeds is used and recorded
(codes in :data:`dsr.scene.record.CENTER_METHODS`):

1. ``sfm_points``: median of the SfM points observed inside the mask (≥ ``min_points``), in camera
   coordinates. Reliable for static objects; movers rarely keep SfM points.
2. ``ground_contact``: the ray through the mask's bottom-centre pixel meets a RANSAC ground plane fitted to
   the SfM points; the centre is half the object's height above the contact point.
3. ``size_prior``: depth Z = f · H / h_box, with the object's height H calibrated from its own frames
   solved by 1–2 (in record units). Without any calibration, H is the class prior (metres) and the
   record's unit is then set by :func:`normalize_object_depths` (median object depth = 1) — only when the
   camera has no translation scale of its own (rotation-only). Otherwise the frame stays unknown.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from dsr.extract.base import DensePoints, Estimator, SparsePoints
from dsr.scene.frames import invert_pose, transform_points
from dsr.scene.record import CENTER_METHODS

CLASS_HEIGHT_M: dict[str, float] = {"person": 1.7, "car": 1.5, "dog": 0.6, "moving object": 1.0}
GENERIC_PHRASE = "moving object"  # the height an object of unknown class is given


def has_class_height(class_phrase: str) -> bool:
    """Whether the size prior knows this class's height (else it assumes the generic one)."""
    return class_phrase in CLASS_HEIGHT_M and class_phrase != GENERIC_PHRASE


@dataclass(frozen=True)
class LiftConfig:
    min_points: int = 5
    plane_inlier_frac: float = 0.02  # × median point depth: RANSAC inlier distance
    plane_min_inliers: float = 0.15  # fraction of points on the plane
    max_plane_tilt_deg: float = 35.0  # plane normal vs mean camera "up" (−y)
    allow_unscaled_size_prior: bool = False
    # SfM points inside a *mover's* mask are background seen through its motion mask (SfM rejects
    # points on moving things), so the pipeline turns this off for motion-detected objects
    use_sfm_points: bool = True
    max_interpolation_gap: int = 3  # sampled frames; longer gaps stay unknown
    # temporal smoothing of world centres (see smooth_centers): ± this many sampled frames, 0 = off
    smooth_half_window: int = 3
    smooth_degree: int = 1


@dataclass(frozen=True, eq=False)
class LiftResult:
    """centers_cam (T, 3) NaN where unknown; method (T,) uint8 codes; sigma (T,) in record units."""

    centers_cam: np.ndarray
    method: np.ndarray
    sigma: np.ndarray


def fit_ground_plane(points_world: np.ndarray, c2w: np.ndarray, config: LiftConfig = LiftConfig(),
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, float] | None:
    """RANSAC plane n·p = d through static points with n near the cameras' mean up (−y) direction.

    Returns (unit normal pointing up (3,), d) or None. The up direction assumes a roughly level camera.
    """
    if len(points_world) < 30:
        return None
    rng = rng or np.random.default_rng(0)
    up = -c2w[:, :3, 1].mean(axis=0)
    up /= np.linalg.norm(up)
    depth_scale = float(np.median(np.linalg.norm(points_world - c2w[:, :3, 3].mean(0), axis=1)))
    tol = config.plane_inlier_frac * depth_scale
    best: tuple[int, np.ndarray, float] | None = None
    cos_max = np.cos(np.radians(config.max_plane_tilt_deg))
    for _ in range(200):
        a, b, c = points_world[rng.choice(len(points_world), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        if n @ up < 0:
            n = -n
        if n @ up < cos_max:
            continue
        d = float(n @ a)
        if np.median(c2w[:, :3, 3] @ n - d) <= 0:
            continue  # the ground is below the cameras (this rejects ceilings)
        inl = int((np.abs(points_world @ n - d) < tol).sum())
        # the ground is the lowest large plane: prefer more inliers, then lower planes
        if best is None or inl > best[0]:
            best = (inl, n, d)
    if best is None or best[0] < config.plane_min_inliers * len(points_world):
        return None
    # least-squares refit on the inliers: a 3-point sample is tilted by the points' noise
    _, n, d = best
    inliers = points_world[np.abs(points_world @ n - d) < tol]
    centroid = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centroid)[2][-1]
    normal = normal if normal @ up > 0 else -normal
    return normal, float(normal @ centroid)


def _ray_plane(K: np.ndarray, c2w: np.ndarray, u: float, v: float, plane: tuple[np.ndarray, float]
               ) -> np.ndarray | None:
    """Camera-frame point where the pixel ray (u, v) meets the world plane, or None if behind/parallel."""
    n_w, d = plane
    ray_cam = np.linalg.inv(K) @ np.array([u, v, 1.0])
    n_cam = c2w[:3, :3].T @ n_w
    d_cam = d - n_w @ c2w[:3, 3]
    denom = n_cam @ ray_cam
    if abs(denom) < 1e-9:
        return None
    s = d_cam / denom
    return s * ray_cam if s > 0 else None


def lift_centers(masks: list[np.ndarray | None], boxes_xyxy: np.ndarray, K: np.ndarray, c2w: np.ndarray,
                 points: SparsePoints | None, class_phrase: str, config: LiftConfig = LiftConfig(),
                 plane: tuple[np.ndarray, float] | None = None, heights_px: np.ndarray | None = None) -> LiftResult:
    """Run the chain for one object over T frames (masks[t] (H, W) bool or None; boxes (T, 4); K, c2w (T, …))."""
    n = len(masks)
    centers = np.full((n, 3), np.nan)
    method = np.zeros(n, np.uint8)
    sigma = np.zeros(n)
    w2c = invert_pose(c2w)
    box_h = boxes_xyxy[:, 3] - boxes_xyxy[:, 1] + 1.0
    if heights_px is not None:  # the object's height in pixels from a better source (see ground_height_line)
        box_h = np.where(np.isfinite(heights_px) & (heights_px > 0), heights_px, box_h)
    for t, mask in enumerate(masks):
        if mask is None:
            continue
        if config.use_sfm_points and points is not None and len(points.observations[t]):
            obs = points.observations[t]
            h, w = mask.shape
            u = np.clip(np.round(obs[:, 0]).astype(int), 0, w - 1)
            v = np.clip(np.round(obs[:, 1]).astype(int), 0, h - 1)
            inside = mask[v, u]
            if inside.sum() >= config.min_points:
                p_cam = transform_points(w2c[t], points.points_world[obs[inside, 2].astype(np.int64)])
                centers[t] = np.median(p_cam, axis=0)
                method[t] = CENTER_METHODS.index("sfm_points")
                sigma[t] = float(np.median(np.abs(p_cam[:, 2] - centers[t, 2])))
                continue
        if plane is not None:
            x1, _, x2, y2 = boxes_xyxy[t]
            contact = _ray_plane(K[t], c2w[t], (x1 + x2) / 2.0, y2, plane)
            if contact is not None:
                height = contact[2] * box_h[t] / K[t, 1, 1]
                up_cam = c2w[t, :3, :3].T @ plane[0]
                centers[t] = contact + 0.5 * height * up_cam
                method[t] = CENTER_METHODS.index("ground_contact")
                sigma[t] = 0.1 * contact[2]
    # size prior: Z·h_box/f is the object's height in record units where another method solved the frame
    solved = method > 0
    if solved.any():
        height_units = float(np.median(centers[solved, 2] * box_h[solved] / K[solved, 1, 1]))
    elif config.allow_unscaled_size_prior:
        height_units = CLASS_HEIGHT_M.get(class_phrase, CLASS_HEIGHT_M[GENERIC_PHRASE])
    else:
        height_units = None
    if height_units is not None:
        for t, mask in enumerate(masks):
            if mask is None or method[t]:
                continue
            x1, y1, x2, y2 = boxes_xyxy[t]
            z = K[t, 1, 1] * height_units / box_h[t]
            u, v = (x1 + x2) / 2.0, (y1 + y2) / 2.0
            centers[t] = z * (np.linalg.inv(K[t]) @ np.array([u, v, 1.0]))
            method[t] = CENTER_METHODS.index("size_prior")
            sigma[t] = 0.3 * z
    return LiftResult(centers_cam=centers, method=method, sigma=sigma)


def ground_height_line(boxes_xyxy: np.ndarray, min_boxes: int = 12, min_row_span: float = 0.15,
                       max_residual: float = 0.2, iterations: int = 5) -> tuple[float, float] | None:
    """Fit h = a · (y_feet − y_horizon) to boxes (N, 4) of people standing on one ground plane.

    For a camera that does not move (no roll), people of similar height on a flat ground appear with a box
    height proportional to how far below the horizon their feet are; the size prior's depth f·H/h then
    follows from the feet's row alone, far less noisy than a detector's box height (YOLO-tiny's box heights
    jitter by 10–20% from frame to frame, which hides a person walking 10% further away). Robust fit
    (iteratively reweighted least squares, Tukey weights); None unless ≥ ``min_boxes`` boxes span
    ≥ ``min_row_span`` of the image's rows (relative to the largest feet row), a > 0, and the median relative
    residual ≤ ``max_residual``. Returns (a, y_horizon).
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    b = b[np.isfinite(b).all(axis=1)]
    if len(b) < min_boxes:
        return None
    y = b[:, 3]
    h = b[:, 3] - b[:, 1] + 1.0
    if np.ptp(y) < min_row_span * max(float(y.max()), 1.0):
        return None
    w = np.ones(len(b))
    for _ in range(iterations):
        A = np.column_stack([y, np.ones(len(y))]) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(A, h * np.sqrt(w), rcond=None)
        rel = np.abs(h - (coef[0] * y + coef[1])) / h
        scale = 4.685 * max(1.4826 * float(np.median(rel)), 1e-6)
        w = np.clip(1.0 - (rel / scale) ** 2, 0.0, None) ** 2
    a, c = float(coef[0]), float(coef[1])
    rel = np.abs(h - (a * y + c)) / h
    if a <= 0 or float(np.median(rel)) > max_residual:
        return None
    return a, -c / a


def scale_lifted(results: list[LiftResult], factor: float) -> list[LiftResult]:
    """Every centre (and its sigma) times ``factor``: a change of the record's length unit."""
    return [LiftResult(r.centers_cam * factor, r.method, r.sigma * factor) for r in results]


def normalize_object_depths(results: list[LiftResult]) -> tuple[list[LiftResult], float]:
    """Rescale centres so the median object depth over the clip is 1 (for cameras without translation)."""
    depths = np.concatenate([r.centers_cam[:, 2][np.isfinite(r.centers_cam[:, 2])] for r in results] or [np.zeros(0)])
    if len(depths) == 0:
        return results, 1.0
    factor = 1.0 / float(np.median(depths))
    return scale_lifted(results, factor), factor


@dataclass(frozen=True)
class FloorScaleConfig:
    """Where the floor beside an object's feet is read (fractions of its box) and how much evidence counts."""

    side_frac: float = 0.5  # the band reaches this many box widths left and right of the box
    above_frac: float = 0.1  # from this many box heights above the box's bottom edge …
    below_frac: float = 0.2  # … to this many below it
    min_points: int = 3  # scene points in one band for a reading
    min_readings: int = 5  # object frames with a reading for a scale


def floor_scale(boxes: list[np.ndarray], depths: list[np.ndarray], K: np.ndarray, c2w: np.ndarray,
                valid: np.ndarray, points_world: np.ndarray, config: FloorScaleConfig = FloorScaleConfig()
                ) -> float | None:
    """The factor that turns size-prior depths into the camera's units, from the floor beside the objects' feet.

    Objects stand on the ground: the static points the camera triangulated next to an object's feet (a band
    around the bottom edge of its box, outside the box) lie about as deep as the object itself. Per object
    (boxes (T, 4), size-prior centre depths (T,)) and valid frame, the ratio median(point depth in the band) /
    object depth is one reading; the factor is the median reading, or None with fewer than ``min_readings``
    (then nothing ties the two scales). K (T, 3, 3) and c2w (T, 4, 4) are the sampled frames' cameras.
    """
    if len(points_world) == 0:
        return None
    w2c = invert_pose(c2w)
    readings: list[float] = []
    for t in np.flatnonzero(valid):
        seen = [(b[t], z[t]) for b, z in zip(boxes, depths, strict=True)
                if np.isfinite(b[t]).all() and np.isfinite(z[t]) and z[t] > 0]
        if not seen:  # no object to read at this frame: skip projecting every point
            continue
        pc = transform_points(w2c[t], points_world)
        pc = pc[pc[:, 2] > 1e-9]
        uv = (pc @ K[t].T)[:, :2] / pc[:, 2:3]
        for (x1, y1, x2, y2), depth in seen:
            w, h = x2 - x1, y2 - y1
            in_band = ((uv[:, 0] >= x1 - config.side_frac * w) & (uv[:, 0] <= x2 + config.side_frac * w)
                       & (uv[:, 1] >= y2 - config.above_frac * h) & (uv[:, 1] <= y2 + config.below_frac * h))
            in_box = (uv[:, 0] >= x1) & (uv[:, 0] <= x2) & (uv[:, 1] <= y2)
            sel = in_band & ~in_box
            if sel.sum() >= config.min_points:
                readings.append(float(np.median(pc[sel, 2])) / float(depth))
    return float(np.median(readings)) if len(readings) >= config.min_readings else None


class ChainLifter(Estimator):
    """Lifting role: :func:`lift_centers` (sfm_points → ground_contact → size_prior)."""

    name = "lifting/chain"
    role = "lifting"

    def __init__(self, config: LiftConfig = LiftConfig()) -> None:
        self.config = config


def interpolate_gaps(centers_world: np.ndarray, method: np.ndarray, sigma: np.ndarray, timestamps_s: np.ndarray,
                     max_gap: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill runs of ≤ ``max_gap`` unknown frames between two known centres by linear interpolation in time.

    Returns new (centers_world (T, 3), method (T,), sigma (T,)); filled frames get the "interpolated" code
    and the larger of their neighbours' sigmas, doubled. Longer gaps and the ends stay unknown.
    """
    centers = centers_world.copy()
    meth = method.copy()
    sig = sigma.copy()
    known = np.flatnonzero(method > 0)
    code = CENTER_METHODS.index("interpolated")
    for a, b in itertools.pairwise(known):
        if 1 < b - a <= max_gap + 1:
            for t in range(a + 1, b):
                w = (timestamps_s[t] - timestamps_s[a]) / (timestamps_s[b] - timestamps_s[a])
                centers[t] = (1 - w) * centers_world[a] + w * centers_world[b]
                meth[t] = code
                sig[t] = 2.0 * max(sigma[a], sigma[b])
    return centers, meth, sig


def smooth_centers(centers_world: np.ndarray, timestamps_s: np.ndarray, half_window: int = 3, degree: int = 1,
                   robust_iterations: int = 2) -> np.ndarray:
    """Robust local polynomial regression of a centre track over time; unknown frames stay unknown.

    Why: DSR's answers compare per-frame distances and speeds, and they are far more sensitive to
    frame-to-frame noise than to a consistent error (benchmarks/qa_sensitivity.py: 2% iid centre noise
    changes a third of the answers, a 20% per-object depth bias under a tenth). Lifting from boxes is noisy
    frame to frame (box jitter, method switches), while real objects move smoothly over ~1 s.

    Each known frame is refitted from the known frames within ``half_window`` sampled frames of it (tricube
    weights in time), with a polynomial of ``degree`` (lowered where fewer points are known); bisquare
    re-weighting (``robust_iterations`` times) stops one bad frame from dragging its neighbours.
    """
    centers = np.asarray(centers_world, dtype=np.float64)
    out = centers.copy()
    known = np.flatnonzero(np.isfinite(centers).all(axis=1))
    if half_window <= 0 or len(known) < 3:
        return out
    t = np.asarray(timestamps_s, dtype=np.float64)
    robust = np.ones(len(centers))
    for it in range(robust_iterations + 1):
        fitted = np.full_like(centers, np.nan)
        for i in known:
            near = known[np.abs(known - i) <= half_window]
            span = max(float(np.max(np.abs(t[near] - t[i]))), 1e-9) * 1.001
            w = (1.0 - (np.abs(t[near] - t[i]) / span) ** 3) ** 3 * robust[near]
            deg = min(degree, len(near) - 1, int((w > 0).sum()) - 1)
            if deg < 0:
                fitted[i] = centers[i]
                continue
            x = t[near] - t[i]
            basis = np.vander(x, deg + 1, increasing=True) * np.sqrt(w)[:, None]
            coef, *_ = np.linalg.lstsq(basis, centers[near] * np.sqrt(w)[:, None], rcond=None)
            fitted[i] = coef[0]  # the polynomial at x = 0
        if it == robust_iterations:
            out[known] = fitted[known]
            break
        resid = np.linalg.norm(centers[known] - fitted[known], axis=1)
        scale = 6.0 * float(np.median(resid))
        if scale <= 1e-12:
            out[known] = fitted[known]
            break
        robust[known] = np.clip(1.0 - (resid / scale) ** 2, 0.0, None) ** 2
    return out


def smoothed_track_noise(raw_world: np.ndarray, smoothed_world: np.ndarray, config: LiftConfig = LiftConfig()
                         ) -> np.ndarray:
    """(T,) 1-sigma noise of a smoothed centre track, measured from the track itself.

    The raw centres' scatter about the smoothed curve (1.4826 · median absolute 3D residual, a robust σ)
    is divided by √(half_window + 1), roughly the number of frames a tricube-weighted local line averages.
    Constant over the track (one object, one lifting chain); NaN where the centre is unknown.
    """
    known = np.isfinite(raw_world).all(axis=1) & np.isfinite(smoothed_world).all(axis=1)
    out = np.full(len(raw_world), np.nan)
    if known.sum() < 3 or config.smooth_half_window <= 0:
        return out
    resid = np.linalg.norm(raw_world[known] - smoothed_world[known], axis=1)
    sigma = 1.4826 * float(np.median(resid)) / np.sqrt(config.smooth_half_window + 1)
    out[known] = max(sigma, 1e-9)
    return out


def dense_centers(masks: list[np.ndarray | None], dense: DensePoints) -> LiftResult:
    """DSR's centre from dense geometry (π³): per frame, the mean of the valid local points under the mask.

    masks[t] (H, W) bool or None; ``dense`` at the same resolution. Frames with no valid point under the mask
    stay unknown. sigma is the spread of those points' depths (median absolute deviation), a measure of how
    much background the mask lets in — not of the network's error.
    """
    from dsr.extract.adapters import pi3_center

    n = len(masks)
    centers = np.full((n, 3), np.nan)
    method = np.zeros(n, np.uint8)
    sigma = np.zeros(n)
    code = CENTER_METHODS.index("dense_points")
    for t, mask in enumerate(masks):
        if mask is None:
            continue
        c = pi3_center(dense.local_points[t], dense.valid[t], mask)
        if np.isfinite(c).all():
            sel = np.asarray(mask, bool) & np.asarray(dense.valid[t], bool)
            centers[t], method[t] = c, code
            sigma[t] = float(np.median(np.abs(dense.local_points[t][sel][:, 2] - np.median(
                dense.local_points[t][sel][:, 2]))))
    return LiftResult(centers_cam=centers, method=method, sigma=sigma)
