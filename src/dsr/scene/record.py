"""The 4D scene record: the one contract between every stage of dsr.

A record says what the camera and each object did in 3D over the sampled frames of one clip.
Conventions (camera axes, pose direction, observer frame) are set once in :mod:`dsr.scene.frames`.

Every array is indexed by the *sampled* frame index ``t in [0, T)``; ``video.frame_indices[t]`` maps
it back to the source video. Values that an estimator could not produce are NaN, never made up:

* ``boxes_xyxy`` is finite exactly where ``visible`` is true;
* ``centers_*`` and ``world_from_agent`` are finite where known (a ground-truth record knows them
  even when the object is occluded or out of view; an extracted one usually does not). A visible
  frame's centre is known, or explicitly unknown (NaN with ``center_method`` "none"); an object that
  is visible somewhere must have a known centre at one frame at least;
* camera poses are finite everywhere, and ``camera.valid`` says which ones to trust.

Each dataclass checks itself on construction and raises :class:`~dsr.errors.RecordError` naming the
offending field, so an invalid record cannot exist in memory. ``dataclasses.replace`` re-validates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from dsr.errors import RecordError

SCHEMA_VERSION = 5
# versions this dsr reads; older ones are upgraded on reading (dsr.scene.io), never written
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)

ScaleKind = Literal["metric", "normalized", "up_to_scale"]
SCALE_KINDS: tuple[str, ...] = get_args(ScaleKind)

# How an object's 3D centre was obtained, per frame (ObjectTrack.center_method codes).
# Index 0 means "no centre at this frame".
CENTER_METHODS: tuple[str, ...] = (
    "none",
    "ground_truth",
    "dense_points",
    "sfm_points",
    "person_pnp",
    "ground_contact",
    "size_prior",
    "interpolated",
)

# Tolerances of the structural checks (float64 data written by our own code passes with margin).
ORTHONORMAL_TOL = 1e-4
WORLD_CAM_CONSISTENCY_TOL = 1e-4


# --------------------------------------------------------------------------------------------------
# checking helpers


_prefix_stack: list[str] = []


@contextlib.contextmanager
def field_prefix(prefix: str) -> Iterator[None]:
    """Prefix the ``field`` of any RecordError raised inside (e.g. ``objects[2]``)."""
    try:
        yield
    except RecordError as err:
        joined = f"{prefix}.{err.field}" if err.field else prefix
        raise RecordError(err.message, field=joined, path=err.path) from None


def _array(value: object, name: str, dtype: type | np.dtype, shape: tuple[int | None, ...]) -> np.ndarray:
    """Coerce ``value`` to a read-only array of ``dtype`` and check its shape (None = any size)."""
    try:
        arr = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"cannot be read as {np.dtype(dtype).name}: {exc}", field=name) from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise RecordError(f"has shape {arr.shape}, expected {want}", field=name)
    arr.setflags(write=False)
    return arr


def _finite_where(arr: np.ndarray, where: np.ndarray, name: str, what: str) -> None:
    sel = arr[where]
    if not np.all(np.isfinite(sel)):
        bad = int(np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1) & where)[0])
        raise RecordError(f"non-finite value at frame {bad} ({what})", field=name)


def _check_rotations(rot: np.ndarray, where: np.ndarray, name: str) -> None:
    """Rotations (N,3,3) at ``where`` must be orthonormal with determinant +1."""
    if not where.any():
        return
    r = rot[where]
    err = np.abs(np.einsum("nij,nkj->nik", r, r) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(r)
    bad = (err > ORTHONORMAL_TOL) | (np.abs(det - 1.0) > ORTHONORMAL_TOL)
    if bad.any():
        frame = int(np.flatnonzero(where)[np.flatnonzero(bad)[0]])
        raise RecordError(
            f"rotation at frame {frame} is not orthonormal (|RRᵀ−I|={err[bad][0]:.2g}, det={det[bad][0]:.3f})",
            field=name,
        )


def _check_unit_interval(arr: np.ndarray, name: str) -> None:
    if not np.all((arr >= 0.0) & (arr <= 1.0)):
        raise RecordError("values must lie in [0, 1]", field=name)


def _check_nonnegative(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr) & (arr >= 0.0)):
        raise RecordError("values must be finite and >= 0", field=name)


# --------------------------------------------------------------------------------------------------
# the record


@dataclass(frozen=True)
class Source:
    """Which estimator produced a value: ``name`` (registry key or "ground_truth") and its version."""

    name: str
    version: str

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise RecordError("source name must be a non-empty string", field="name")
        if not isinstance(self.version, str):
            raise RecordError("source version must be a string", field="version")


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """The source video and the frames sampled from it.

    path: video file, relative to the record file's folder or absolute.
    frame_indices: (T,) int64, strictly increasing indices into the decoded video.
    timestamps_s: (T,) float64, strictly increasing presentation times in seconds.
    """

    path: str
    fps: float
    width: int
    height: int
    num_frames: int
    duration_s: float
    frame_indices: np.ndarray
    timestamps_s: np.ndarray

    def __post_init__(self) -> None:
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise RecordError(f"fps must be > 0, got {self.fps}", field="fps")
        if self.width <= 0 or self.height <= 0:
            raise RecordError(f"frame size must be positive, got {self.width}x{self.height}", field="width")
        if self.num_frames <= 0:
            raise RecordError(f"num_frames must be > 0, got {self.num_frames}", field="num_frames")
        if not (np.isfinite(self.duration_s) and self.duration_s > 0):
            raise RecordError(f"duration_s must be > 0, got {self.duration_s}", field="duration_s")
        idx = _array(self.frame_indices, "frame_indices", np.int64, (None,))
        ts = _array(self.timestamps_s, "timestamps_s", np.float64, (len(idx),))
        object.__setattr__(self, "frame_indices", idx)
        object.__setattr__(self, "timestamps_s", ts)
        if len(idx) < 2:
            raise RecordError("a record needs at least 2 sampled frames", field="frame_indices")
        if np.any(np.diff(idx) <= 0):
            raise RecordError("must be strictly increasing", field="frame_indices")
        if idx[0] < 0 or idx[-1] >= self.num_frames:
            raise RecordError(f"must lie in [0, {self.num_frames})", field="frame_indices")
        if not np.all(np.isfinite(ts)):
            raise RecordError("non-finite timestamp", field="timestamps_s")
        if np.any(np.diff(ts) <= 0):
            bad = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1
            raise RecordError(f"not strictly increasing at frame {bad}", field="timestamps_s")

    @property
    def num_sampled(self) -> int:
        return len(self.frame_indices)


@dataclass(frozen=True, eq=False)
class CameraTrack:
    """Camera intrinsics and pose per sampled frame, with how far to trust them.

    K: (T, 3, 3) float64, pixels at the video's full resolution.
    c2w: (T, 4, 4) float64, OpenCV camera-to-world (``world_from_cam``).
    valid: (T,) bool, per-frame trust: poses a consumer may use; invalid ones are still finite (e.g.
        interpolated) and must not be used.
    confidence: (T,) float64 in [0, 1], per-frame trust as a degree: the estimator's belief that the pose is
        right (0 where invalid; 1 for ground truth).
    position_sigma: (T,) float64 >= 0, 1-sigma error of the camera centre per world axis, record units
        (isotropic Gaussian), after the best similarity alignment of the whole trajectory to the truth.
    rotation_sigma_deg: (T,) float64 >= 0, 1-sigma angle of the rotation error, degrees.
    trusted: record-level flag (schema v2): the estimator trusts the trajectory as a whole (its consistency
        checks passed). False: the poses are given for completeness only, and questions about the camera's
        motion or from its viewpoint should not be asked. Ground truth: True.
    scale_drift_sigma: float >= 0 (schema v3), 1-sigma of the drift of the path's scale, in natural-log units
        per second: the camera's step lengths are off by one factor exp(δ·(t − t_ref)), δ ~ N(0, σ²) drawn once
        per record. Monocular visual odometry loses its scale gradually (forward motion, e.g. a dolly, is the
        worst case), and an error shared along the path is what the per-frame ``position_sigma`` cannot
        express: it decides whether the camera's speed can be compared across time. The shift it causes at a
        frame moves what is seen from that frame with the camera (object centres are measured from it).
    scale_jitter_sigma: float >= 0 (schema v3), 1-sigma of the natural-log error of each step's length between
        consecutive sampled frames, independent from step to step (VO re-estimates its scale at every step); a
        step spanning m sampled frames carries σ/√m. The drift is the slow part of the scale error, this the fast.
    scale_reset_bound: float >= 0 (schema v4), natural-log bound on how far the scale of one stretch of the path
        between camera stops may be off against the other stretches and the objects
        (:func:`dsr.scene.uncertainty.path_stretches` finds the stops). Monocular VO measures no baseline while the
        camera stands still, so it cannot carry its scale across a stop: each stretch restarts with a scale
        unrelated to the one before, a jump no Gaussian per-step jitter expresses. On a path with a stop, an answer
        that changes when a stretch it reads is scaled by a factor within exp(±bound) cannot be trusted (``dsr qa``
        drops it). 0: the scale carries across stops.
    focal_range: (lo, hi) with 0 < lo <= 1 <= hi (schema v5), where the true focal length lies as a multiple of
        ``K``'s: an estimator that had to guess the focal length (or borrow one) says how far off it may be. A focal
        error is no per-frame noise: it bends every rotation the estimator measured by one shared factor, and the
        path's steps (measured in the camera's frame) turn with it, so an answer over a long turn can be wrong on
        every frame at once (:func:`dsr.scene.uncertainty.focal_error_motion`; ``dsr qa`` drops an answer that
        changes within the range). (1, 1): the focal length is known.

    Ground-truth records carry zero sigmas. Extracted records state sigmas calibrated on rendered worlds
    (the truth falls inside ±1.645 sigma about 90% of the time; docs/bench-extract.md).
    """

    K: np.ndarray
    c2w: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    position_sigma: np.ndarray
    rotation_sigma_deg: np.ndarray
    source: Source
    trusted: bool = True
    scale_drift_sigma: float = 0.0
    scale_jitter_sigma: float = 0.0
    scale_reset_bound: float = 0.0
    focal_range: tuple[float, float] = (1.0, 1.0)

    @property
    def states_scale_error(self) -> bool:
        """Whether the track states an error of its path's scale (drift or per-step jitter, schema v3)."""
        return self.scale_drift_sigma > 0 or self.scale_jitter_sigma > 0

    def __post_init__(self) -> None:
        k = _array(self.K, "K", np.float64, (None, 3, 3))
        n = len(k)
        c2w = _array(self.c2w, "c2w", np.float64, (n, 4, 4))
        valid = _array(self.valid, "valid", bool, (n,))
        conf = _array(self.confidence, "confidence", np.float64, (n,))
        psig = _array(self.position_sigma, "position_sigma", np.float64, (n,))
        rsig = _array(self.rotation_sigma_deg, "rotation_sigma_deg", np.float64, (n,))
        for name, arr in (("K", k), ("c2w", c2w), ("valid", valid), ("confidence", conf),
                          ("position_sigma", psig), ("rotation_sigma_deg", rsig)):
            object.__setattr__(self, name, arr)
        everywhere = np.ones(n, bool)
        _finite_where(k, everywhere, "K", "intrinsics must be finite")
        _finite_where(c2w, everywhere, "c2w", "poses must be finite; mark untrusted ones invalid")
        if np.any(k[:, 0, 0] <= 0) or np.any(k[:, 1, 1] <= 0):
            raise RecordError("focal lengths must be > 0", field="K")
        if np.any(np.abs(k[:, 2] - np.array([0.0, 0.0, 1.0])) > 1e-9):
            raise RecordError("last row must be [0, 0, 1]", field="K")
        if np.any(np.abs(c2w[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])) > 1e-9):
            raise RecordError("last row must be [0, 0, 0, 1]", field="c2w")
        _check_rotations(c2w[:, :3, :3], everywhere, "c2w")
        _check_unit_interval(conf, "confidence")
        _check_nonnegative(psig, "position_sigma")
        _check_nonnegative(rsig, "rotation_sigma_deg")
        if not isinstance(self.trusted, bool | np.bool_):
            raise RecordError(f"must be a bool, got {type(self.trusted).__name__}", field="trusted")
        object.__setattr__(self, "trusted", bool(self.trusted))
        for name in ("scale_drift_sigma", "scale_jitter_sigma", "scale_reset_bound"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
                raise RecordError(f"must be a number, got {type(value).__name__}", field=name)
            if not np.isfinite(value) or value < 0:
                raise RecordError(f"must be finite and >= 0, got {value}", field=name)
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "focal_range", _focal_range(self.focal_range))

    @property
    def focal_known(self) -> bool:
        """Whether the track states its focal length exactly (schema v5: ``focal_range`` is (1, 1))."""
        return self.focal_range == (1.0, 1.0)


def _focal_range(value: object) -> tuple[float, float]:
    """``value`` as a valid ``CameraTrack.focal_range``, or a RecordError naming the field."""
    if not isinstance(value, tuple | list) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer) for v in value):
        raise RecordError(f"must be two numbers (lo, hi), got {value!r}", field="focal_range")
    lo, hi = float(value[0]), float(value[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 < lo <= 1.0 <= hi):
        raise RecordError(f"must satisfy 0 < lo <= 1 <= hi (finite), got ({lo}, {hi})", field="focal_range")
    return lo, hi


@dataclass(frozen=True, eq=False)
class MaskTrack:
    """Per-frame binary masks as run lengths (see :mod:`dsr.scene.rle`).

    counts: (N,) uint32, all frames' runs concatenated (row-major, starting with a 0-run).
    offsets: (T + 1,) int64, frame t's runs are counts[offsets[t]:offsets[t + 1]]; empty = no mask.
    """

    height: int
    width: int
    counts: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        counts = _array(self.counts, "counts", np.uint32, (None,))
        offsets = _array(self.offsets, "offsets", np.int64, (None,))
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "offsets", offsets)
        if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(counts) or np.any(np.diff(offsets) < 0):
            raise RecordError("offsets must start at 0, be non-decreasing and end at len(counts)", field="offsets")
        total = self.height * self.width
        # sums of the present frames' runs: their starts are < len(counts), as reduceat needs (an empty
        # segment would read the next value); int64 sums so that no uint32 run total can wrap
        present = np.diff(offsets) > 0
        if present.any():
            sums = np.add.reduceat(counts, offsets[:-1][present], dtype=np.int64)
            if np.any(sums != total):
                bad = int(np.flatnonzero(present)[np.flatnonzero(sums != total)[0]])
                raise RecordError(f"runs of frame {bad} do not cover {self.height}x{self.width} pixels",
                                  field="counts")

    @property
    def num_frames(self) -> int:
        return len(self.offsets) - 1

    @property
    def present(self) -> np.ndarray:
        """(T,) bool: frames that carry a mask."""
        return np.diff(self.offsets) > 0

    def decode(self, t: int) -> np.ndarray | None:
        """Frame ``t``'s mask as (H, W) bool, or None if the frame has none."""
        from dsr.scene.rle import rle_decode

        lo, hi = self.offsets[t], self.offsets[t + 1]
        if lo == hi:
            return None
        return rle_decode(self.counts[lo:hi], self.height, self.width)


@dataclass(frozen=True, eq=False)
class OrientationTrack:
    """An agent's facing per sampled frame.

    world_from_agent: (T, 3, 3) float64; its columns are the agent's forward, left and up axes in
        world coordinates (see dsr.scene.frames); NaN where unknown.
    confidence: (T,) float64 in [0, 1]; 0 where unknown. DSR rejects frames below 0.6.
    sigma_deg: (T,) float64 >= 0, 1-sigma angle between the stated and the true forward axis, degrees
        (calibrated for extracted records like the centre sigmas; 0 for ground truth).
    """

    world_from_agent: np.ndarray
    confidence: np.ndarray
    sigma_deg: np.ndarray
    source: Source

    def __post_init__(self) -> None:
        rot = _array(self.world_from_agent, "world_from_agent", np.float64, (None, 3, 3))
        n = len(rot)
        conf = _array(self.confidence, "confidence", np.float64, (n,))
        sig = _array(self.sigma_deg, "sigma_deg", np.float64, (n,))
        object.__setattr__(self, "world_from_agent", rot)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "sigma_deg", sig)
        known = np.isfinite(rot).all(axis=(1, 2))
        partly = np.isfinite(rot).any(axis=(1, 2)) & ~known
        if partly.any():
            raise RecordError(f"partly non-finite rotation at frame {int(np.flatnonzero(partly)[0])}",
                              field="world_from_agent")
        if np.any(np.isinf(rot)):
            raise RecordError("infinite value", field="world_from_agent")
        _check_rotations(rot, known, "world_from_agent")
        _check_unit_interval(conf, "confidence")
        if np.any(conf[~known] > 0):
            raise RecordError("confidence must be 0 where the rotation is unknown", field="confidence")
        _check_nonnegative(sig, "sigma_deg")

    @property
    def known(self) -> np.ndarray:
        return np.isfinite(self.world_from_agent).all(axis=(1, 2))


@dataclass(frozen=True, eq=False)
class ObjectTrack:
    """One tracked object over the sampled frames.

    visible: (T,) bool, the object is (at least partly) in view and tracked.
    boxes_xyxy: (T, 4) float64 pixels [x1, y1, x2, y2]; finite exactly where visible, else NaN.
    confidence: (T,) float64 in [0, 1], track confidence: the probability that the box at this frame is on
        *this* object (no identity switch, no drift onto the background); 0 where not visible, 1 for ground
        truth. A question naming the object over an interval should need it high at every frame.
    centers_cam: (T, 3) float64, 3D centre in that frame's OpenCV camera coordinates; NaN = unknown.
    centers_world: (T, 3) float64, the same point in world coordinates; NaN = unknown.
    center_sigma_along: (T,) float64 >= 0, 1-sigma error of the centre along the camera ray through it
        (the depth direction of frame t's camera), record units.
    center_sigma_across: (T,) float64 >= 0, 1-sigma error along each of the two directions perpendicular
        to that ray, record units.
    center_sigma_shared: (T,) float64, 0 <= shared <= along: the part of the along-ray error that is the
        same relative error at every frame of this object (a wrong size prior scales every depth alike).
    center_method: (T,) uint8 codes into CENTER_METHODS; 0 ("none") exactly where centres are unknown.

    The error model behind the sigmas (schema v2; :func:`dsr.scene.uncertainty.sample_centers` draws from
    it): with u ~ N(0, 1) once per object and n_t ~ N(0, 1), m_t ~ N(0, I₂) per frame, the true centre is
    ``c_t + (u·shared_t + n_t·√(along_t² − shared_t²))·r_t + across_t·P_t m_t`` where r_t is the unit ray
    from frame t's camera centre through c_t and P_t (3, 2) spans the plane perpendicular to it. For
    extracted records the sigmas are calibrated on rendered worlds so that the truth lies within ±1.645
    sigma about 90% of the time (after the best similarity alignment of the camera trajectory); ground
    truth has zero sigmas. Unknown centres have sigma 0.
    """

    object_id: str
    class_phrase: str
    is_agent: bool
    visible: np.ndarray
    boxes_xyxy: np.ndarray
    confidence: np.ndarray
    centers_cam: np.ndarray
    centers_world: np.ndarray
    center_sigma_along: np.ndarray
    center_sigma_across: np.ndarray
    center_sigma_shared: np.ndarray
    center_method: np.ndarray
    track_source: Source
    center_source: Source
    masks: MaskTrack | None = None
    orientation: OrientationTrack | None = None

    def __post_init__(self) -> None:
        if not self.object_id or not isinstance(self.object_id, str):
            raise RecordError("must be a non-empty string", field="object_id")
        if not self.class_phrase or not isinstance(self.class_phrase, str):
            raise RecordError("must be a non-empty string", field="class_phrase")
        vis = _array(self.visible, "visible", bool, (None,))
        n = len(vis)
        boxes = _array(self.boxes_xyxy, "boxes_xyxy", np.float64, (n, 4))
        conf = _array(self.confidence, "confidence", np.float64, (n,))
        ccam = _array(self.centers_cam, "centers_cam", np.float64, (n, 3))
        cwld = _array(self.centers_world, "centers_world", np.float64, (n, 3))
        along = _array(self.center_sigma_along, "center_sigma_along", np.float64, (n,))
        across = _array(self.center_sigma_across, "center_sigma_across", np.float64, (n,))
        shared = _array(self.center_sigma_shared, "center_sigma_shared", np.float64, (n,))
        meth = _array(self.center_method, "center_method", np.uint8, (n,))
        for name, arr in (("visible", vis), ("boxes_xyxy", boxes), ("confidence", conf),
                          ("centers_cam", ccam), ("centers_world", cwld), ("center_sigma_along", along),
                          ("center_sigma_across", across), ("center_sigma_shared", shared),
                          ("center_method", meth)):
            object.__setattr__(self, name, arr)
        _finite_where(boxes, vis, "boxes_xyxy", "visible frames need a box")
        if np.any(np.isfinite(boxes[~vis])):
            raise RecordError("boxes must be NaN where the object is not visible", field="boxes_xyxy")
        b = boxes[vis]
        if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
            raise RecordError("boxes need x2 >= x1 and y2 >= y1", field="boxes_xyxy")
        _check_unit_interval(conf, "confidence")
        for name, arr in (("centers_cam", ccam), ("centers_world", cwld)):
            if np.any(np.isinf(arr)):
                raise RecordError("infinite value", field=name)
            partly = np.isnan(arr).any(axis=1) & ~np.isnan(arr).all(axis=1)
            if partly.any():
                raise RecordError(f"partly NaN centre at frame {int(np.flatnonzero(partly)[0])}", field=name)
        known = np.isfinite(ccam).all(axis=1) | np.isfinite(cwld).all(axis=1)
        if vis.any() and not known.any():
            # visible ⇒ centre known, or unknown at that frame (NaN, method "none"); an object seen but never
            # located carries no 3D information, and questions about it would be skipped silently
            raise RecordError(f"visible at {int(vis.sum())} frame(s) but the centre is unknown at every frame",
                              field="centers_world")
        for name, arr in (("center_sigma_along", along), ("center_sigma_across", across),
                          ("center_sigma_shared", shared)):
            _check_nonnegative(arr, name)
        if np.any(shared > along * (1.0 + 1e-9) + 1e-12):
            bad = int(np.flatnonzero(shared > along * (1.0 + 1e-9) + 1e-12)[0])
            raise RecordError(f"exceeds center_sigma_along at frame {bad}", field="center_sigma_shared")
        if np.any(meth >= len(CENTER_METHODS)):
            raise RecordError(f"codes must be < {len(CENTER_METHODS)}", field="center_method")
        if np.any((meth == 0) == known):
            bad = int(np.flatnonzero((meth == 0) == known)[0])
            raise RecordError(f"must be 0 exactly where the centre is unknown (frame {bad})", field="center_method")
        if self.masks is not None and self.masks.num_frames != n:
            raise RecordError(f"has {self.masks.num_frames} frames, expected {n}", field="masks")
        if self.orientation is not None:
            if not self.is_agent:
                raise RecordError("only agents carry an orientation", field="orientation")
            if len(self.orientation.confidence) != n:
                raise RecordError(f"has {len(self.orientation.confidence)} frames, expected {n}",
                                  field="orientation")

    @property
    def center_known(self) -> np.ndarray:
        """(T,) bool: frames with a world-frame centre."""
        return np.isfinite(self.centers_world).all(axis=1)

    @property
    def center_sigma(self) -> np.ndarray:
        """(T,) isotropic 1-sigma per axis with the same total variance as the along/across sigmas
        (√((along² + 2·across²) / 3)); schema v1's single ``center_sigma``."""
        return np.sqrt((self.center_sigma_along**2 + 2.0 * self.center_sigma_across**2) / 3.0)


@dataclass(frozen=True, eq=False)
class SceneRecord:
    """What the camera and each object did over one clip. See the module docstring."""

    record_id: str
    video: VideoInfo
    camera: CameraTrack
    objects: tuple[ObjectTrack, ...]
    scale_kind: ScaleKind
    meters_per_unit: float | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise RecordError(
                f"schema version {self.schema_version!r} in memory (records are upgraded to "
                f"{SCHEMA_VERSION} when read)", field="schema_version",
            )
        if not self.record_id:
            raise RecordError("must be a non-empty string", field="record_id")
        if self.scale_kind not in SCALE_KINDS:
            raise RecordError(f"must be one of {', '.join(SCALE_KINDS)}, got {self.scale_kind!r}",
                              field="scale_kind")
        if self.meters_per_unit is not None and not (np.isfinite(self.meters_per_unit) and self.meters_per_unit > 0):
            raise RecordError("must be > 0 or null", field="meters_per_unit")
        object.__setattr__(self, "objects", tuple(self.objects))
        n = self.video.num_sampled
        if len(self.camera.K) != n:
            raise RecordError(f"has {len(self.camera.K)} frames, video samples {n}", field="camera.K")
        seen: set[str] = set()
        for i, obj in enumerate(self.objects):
            with field_prefix(f"objects[{i}]"):
                if obj.object_id in seen:
                    raise RecordError(f"duplicate object id {obj.object_id!r}", field="object_id")
                seen.add(obj.object_id)
                if len(obj.visible) != n:
                    raise RecordError(f"has {len(obj.visible)} frames, video samples {n}", field="visible")
                if obj.masks is not None and (obj.masks.height, obj.masks.width) != (self.video.height,
                                                                                     self.video.width):
                    raise RecordError("mask size differs from the video frame size", field="masks")
                self._check_world_cam_consistency(obj)

    def _check_world_cam_consistency(self, obj: ObjectTrack) -> None:
        both = obj.center_known & np.isfinite(obj.centers_cam).all(axis=1) & self.camera.valid
        if not both.any():
            return
        c2w = self.camera.c2w[both]
        mapped = np.einsum("nij,nj->ni", c2w[:, :3, :3], obj.centers_cam[both]) + c2w[:, :3, 3]
        err = np.linalg.norm(mapped - obj.centers_world[both], axis=1)
        scale = 1.0 + np.linalg.norm(obj.centers_world[both], axis=1)
        if np.any(err > WORLD_CAM_CONSISTENCY_TOL * scale):
            frame = int(np.flatnonzero(both)[np.argmax(err / scale)])
            raise RecordError(f"disagrees with c2w·centers_cam at frame {frame} (by {err.max():.3g})",
                              field="centers_world")

    @property
    def num_frames(self) -> int:
        """T, the number of sampled frames."""
        return self.video.num_sampled

    @property
    def timestamps_s(self) -> np.ndarray:
        return self.video.timestamps_s

    def object(self, object_id: str) -> ObjectTrack:
        for obj in self.objects:
            if obj.object_id == object_id:
                return obj
        known = ", ".join(o.object_id for o in self.objects) or "none"
        raise RecordError(f"no object {object_id!r} in record (objects: {known})", field="objects")

    @property
    def agents(self) -> tuple[ObjectTrack, ...]:
        return tuple(o for o in self.objects if o.is_agent)
