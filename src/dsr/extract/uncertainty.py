"""Calibrated uncertainty for extracted records (schema v2): centre sigmas along / across the camera ray,
heading sigmas, camera sigmas and track confidences.

The lifting chain's own sigmas are a-priori guesses (0.3·Z for the size prior, ...). Here each is replaced
by an error model whose constants are **fitted on rendered worlds** (``benchmarks/extract_calibrate.py``, from
the errors that ``benchmarks/extract_precision.py`` measures against ground truth) so that the truth falls
inside the stated 90% interval (±1.645 σ) about 90% of the time; coverage is reported on *held-out* worlds
(docs/bench-extract.md). The model, per quantity:

* **centre** at depth Z (distance from the camera), by centre method m: ``along = a_m·Z`` (1-σ along the
  ray), of which ``shared = √f_m · along`` is the same relative error at every frame of the object,
  ``across = c_m·Z`` per perpendicular axis;
* **heading**: the velocity heading's own sigma (from the track's measured noise) times ``heading_factor``;
* **camera**: ``position_sigma = p_k`` record units (scene depth normalised to ~1) and
  ``rotation_sigma_deg = r_k`` per camera method k, on valid frames;
* **track confidence**: the probability that the box at a frame is on the object (IoU ≥ 0.5 with it), a
  logistic model per track source of the frame's raw score and the track's length (short tracks are mostly
  spurious): ``p = σ(w_score·score + w_len·ln(visible frames) + b)``, fitted by logistic regression.

The fitted numbers live in :class:`UncertaintyConfig`'s defaults (part of ``ExtractConfig``, so a new fit
changes the settings hash and ``dsr extract`` redoes its records). :meth:`UncertaintyConfig.identity`
passes the raw values through, which is what the fitting run uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsr.scene.record import CENTER_METHODS

# Fitted by benchmarks/extract_calibrate.py --quantile 0.93 on tuning worlds 100-103 × 5 camera motions
# (docs/bench-extract.md §10.2); a method without an entry uses the "default" entry. Two choices by hand:
# * the rotation-only camera's position sigma keeps a 0.01 floor: its zero translation is exact on the worlds'
#   pans (fit 0.0) but not on a hand-held real pan;
# * no track-confidence model: the fitted logistic models put every rendered-world track below 0.1 (the COCO
#   detector is out of its domain on MuJoCo renders) and would silence real video, where it works (§9.1).
_ALONG_REL = {"default": 0.59, "ground_contact": 13.1021, "interpolated": 0.4127, "size_prior": 0.5375}
_SHARED_FRAC = {"default": 0.936, "ground_contact": 0.992, "interpolated": 0.571, "size_prior": 0.767}
_ACROSS_REL = {"default": 0.1995, "ground_contact": 0.9142, "interpolated": 0.1924, "size_prior": 0.1915}
_CAMERA_POSITION = {"default": 0.134, "camera/pycolmap": 2.7396, "camera/rotation": 0.01, "camera/vo": 0.1344}
_CAMERA_ROTATION_DEG = {"default": 7.5275, "camera/pycolmap": 7.8793, "camera/rotation": 0.2677,
                        "camera/vo": 8.4631}
_TRACK_CONFIDENCE: dict[str, tuple[float, float, float]] = {}


@dataclass(frozen=True)
class UncertaintyConfig:
    """The fitted error model (see the module docstring); ``identity`` keeps raw values (for fitting)."""

    along_rel: dict[str, float] = field(default_factory=lambda: dict(_ALONG_REL))
    shared_frac: dict[str, float] = field(default_factory=lambda: dict(_SHARED_FRAC))
    across_rel: dict[str, float] = field(default_factory=lambda: dict(_ACROSS_REL))
    heading_factor: float = 1.0
    camera_position: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_POSITION))
    camera_rotation_deg: dict[str, float] = field(default_factory=lambda: dict(_CAMERA_ROTATION_DEG))
    # per track source: (w_score, w_len, bias) of the logistic model; a source without one keeps its raw score
    track_confidence: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(_TRACK_CONFIDENCE))
    raw: bool = False  # identity: raw track scores and heading sigmas (the fitting run)

    @staticmethod
    def identity() -> UncertaintyConfig:
        return UncertaintyConfig(heading_factor=1.0, track_confidence={}, raw=True)

    @staticmethod
    def _get(table: dict[str, float], key: str) -> float:
        return table.get(key, table.get("default", 0.0))


def center_sigmas(centers_cam: np.ndarray, method: np.ndarray, config: UncertaintyConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(along, across, shared) (T,) 1-sigmas in record units for centres (T, 3) found by ``method`` (T,) codes.

    Zero where the centre is unknown (method 0).
    """
    depth = np.linalg.norm(np.nan_to_num(centers_cam), axis=1)
    names = [CENTER_METHODS[m] for m in method]
    a = np.array([UncertaintyConfig._get(config.along_rel, n) for n in names])
    f = np.clip([UncertaintyConfig._get(config.shared_frac, n) for n in names], 0.0, 1.0)
    c = np.array([UncertaintyConfig._get(config.across_rel, n) for n in names])
    known = method > 0
    along = np.where(known, a * depth, 0.0)
    return along, np.where(known, c * depth, 0.0), np.sqrt(f) * along


def frame_to_frame_sigma(along: np.ndarray, across: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """(T,) 1-sigma per horizontal axis of a centre's error that is independent between frames: the along-ray
    part not shared by the object's frames, and the across part (averaged over the two directions)."""
    own = np.sqrt(np.maximum(along**2 - shared**2, 0.0))
    return np.sqrt((own**2 + across**2) / 2.0)


def heading_sigma(raw_sigma_deg: np.ndarray, config: UncertaintyConfig) -> np.ndarray:
    """Calibrated heading 1-sigma (T,) degrees from the heading estimator's own (capped at 180°)."""
    return np.minimum(raw_sigma_deg * (1.0 if config.raw else config.heading_factor), 180.0)


def camera_sigmas(method: str, valid: np.ndarray, config: UncertaintyConfig) -> tuple[np.ndarray, np.ndarray]:
    """(position_sigma, rotation_sigma_deg) (T,) of a camera track by ``method`` (its registry name).

    Invalid frames get large sigmas (their poses are interpolated, not measured).
    """
    pos = UncertaintyConfig._get(config.camera_position, method)
    rot = UncertaintyConfig._get(config.camera_rotation_deg, method)
    return np.where(valid, pos, 10.0 * max(pos, 0.1)), np.where(valid, rot, 30.0)


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
