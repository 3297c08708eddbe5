"""Class-agnostic movers from residual optical flow after camera-motion compensation (extraction.md §3.6).

DIS flow between a dense frame and the next → a homography fitted robustly to the flow field (USAC by default,
``MotionConfig.homography_fit``) models the camera's image motion (exact for rotation or distant/planar
backgrounds) → pixels whose flow disagrees with it by more than an adaptive threshold are movers → connected
components are detections (optionally each re-decided by colour, :func:`refine_component`).

The same residual statistic drives the offline motion filter of ``dsr curate``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from dsr.errors import DsrError
from dsr.extract.base import Estimator, VideoClip
from dsr.extract.camera.features import shrink, work_gray

ROBUST_FITS = ("ransac", "usac")


def robust_flag(fit: str, classic: int) -> int:
    """OpenCV's method flag of a robust fit: ``classic`` (cv2.RANSAC or cv2.FM_RANSAC) or cv2.USAC_FAST."""
    import cv2

    return classic if fit == "ransac" else cv2.USAC_FAST


@dataclass(frozen=True)
class MotionConfig:
    work_max_side: int = 320  # flow is computed at this size (px, long side)
    min_residual_px: float = 1.0  # at work size
    residual_k: float = 4.0  # threshold = max(min_residual_px, k × median residual)
    min_area_frac: float = 0.004  # components smaller than this fraction of the frame are noise
    max_area_frac: float = 0.6  # larger than this = compensation failed, not a mover
    max_detections: int = 5
    min_track_score: float = 0.22  # median detection score a track needs (tuned on the synthetic clips)
    max_aspect: float = 3.5  # long side / short side of a mover's box
    min_parallax_px: float = 0.3  # median homography residual above which the epipolar model is used
    relative_flow_noise: float = 0.05  # residual is divided by (1 + this × |flow|)
    close_px: int = 9  # morphological closing joins fragments of one mover
    pair_gap_s: float = 0.3  # time between the two frames compared
    border_frac: float = 0.05  # image border ignored (flow is unreliable there)
    # the background models are fitted to flow vectors on a grid this many work pixels apart (the residual is
    # judged at every pixel). The two RANSAC fits are most of the stage (1.6 of 2.2 s on a 2.5-s DAVIS clip),
    # but an 8-px grid let a translating camera's parallax through as movers on a clip with none
    # (docs/bench-extract.md §11)
    fit_grid_px: int = 4
    # the fundamental matrix is fitted on a coarser grid (its RANSAC scores every point for each of ~1000
    # hypotheses: 34 ms a frame pair, most of the movers' time); whether it explains the background is still
    # judged on the full fitting grid. On the 20 DAVIS-2016 val clips: movers' CPU 25.6 -> 20.0 s, mean best box IoU
    # with the GT mask 0.290 -> 0.288; the test suite's translating clip finds the ball at 25 of 27 frame pairs
    # (22 with every point); 4 rendered worlds' mover recall@0.5 0.155 -> 0.169 (docs/bench-extract.md §16)
    fundamental_grid_px: int = 8
    # DIS optical flow preset ("ultrafast", "fast" or "medium"). The fast preset's patches blur a mover's flow
    # past its outline, so its boxes were too big and merged neighbours. The medium preset, for ~5 ms more per
    # frame pair: mean best box IoU of the movers with the DAVIS-2016 GT object 0.239 -> 0.299 (20 clips), and
    # with moving rendered objects 0.16 -> 0.26 (docs/bench-extract.md §12)
    flow_preset: str = "medium"
    # robust fitting of the two background models: "ransac" (OpenCV's classic RANSAC) or "usac" (its USAC_FAST,
    # with local optimisation). On the 20 DAVIS-2016 val clips USAC for the homography cut the movers' CPU time
    # 36.3 -> 27.7 s at a mean best box IoU with the GT mask of 0.298 -> 0.290 (clips moved both ways). USAC for the
    # fundamental matrix too (22.3 s, 0.286) lost the ball at one more frame of the test suite's translating
    # clip, so the epipolar fit keeps RANSAC (docs/bench-extract.md §15)
    homography_fit: str = "usac"
    fundamental_fit: str = "ransac"
    # GrabCut iterations that re-decide each motion component's pixels by colour (0: off, the default). It helps
    # renders and hurts real video, so it is opt-in: on the rendered worlds' movers box IoU 0.26 -> 0.35, but on
    # DAVIS 0.299 -> 0.245 (flow movers) and 0.40 -> 0.23 (background movers): shadows and backgrounds of
    # similar colour
    refine_iters: int = 0
    refine_pad: float = 0.3  # the colour model's region: the component's box grown by this share per side
    refine_max_side: int = 128  # px: a larger region is refined downscaled to this long side
    # sampled frames worked on side by side (threads: OpenCV releases the GIL). Each frame's movers depend on its
    # own frames only, and the RANSAC seed is set per call in the calling thread (OpenCV's RNG is per thread), so
    # the movers are the same at any count; the movers run while the detector may already have left a core idle
    workers: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise DsrError(f"motion workers must be >= 1, got {self.workers}")
        if self.flow_preset not in ("ultrafast", "fast", "medium"):
            raise DsrError(f"unknown DIS flow preset {self.flow_preset!r} (ultrafast, fast, medium)")
        for fit in (self.homography_fit, self.fundamental_fit):
            if fit not in ROBUST_FITS:
                raise DsrError(f"unknown robust fit {fit!r} ({', '.join(ROBUST_FITS)})")
        if self.refine_iters < 0 or self.refine_pad < 0 or self.refine_max_side < 8:
            raise DsrError("need refine_iters >= 0, refine_pad >= 0 and refine_max_side >= 8")
        if self.fit_grid_px < 1 or self.fundamental_grid_px < self.fit_grid_px:
            raise DsrError(f"need 1 <= fit_grid_px <= fundamental_grid_px, got {self.fit_grid_px} and "
                           f"{self.fundamental_grid_px}")


@dataclass(frozen=True, eq=False)
class Detection:
    """One mover in one sampled frame: box (4,) xyxy full-res px, score in [0, 1], mask (H, W) bool."""

    box_xyxy: np.ndarray
    score: float
    mask: np.ndarray


def residual_flow(frame_a: np.ndarray, frame_b: np.ndarray, config: MotionConfig = MotionConfig()
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Flow a→b minus what the camera's own motion explains, per pixel.

    Two background models are fitted by RANSAC to a grid of flow vectors: a homography (exact for a
    rotating camera or a distant/planar background) and a fundamental matrix (any static 3D point of a
    translating camera moves along its epipolar line). The residual is the smaller of the homography
    error and the distance to the epipolar line, so static parallax is not mistaken for motion. Movers
    that travel along their epipolar line are invisible to this test (a known degeneracy).

    Returns (residual (h, w) float32 at work size, homography (3, 3) at work size, work scale).
    A border of ``border_frac`` is zeroed: flow there is unreliable.
    """
    import cv2

    ga, s = work_gray(frame_a, config.work_max_side)
    gb, _ = work_gray(frame_b, config.work_max_side)
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{config.flow_preset.upper()}"))
    flow = dis.calc(ga, gb, None)
    h, w = ga.shape
    ys, xs = np.mgrid[0:h:4, 0:w:4]
    step = max(1, config.fit_grid_px)
    fy, fx = np.mgrid[0:h:step, 0:w:step]
    src = np.stack([fx.ravel(), fy.ravel()], 1).astype(np.float32)
    dst = src + flow[fy.ravel(), fx.ravel()]
    cv2.setRNGSeed(0)  # RANSAC draws from OpenCV's global RNG: the same frames give the same movers, whatever ran before
    H, _ = cv2.findHomography(src, dst, robust_flag(config.homography_fit, cv2.RANSAC), 1.0)
    if H is None:
        return np.zeros((h, w), np.float32), np.eye(3), s
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([gx, gy], -1)
    pred = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), H).reshape(h, w, 2) - grid
    residual = np.linalg.norm(flow - pred, axis=2)
    # the epipolar model only when the homography leaves parallax: for a static or rotating camera F is
    # degenerate and would explain movers away
    parallax = float(np.median(residual[ys.ravel(), xs.ravel()]))
    F = None
    if parallax > config.min_parallax_px:
        coarse = max(1, config.fundamental_grid_px // step)  # every coarse-th fitting point per row and column
        pick = np.zeros(fy.shape, bool)
        pick[::coarse, ::coarse] = True
        F, _ = cv2.findFundamentalMat(src[pick.ravel()], dst[pick.ravel()],
                                      robust_flag(config.fundamental_fit, cv2.FM_RANSAC), 1.0, 0.999)
    if F is not None and F.shape == (3, 3):
        p1 = np.concatenate([grid, np.ones((h, w, 1), np.float32)], -1)
        p2 = np.concatenate([grid + flow, np.ones((h, w, 1), np.float32)], -1)
        line = p1 @ F.T  # epipolar lines in frame b
        epi = np.abs(np.einsum("hwc,hwc->hw", p2, line)) / np.maximum(np.linalg.norm(line[..., :2], axis=2), 1e-9)
        # used only when it explains most of the (full) fitting grid, as RANSAC's own inlier share was judged
        if (epi[fy, fx] <= 1.0).mean() > 0.5:
            residual = np.minimum(residual, epi)
    # flow errors grow with flow magnitude (near ground, fast pans): judge residuals relative to it
    residual = residual / (1.0 + config.relative_flow_noise * np.linalg.norm(flow, axis=2))
    bh, bw = max(1, round(config.border_frac * h)), max(1, round(config.border_frac * w))
    residual[:bh], residual[-bh:], residual[:, :bw], residual[:, -bw:] = 0, 0, 0, 0
    return residual.astype(np.float32), H, s


def motion_mask(residual: np.ndarray, config: MotionConfig = MotionConfig()) -> np.ndarray:
    """(h, w) bool movers from a residual map: hysteresis threshold (seeds above the high threshold grow
    into connected pixels above half of it), then morphological clean-up."""
    import cv2

    high = max(config.min_residual_px, config.residual_k * float(np.median(residual)))
    seeds = residual > high
    low_mask = (residual > 0.5 * high).astype(np.uint8)
    low_mask = cv2.morphologyEx(low_mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels = cv2.connectedComponents(low_mask, connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[np.unique(labels[seeds & (low_mask > 0)])] = True
    seeded[0] = False
    mask = seeded[labels].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.close_px, config.close_px))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel).astype(bool)


def moving_fraction(frame_a: np.ndarray, frame_b: np.ndarray, config: MotionConfig = MotionConfig()) -> float:
    """Fraction of the frame that moves in the world after camera-motion compensation."""
    res, _, _ = residual_flow(frame_a, frame_b, config)
    return float(motion_mask(res, config).mean())


def refine_component(frame_rgb: np.ndarray, component: np.ndarray, iterations: int = 2, pad: float = 0.3,
                     max_side: int = 128) -> np.ndarray:
    """The component (h, w) bool re-decided by colour: ``iterations`` of GrabCut in the component's box grown by
    ``pad`` per side (downscaled to ``max_side`` px when larger), seeded with the component as probable object, a
    2-px ring around it as probable background and the rest of the region as background; the largest connected
    part of the result (so never more than the component and its ring). The component itself when GrabCut cannot
    run (no background in the region, OpenCV refuses) or keeps nothing."""
    import cv2

    h, w = component.shape
    ys, xs = np.nonzero(component)
    if not len(xs):
        return component
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    px, py = pad * (x2 - x1), pad * (y2 - y1)
    rx1, ry1 = int(max(0, x1 - px)), int(max(0, y1 - py))
    rx2, ry2 = int(min(w, np.ceil(x2 + px))), int(min(h, np.ceil(y2 + py)))
    comp = component[ry1:ry2, rx1:rx2]
    seeds = np.full(comp.shape, cv2.GC_BGD, np.uint8)
    ring = cv2.dilate(comp.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~comp
    seeds[ring] = cv2.GC_PR_BGD
    seeds[comp] = cv2.GC_PR_FGD
    if (seeds == cv2.GC_BGD).sum() < 10:
        return component
    rh, rw = seeds.shape
    # GrabCut's cost grows with the region's pixels: a large mover is refined at a coarser size
    roi, scale = shrink(np.ascontiguousarray(frame_rgb[ry1:ry2, rx1:rx2]), max_side)
    if scale < 1.0:
        seeds = cv2.resize(seeds, roi.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    try:
        cv2.grabCut(roi, seeds, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return component
    if scale < 1.0:
        seeds = cv2.resize(seeds, (rw, rh), interpolation=cv2.INTER_NEAREST)
    fg = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 2:
        return component
    out = np.zeros_like(component)
    out[ry1:ry2, rx1:rx2] = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return out


def mask_detections(mask: np.ndarray, residual: np.ndarray, out_hw: tuple[int, int],
                    config: MotionConfig = MotionConfig(), frame_rgb: np.ndarray | None = None) -> list[Detection]:
    """Connected components of a work-size motion mask → detections at ``out_hw`` resolution.

    ``frame_rgb``: the frame at work size; with ``config.refine_iters`` > 0 each component that passes the size
    and shape tests is re-decided by colour (:func:`refine_component`) before its box and mask are read.
    """
    import cv2

    h, w = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out_h, out_w = out_hw
    sx, sy = out_w / w, out_h / h
    dets: list[Detection] = []
    for k in range(1, n):
        area = stats[k, cv2.CC_STAT_AREA] / float(h * w)
        if not config.min_area_frac <= area <= config.max_area_frac:
            continue
        x, y, bw, bh = stats[k, :4]
        if max(bw, bh) > config.max_aspect * max(1, min(bw, bh)):
            continue  # slivers along depth edges are flow errors at occlusion boundaries, not movers
        comp = labels == k
        strength = float(np.median(residual[comp]))
        if frame_rgb is not None and config.refine_iters > 0:
            comp = refine_component(frame_rgb, comp, config.refine_iters, config.refine_pad, config.refine_max_side)
            ys, xs = np.nonzero(comp)
            x, y, bw, bh = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        full = cv2.resize(comp.astype(np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)
        box = np.array([x * sx, y * sy, (x + bw) * sx - 1, (y + bh) * sy - 1], dtype=np.float64)
        score = float(np.clip(strength / (4 * config.min_residual_px), 0.0, 1.0))
        dets.append(Detection(box_xyxy=box, score=score, mask=full))
    dets.sort(key=lambda d: -float(d.mask.sum()))
    return dets[: config.max_detections]


def detect_movers(frame_a: np.ndarray, frame_b: np.ndarray, out_hw: tuple[int, int],
                  config: MotionConfig = MotionConfig()) -> list[Detection]:
    """Connected components of the motion mask between two frames, as detections at ``out_hw`` resolution.

    The mask covers the mover in *both* frames (and what it uncovered); see :func:`detect_movers_at` for a
    mask of one frame.
    """
    res, _, _ = residual_flow(frame_a, frame_b, config)
    return mask_detections(motion_mask(res, config), res, out_hw, config)


def detect_movers_at(before: np.ndarray | None, frame: np.ndarray, after: np.ndarray | None,
                     out_hw: tuple[int, int], config: MotionConfig = MotionConfig()) -> list[Detection]:
    """Movers *in* ``frame``: the intersection of its motion masks against an earlier and a later frame.

    A two-frame residual lights up the mover where it is and where it was; the positions in ``before``
    and ``after`` differ, so only the mover in ``frame`` survives the intersection (double difference).
    With one neighbour only, or when the intersection leaves nothing, the union of the two-frame masks is used.
    """
    import cv2

    masks, residuals = [], []
    for other in (before, after):
        if other is not None:
            res, _, _ = residual_flow(frame, other, config)
            masks.append(motion_mask(res, config))
            residuals.append(res)
    if not masks:
        return []
    residual = np.maximum.reduce(residuals)
    colour = None
    if config.refine_iters > 0:
        h, w = residual.shape
        colour = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA) if frame.shape[:2] != (h, w) else frame
    if len(masks) == 2:
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        both = cv2.erode(cv2.dilate(masks[0].astype(np.uint8), grow) & cv2.dilate(masks[1].astype(np.uint8), grow),
                         grow).astype(bool)
        dets = mask_detections(both, residual, out_hw, config, colour)
        if dets:
            return dets
        # weak residuals break the intersection apart: fall back to the single-pair mask (looser box)
        return mask_detections(masks[-1] | masks[0], residual, out_hw, config, colour)
    return mask_detections(masks[0], residual, out_hw, config, colour)


@dataclass(frozen=True)
class BackgroundConfig:
    """Movers as differences from a temporal-median background (cameras that do not translate)."""

    max_translation: float = 0.02  # camera extent in record units (median scene depth 1) to count as static
    half_window: int = 8  # sampled frames on each side that build frame t's background
    stride: int = 2  # every stride-th of them (the mover must cover a pixel in < half of them)
    min_diff: float = 20.0  # grey levels; threshold = max(min_diff, diff_k × median difference)
    diff_k: float = 6.0
    open_px: int = 3
    close_px: int = 7


def camera_is_static(c2w: np.ndarray, valid: np.ndarray, config: BackgroundConfig = BackgroundConfig()) -> bool:
    """True when the camera centre stays within ``max_translation`` (record units) of its mean over valid frames."""
    pos = c2w[valid, :3, 3]
    return bool(len(pos)) and float(np.max(np.linalg.norm(pos - pos.mean(axis=0), axis=1))) <= config.max_translation


def nanmedian_first_axis(stack: np.ndarray) -> np.ndarray:
    """``np.nanmedian(stack, axis=0)`` (NaN where every value is NaN), by one sort: NaNs sort last, so the
    median of the n finite values sits at rows (n-1)//2 and n//2. numpy's nanmedian goes through masked arrays
    on small axes and was 3 of the 4.4 s of the background movers on a 3.5-s DAVIS clip."""
    ordered = np.sort(stack, axis=0)
    n = np.isfinite(stack).sum(axis=0)
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(ordered, (n // 2)[None], axis=0)[0]
    out = (lo + hi) / 2
    out[n == 0] = np.nan
    return out


def detect_by_background(frames_rgb: np.ndarray, c2w: np.ndarray, K: np.ndarray, valid: np.ndarray,
                         motion: MotionConfig = MotionConfig(), config: BackgroundConfig = BackgroundConfig()
                         ) -> list[list[Detection]]:
    """Per sampled frame, movers as regions that differ from a background built from its neighbours.

    For a camera that only rotates, frame s maps onto frame t by the homography K R_{t←s} K⁻¹; the per-pixel
    median of the neighbours warped into frame t is the static scene without the movers (a mover covers any
    one pixel in fewer than half of them), and the absolute difference outlines the movers whole — where
    two-frame flow residuals only light up their textured parts and moving edges. Frames with an invalid
    pose get no detections. Work is done at ``motion.work_max_side``.
    """
    import cv2

    n = len(frames_rgb)
    h, w = frames_rgb.shape[1:3]
    s = min(1.0, motion.work_max_side / max(h, w))
    wh, ww = round(h * s), round(w * s)
    scale = np.diag([s, s, 1.0])
    small = [cv2.resize(f, (ww, wh), interpolation=cv2.INTER_AREA).astype(np.float32) for f in frames_rgb]
    rot = c2w[:, :3, :3]
    out: list[list[Detection]] = []
    for t in range(n):
        if not valid[t]:
            out.append([])
            continue
        others = [u for u in range(max(0, t - config.half_window), min(n, t + config.half_window + 1), config.stride)
                  if u != t and valid[u]]
        if len(others) < 3:
            out.append([])
            continue
        k_t = scale @ K[t]
        stack = np.full((len(others), wh, ww, 3), np.nan, np.float32)
        for i, u in enumerate(others):
            hom = k_t @ rot[t].T @ rot[u] @ np.linalg.inv(scale @ K[u])
            warped = cv2.warpPerspective(small[u], hom, (ww, wh), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=(-1, -1, -1))
            stack[i] = np.where(warped < 0, np.nan, warped)
        covered = np.isfinite(stack[..., 0]).sum(axis=0) >= 3
        background = nanmedian_first_axis(stack)  # NaN where no neighbour covers the pixel (masked below)
        diff = np.where(covered, np.abs(small[t] - np.nan_to_num(background)).max(axis=2), 0.0)
        thr = max(config.min_diff, config.diff_k * float(np.median(diff[covered]))) if covered.any() else np.inf
        mask = (diff > thr).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((config.open_px, config.open_px), np.uint8))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.close_px, config.close_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel).astype(bool)
        # scores: mean difference relative to the threshold (residual map in units of min_residual_px)
        strength = diff / max(thr, 1e-9) * motion.min_residual_px * 2.0
        colour = small[t].astype(np.uint8) if motion.refine_iters > 0 else None
        out.append(mask_detections(mask, strength, (h, w), motion, colour))
    return out


class MotionGrounder(Estimator):
    """Grounding role, class-agnostic: every sampled frame's movers (phrase "moving object")."""

    name = "grounding/motion"
    role = "grounding"
    requires = ("cv2",)

    def __init__(self, config: MotionConfig = MotionConfig()) -> None:
        self.config = config

    def detect_clip(self, clip: VideoClip) -> list[list[Detection]]:
        """Per sampled frame, the movers in it (double difference against dense frames ~pair_gap_s before and
        after; a longer baseline makes slow movers stand out of the flow noise)."""
        n = len(clip.dense_rgb)
        gap_frames = self.config.pair_gap_s * clip.fps

        def movers_at(p: int) -> list[Detection]:
            later = np.flatnonzero(clip.dense_indices >= clip.dense_indices[p] + gap_frames)
            earlier = np.flatnonzero(clip.dense_indices <= clip.dense_indices[p] - gap_frames)
            before = clip.dense_rgb[earlier[-1]] if len(earlier) else None
            after = clip.dense_rgb[later[0]] if len(later) else None
            if before is None and after is None:
                after = clip.dense_rgb[p + 1] if p + 1 < n else None
                before = clip.dense_rgb[p - 1] if after is None and p > 0 else None
            return detect_movers_at(before, clip.dense_rgb[p], after, (clip.height, clip.width), self.config)

        positions = [int(p) for p in clip.sampled_in_dense]
        if self.config.workers == 1:
            return [movers_at(p) for p in positions]
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="dsr-movers") as pool:
            return list(pool.map(movers_at, positions))


class MotionSegmenter(Estimator):
    """Segmentation role: the motion component itself is the mask (produced with the detection)."""

    name = "segmentation/motion"
    role = "segmentation"
    requires = ("cv2",)

    def segment(self, frame: np.ndarray, detections: list[Detection]) -> list[np.ndarray]:
        return [d.mask for d in detections]


class BoxSegmenter(Estimator):
    """Segmentation role, last resort: the box itself as the mask."""

    name = "segmentation/box"
    role = "segmentation"

    def segment(self, frame: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray]:
        h, w = frame.shape[:2]
        masks = []
        for x1, y1, x2, y2 in np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4):
            m = np.zeros((h, w), bool)
            m[max(0, int(y1)):min(h, int(y2) + 1), max(0, int(x1)):min(w, int(x2) + 1)] = True
            masks.append(m)
        return masks
