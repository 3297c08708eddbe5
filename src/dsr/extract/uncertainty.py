"""Calibrated uncertainty for extracted records (schema v2, v3): centre sigmas along / across the camera ray,
heading sigmas, camera sigmas and track confidences.

The lifting chain's own sigmas are a-priori guesses (0.3·Z for the size prior, ...). Here each is replaced
by an error model whose constants are **fitted on rendered worlds** (``benchmarks/extract_calibrate.py``, from
the errors that ``benchmarks/extract_precision.py`` measures against ground truth) so that the truth falls
inside the stated 90% interval (±1.645 σ) about 90% of the time; coverage is reported on *held-out* worlds
(docs/bench-extract.md). The model, per quantity:

* **centre** at depth Z (distance from the camera), by centre method m: ``along = a_m·Z`` (1-σ along the
  ray), of which ``shared = √f_m · along`` is the same relative error at every frame of the object,
  ``across = c_m·Z`` per perpendicular axis. The tables are keyed by ``method/camera/kind`` (see
  :func:`sigma_keys`), falling back to ``method/camera``, ``method`` and ``default``: a size prior's depth is
  only as good as the height it assumes (the class's, or a generic 1 m for an object of unknown class), and
  under VO its depths reach the camera's units only through the floor beside the object's feet
  (:func:`dsr.extract.lift.floor_scale`), so the same method errs more there;
* **heading**: the velocity heading's own sigma (from the track's measured noise) times ``heading_factor``, with a
  floor ``heading_floor_deg`` added in quadrature for the error no apparent speed shrinks;
* **camera**: ``position_sigma = p_k`` record units (scene depth normalised to ~1) and
  ``rotation_sigma_deg = r_k`` per key k, on valid frames: the camera method, or for SfM the per-clip
  :func:`camera_sigma_key` (a healthy reconstruction's rotation is ``camera/pycolmap/tight``), and
  ``scale_drift_sigma = d_k`` (schema v3): the 1-σ of the drift of the path's scale, natural-log units per
  second. Monocular VO loses its scale steadily on a dolly (forward motion): its step lengths shrank by
  e^-1 to e^-3 over 24 s on training worlds, which no per-frame position error describes and which made its
  camera-speed questions wrong;
* **track confidence**: the probability that the box at a frame is on the object (IoU ≥ 0.5 with it), a
  logistic model per track source of the frame's raw score and the track's length (short tracks are mostly
  spurious): ``p = σ(w_score·score + w_len·ln(visible frames) + b)``, fitted by logistic regression.

The fitted numbers live in :class:`UncertaintyConfig`'s defaults (part of ``ExtractConfig``, so a new fit
changes the settings hash and ``dsr extract`` redoes its records). :meth:`UncertaintyConfig.identity`
passes the raw values through, which is what the fitting run uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dsr.scene.record import CENTER_METHODS

# Fitted by benchmarks/extract_calibrate.py on 40 worlds (seeds 100-103, 9600/9601 and 9700/9701 × 5 camera
# motions, 24 s; docs/bench-extract.md §10.5), each table at the quantile whose leave-one-clip-out coverage is
# >= 90% (along 0.94, across 0.92, camera position 0.90, rotation 0.93). Two choices by hand:
# * the rotation-only camera's position sigma keeps a 0.01 floor: its zero translation is exact on the worlds'
#   pans (fit 0.0) but not on a hand-held real pan;
# * track confidence is modelled for the two mover sources only (fitted on training seeds 100, 101, 9600,
#   300-303 × 5 motions and 310-329 × static/pan; 3,349 frames; docs/bench-extract.md §13). A mover's raw score
#   is no probability (a background mover scores 1.0 at 99% of its frames, and 20% of them are on an object),
#   and movers are as poor on real video: their boxes' mean IoU with DAVIS's masks is 0.30 (flow) and 0.40
#   (background). The COCO detector keeps its raw score: fitted on the renders it is out of its domain
#   (stylised people), its score slope came out negative and it would silence real video, where it works (§9.1).
# ground_contact under pycolmap is 12·Z: its errors are small on good reconstructions (median 0.2·Z) and
# huge on the poor-but-trusted ones (hand-held seeds 101, 9700, 9701), which no trust check catches yet.
# The vo/forward entries (a VO dolly, :func:`center_camera_key`) were fitted the same way on the 22 VO dollies of the
# cached dev worlds (seeds 100, 101 and 9975-9999; 338 centres): along at quantile 0.94 (leave-one-clip-out 91.1%),
# across at 0.93 (91.6%). Under the vo tables those centres were inside 58.9% of the time, and 46.7% on 12 held-out
# dollies: the objects' depths sat e^-2.4 to e^+0.6 off the path's scale (docs/bench-extract.md §23)
_ALONG_REL = {"default": 0.9903, "ground_contact": 12.3434, "ground_contact/pycolmap": 12.3434,
              "ground_contact/pycolmap/class": 12.5104, "interpolated": 0.5042, "interpolated/rotation": 0.3321,
              "interpolated/rotation/unknown": 0.3386, "size_prior": 0.9997, "size_prior/rotation": 0.6922,
              "size_prior/rotation/class": 0.4387, "size_prior/rotation/unknown": 1.0117, "size_prior/vo": 2.0298,
              "size_prior/vo/class": 0.6004, "size_prior/vo/unknown": 2.6104,
              "interpolated/vo/forward": 3.8039, "interpolated/vo/forward/unknown": 4.1162,
              "size_prior/vo/forward": 5.9139, "size_prior/vo/forward/class": 4.9865,
              "size_prior/vo/forward/unknown": 6.2767}
_SHARED_FRAC = {"default": 0.925, "ground_contact": 0.992, "ground_contact/pycolmap": 0.992,
                "ground_contact/pycolmap/class": 0.993, "interpolated": 0.747, "interpolated/rotation": 0.877,
                "interpolated/rotation/unknown": 0.874, "size_prior": 0.759, "size_prior/rotation": 0.66,
                "size_prior/rotation/class": 0.986, "size_prior/rotation/unknown": 0.643, "size_prior/vo": 0.688,
                "size_prior/vo/class": 0.956, "size_prior/vo/unknown": 0.664,
                "interpolated/vo/forward": 0.954, "interpolated/vo/forward/unknown": 0.953,
                "size_prior/vo/forward": 0.887, "size_prior/vo/forward/class": 0.972,
                "size_prior/vo/forward/unknown": 0.873}
_ACROSS_REL = {"default": 0.1782, "ground_contact": 0.0865, "ground_contact/pycolmap": 0.0865,
               "ground_contact/pycolmap/class": 0.1512, "interpolated": 0.1879, "interpolated/rotation": 0.1589,
               "interpolated/rotation/unknown": 0.1595, "interpolated/vo": 0.3144, "interpolated/vo/unknown": 0.3144,
               "size_prior": 0.1721, "size_prior/rotation": 0.1626, "size_prior/rotation/class": 0.0246,
               "size_prior/rotation/unknown": 0.188, "size_prior/vo": 0.2237, "size_prior/vo/class": 0.0751,
               "size_prior/vo/unknown": 0.305,
               "interpolated/vo/forward": 0.7164, "interpolated/vo/forward/unknown": 0.7404,
               "size_prior/vo/forward": 0.6294, "size_prior/vo/forward/class": 0.2198,
               "size_prior/vo/forward/unknown": 0.7682}
_CAMERA_POSITION = {"default": 0.126, "camera/pycolmap": 0.7786, "camera/rotation": 0.01, "camera/vo": 0.1283}
# pycolmap's rotation is split by camera_sigma_key (fitted on the orbit and hand-held worlds of training seeds
# 100, 101, 9600, 300-303 and 310-323, each key at the lowest of the quantiles 0.9 / 0.93 / 0.95 whose
# leave-one-clip-out coverage is >= 90%: tight 0.95 (91.5%, 18 clips), plain 0.93 (92.4%, 14 clips);
# docs/bench-extract.md §14). Position keeps one pycolmap sigma: a tight one fitted per frame (0.006) let through
# camera-speed questions that were wrong (19 of 72 on training worlds), because SfM's position errors are
# correlated along the path (scale drift) and the per-frame noise model cannot express that
_CAMERA_ROTATION_DEG = {"default": 6.268, "camera/pycolmap": 10.178, "camera/pycolmap/tight": 2.557,
                        "camera/rotation": 0.2443, "camera/vo": 7.6915}
# drift of the camera path's scale, natural-log units per second (schema v3, CameraTrack.scale_drift_sigma): the
# 0.97 quantile of |drift rate| / 1.645 per key (dsr.scene.align.scale_drift_rate of the path aligned to the truth),
# the lowest quantile whose leave-one-clip-out coverage is >= 90% (91.5%), over the trusted dolly, orbit and
# hand-held cameras of 59 training worlds (seeds 100, 101, 300-303, 310-323, 9600; 26 VO, 14 plain SfM, 19 tight
# SfM). VO drifted on every dolly, most by -0.03 to -0.20 per second (its steps shrank e^-1 to e^-4 over 24 s);
# healthy SfM stays within 0.03 per second, but two poor orbits that pass the tight gate drift by -0.19 and -0.20
# (docs/bench-extract.md §16)
_CAMERA_SCALE_DRIFT = {"camera/pycolmap": 0.6439, "camera/pycolmap/tight": 0.1184, "camera/vo": 0.1174,
                       "default": 0.3061}
# the fast part, per step between sampled frames (CameraTrack.scale_jitter_sigma): the step-to-step change of the same
# log length ratio about the clip's linear drift, at its 0.93 quantile / 1.645 (leave-one-clip-out 92.8%), over √2
# (a change is the difference of two steps' errors). On the same cameras it was 0.90 (VO), 0.56 (tight SfM; healthy
# clips 0.03-0.18, the two poor tight orbits 1.1 and 3.4), 1.89 (plain SfM). It made VO's camera-speed QAs wrong
# half the time under the drift alone (6 of 11 on held-out dolly 9944; docs/bench-extract.md §16)
_CAMERA_SCALE_JITTER = {"camera/pycolmap": 1.3372, "camera/pycolmap/tight": 0.3953, "camera/vo": 0.6337,
                        "default": 0.6236}
# the scale's reset at each stop of the path (schema v4, CameraTrack.scale_reset_bound), natural-log units: VO sets
# a new keyframe in place while the camera rests and has no baseline to carry its scale over, so the stretch after a
# stop starts from a scale unrelated to the one before and to the objects' depths. The jumps are heavy-tailed: on the
# 26 training VO cameras the step-to-step change of the log length ratio across a stop had q95 1.93 (n 85; adjacent
# moving steps 1.52) and reached 3.63 (dolly 319). A bound at q95 (1.93, x6.9) let through 20 wrong camera-speed QAs
# on held-out dolly 9949, whose first stretch was e^3.8 too long against its objects; so the bound sits past every
# jump seen, x100: in effect "unrelated" (docs/bench-extract.md §18). SfM's bundle adjustment ties the stretches
# together, and a rotation-only camera has no path
_CAMERA_SCALE_RESET = {"camera/vo": 4.6, "default": 0.0}
_TRACK_CONFIDENCE: dict[str, tuple[float, float, float]] = {
    "grounding/background+tracking/iou": (7.527, -0.972, -6.101), "grounding/motion+tracking/iou": (2.517, -1.571, -0.448)}


@dataclass(frozen=True)
class UncertaintyConfig:
    """The fitted error model (see the module docstring); ``identity`` keeps raw values (for fitting)."""

    along_rel: dict[str, float] = field(default_factory=lambda: dict(_ALONG_REL))
    shared_frac: dict[str, float] = field(default_factory=lambda: dict(_SHARED_FRAC))
    across_rel: dict[str, float] = field(default_factory=lambda: dict(_ACROSS_REL))
    # fitted apart from the tables above, at benchmarks/extract_calibrate.py's quantile (0.93) of |error| / own
    # sigma over 31 heading samples of training seeds 100, 101, 9600 (8), 300-303 (3) and 310-329 (20): the
    # velocity heading's own sigma is 2-10x too small on rendered people (a size prior's depth flickers with the
    # box, which the track's scatter about its smoothed path does not see). Leave-one-clip-out coverage 90.3%.
    # The first fit, 3.229 on the 8 samples alone, covered 74% of a held-out set's headings (§12).
    heading_factor: float = 4.71
    # the part of a heading's error that no apparent speed shrinks, added in quadrature: a size prior's depth drifts
    # with how much of the body the box covers (YOLO's boxes on rendered people hold 50-85% of their height, and the
    # share wanders), so a person standing or walking slowly "walks" along the camera ray at a ratio that passes
    # the gate; a torso read front-to-back then follows that false walk. Over the 28 gated heading samples (10 tracks)
    # of the 177 cached worlds of seeds 100-10005 the factor alone covered 68%; 40° is the smallest 5° step whose
    # coverage reaches 90% (92.9%; leave-one-track-out 85.7%, 9 of 10 tracks choosing 40°). docs/bench-extract.md §23
    heading_floor_deg: float = 40.0
    camera_position: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_POSITION))
    camera_rotation_deg: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_ROTATION_DEG))
    camera_scale_drift: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_SCALE_DRIFT))
    camera_scale_jitter: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_SCALE_JITTER))
    camera_scale_reset: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_SCALE_RESET))
    # per track source: (w_score, w_len, bias) of the logistic model; a source without one keeps its raw score
    track_confidence: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(_TRACK_CONFIDENCE))
    raw: bool = False  # identity: raw track scores and heading sigmas (the fitting run)
    # an SfM reconstruction this close to a pinhole camera, this compact and this smooth takes the ``/tight``
    # camera sigmas (:func:`camera_sigma_key`). Chosen on training worlds (seeds 100, 101, 9600, 300-303, 310-315,
    # orbit and hand-held): the healthy ones had a span <= 2.5 depths and jump share <= 0.33; the poor ones a span
    # of 11 depths or a jump share of 0.54, or a radial k traded against the focal length. That trade has a
    # direction: on seeds 310-329 the poor reconstructions shortened the focal length (0.80-0.94 of the truth) and
    # bent the image with barrel distortion (k -0.028 to -0.060), while healthy ones came back at or just above the
    # true focal length, some with a faint pincushion (k up to +0.0124; the one poor positive k there was +0.0306,
    # a hand-held 1.7° off). Hence the asymmetric range, with its upper end between the two (docs/bench-extract.md
    # §14, §22). Two poor orbits (seeds 314 and 317, 3.7° and 4.3° median error) pass every test, which is why
    # the tight sigma is 2.6° rather than the healthy clips' 0.4°
    tight_sfm_radial_k: tuple[float, float] = (-0.01, 0.02)
    tight_sfm_max_extent_depths: float = 3.0
    tight_sfm_max_jump_share: float = 0.4
    # the focal length's range (schema v5, CameraTrack.focal_range), for VO only: its angles over a turn scale with
    # the focal length it runs at (est/true 0.78-0.86 at 0.77-0.85x the true focal on the training hand-helds), and
    # that shared error is what flipped held-out orbits' camera-direction QAs (11 of 22 on 9954, 8 of 25 on 9952;
    # docs/bench-extract.md §19). SfM refines its focal length, and the rotation-only check fits it to its homographies.
    # A guessed focal length: the lenses people film with, as multiples of the long side: a 90° field of view across
    # it (0.5) to a 30° one (1.87). A focal borrowed from a partial SfM (AutoCamera._usable_focal): on the 9 training
    # VO cameras that ran on one it was 0.77-0.89x the truth (a truth 1.12-1.30x the record's), so 0.8-1.4x
    lens_focal_range: tuple[float, float] = (0.5, 1.87)
    lent_focal_range: tuple[float, float] = (0.8, 1.4)
    # a VO path with this share of its length along the optical axis takes the centre sigmas of ``vo/forward``
    # (:func:`center_camera_key`). On the cached worlds dollies had 0.78-0.99, orbits and hand-helds 0.03-0.21
    vo_forward_min_share: float = 0.5

    @staticmethod
    def identity() -> UncertaintyConfig:
        return UncertaintyConfig(heading_factor=1.0, heading_floor_deg=0.0, track_confidence={}, raw=True)

    @staticmethod
    def _get(table: dict[str, float], key: str) -> float:
        """The entry of ``key``, else of its shorter prefixes (``camera/pycolmap/tight`` -> ``camera/pycolmap``),
        else ``default``."""
        while key not in table and "/" in key:
            key = key.rsplit("/", 1)[0]
        return table.get(key, table.get("default", 0.0))


def sigma_keys(method: str, camera: str, class_known: bool) -> tuple[str, ...]:
    """The keys a centre's sigma is looked up by, most specific first: ``method/camera/kind``,
    ``method/camera``, ``method``, ``default``. ``camera`` is the camera's registry name (``camera/vo``) or its
    :func:`center_camera_key` (``camera/vo/forward``, which falls back to ``camera/vo``'s keys before the method's),
    ``kind`` is ``class`` for an object whose class has a known height (``dsr.extract.lift.CLASS_HEIGHT_M``)
    and ``unknown`` otherwise."""
    parts = camera.removeprefix("camera/").split("/")
    kind = "class" if class_known else "unknown"
    keys: list[str] = []
    for n in range(len(parts), 0, -1):
        cam = "/".join(parts[:n])
        keys += [f"{method}/{cam}/{kind}", f"{method}/{cam}"]
    return (*keys, method, "default")


def center_camera_key(camera: str, c2w: np.ndarray, valid: np.ndarray, config: UncertaintyConfig) -> str:
    """The camera part of a centre's sigma keys: ``camera/vo/forward`` for a VO path travelled mostly along the
    camera's optical axis (:func:`dsr.scene.poses.forward_motion_share` ≥ ``vo_forward_min_share``: a dolly), else
    the camera's registry name. VO loses its scale steadily on forward motion (its steps shrank e^-1 to e^-3 over 24 s
    on training dollies), and the objects' depths reach its units through one floor factor
    (:func:`dsr.extract.lift.floor_scale`), so on a dolly they are off the path's scale by a factor a sideways path
    never shows: e^-2.4 to e^+0.6 on the dev dollies, against e^-0.5 to e^+1.1 on VO orbits and hand-helds."""
    from dsr.scene.poses import forward_motion_share

    if camera != "camera/vo":
        return camera
    share = forward_motion_share(c2w, valid)
    return "camera/vo/forward" if np.isfinite(share) and share >= config.vo_forward_min_share else camera


def lookup(table: dict[str, float], keys: tuple[str, ...]) -> float:
    """The value of the first of ``keys`` in ``table`` (0 when none is)."""
    return next((table[k] for k in keys if k in table), 0.0)


def center_sigmas(centers_cam: np.ndarray, method: np.ndarray, config: UncertaintyConfig,
                  camera: str = "default", class_known: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(along, across, shared) (T,) 1-sigmas in record units for centres (T, 3) found by ``method`` (T,) codes,
    for an object of known class or not under the camera named ``camera`` (see :func:`sigma_keys`).

    Zero where the centre is unknown (method 0).
    """
    depth = np.linalg.norm(np.nan_to_num(centers_cam), axis=1)
    keys = [sigma_keys(CENTER_METHODS[m], camera, class_known) for m in method]
    a = np.array([lookup(config.along_rel, k) for k in keys])
    f = np.clip([lookup(config.shared_frac, k) for k in keys], 0.0, 1.0)
    c = np.array([lookup(config.across_rel, k) for k in keys])
    known = method > 0
    along = np.where(known, a * depth, 0.0)
    return along, np.where(known, c * depth, 0.0), np.sqrt(f) * along


def frame_to_frame_sigma(along: np.ndarray, across: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """(T,) 1-sigma per horizontal axis of a centre's error that is independent between frames: the along-ray
    part not shared by the object's frames, and the across part (averaged over the two directions)."""
    own = np.sqrt(np.maximum(along**2 - shared**2, 0.0))
    return np.sqrt((own**2 + across**2) / 2.0)


def heading_sigma(raw_sigma_deg: np.ndarray, config: UncertaintyConfig) -> np.ndarray:
    """Calibrated heading 1-sigma (T,) degrees from the heading estimator's own: ``heading_factor`` times it, with
    ``heading_floor_deg`` added in quadrature, capped at 180°. Frames without a heading (raw sigma 0) stay 0."""
    raw = np.asarray(raw_sigma_deg, np.float64)
    if config.raw:
        return np.minimum(raw, 180.0)
    calibrated = np.hypot(raw * config.heading_factor, config.heading_floor_deg)
    return np.where(raw > 0, np.minimum(calibrated, 180.0), raw)


def camera_sigma_key(method: str, stats: Mapping[str, float], config: UncertaintyConfig) -> str:
    """The camera sigma tables' key of a track by ``method`` (its registry name) whose attempt reported ``stats``:
    ``camera/pycolmap/tight`` for an SfM reconstruction that stayed close to a pinhole camera
    (radial k within ``tight_sfm_radial_k``), compact (cameras within ``tight_sfm_max_extent_depths`` median
    scene depths) and smooth (its 3 longest steps carry at most ``tight_sfm_max_jump_share`` of its path), else
    ``method``.

    SfM's errors are bimodal: healthy reconstructions are within a degree, poor ones 4-18° and several
    tenths of the scene off. A poor one is an orbit or hand-held clip whose focal length and distortion the
    bundle adjustment traded against a warped path (a focal 0.8-0.98 of the truth with barrel distortion, k -0.01 to
    -0.07, on the rendered worlds, which have no distortion), or a path stretched over many scene depths. Healthy
    ones come back at or just above the true focal length, some with a faint pincushion (k up to +0.0124 on the
    training worlds, +0.025 on later ones), so the range is asymmetric. Real lenses do distort: a real clip's SfM with
    a large |k| keeps the plain method's wide sigmas, which only makes it abstain more.
    """
    if method != "camera/pycolmap":
        return method
    k_lo, k_hi = config.tight_sfm_radial_k
    pinhole = k_lo <= stats.get("radial_k", np.inf) <= k_hi
    compact = stats.get("camera_extent_depths", np.inf) <= config.tight_sfm_max_extent_depths
    smooth = stats.get("jump_share", np.inf) <= config.tight_sfm_max_jump_share
    return f"{method}/tight" if pinhole and compact and smooth else method


def camera_sigmas(key: str, valid: np.ndarray, config: UncertaintyConfig) -> tuple[np.ndarray, np.ndarray]:
    """(position_sigma, rotation_sigma_deg) (T,) of a camera track by its :func:`camera_sigma_key` (a key missing
    from a table falls back to its method, then to ``default``).

    Invalid frames get large sigmas (their poses are interpolated, not measured).
    """
    pos = UncertaintyConfig._get(config.camera_position, key)
    rot = UncertaintyConfig._get(config.camera_rotation_deg, key)
    return np.where(valid, pos, 10.0 * max(pos, 0.1)), np.where(valid, rot, 30.0)


def _path_entry(table: dict[str, float], key: str) -> float:
    """A path-scale table's entry for a camera track's :func:`camera_sigma_key`: a rotation-only camera has no
    path, so nothing to drift, jitter or reset."""
    return 0.0 if key == "camera/rotation" else UncertaintyConfig._get(table, key)


def camera_scale_drift(key: str, config: UncertaintyConfig) -> float:
    """The scale-drift sigma (natural-log units per second) of a camera track by its :func:`camera_sigma_key`."""
    return _path_entry(config.camera_scale_drift, key)


def camera_scale_jitter(key: str, config: UncertaintyConfig) -> float:
    """The per-step scale sigma (natural-log units) of a camera track by its :func:`camera_sigma_key`."""
    return _path_entry(config.camera_scale_jitter, key)


def camera_scale_reset(key: str, config: UncertaintyConfig) -> float:
    """The bound on the scale's reset at the path's stops (natural-log units) of a camera track by its
    :func:`camera_sigma_key`."""
    return _path_entry(config.camera_scale_reset, key)


def camera_focal_range(key: str, stats: Mapping[str, float], focal_px: float, long_side: int,
                       config: UncertaintyConfig) -> tuple[float, float]:
    """The ``CameraTrack.focal_range`` of a track by its :func:`camera_sigma_key`, whose attempt reported ``stats``
    (``focal_guessed``, ``focal_lent``) and ran at ``focal_px`` on frames ``long_side`` pixels long: VO under a guessed
    focal length gets the lens range over its guess, under a borrowed one ``lent_focal_range``; a given or fitted
    focal length is known, (1, 1)."""
    if not key.startswith("camera/vo"):
        return 1.0, 1.0
    if stats.get("focal_guessed", 0.0):
        lo, hi = config.lens_focal_range
        return min(1.0, lo * long_side / focal_px), max(1.0, hi * long_side / focal_px)
    if stats.get("focal_lent", 0.0):
        return config.lent_focal_range
    return 1.0, 1.0


def track_confidence(scores: np.ndarray, visible: np.ndarray, source: str, config: UncertaintyConfig
                     ) -> np.ndarray:
    """Per-frame probability (T,) that the box is on the object, from its raw scores (T,) by the source's model."""
    raw = np.clip(np.nan_to_num(scores), 0.0, 1.0)
    model = None if config.raw else config.track_confidence.get(source)
    if model is not None:
        w_score, w_len, bias = model
        logit = w_score * raw + w_len * np.log(max(1, int(visible.sum()))) + bias
        raw = 1.0 / (1.0 + np.exp(-logit))
    return np.where(visible, raw, 0.0)
