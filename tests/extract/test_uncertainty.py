"""The calibrated error model of extracted records: sigmas from depth and method, confidences from tables."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dsr.extract.lift import has_class_height
from dsr.extract.uncertainty import (
    UncertaintyConfig,
    camera_focal_range,
    camera_scale_drift,
    camera_scale_jitter,
    camera_scale_reset,
    camera_sigma_key,
    camera_sigmas,
    center_sigmas,
    heading_sigma,
    sigma_keys,
    track_confidence,
)
from dsr.scene.record import CENTER_METHODS


def test_center_sigmas_scale_with_depth_and_method() -> None:
    config = UncertaintyConfig(along_rel={"default": 0.5, "sfm_points": 0.1}, shared_frac={"default": 0.64},
                               across_rel={"default": 0.05})
    centers = np.array([[0.0, 0.0, 2.0], [3.0, 0.0, 4.0], [np.nan] * 3])
    method = np.array([CENTER_METHODS.index("size_prior"), CENTER_METHODS.index("sfm_points"), 0], np.uint8)
    along, across, shared = center_sigmas(centers, method, config)
    np.testing.assert_allclose(along, [1.0, 0.5, 0.0])  # 0.5·2 (default), 0.1·5 (sfm, |c| = 5), unknown
    np.testing.assert_allclose(across, [0.1, 0.25, 0.0])
    np.testing.assert_allclose(shared, [0.8, 0.4, 0.0])  # √0.64 of along


def _path(steps: list[list[float]], forward: list[float]) -> np.ndarray:
    """c2w poses (T, 4, 4) along the given position steps, every camera's optical axis (z) along ``forward``."""
    z = np.asarray(forward, np.float64) / np.linalg.norm(forward)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    rot = np.stack([x, np.cross(z, x), z], axis=1)
    positions = np.concatenate([[[0.0, 0.0, 0.0]], np.cumsum(steps, axis=0)])
    c2w = np.tile(np.eye(4), (len(positions), 1, 1))
    c2w[:, :3, :3] = rot
    c2w[:, :3, 3] = positions
    return c2w


def test_a_vo_dolly_takes_the_forward_centre_keys_and_falls_back_to_vo() -> None:
    from dsr.extract.uncertainty import center_camera_key

    config = UncertaintyConfig()
    dolly = _path([[0.0, 0.0, 1.0]] * 3 + [[1.0, 0.0, 0.0]], forward=[0.0, 0.0, 1.0])  # 3 of 4 length units forward
    sideways = _path([[1.0, 0.0, 0.0]] * 4, forward=[0.0, 0.0, 1.0])
    valid = np.ones(5, bool)
    assert center_camera_key("camera/vo", dolly, valid, config) == "camera/vo/forward"
    assert center_camera_key("camera/vo", sideways, valid, config) == "camera/vo"
    assert center_camera_key("camera/pycolmap", dolly, valid, config) == "camera/pycolmap"  # SfM keeps its scale
    # a path that never moves, or one valid frame: no share, the method's own keys
    assert center_camera_key("camera/vo", _path([[0.0, 0.0, 0.0]] * 4, [0.0, 0.0, 1.0]), valid, config) == "camera/vo"
    assert center_camera_key("camera/vo", dolly, np.eye(5, dtype=bool)[0], config) == "camera/vo"
    assert sigma_keys("size_prior", "camera/vo/forward", True) == (
        "size_prior/vo/forward/class", "size_prior/vo/forward", "size_prior/vo/class", "size_prior/vo", "size_prior",
        "default")
    table = UncertaintyConfig(along_rel={"default": 0.5, "size_prior/vo/class": 0.6, "size_prior/vo/forward": 5.0})
    centers = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]])
    method = np.array([CENTER_METHODS.index("size_prior"), CENTER_METHODS.index("interpolated")], np.uint8)
    along, _, _ = center_sigmas(centers, method, table, "camera/vo/forward", class_known=True)
    np.testing.assert_allclose(along, [10.0, 1.0])  # size_prior/vo/forward 5·2; interpolated → default 0.5·2


def test_center_sigmas_take_the_most_specific_key_of_method_camera_and_class() -> None:
    config = UncertaintyConfig(along_rel={"default": 0.5, "size_prior": 1.0, "size_prior/vo": 2.0,
                                          "size_prior/vo/unknown": 3.0},
                               shared_frac={"default": 0.0, "size_prior/vo/unknown": 1.0},
                               across_rel={"default": 0.1, "size_prior/rotation/class": 0.01})
    centers = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]])
    method = np.array([CENTER_METHODS.index("size_prior"), CENTER_METHODS.index("interpolated")], np.uint8)
    along, across, shared = center_sigmas(centers, method, config, "camera/vo", class_known=False)
    np.testing.assert_allclose(along, [6.0, 1.0])  # size_prior/vo/unknown 3·2; interpolated → default 0.5·2
    np.testing.assert_allclose(shared, [6.0, 0.0])
    along, _, _ = center_sigmas(centers, method, config, "camera/vo", class_known=True)
    np.testing.assert_allclose(along, [4.0, 1.0])  # no size_prior/vo/class: size_prior/vo
    along, across, _ = center_sigmas(centers, method, config, "camera/rotation", class_known=True)
    np.testing.assert_allclose(along, [2.0, 1.0])  # no size_prior/rotation entry: size_prior
    np.testing.assert_allclose(across, [0.02, 0.2])
    assert sigma_keys("size_prior", "camera/pycolmap", False) == (
        "size_prior/pycolmap/unknown", "size_prior/pycolmap", "size_prior", "default")


def test_only_classes_with_a_height_count_as_known() -> None:
    assert has_class_height("person") and has_class_height("car")
    assert not has_class_height("moving object")  # the generic height of an unknown class
    assert not has_class_height("cyclist")  # a user's phrase the size prior has no height for


def test_track_confidence_is_the_fitted_logistic_model() -> None:
    config = UncertaintyConfig(track_confidence={"grounding/motion+tracking/iou": (4.0, 1.0, -2.0 - np.log(3.0))})
    scores = np.array([0.0, 0.5, 1.0, 0.5])
    visible = np.array([True, True, True, False])  # 3 visible frames: the length term cancels ln 3
    got = track_confidence(scores, visible, "grounding/motion+tracking/iou", config)
    expected = 1.0 / (1.0 + np.exp(-np.array([-2.0, 0.0, 2.0])))
    np.testing.assert_allclose(got, [*expected, 0.0])  # invisible → 0
    # a source without a model, and the identity config (fitting runs), keep the raw score
    np.testing.assert_allclose(track_confidence(scores, visible, "other", config), [0.0, 0.5, 1.0, 0.0])
    raw = UncertaintyConfig.identity()
    np.testing.assert_allclose(track_confidence(scores, visible, "grounding/motion+tracking/iou", raw),
                               [0.0, 0.5, 1.0, 0.0])


def test_default_mover_confidences_are_calibrated_and_detector_scores_stay_raw() -> None:
    from dsr.qa.rules import QAConfig

    config = UncertaintyConfig()
    visible = np.ones(20, bool)
    # a background mover scores 1.0 wherever it is seen; on the fitting worlds 20% of such frames were on an
    # object, so a QA naming it must abstain at the default threshold
    bg = track_confidence(np.ones(20), visible, "grounding/background+tracking/iou", config)
    assert np.all(bg < QAConfig().min_track_confidence) and np.all(bg > 0.0)
    # the model is monotone: a better raw score never lowers the confidence
    motion = [float(track_confidence(np.full(20, s), visible, "grounding/motion+tracking/iou", config)[0])
              for s in (0.2, 0.6, 1.0)]
    assert motion == sorted(motion)
    # the COCO detector keeps its own score (the renders' fit does not transfer to real video)
    scores = np.linspace(0.3, 0.95, 20)
    np.testing.assert_allclose(track_confidence(scores, visible, "grounding/yolov3-tiny+tracking/dense", config),
                               scores)


def test_heading_and_camera_sigmas() -> None:
    config = UncertaintyConfig(heading_factor=2.0, heading_floor_deg=0.0,
                               camera_position={"default": 0.05, "camera/rotation": 0.01},
                               camera_rotation_deg={"default": 1.5})
    np.testing.assert_allclose(heading_sigma(np.array([10.0, 100.0]), config), [20.0, 180.0])  # capped
    np.testing.assert_allclose(heading_sigma(np.array([10.0]), UncertaintyConfig.identity()), [10.0])
    # the floor adds in quadrature: hypot(2·15, 40) = 50; a frame without a heading (raw 0) keeps 0
    floored = replace(config, heading_floor_deg=40.0)
    np.testing.assert_allclose(heading_sigma(np.array([15.0, 0.0, 100.0]), floored), [50.0, 0.0, 180.0])
    assert UncertaintyConfig.identity().heading_floor_deg == 0.0
    pos, rot = camera_sigmas("camera/rotation", np.array([True, False]), config)
    assert pos[0] == pytest.approx(0.01) and pos[1] > pos[0] and rot[0] == pytest.approx(1.5) and rot[1] == 30.0
    pos, _ = camera_sigmas("camera/vo", np.array([True]), config)
    assert pos[0] == pytest.approx(0.05)


def test_camera_scale_drift_by_key() -> None:
    config = UncertaintyConfig(camera_scale_drift={"default": 0.3, "camera/vo": 0.12, "camera/pycolmap": 0.6})
    assert camera_scale_drift("camera/vo", config) == 0.12
    assert camera_scale_drift("camera/pycolmap/tight", config) == 0.6  # falls back to its method
    assert camera_scale_drift("camera/pi3", config) == 0.3  # an estimator without a fit: the pooled value
    assert camera_scale_drift("camera/rotation", config) == 0.0  # no path, nothing to drift
    # the shipped fit: VO and tight SfM drift alike (two poor orbits pass the tight gate), plain SfM far more
    fitted = UncertaintyConfig()
    assert camera_scale_drift("camera/pycolmap", fitted) > camera_scale_drift("camera/vo", fitted) > 0
    # per step: VO re-estimates its scale every step, a healthy SfM path does not; no path, no jitter
    assert camera_scale_jitter("camera/vo", fitted) > camera_scale_jitter("camera/pycolmap/tight", fitted) > 0
    assert camera_scale_jitter("camera/rotation", fitted) == 0.0
    # the reset at stops: VO only (SfM's bundle adjustment ties its stretches together; rotation has no path)
    assert camera_scale_reset("camera/vo", fitted) > camera_scale_jitter("camera/vo", fitted)
    assert camera_scale_reset("camera/pycolmap/tight", fitted) == camera_scale_reset("camera/rotation", fitted) == 0.0


def test_focal_range_by_hand() -> None:
    config = UncertaintyConfig(lens_focal_range=(0.5, 1.87), lent_focal_range=(0.8, 1.4))
    # VO under the guess (1.2 x a 320-px long side = 384 px): the lenses' range over the guess
    lo, hi = camera_focal_range("camera/vo", {"focal_guessed": 1.0}, 384.0, 320, config)
    assert lo == pytest.approx(160 / 384) and hi == pytest.approx(1.87 * 320 / 384)
    # a guess outside the lenses' range still holds its own focal length (lo <= 1 <= hi)
    assert camera_focal_range("camera/vo", {"focal_guessed": 1.0}, 100.0, 320, config) == (1.0, pytest.approx(5.984))
    # borrowed from a partial SfM; given by the user (neither flag); another method, whatever it reports
    assert camera_focal_range("camera/vo", {"focal_guessed": 0.0, "focal_lent": 1.0}, 300.0, 320, config) == (0.8, 1.4)
    assert camera_focal_range("camera/vo", {"focal_guessed": 0.0}, 300.0, 320, config) == (1.0, 1.0)
    for key in ("camera/pycolmap", "camera/pycolmap/tight", "camera/rotation"):
        assert camera_focal_range(key, {"focal_guessed": 1.0, "focal_lent": 1.0}, 384.0, 320, config) == (1.0, 1.0)


def test_tight_sfm_key_needs_a_pinhole_compact_and_smooth_reconstruction() -> None:
    config = UncertaintyConfig(tight_sfm_radial_k=(-0.01, 0.02), tight_sfm_max_extent_depths=3.0,
                               tight_sfm_max_jump_share=0.4)
    healthy = {"radial_k": -0.006, "camera_extent_depths": 2.1, "jump_share": 0.2}
    assert camera_sigma_key("camera/pycolmap", healthy, config) == "camera/pycolmap/tight"
    # a faint pincushion with the focal length kept is healthy; barrel distortion of the same size is the
    # shortened-focal trade of a poor reconstruction
    assert camera_sigma_key("camera/pycolmap", dict(healthy, radial_k=0.013), config) == "camera/pycolmap/tight"
    assert camera_sigma_key("camera/pycolmap", dict(healthy, radial_k=0.02), config) == "camera/pycolmap/tight"
    assert camera_sigma_key("camera/pycolmap", dict(healthy, radial_k=-0.013), config) == "camera/pycolmap"
    assert camera_sigma_key("camera/pycolmap", dict(healthy, radial_k=0.0306), config) == "camera/pycolmap"
    assert camera_sigma_key("camera/pycolmap", dict(healthy, radial_k=float("nan")), config) == "camera/pycolmap"
    # a stretched path, a jumpy one, or stats that do not say: the method's own sigmas
    assert camera_sigma_key("camera/pycolmap", dict(healthy, camera_extent_depths=4.4), config) == "camera/pycolmap"
    assert camera_sigma_key("camera/pycolmap", dict(healthy, jump_share=0.54), config) == "camera/pycolmap"
    assert camera_sigma_key("camera/pycolmap", {}, config) == "camera/pycolmap"
    # only SfM reports these numbers; VO and the rotation check keep their keys whatever their stats say
    assert camera_sigma_key("camera/vo", healthy, config) == "camera/vo"


def test_tight_camera_sigmas_fall_back_to_the_method_then_default() -> None:
    config = UncertaintyConfig(camera_position={"default": 0.1, "camera/pycolmap": 0.8, "camera/pycolmap/tight": 0.02},
                               camera_rotation_deg={"default": 6.0, "camera/pycolmap": 7.9})
    pos, rot = camera_sigmas("camera/pycolmap/tight", np.array([True]), config)
    assert pos[0] == pytest.approx(0.02) and rot[0] == pytest.approx(7.9)  # no tight rotation entry: the method's
    pos, rot = camera_sigmas("camera/vo/tight", np.array([True]), config)
    assert pos[0] == pytest.approx(0.1) and rot[0] == pytest.approx(6.0)


def test_a_new_fit_changes_the_settings_hash() -> None:
    from dsr.extract.pipeline import ExtractConfig, config_fingerprint

    base = ExtractConfig()
    refit = replace(base, uncertainty=replace(base.uncertainty, heading_factor=base.uncertainty.heading_factor + 1))
    assert config_fingerprint(base)[1] != config_fingerprint(refit)[1]


def test_frame_to_frame_sigma_leaves_out_the_shared_part() -> None:
    from dsr.extract.uncertainty import frame_to_frame_sigma

    # own along = √(0.5² − 0.3²) = 0.4; with across 0.2 per axis: √((0.16 + 0.04) / 2)
    np.testing.assert_allclose(frame_to_frame_sigma(np.array([0.5]), np.array([0.2]), np.array([0.3])),
                               [np.sqrt(0.1)])
    # all shared: only the across part moves a centre between frames
    np.testing.assert_allclose(frame_to_frame_sigma(np.array([0.5]), np.array([0.2]), np.array([0.5])),
                               [np.sqrt(0.02)])
