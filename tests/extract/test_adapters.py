"""Adapters: pose conventions (round trips) and the learned models' post-processing against their I/O contracts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from dsr.extract.adapters import (
    ORIENT_MIN_CONFIDENCE,
    boxes_cxcywh_norm_to_xyxy_px,
    c2w_from_w2c,
    camera_track_from_w2c,
    decode_orient_head,
    depth_edge,
    intrinsics_from_points,
    nms,
    orient_angles_from_forward,
    orient_head_dim,
    pi3_center,
    pi3_postprocess,
    resize_nearest,
    sigmoid,
    w2c_from_c2w,
)
from dsr.scene.frames import agent_from_cam_orient_anything, make_pose, transform_points
from dsr.scene.record import Source

SRC = Source("test", "1")


def _random_pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_pose(Rotation.random(random_state=seed).as_matrix(), rng.normal(size=3) * 3)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_w2c_c2w_round_trip(seed: int) -> None:
    c2w = _random_pose(seed)
    w2c = w2c_from_c2w(c2w)
    np.testing.assert_allclose(c2w_from_w2c(w2c), c2w, atol=1e-12)
    # a world point seen by the camera: w2c maps it into camera coordinates, c2w maps it back
    p_world = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(transform_points(c2w, transform_points(w2c, p_world)), p_world, atol=1e-12)
    # pycolmap's cam_from_world().matrix() is 3×4: the adapter accepts it as is
    np.testing.assert_allclose(c2w_from_w2c(w2c[:3, :]), c2w, atol=1e-12)


def test_camera_track_from_w2c_matches_hand_pose() -> None:
    # camera at (1, 2, 3) looking along world +x: camera z = world x, camera x = world −y, camera y = world −z
    R_c2w = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    c2w = make_pose(R_c2w, [1.0, 2.0, 3.0])
    w2c = np.linalg.inv(c2w)[None, :3, :]
    track = camera_track_from_w2c(w2c.astype(np.float32), np.eye(3), SRC)
    np.testing.assert_allclose(track.c2w[0], c2w, atol=1e-6)
    # a point 5 m in front of the camera is at world (6, 2, 3)
    np.testing.assert_allclose(transform_points(track.c2w[0], np.array([0.0, 0.0, 5.0])), [6.0, 2.0, 3.0], atol=1e-6)
    assert track.source == SRC


def test_sigmoid_threshold_on_logits() -> None:
    # π³ conf is a logit: sigmoid(−2.2) = 0.0998 < 0.1 is invalid, sigmoid(−2.19) = 0.1007 valid
    assert sigmoid(np.array(-2.2)) < 0.1 < sigmoid(np.array(-2.19))


def test_depth_edge_hand_example() -> None:
    depth = np.ones((5, 6))
    depth[:, 3:] = 1.1  # a 10% step between columns 2 and 3
    edge = depth_edge(depth, rtol=0.03)
    assert edge[:, 2:4].all() and not edge[:, :2].any() and not edge[:, 4:].any()
    # below the tolerance: no edge
    assert not depth_edge(np.where(depth > 1, 1.02, 1.0), rtol=0.03).any()


def test_resize_nearest_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 7, 9, 3))
    ours = resize_nearest(x, (16, 20))
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(16, 20))
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy())


def test_pi3_postprocess_contract_and_center() -> None:
    """Fake π³ output with the exact shapes (B=1, N, H, W, …): logits, c2w poses, local points."""
    n, h, w = 2, 14, 28
    z = np.full((1, n, h, w), 2.0)
    z[:, :, :, 14:] = 4.0  # a depth step at column 14 → edge columns 13 and 14
    v, u = np.mgrid[0:h, 0:w]
    local = np.stack([(u - w / 2) / 20 * z[0, 0], (v - h / 2) / 20 * z[0, 0], z[0, 0]], -1)
    local = np.broadcast_to(local, (1, n, h, w, 3)).copy()
    conf = np.full((1, n, h, w, 1), 3.0)
    conf[0, 1, :2] = -5.0  # low confidence rows in frame 1
    poses = np.broadcast_to(np.eye(4), (1, n, 4, 4)).copy()
    out = pi3_postprocess(local, conf, poses, out_hw=(28, 56))
    assert out.local_points.shape == (n, 28, 56, 3) and out.valid.shape == (n, 28, 56) and out.c2w.shape == (n, 4, 4)
    assert not out.valid[:, :, 26:30].any()  # the edge, upsampled ×2
    assert out.valid[0, :4, :20].all() and not out.valid[1, :4].any()
    mask = np.zeros((28, 56), bool)
    mask[10:18, 4:12] = True
    center = pi3_center(out.local_points[0], out.valid[0], mask)
    np.testing.assert_allclose(center[2], 2.0)
    np.testing.assert_allclose(center, out.local_points[0][mask].mean(0))
    assert np.isnan(pi3_center(out.local_points[1], out.valid[1], np.zeros((28, 56), bool))).all()
    with pytest.raises(ValueError):
        pi3_postprocess(local[..., :2], conf, poses, out_hw=(28, 56))


def test_intrinsics_from_points_recovers_K() -> None:
    h, w, f, cx, cy = 30, 40, 50.0, 19.5, 14.5
    v, u = np.mgrid[0:h, 0:w].astype(float)
    z = 1.0 + np.random.default_rng(1).random((h, w))
    # pixel centres at +0.5 in the fit's convention
    pts = np.stack([(u + 0.5 - cx) / f * z, (v + 0.5 - cy) / f * z, z], -1)
    K = intrinsics_from_points(pts, np.ones((h, w), bool))
    np.testing.assert_allclose(K, [[f, 0, cx], [0, f, cy], [0, 0, 1]], atol=1e-6)


def test_grounding_boxes_and_nms() -> None:
    boxes = boxes_cxcywh_norm_to_xyxy_px(np.array([[0.5, 0.5, 0.2, 0.4]]), height=100, width=200)
    np.testing.assert_allclose(boxes, [[80, 30, 120, 70]])
    b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # IoU(0,1) = 90/110 = 0.82 > 0.6 → 1 dropped; IoU(3,0) = 0.5 ≤ 0.6 → both kept
    assert nms(b, scores, 0.6).tolist() == [3, 0, 2]


@pytest.mark.parametrize("layout", ["croplargeEX2", "ronormsigma1"])
def test_orient_head_decoding(layout: str) -> None:
    dim = orient_head_dim(layout)
    assert dim == {"croplargeEX2": 722, "ronormsigma1": 902}[layout]
    logits = np.zeros((2, dim))
    rot_bins = dim - 2 - 540
    logits[0, 200] = 5  # azimuth 200
    logits[0, 360 + 120] = 5  # polar 120 − 90 = 30
    logits[0, 540 + rot_bins // 2 + 10] = 5  # rotation +10
    logits[0, -2:] = [2.0, 0.0]  # confidence softmax = 0.881
    logits[1, -2:] = [0.0, 1.0]  # 0.269: rejected
    a, b = decode_orient_head(logits, layout)
    assert (a.azimuth_deg, a.polar_deg, a.rotation_deg) == (200.0, 30.0, 10.0)
    assert a.confidence == pytest.approx(np.exp(2) / (np.exp(2) + 1))
    assert a.accepted and not b.accepted and ORIENT_MIN_CONFIDENCE == 0.6
    with pytest.raises(ValueError):
        decode_orient_head(np.zeros((1, 722)), "ronormsigma1")


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 359.9), st.floats(-80, 80))
def test_orient_inverse_of_dsr_convention(az: float, polar: float) -> None:
    forward_cam = agent_from_cam_orient_anything(az, polar, 0.0)[0]
    az2, pol2 = orient_angles_from_forward(forward_cam)
    assert min(abs(az2 - az), 360 - abs(az2 - az)) < 1e-6
    if abs(np.cos(np.radians(az))) > 1e-9:  # facing sideways, the forward axis does not show the polar angle
        assert pol2 == pytest.approx(polar, abs=1e-6)


def test_orient_sideways_forward_reports_polar_zero() -> None:
    # az = 90: forward (−1, cos 90·sin 30, −cos 90·cos 30) ≈ (−1, 0, 0) for any polar, so polar is reported as 0
    az2, pol2 = orient_angles_from_forward(agent_from_cam_orient_anything(90.0, 30.0, 0.0)[0])
    assert az2 == pytest.approx(90.0) and pol2 == 0.0
