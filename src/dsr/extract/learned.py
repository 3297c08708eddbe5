"""Learned adapters: π³, Grounding DINO, SAM2, Orient Anything — enabled only with local checkpoints.

Nothing here downloads weights: each class is *available* only when its checkpoint env var points at an
existing local path and its packages import (see :class:`dsr.extract.base.Estimator`). Loaders pass
``local_files_only=True``. The conversions into record conventions and DSR's post-processing are pure
functions in :mod:`dsr.extract.adapters`, tested against each model's I/O contract; here are the model
calls and the glue.

Status (honest): the Orient Anything network (DINOv2 + MLP head) and transformers' Grounding DINO are built
and run at tiny random sizes in the tests, through the same post-processing the adapters use; π³ and SAM2
have only their contracts tested (no package ``pi3`` on PyPI; SAM2 video propagation is not wired yet).
``dsr extract --backend pi3`` uses :class:`Pi3Camera` for the camera and its dense points for the centres
(:func:`dsr.extract.lift.dense_centers`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsr.extract.adapters import (
    GDINO_BOX_THRESHOLD,
    GDINO_NMS_IOU,
    GDINO_TEXT_THRESHOLD,
    OrientAngles,
    boxes_cxcywh_norm_to_xyxy_px,
    decode_orient_head,
    intrinsics_from_points,
    nms,
    pi3_postprocess,
    sigmoid,
)
from dsr.extract.base import Attempt, CameraEstimate, DensePoints, Estimator, VideoClip
from dsr.scene.build import camera_track

PI3_PIXEL_LIMIT = 255_000


# --------------------------------------------------------------------------------------------------
# π³


def pi3_input_size(height: int, width: int, pixel_limit: int = PI3_PIXEL_LIMIT) -> tuple[int, int]:
    """π³ loader's size rule: sides multiples of 14, shrunk until H·W ≤ ``pixel_limit`` → (H', W')."""
    scale = np.sqrt(pixel_limit / (height * width))
    k, m = round(width * scale / 14), round(height * scale / 14)
    while k * m * 14 * 14 > pixel_limit:
        if k / m > width / height:
            k -= 1
        else:
            m -= 1
    return max(1, m) * 14, max(1, k) * 14


def camera_from_pi3_outputs(outputs: dict[str, Any], out_hw: tuple[int, int], source: Any) -> CameraEstimate:
    """π³ output dict (``local_points``, ``conf`` logits, ``camera_poses`` c2w; batch 1) → CameraEstimate.

    Intrinsics come from a least-squares fit of pixel coordinates to the x/z, y/z of valid local points
    (π³ outputs no K), rescaled to the video resolution.
    """
    lp = np.asarray(outputs["local_points"], dtype=np.float64)[0]
    conf = np.asarray(outputs["conf"], dtype=np.float64)[0]
    poses = np.asarray(outputs["camera_poses"], dtype=np.float64)[0]
    h_in, w_in = lp.shape[1:3]
    valid_in = sigmoid(conf[..., 0]) > 0.1
    Ks = []
    for f in range(len(lp)):
        K = intrinsics_from_points(lp[f], valid_in[f])
        Ks.append(np.diag([out_hw[1] / w_in, out_hw[0] / h_in, 1.0]) @ K)
    frames = pi3_postprocess(lp, conf, poses, out_hw)
    valid = frames.valid.reshape(len(lp), -1).mean(axis=1) > 0.05
    track = camera_track(np.median(np.stack(Ks), axis=0), frames.c2w, source, valid=valid,
                         confidence=np.where(valid, 0.95, 0.0))
    reason = "ok" if valid.all() else f"{(~valid).sum()} frames with almost no confident points"
    return CameraEstimate(track, bool(valid.mean() >= 0.8), reason, "up_to_scale",
                          (Attempt("pi3", bool(valid.mean() >= 0.8), reason, 0.0),), method="pi3",
                          dense=DensePoints(local_points=frames.local_points, valid=frames.valid))


class Pi3Camera(Estimator):
    """π³ (original Pi3) on the sampled frames; needs the source package ``pi3`` and DSR_PI3_CKPT."""

    name = "camera/pi3"
    role = "camera"
    requires = ("torch", "pi3")
    checkpoint_env = "DSR_PI3_CKPT"

    def __init__(self, config: object = None, focal_px: float | None = None, device: str = "cuda") -> None:
        # the camera estimators' uniform keywords (registry); π³ estimates its own intrinsics
        del config, focal_px
        self.device = device

    def estimate(self, clip: VideoClip) -> CameraEstimate:  # pragma: no cover - needs weights
        import torch
        from pi3.models.pi3 import Pi3  # type: ignore[import-not-found]

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = Pi3.from_pretrained(os.environ[self.checkpoint_env], local_files_only=True).to(self.device).eval()
        h, w = pi3_input_size(clip.height, clip.width)
        import cv2

        imgs = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LANCZOS4) for f in clip.frames_rgb])
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255)[None].to(self.device)
        with torch.no_grad():
            out = model(x)
        return camera_from_pi3_outputs({k: v.float().cpu().numpy() for k, v in out.items()},
                                       (clip.height, clip.width), self.source)


# --------------------------------------------------------------------------------------------------
# Grounding DINO


@dataclass(frozen=True)
class Grounding:
    box_xyxy: np.ndarray
    score: float
    phrase: str


def grounding_postprocess(token_logits: np.ndarray, boxes_cxcywh: np.ndarray, phrase_tokens: dict[str, list[int]],
                          height: int, width: int, *, box_threshold: float = GDINO_BOX_THRESHOLD,
                          text_threshold: float = GDINO_TEXT_THRESHOLD, nms_iou: float = GDINO_NMS_IOU
                          ) -> list[Grounding]:
    """Grounding DINO outputs for one image → detections, as DSR uses them (dsr-paper §4).

    token_logits: (Q, L) raw logits of each query over the caption's tokens; boxes_cxcywh: (Q, 4)
    normalised; phrase_tokens: each class phrase → its token positions in the caption. A query is kept
    when its best token probability exceeds ``box_threshold``; its phrase is the class whose tokens
    (above ``text_threshold``) carry the most probability; then NMS at ``nms_iou``.
    """
    prob = sigmoid(token_logits)
    keep = prob.max(axis=1) > box_threshold
    boxes = boxes_cxcywh_norm_to_xyxy_px(np.asarray(boxes_cxcywh)[keep], height, width)
    prob = prob[keep]
    dets: list[Grounding] = []
    for q in range(len(prob)):
        best, best_mass = None, 0.0
        for phrase, toks in phrase_tokens.items():
            p = prob[q, toks]
            mass = float(p[p > text_threshold].sum())
            if mass > best_mass:
                best, best_mass = phrase, mass
        if best is not None:
            dets.append(Grounding(boxes[q], float(prob[q].max()), best))
    if not dets:
        return []
    kept = nms(np.stack([d.box_xyxy for d in dets]), np.array([d.score for d in dets]), nms_iou)
    return [dets[i] for i in kept]


def grounding_from_model(model: Any, pixel_values: Any, input_ids: Any, phrase_tokens: dict[str, list[int]],
                         height: int, width: int, **thresholds: float) -> list[Grounding]:
    """Run a transformers ``GroundingDinoForObjectDetection`` and post-process as DSR does.

    pixel_values: (1, 3, h, w) float tensor; input_ids: (1, L) caption tokens; phrase_tokens: class phrase →
    token positions in ``input_ids``. Output logits (1, Q, max_text_len) are cut to the caption's L tokens.
    """
    import torch

    ids = input_ids
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_ids=ids, attention_mask=torch.ones_like(ids),
                    token_type_ids=torch.zeros_like(ids))
    length = ids.shape[1]
    return grounding_postprocess(out.logits[0, :, :length].float().numpy(), out.pred_boxes[0].float().numpy(),
                                 phrase_tokens, height, width, **thresholds)


class GroundingDinoGrounder(Estimator):
    """Grounding DINO via transformers (``GroundingDinoForObjectDetection``) from DSR_GDINO_CKPT (an HF folder)."""

    name = "grounding/grounding-dino"
    role = "grounding"
    requires = ("torch", "transformers")
    checkpoint_env = "DSR_GDINO_CKPT"

    def detect(self, frame: np.ndarray, phrases: list[str]) -> list[Grounding]:  # pragma: no cover - weights
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        path = os.environ[self.checkpoint_env]
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(path, local_files_only=True).eval()
        caption = " ".join(p.lower().strip().rstrip(".") + "." for p in phrases)
        inputs = processor(images=frame, text=caption, return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        spans: dict[str, list[int]] = {}
        for phrase in phrases:
            tok = processor.tokenizer(phrase.lower(), add_special_tokens=False)["input_ids"]
            for start in range(len(ids) - len(tok) + 1):
                if ids[start:start + len(tok)] == tok:
                    spans[phrase] = list(range(start, start + len(tok)))
                    break
        return grounding_from_model(model.eval(), inputs["pixel_values"], inputs["input_ids"], spans,
                                    frame.shape[0], frame.shape[1])


# --------------------------------------------------------------------------------------------------
# SAM2


def sam2_masks_from_logits(mask_logits: np.ndarray) -> np.ndarray:
    """SAM2 video predictor logits (K, 1, H, W) → (K, H, W) bool; DSR binarises at logit > 0."""
    x = np.asarray(mask_logits)
    return (x[:, 0] if x.ndim == 4 else x) > 0.0


class Sam2Segmenter(Estimator):
    """SAM2 box-prompted masks via transformers from DSR_SAM2_CKPT (video propagation: TODO)."""

    name = "segmentation/sam2"
    role = "segmentation"
    requires = ("torch", "transformers")
    checkpoint_env = "DSR_SAM2_CKPT"


# --------------------------------------------------------------------------------------------------
# Orient Anything


def build_orient_anything(dino_config: Any, layout: str = "croplargeEX2") -> Any:
    """DINOv2 backbone + 2-layer MLP head with BatchNorm on the CLS token (Orient Anything's ``DINOv2_MLP``).

    ``dino_config`` is a transformers ``Dinov2Config`` (DINOv2-L for real checkpoints; tiny in tests). The
    head's parameter names follow our own layout; mapping the upstream ``dino_weight.pt`` keys onto it is
    unverified (no checkpoint here) and loading uses ``strict=True`` so a mismatch fails loudly.
    """
    import torch
    from transformers import Dinov2Model

    from dsr.extract.adapters import orient_head_dim

    class OrientAnythingNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dinov2 = Dinov2Model(dino_config)
            hidden = dino_config.hidden_size
            self.head = torch.nn.Sequential(
                torch.nn.Linear(hidden, hidden // 2), torch.nn.BatchNorm1d(hidden // 2), torch.nn.ReLU(),
                torch.nn.Linear(hidden // 2, orient_head_dim(layout)),
            )

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            cls = self.dinov2(pixel_values=pixel_values).last_hidden_state[:, 0]  # (B, hidden)
            return self.head(cls)  # (B, out_dim) logits

    return OrientAnythingNet()


def orient_crop(frame: np.ndarray, mask: np.ndarray, margin_px: int = 10) -> np.ndarray:
    """DSR's crop: the mask's bounding box plus up to ``margin_px`` on each side (background kept)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("empty mask")
    h, w = mask.shape
    y1, y2 = max(0, ys.min() - margin_px), min(h, ys.max() + 1 + margin_px)
    x1, x2 = max(0, xs.min() - margin_px), min(w, xs.max() + 1 + margin_px)
    return frame[y1:y2, x1:x2]


def orient_preprocess(crop: np.ndarray, size: int = 224) -> np.ndarray:
    """Resize the short side to 256·size/224, centre-crop ``size``, ImageNet-normalise → (3, size, size) float32."""
    import cv2

    h, w = crop.shape[:2]
    short = round(256 * size / 224)
    s = short / min(h, w)
    img = cv2.resize(crop, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_CUBIC)
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    img = img[top:top + size, left:left + size].astype(np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((img - mean) / std).transpose(2, 0, 1)


def orient_from_model(model: Any, crops: list[np.ndarray], layout: str = "croplargeEX2", size: int = 224
                      ) -> list[OrientAngles]:
    """Run the network on RGB crops and decode the head (confidence gate applied by the caller)."""
    import torch

    x = torch.from_numpy(np.stack([orient_preprocess(c, size) for c in crops]))
    model.eval()
    with torch.no_grad():
        logits = model(x).numpy()
    return decode_orient_head(logits, layout)


class OrientAnything(Estimator):
    """Orient Anything (DINOv2-L + MLP) from DSR_ORIENT_CKPT (``dino_weight.pt``); head layout by checkpoint."""

    name = "orientation/orient-anything"
    role = "orientation"
    requires = ("torch", "transformers")
    checkpoint_env = "DSR_ORIENT_CKPT"

    def __init__(self, layout: str = "croplargeEX2") -> None:
        self.layout = layout

    def load(self) -> Any:  # pragma: no cover - needs weights
        import torch
        from transformers import Dinov2Config

        config = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                              patch_size=14, image_size=518)
        model = build_orient_anything(config, self.layout)
        state = torch.load(os.environ[self.checkpoint_env], map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        return model
