"""The CPU default camera: try estimators in order, keep the first trusted result and every attempt."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dsr.extract.base import Attempt, CameraEstimate, VideoClip
from dsr.extract.camera.common import CameraConfig, CameraEstimator, is_short

# SfM before VO on long clips: labels first. On 24-s worlds VO's rotation drifted 19-29° on orbits and 5-7° on
# hand-helds (SfM: 1° and 0.3-0.5°), and precision fell (docs/bench-extract.md §10.3). VO's drift grows with
# the path, and on clips shorter than CameraConfig.short_clip_s VO goes first: SfM failed on short DAVIS
# clips after 2-129 s (§5.2), and took 6-17 s where it held (§11). VO_FIRST_METHODS puts VO first always.
DEFAULT_METHODS: tuple[str, ...] = ("rotation", "pycolmap", "vo")
VO_FIRST_METHODS: tuple[str, ...] = ("rotation", "vo", "pycolmap")


class AutoCamera(CameraEstimator):
    """The CPU default: rotation-only check → SfM (pycolmap) → VO (``methods``: registry names without "camera/"),
    VO before SfM on short clips (:meth:`order`).

    The rotation-only model goes first because it is cheap (about a second) and, when it explains every
    step, the camera is static or only rotating — exactly the case where SfM has no parallax and fails
    after minutes of work. SfM comes before VO because it is the more accurate where it succeeds; VO is the
    fallback (``VO_FIRST_METHODS`` swaps them for speed). The first trusted result wins; every attempt (with
    its reason and time) is kept. If none is trusted the estimate is untrusted and the pipeline writes no
    record. Each method is built through the registry (:func:`~dsr.extract.registry.create_estimator`); one
    that cannot run here becomes a failed attempt with the registry's reason.
    """

    name = "camera/auto"
    requires = ("cv2",)

    def __init__(self, config: CameraConfig = CameraConfig(), focal_px: float | None = None,
                 methods: tuple[str, ...] = DEFAULT_METHODS) -> None:
        super().__init__(config, focal_px)
        if "auto" in methods:
            raise ValueError("camera/auto cannot try itself")
        self.methods = methods

    def sfm_config(self, attempts: list[Attempt]) -> CameraConfig:
        """SfM on the time grid, or on every dense frame when the rotation check measured a fast-moving image."""
        flow = next((a.stats.get("step_flow_frac", float("nan")) for a in attempts if a.method == "rotation"),
                    float("nan"))
        if np.isfinite(flow) and flow > self.config.max_grid_step_flow:
            return replace(self.config, sfm_fps=None)
        return self.config

    def order(self, clip: VideoClip) -> tuple[str, ...]:
        """The methods in the order to try them: VO before SfM on clips shorter than ``short_clip_s``."""
        if "vo" not in self.methods or "pycolmap" not in self.methods:
            return self.methods
        vo, sfm = self.methods.index("vo"), self.methods.index("pycolmap")
        if vo < sfm or not is_short(clip, self.config):
            return self.methods
        out = list(self.methods)
        out[vo], out[sfm] = out[sfm], out[vo]
        return tuple(out)

    def estimate(self, clip: VideoClip) -> CameraEstimate:
        from dsr.extract.registry import create_estimator, estimator_class

        attempts: list[Attempt] = []
        focal = self.focal_px
        for method in self.order(clip):
            name = f"camera/{method}"
            ok, why = estimator_class(name).available()
            if not ok:
                attempts.append(Attempt(method, False, why, 0.0))
                continue
            est: CameraEstimate = create_estimator(name, config=self.sfm_config(attempts), focal_px=focal).estimate(clip)
            if focal is not None and focal != self.focal_px and est.attempts:
                # the focal length came from an earlier method's partial result: less sure than a given one
                last = est.attempts[-1]
                est = replace(est, attempts=(*est.attempts[:-1], replace(last, stats={**last.stats, "focal_lent": 1.0})))
            attempts.extend(est.attempts)
            if est.trusted:
                return replace(est, attempts=tuple(attempts))
            if focal is None and est.track is not None and self._usable_focal(est, clip):
                focal = float(est.track.K[0, 0, 0])
        reason = "no camera method produced trusted poses: " + "; ".join(f"{a.method}: {a.reason}" for a in attempts)
        return CameraEstimate(None, False, reason, "up_to_scale", tuple(attempts))

    def _usable_focal(self, est: CameraEstimate, clip: VideoClip) -> bool:
        """An untrusted partial reconstruction still gives the fallbacks a focal length when it is sane, registered
        at least half the clip (a degenerate pan once gave a "sane" focal 2× too long) and kept its radial
        distortion plausible: a focal length traded against distortion is not the lens's (a held-out hand-held's
        SfM with k = 0.73 gave 2.2× the true focal, and VO's rotations under it were 12.7° off at the median,
        against 4.4° under the guess; docs/bench-extract.md §18)."""
        assert est.track is not None
        f = float(est.track.K[0, 0, 0])
        lo, hi = self.config.focal_range
        stats = est.attempts[-1].stats if est.attempts else {}
        covered = stats.get("registered_ratio", 0.0) >= 0.5
        undistorted = abs(stats.get("radial_k", 0.0)) <= self.config.max_radial_k
        return lo * max(clip.width, clip.height) <= f <= hi * max(clip.width, clip.height) and covered and undistorted
