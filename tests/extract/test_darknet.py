"""Darknet networks built for OpenVINO (dsr.extract.darknet) against OpenCV's own Darknet reader.

OpenCV's DNN module is an independent implementation of the same file format and layers: a small random
network that exercises every supported layer kind, and the real YOLOv3-tiny on real and rendered frames,
must give the same output rows through both."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
cv2 = pytest.importorskip("cv2")

from dsr.extract.adapters import box_iou  # noqa: E402
from dsr.extract.darknet import (  # noqa: E402
    CLASS_PROB_FLOOR,
    DarknetError,
    YoloHead,
    build_model,
    compile_network,
    parse_cfg,
    yolo_rows,
)
from dsr.extract.detect import DetectorConfig, YoloDetector, detector_precision, network_input_size  # noqa: E402


def _section(kind: str, **keys: object) -> str:
    return "\n".join([f"[{kind}]", *(f"{k}={v}" for k, v in keys.items())]) + "\n"


# every supported layer kind: batch-normed and plain convolutions, both pools (stride 2, and stride 1 with
# darknet's end padding), upsample, a one-layer and a two-layer route, and two yolo heads
_CONV_BN = _section("convolutional", batch_normalize=1, filters=8, size=3, stride=1, pad=1, activation="leaky")
_HEAD_CONV = _section("convolutional", size=1, stride=1, pad=1, filters=14, activation="linear")
_ANCHORS = "4,6, 9,12, 20,18, 30,40"
SMALL_CFG = "\n".join([
    _section("net", width=64, height=64, channels=3),
    _CONV_BN,
    _section("maxpool", size=2, stride=2),
    _CONV_BN,
    _section("maxpool", size=2, stride=1),
    _HEAD_CONV,
    _section("yolo", mask="2,3", anchors=_ANCHORS, classes=2, num=4),
    _section("route", layers=-3),
    _section("upsample", stride=2),
    _section("route", layers="-1,0"),
    _HEAD_CONV,
    _section("yolo", mask="0,1", anchors=_ANCHORS, classes=2, num=4),
])


def _small_network(tmp_path: Path, seed: int = 0) -> tuple[Path, Path]:
    """SMALL_CFG with random weights: BN statistics with a positive variance, in Darknet's file layout."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    channels = 3
    for sec in parse_cfg(SMALL_CFG)[1:]:
        if sec["type"] == "route" and sec["layers"] == "-1,0":
            channels = 8 + 8
        if sec["type"] != "convolutional":
            continue
        f, k = int(sec["filters"]), int(sec["size"])
        if sec.get("batch_normalize") == "1":
            parts += [rng.normal(0, 0.1, f), rng.uniform(0.5, 1.5, f), rng.normal(0, 0.1, f), rng.uniform(0.5, 2, f)]
        else:
            parts.append(rng.normal(0, 0.1, f))
        parts.append(rng.normal(0, 0.3, f * channels * k * k))
        channels = f
    cfg, weights = tmp_path / "small.cfg", tmp_path / "small.weights"
    cfg.write_text(SMALL_CFG)
    header = np.array([0, 2, 0], np.int32).tobytes() + np.array([0], np.int64).tobytes()
    weights.write_bytes(header + np.concatenate(parts).astype(np.float32).tobytes())
    return cfg, weights


def _opencv_rows(cfg: Path, weights: Path, blob: np.ndarray) -> np.ndarray:
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(blob)
    return np.concatenate([o.reshape(-1, o.shape[-1]) for o in net.forward(net.getUnconnectedOutLayersNames())])


def _openvino_rows(cfg: Path, weights: Path, blob: np.ndarray) -> np.ndarray:
    model, heads = build_model(cfg, weights)
    result = compile_network(model, (blob.shape[2], blob.shape[3])).create_infer_request().infer({0: blob})
    return yolo_rows([result[h.output] for h in heads], heads, (blob.shape[2], blob.shape[3]))


@pytest.mark.parametrize("hw", [(64, 64), (96, 160)])
def test_small_network_matches_opencv_on_every_layer_kind(tmp_path: Path, hw: tuple[int, int]) -> None:
    cfg, weights = _small_network(tmp_path)
    blob = np.random.default_rng(1).uniform(0, 1, (1, 3, *hw)).astype(np.float32)
    ours, theirs = _openvino_rows(cfg, weights, blob), _opencv_rows(cfg, weights, blob)
    # two heads: (h/2 · w/2 + h · w) cells × 2 anchors, 5 + 2 columns
    assert ours.shape == theirs.shape == ((hw[0] // 2) * (hw[1] // 2) * 2 + hw[0] * hw[1] * 2, 7)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert (theirs[:, 5:] > 0).any()  # the class columns were compared on values, not only on zeros


def test_yolo_rows_decode_one_cell_by_hand() -> None:
    # one head, 2 x 3 grid, one anchor (10 x 20 input px), one class; the cell at row 1, column 2 is set
    raw = np.zeros((1, 6, 2, 3), np.float32)
    raw[0, :, 1, 2] = [0.0, 0.0, np.log(2.0), 0.0, 10.0, 10.0]  # centre of the cell, 2x anchor width
    rows = yolo_rows([raw], [YoloHead("head0", np.array([[10.0, 20.0]]))], (64, 96))
    assert rows.shape == (6, 6)
    obj = 1 / (1 + np.exp(-10.0))
    # cell (1, 2): centre x (2 + 0.5) / 3, y (1 + 0.5) / 2; width 2·10/96, height 20/64; class obj × obj
    np.testing.assert_allclose(rows[5], [2.5 / 3, 0.75, 20 / 96, 20 / 64, obj, obj * obj], rtol=1e-6)
    # every other cell: objectness 0.5, class 0.5 · 0.5 = 0.25 (above the floor of 0.2, so kept)
    np.testing.assert_allclose(rows[0], [0.5 / 3, 0.25, 10 / 96, 20 / 64, 0.5, 0.25], rtol=1e-6)


def test_class_probabilities_at_or_below_the_floor_are_zero() -> None:
    raw = np.zeros((1, 6, 1, 2), np.float32)
    logit = np.log(CLASS_PROB_FLOOR / (1 - CLASS_PROB_FLOOR))  # sigmoid = the floor
    raw[0, 4] = 20.0  # objectness ~1
    raw[0, 5] = [logit - 0.05, logit + 0.05]
    rows = yolo_rows([raw], [YoloHead("head0", np.array([[1.0, 1.0]]))], (32, 64))
    assert rows[0, 5] == 0.0
    assert rows[1, 5] == pytest.approx(1 / (1 + np.exp(-(logit + 0.05))), rel=1e-5)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda cfg: cfg.replace("[upsample]", "[shortcut]"), "[shortcut] layers are not supported"),
    (lambda cfg: cfg.replace("activation=leaky", "activation=mish", 1), "activation 'mish'"),
    (lambda cfg: cfg.replace("layers=-1,0", "layers=-1,20"), "route to a layer that does not exist"),
    (lambda cfg: cfg.replace("[net]", "width=3\n[net]"), "unreadable cfg line"),
])
def test_unsupported_or_broken_cfg_is_refused_in_one_line(tmp_path: Path, edit, message: str) -> None:
    cfg, weights = _small_network(tmp_path)
    cfg.write_text(edit(SMALL_CFG))
    with pytest.raises(DarknetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_model(cfg, weights)


def test_weights_that_do_not_fit_the_cfg_are_refused(tmp_path: Path) -> None:
    cfg, weights = _small_network(tmp_path)
    data = weights.read_bytes()
    weights.write_bytes(data[:-40])
    with pytest.raises(DarknetError, match="weights end early"):
        build_model(cfg, weights)
    weights.write_bytes(data + np.zeros(3, np.float32).tobytes())
    with pytest.raises(DarknetError, match="3 weights left over"):
        build_model(cfg, weights)


def _yolo_available() -> None:
    ok, reason = YoloDetector.available()
    if not ok:
        pytest.skip(reason)


def _same_detections(frame: np.ndarray) -> None:
    """The real YOLOv3-tiny through both backends: the same rows and the same detections."""
    from dsr.extract.detect import yolo_model_files

    cfg, weights, _ = yolo_model_files()
    h, w = frame.shape[:2]
    net_h, net_w = network_input_size(h, w, 416)
    blob = cv2.dnn.blobFromImage(frame, 1.0 / 255.0, (net_w, net_h), swapRB=False, crop=False)
    np.testing.assert_allclose(_openvino_rows(cfg, weights, blob), _opencv_rows(cfg, weights, blob), atol=1e-3)
    exact = DetectorConfig(classes=(), backend="openvino", precision="f32")
    fast = YoloDetector(exact).detect(frame)
    slow = YoloDetector(DetectorConfig(classes=(), backend="opencv")).detect(frame)
    assert [d.class_name for d in fast] == [d.class_name for d in slow]
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a.box_xyxy, b.box_xyxy, atol=0.1)
        assert a.score == pytest.approx(b.score, abs=1e-3)
    # once the pipeline waits for the detector it switches to more inference threads mid-clip: the detections
    # must not change by a bit, or they would depend on when the switch came (at either precision)
    for config in (exact, DetectorConfig(classes=(), backend="openvino", precision="bf16")):
        one = YoloDetector(config).detect(frame)
        wide = YoloDetector(replace(config, threads_alone=2)).detect(frame, alone=True)
        assert [(d.class_name, d.score, d.box_xyxy.tolist()) for d in wide] == \
            [(d.class_name, d.score, d.box_xyxy.tolist()) for d in one]
    # bfloat16 (where the CPU has it) moves rows a little: every clear detection is found at both precisions, the
    # same class in nearly the same box
    rough = YoloDetector(DetectorConfig(classes=(), backend="openvino", precision="bf16")).detect(frame)
    for mine, theirs in ((fast, rough), (rough, fast)):
        for d in mine:
            if d.score >= 0.45:
                assert max((box_iou(d.box_xyxy, e.box_xyxy) for e in theirs if e.class_name == d.class_name),
                           default=0.0) >= 0.9, (d.class_name, d.score)
    return fast


def test_yolo_backends_agree_on_a_rendered_world(tmp_path: Path) -> None:
    _yolo_available()
    from dsr.video import read_frames
    from dsr.world import WorldConfig, render_world

    render_world(WorldConfig(seed=3, camera_motion="static", width=320, height=240, duration_s=2.0), tmp_path,
                 progress=False)
    (frame,) = read_frames(next(tmp_path.glob("*.mp4")), [5])
    _same_detections(frame)


@pytest.mark.shared
@pytest.mark.parametrize("seq", ["parkour", "car-roundabout", "dog"])
def test_yolo_backends_agree_on_real_frames(shared_dir: Path, seq: str) -> None:
    _yolo_available()
    path = shared_dir / "realdata" / "davis2016_val" / "JPEGImages" / seq / "00010.jpg"
    frame = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert _same_detections(frame)  # something is found, so boxes and scores were compared


def test_the_precision_used_is_known() -> None:
    _yolo_available()
    import openvino

    has_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert detector_precision(DetectorConfig(precision="bf16")) == ("bf16" if has_bf16 else "f32")
    assert detector_precision(DetectorConfig(precision="f32")) == "f32"
    assert detector_precision(DetectorConfig(backend="opencv", precision="bf16")) == "f32"  # cv2.dnn: float32 only


def test_unknown_backend_is_refused() -> None:
    from dsr.errors import DsrError

    with pytest.raises(DsrError, match="unknown detector backend 'tensorrt'"):
        YoloDetector(DetectorConfig(backend="tensorrt"))  # type: ignore[arg-type]
    with pytest.raises(DsrError, match="threads must be >= 0"):
        DetectorConfig(threads=-1)
    with pytest.raises(DsrError, match="threads must be >= 0"):
        DetectorConfig(threads_alone=-2)
    with pytest.raises(DsrError, match="unknown detector precision 'fp8'"):
        DetectorConfig(precision="fp8")  # type: ignore[arg-type]
