"""Darknet YOLO networks (``.cfg`` + ``.weights``) built as OpenVINO models.

OpenCV's DNN module reads Darknet files directly, but its CPU convolutions cost YOLOv3-tiny ~100 ms a
frame on one core, the largest single cost of extraction (docs/bench-extract.md §15). OpenVINO's CPU
plugin runs the same network in about half that at float32 precision, giving the same boxes and scores
to ~1e-4 (tests/extract/test_darknet.py compares the two on real and rendered frames). OpenVINO cannot read Darknet
files, so :func:`build_model` writes the graph op by op from the ``.cfg``, with each batch norm folded
into its convolution. Only the layer kinds of the YOLOv3(-tiny) family are supported: convolutional,
maxpool, upsample, route and yolo; anything else is refused by name.

:func:`yolo_rows` decodes the raw head maps into the rows OpenCV's Darknet importer outputs, so one
decoder (:func:`dsr.extract.detect.decode_yolo_rows`) serves both backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsr.errors import DsrError

LEAKY_SLOPE = 0.1  # darknet's "leaky" activation
BATCH_NORM_EPS = 1e-5
# OpenCV's region layer zeroes class probabilities (objectness x class) at or below this; copied so that both
# backends give the same rows (any value under the detector's score threshold gives the same detections)
CLASS_PROB_FLOOR = 0.2


class DarknetError(DsrError):
    """A Darknet file this module cannot turn into a network (one line naming the problem)."""


@dataclass(frozen=True, eq=False)
class YoloHead:
    """One yolo layer: the name of the model output that feeds it and its anchors (A, 2) in input pixels."""

    output: str
    anchors: np.ndarray


def parse_cfg(text: str) -> list[dict[str, str]]:
    """The sections of a Darknet ``.cfg`` in order, each a dict with its ``type`` ("net", "convolutional", …)."""
    sections: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append({"type": line.strip("[]").strip()})
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
        else:
            raise DarknetError(f"unreadable cfg line: {raw.strip()!r}")
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise DarknetError("a Darknet cfg starts with a [net] section")
    return sections


def read_weights(path: Path) -> np.ndarray:
    """The float32 parameters of a ``.weights`` file, after its header (version, images seen)."""
    raw = Path(path).read_bytes()
    if len(raw) < 16:
        raise DarknetError(f"{path}: too short for a Darknet weights file")
    major, minor, _ = np.frombuffer(raw[:12], np.int32)
    header = 12 + (8 if major * 10 + minor >= 2 and major < 1000 else 4)  # images seen: int64 from version 0.2
    return np.frombuffer(raw[header:], np.float32)


def build_model(cfg_path: Path, weights_path: Path) -> tuple[Any, list[YoloHead]]:
    """(OpenVINO model with a dynamic (1, 3, H, W) float input in [0, 1] RGB, its yolo heads).

    H and W must be multiples of 32. The model's outputs are the raw maps (1, A·(5 + C), h, w) that feed the
    yolo layers, in the cfg's order."""
    import openvino as ov
    import openvino.opset13 as ops

    sections = parse_cfg(Path(cfg_path).read_text())
    params = read_weights(weights_path)
    pos = 0

    def take(n: int) -> np.ndarray:
        nonlocal pos
        if pos + n > len(params):
            raise DarknetError(f"{weights_path}: weights end early (need {pos + n} values, have {len(params)})")
        out = params[pos:pos + n]
        pos += n
        return out

    image = ops.parameter([1, 3, -1, -1], np.float32, name="image")
    node: Any = image
    channels = 3
    layers: list[tuple[Any, int]] = []  # output node and channels per cfg layer (for routes)
    heads: list[tuple[Any, np.ndarray]] = []
    for index, sec in enumerate(sections[1:]):
        kind = sec["type"]
        if kind == "convolutional":
            filters, size, stride = int(sec["filters"]), int(sec["size"]), int(sec.get("stride", 1))
            pad = size // 2 if int(sec.get("pad", 0)) else int(sec.get("padding", 0))
            if int(sec.get("batch_normalize", 0)):
                beta, gamma, mean, var = (take(filters) for _ in range(4))
                kernel = take(filters * channels * size * size).reshape(filters, channels, size, size)
                scale = gamma / np.sqrt(var + BATCH_NORM_EPS)
                kernel, bias = kernel * scale[:, None, None, None], beta - mean * scale
            else:
                bias = take(filters)
                kernel = take(filters * channels * size * size).reshape(filters, channels, size, size)
            node = ops.convolution(node, ops.constant(kernel.astype(np.float32)), [stride, stride], [pad, pad],
                                   [pad, pad], [1, 1])
            node = ops.add(node, ops.constant(bias.astype(np.float32).reshape(1, filters, 1, 1)))
            activation = sec.get("activation", "linear")
            if activation == "leaky":
                node = ops.prelu(node, ops.constant(np.array([LEAKY_SLOPE], np.float32)))
            elif activation != "linear":
                raise DarknetError(f"layer {index}: activation {activation!r} is not supported")
            channels = filters
        elif kind == "maxpool":
            size, stride = int(sec["size"]), int(sec["stride"])
            # darknet pads size - 1 at the end, so a stride-1 pool keeps the map's size
            extra = max(0, size - stride)
            node = ops.max_pool(node, [stride, stride], [1, 1], [0, 0], [extra, extra], [size, size])
            node = node.output(0)
        elif kind == "upsample":
            factor = float(sec.get("stride", 2))
            node = ops.interpolate(node, ops.constant(np.array([factor, factor], np.float32)), "nearest", "scales",
                                   axes=ops.constant(np.array([2, 3], np.int64)), nearest_mode="floor",
                                   coordinate_transformation_mode="asymmetric")
        elif kind == "route":
            picks = [int(x) for x in sec["layers"].split(",")]
            picks = [p if p >= 0 else index + p for p in picks]
            if any(not 0 <= p < index for p in picks):
                raise DarknetError(f"layer {index}: route to a layer that does not exist ({sec['layers']})")
            node = layers[picks[0]][0] if len(picks) == 1 else ops.concat([layers[p][0] for p in picks], axis=1)
            channels = sum(layers[p][1] for p in picks)
        elif kind == "yolo":
            mask = [int(x) for x in sec["mask"].split(",")]
            anchors = np.array([float(x) for x in sec["anchors"].split(",")]).reshape(-1, 2)[mask]
            heads.append((node, anchors))
        else:
            raise DarknetError(f"layer {index}: [{kind}] layers are not supported")
        layers.append((node, channels))
    if pos != len(params):
        raise DarknetError(f"{weights_path}: {len(params) - pos} weights left over (cfg and weights do not match)")
    if not heads:
        raise DarknetError(f"{cfg_path}: no [yolo] layer")
    model = ov.Model([ops.result(head) for head, _ in heads], [image], "darknet-yolo")
    out_heads = [YoloHead(f"head{k}", anchors) for k, (_, anchors) in enumerate(heads)]
    for out, head in zip(model.outputs, out_heads, strict=True):
        out.get_tensor().set_names({head.output})
    return model, out_heads


def compile_network(model: Any, net_hw: tuple[int, int], threads: int = 0, precision: str = "f32") -> Any:
    """``model`` (from :func:`build_model`) compiled for OpenVINO's CPU plugin at one input size (H, W).

    A static shape compiles to faster kernels than the dynamic one, and every frame of a video has the same
    size. ``precision`` is pinned, never left to OpenVINO's default: "f32" gives the same rows on every machine;
    "bf16" runs in bfloat16 where the CPU has bfloat16 units (about half the time) and in float32 elsewhere.
    ``threads`` 0: OpenVINO's default (every core)."""
    import openvino

    model = model.clone()
    model.reshape([1, 3, *net_hw])
    settings: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
    if threads > 0:
        settings["INFERENCE_NUM_THREADS"] = threads
    return openvino.Core().compile_model(model, "CPU", settings)


def yolo_rows(maps: list[np.ndarray], heads: list[YoloHead], net_hw: tuple[int, int]) -> np.ndarray:
    """Raw head maps → rows (N, 5 + C) as OpenCV's Darknet importer writes them.

    Per cell (row-major) and anchor: centre x, y and width, height relative to the network input, the
    objectness, then objectness × class probability per class (0 where at most ``CLASS_PROB_FLOOR``)."""
    rows = []
    for raw, head in zip(maps, heads, strict=True):
        _, depth, gh, gw = raw.shape
        na = len(head.anchors)
        m = raw.reshape(na, depth // na, gh, gw).transpose(2, 3, 0, 1).astype(np.float64)  # (gh, gw, A, 5 + C)
        sig = 1.0 / (1.0 + np.exp(-m))
        gy, gx = np.mgrid[0:gh, 0:gw]
        cx = (gx[..., None] + sig[..., 0]) / gw
        cy = (gy[..., None] + sig[..., 1]) / gh
        bw = np.exp(m[..., 2]) * head.anchors[:, 0] / net_hw[1]
        bh = np.exp(m[..., 3]) * head.anchors[:, 1] / net_hw[0]
        obj = sig[..., 4]
        prob = sig[..., 5:] * obj[..., None]
        prob = np.where(prob > CLASS_PROB_FLOOR, prob, 0.0)
        rows.append(np.concatenate([np.stack([cx, cy, bw, bh, obj], -1), prob], -1).reshape(-1, depth // na))
    return np.concatenate(rows).astype(np.float32)
