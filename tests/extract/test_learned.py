"""Learned adapters offline: tiny randomly initialised real architectures and exact I/O contracts."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dsr.extract.learned import (
    build_orient_anything,
    camera_from_pi3_outputs,
    grounding_postprocess,
    orient_crop,
    orient_from_model,
    pi3_input_size,
    sam2_masks_from_logits,
)
from dsr.extract.registry import create_estimator
from dsr.scene.frames import look_at_c2w
from dsr.scene.record import Source


def test_pi3_input_size_rule() -> None:
    h, w = pi3_input_size(360, 640)
    assert h % 14 == 0 and w % 14 == 0 and h * w <= 255_000
    assert abs(w / h - 640 / 360) < 0.1
    # DSR's 378×672 setting is exactly within the limit (27×48 patches)
    assert pi3_input_size(378, 672) == (378, 672)


def test_camera_from_pi3_outputs_contract() -> None:
    """Fake π³ output honouring the contract: batch 1, c2w OpenCV poses, logits, local points from a known K."""
    n, h, w, f = 3, 28, 42, 30.0
    v, u = np.mgrid[0:h, 0:w].astype(float)
    z = np.full((h, w), 2.0)
    local = np.stack([(u + 0.5 - w / 2) / f * z, (v + 0.5 - h / 2) / f * z, z], -1)
    poses = np.stack([look_at_c2w(np.array([i * 0.1, -3.0, 1.0]), np.zeros(3)) for i in range(n)])
    out = {"local_points": np.broadcast_to(local, (1, n, h, w, 3)), "conf": np.full((1, n, h, w, 1), 4.0),
           "camera_poses": poses[None]}
    est = camera_from_pi3_outputs(out, (56, 84), Source("camera/pi3", "test"))
    assert est.trusted and est.track is not None
    np.testing.assert_allclose(est.track.c2w, poses, atol=1e-9)  # c2w kept as is, no inversion
    np.testing.assert_allclose(est.track.K[0, 0, 0], 2 * f, rtol=1e-6)  # focal rescaled to the video size
    np.testing.assert_allclose(est.track.K[0, 0, 2], 2 * (w / 2), rtol=1e-6)
    # the dense geometry travels with the camera, at the video's resolution, for the centres
    assert est.dense is not None and est.dense.local_points.shape == (n, 56, 84, 3)
    assert est.dense.valid.shape == (n, 56, 84) and est.dense.valid.all()


def test_dense_centres_are_the_mean_of_valid_points_under_the_mask() -> None:
    from dsr.extract.base import DensePoints
    from dsr.extract.lift import dense_centers
    from dsr.scene.record import CENTER_METHODS

    points = np.zeros((2, 2, 3, 3))
    points[0, 0, 0] = [1.0, 2.0, 4.0]
    points[0, 0, 1] = [3.0, 2.0, 6.0]
    points[0, 1, 1] = [100.0, 100.0, 100.0]  # under the mask but invalid (an edge or low confidence)
    valid = np.ones((2, 2, 3), bool)
    valid[0, 1, 1] = False
    mask = np.zeros((2, 3), bool)
    mask[0, :2] = mask[1, 1] = True
    res = dense_centers([mask, None], DensePoints(points, valid))
    np.testing.assert_allclose(res.centers_cam[0], [2.0, 2.0, 5.0])  # plain mean of the two valid points
    assert res.method[0] == CENTER_METHODS.index("dense_points") and res.sigma[0] == pytest.approx(1.0)
    assert np.isnan(res.centers_cam[1]).all() and res.method[1] == 0  # no mask → unknown


def test_pipeline_lifts_with_dense_points_when_the_camera_has_them(truck_clip) -> None:
    """The π³ path's glue without π³: a camera estimate carrying dense points (every pixel = the ball's centre
    in that frame's camera) must give the ball's world trajectory, coded dense_points, through smoothing."""
    from dataclasses import replace

    from dsr.extract.base import CameraEstimate, DensePoints
    from dsr.extract.clip import clip_from_arrays
    from dsr.extract.given import InitBox
    from dsr.extract.pipeline import ExtractConfig, extract_clip
    from dsr.scene.build import camera_track
    from dsr.scene.frames import invert_pose, project_points, transform_points
    from dsr.scene.record import CENTER_METHODS
    from dsr.video import VideoMeta

    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=12)
    idx = clip.frame_indices
    c2w = truck_clip.c2w[idx]
    ball_cam = transform_points(invert_pose(c2w), truck_clip.ball_world[idx])
    field = np.broadcast_to(ball_cam[:, None, None, :], (len(idx), clip.height, clip.width, 3)).copy()
    dense = DensePoints(field, np.ones(field.shape[:3], bool))
    camera = CameraEstimate(camera_track(truck_clip.K, c2w, Source("camera/pi3", "test")), True, "ok",
                            "up_to_scale", (), method="pi3", dense=dense)
    u, v = project_points(ball_cam[0], truck_clip.K)
    init = {"ball": InitBox("ball", np.array([u - 12, v - 12, u + 12, v + 12]), True)}
    meta = VideoMeta(path="synthetic", num_frames=len(truck_clip.frames), fps=truck_clip.fps, width=clip.width,
                     height=clip.height, duration_s=len(truck_clip.frames) / truck_clip.fps,
                     timestamps_s=np.arange(len(truck_clip.frames)) / truck_clip.fps)
    out = extract_clip(clip, meta, "synthetic.mp4", "synthetic", replace(ExtractConfig(), reject_cuts=False),
                       camera=camera, init_boxes=init)
    assert out.status == "ok", out.reason
    ball = out.record.objects[0]
    known = ball.center_known
    assert known.sum() >= len(idx) // 2
    assert set(ball.center_method[known]) <= {CENTER_METHODS.index("dense_points"), CENTER_METHODS.index(
        "interpolated")}
    assert ball.center_source.name == "lifting/dense-mean"
    np.testing.assert_allclose(ball.centers_world[known], truck_clip.ball_world[idx][known], atol=1e-6)


def test_grounding_postprocess_thresholds_and_nms() -> None:
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731 - inverse sigmoid for readable fixtures
    # caption "person. dog." → tokens: [CLS] person . dog . [SEP]
    spans = {"person": [1], "dog": [3]}
    q = np.full((4, 6), logit(0.01))
    q[0, 1] = logit(0.8)  # person, strong
    q[1, 1] = logit(0.7)  # person, overlapping box 0 → suppressed by NMS (IoU > 0.6)
    q[2, 3] = logit(0.36)  # dog just above box 0.35
    q[3, 3] = logit(0.34)  # dog below box 0.35 → dropped
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.51, 0.5, 0.2, 0.4], [0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]])
    dets = grounding_postprocess(q, boxes, spans, height=100, width=200)
    assert [d.phrase for d in dets] == ["person", "dog"]
    np.testing.assert_allclose(dets[0].box_xyxy, [80, 30, 120, 70])
    assert dets[0].score == pytest.approx(0.8)


def test_sam2_logits_binarised_at_zero() -> None:
    logits = np.array([[[[-0.1, 0.0, 0.2]]]])
    assert sam2_masks_from_logits(logits).tolist() == [[[False, False, True]]]


def test_orient_anything_tiny_dinov2_forward() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, patch_size=14, image_size=28)
    model = build_orient_anything(config, "croplargeEX2")
    frame = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    crop = orient_crop(frame, mask)
    assert crop.shape == (40, 40, 3)  # 20 px box + 10 px margins
    angles = orient_from_model(model, [crop, crop[:, ::-1]], "croplargeEX2", size=28)
    assert len(angles) == 2
    for a in angles:
        assert 0 <= a.azimuth_deg < 360 and -90 <= a.polar_deg < 90 and -90 <= a.rotation_deg < 90
        assert 0.0 <= a.confidence <= 1.0


@pytest.mark.weights
@pytest.mark.skipif(not os.environ.get("DSR_ORIENT_CKPT"), reason="set DSR_ORIENT_CKPT to a local dino_weight.pt")
def test_orient_anything_real_checkpoint_loads() -> None:  # pragma: no cover - needs weights
    model = create_estimator("orientation/orient-anything").load()
    assert model is not None


@pytest.mark.weights
@pytest.mark.gpu
@pytest.mark.skipif(not os.environ.get("DSR_PI3_CKPT"), reason="set DSR_PI3_CKPT to a local π³ checkpoint")
def test_pi3_real_checkpoint_smoke(truck_clip) -> None:  # pragma: no cover - needs weights and a GPU
    from dsr.extract.clip import clip_from_arrays

    est = create_estimator("camera/pi3").estimate(clip_from_arrays(truck_clip.frames, truck_clip.fps))
    assert est.track is not None


def test_grounding_dino_tiny_transformers_model_through_the_adapter() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from dsr.extract.learned import grounding_from_model

    torch.manual_seed(0)
    backbone = transformers.SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                                       image_size=128, out_features=["stage2", "stage3", "stage4"])
    text = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=64)
    config = transformers.GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=10, encoder_n_points=2, decoder_n_points=2, max_text_len=16, use_timm_backbone=False)
    model = transformers.GroundingDinoForObjectDetection(config).eval()
    ids = torch.tensor([[1, 5, 6, 7, 2]])  # [CLS] person . dog [SEP]-like
    spans = {"person": [1], "dog": [3]}
    dets = grounding_from_model(model, torch.rand(1, 3, 128, 128), ids, spans, 96, 160, box_threshold=0.0,
                                text_threshold=0.0, nms_iou=1.0)
    assert len(dets) == 10  # every query kept with zero thresholds and no suppression
    for d in dets:
        assert d.phrase in spans and 0.0 < d.score < 1.0
        assert d.box_xyxy.shape == (4,) and d.box_xyxy[2] >= d.box_xyxy[0] and d.box_xyxy[3] >= d.box_xyxy[1]
    # DSR's thresholds on an untrained model: sigmoid scores near 0.5 pass box 0.35; NMS can only remove
    strict = grounding_from_model(model, torch.rand(1, 3, 128, 128), ids, spans, 96, 160)
    assert len(strict) <= 10
