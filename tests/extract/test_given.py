"""Grounding given first-frame boxes (``--init-boxes``): parsing, MIL tracking, the record, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dsr.errors import DsrError
from dsr.extract.adapters import box_iou
from dsr.extract.clip import ClipConfig
from dsr.extract.given import (
    GivenTrackConfig,
    InitBox,
    InitBoxError,
    parse_init_boxes,
    read_init_boxes,
    track_given_boxes,
)
from dsr.extract.pipeline import ExtractConfig, extract_video

FAST = replace(ExtractConfig(), clip=ClipConfig(num_samples=12, dense_fps=10.0), camera_methods=("rotation", "vo"))


@pytest.mark.parametrize(("obj", "message"), [
    ({}, "non-empty JSON object"),
    ([1, 2], "non-empty JSON object"),
    ({"a": [0, 0, 1, 1]}, "'a': expected an object"),
    ({"a": {"box": [0, 0, 1, 1]}}, "'a': 'class' must be"),
    ({"a": {"class": "car", "box": [0, 0, 1]}}, "'a': 'box' must be"),
    ({"a": {"class": "car", "box": [0, 0, "x", 1]}}, "four numbers"),
    ({"a": {"class": "car", "box": [5, 0, 4, 1]}}, "x2 > x1"),
    ({"a": {"class": "car", "box": [0, 0, 4, 4], "is_agent": "yes"}}, "'is_agent' must be"),
])
def test_bad_init_boxes_get_a_one_line_error(obj: object, message: str) -> None:
    with pytest.raises(InitBoxError, match=message) as err:
        parse_init_boxes(obj)
    assert "\n" not in str(err.value)


def test_init_boxes_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"p0": {"class": " person ", "box": [1, 2, 30, 40.5], "is_agent": True},
                                "b": {"class": "ball", "box": [50, 60, 70, 80]}}))
    boxes = read_init_boxes(path)
    assert list(boxes) == ["p0", "b"]
    assert boxes["p0"].class_phrase == "person" and boxes["p0"].is_agent
    assert not boxes["b"].is_agent  # is_agent defaults to false
    np.testing.assert_array_equal(boxes["p0"].box_xyxy, [1, 2, 30, 40.5])
    with pytest.raises(InitBoxError, match="not valid JSON"):
        path.write_text("{nope")
        read_init_boxes(path)
    with pytest.raises(InitBoxError, match="outside the 64x48 frame"):
        parse_init_boxes({"a": {"class": "car", "box": [70, 0, 80, 10]}}, 64, 48)


def _smooth_background(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([80 + 60 * np.sin(xx / 9.0), 90 + 50 * np.cos(yy / 7.0), 100 + 0 * xx], -1)


def _random_tile(cells: int, seed: int) -> np.ndarray:
    """A non-periodic texture of cells × cells blocks of 4 px (a checkerboard would let a tracker lock on one
    period off)."""
    return np.kron(np.random.default_rng(seed).random((cells, cells, 3)), np.ones((4, 4, 1))) * 200 + 30


def _square_clip(n: int = 24, step: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A randomly textured 24 px square sliding right by ``step`` px per frame over a smooth static background,
    until it leaves the 160×120 frame. Returns frames (n, 120, 160, 3) and the true boxes (n, 4)."""
    h, w, side = 120, 160, 24
    background = _smooth_background(h, w)
    tile = _random_tile(6, 0)
    frames, boxes = [], []
    for t in range(n):
        x0, y0 = 20 + step * t, 48
        f = background.copy()
        x1 = min(w, x0 + side)
        if x0 < w:
            f[y0:y0 + side, x0:x1] = tile[:, : x1 - x0]
        frames.append(f.astype(np.uint8))
        boxes.append([x0, y0, x0 + side - 1, y0 + side - 1])
    return np.stack(frames), np.array(boxes, dtype=np.float64)


def test_ncc_follows_the_given_box_and_ends_when_it_leaves_the_frame() -> None:
    frames, truth = _square_clip()
    tracks = track_given_boxes(frames, {"sq": InitBox("box", truth[0], False)})
    boxes = tracks["sq"].boxes_xyxy
    np.testing.assert_allclose(boxes[0], truth[0])
    inside = np.flatnonzero(truth[:, 2] < 159)  # frames where the square is wholly in view
    ious = np.array([box_iou(boxes[t], truth[t])[0, 0] for t in inside])
    assert ious.min() > 0.5, ious
    # the square is < 25 % inside from x0 = 142 on (t = 18): the track has ended by then, for good
    gone = int(np.argmax(truth[:, 0] + 0.75 * 24 > 160))
    assert not np.isfinite(boxes[gone:]).any()
    assert (tracks["sq"].scores[inside] > 0.9).all()  # the NCC score of an exact copy is ~1
    assert tracks["sq"].masks[0].sum() == 24 * 24 and tracks["sq"].masks[gone] is None


def test_ncc_box_grows_with_an_approaching_object_by_median_flow() -> None:
    """A textured square grows 3% per frame (an object coming closer): the box must follow its size, which
    is what the size prior turns into depth; fixed template scales would keep it near the first size."""
    import cv2

    h, w, n = 160, 200, 12
    background = _smooth_background(h, w)
    tile = _random_tile(8, 1)
    frames, truth = [], []
    for t in range(n):
        side = round(32 * 1.03**t)
        x0, y0 = 100 - side // 2, 80 - side // 2
        f = background.copy()
        f[y0:y0 + side, x0:x0 + side] = cv2.resize(tile, (side, side), interpolation=cv2.INTER_LINEAR)
        frames.append(f.astype(np.uint8))
        truth.append([x0, y0, x0 + side - 1, y0 + side - 1])
    truth_a = np.array(truth, dtype=np.float64)
    frames_a = np.stack(frames)
    boxes = track_given_boxes(frames_a, {"sq": InitBox("box", truth_a[0], False)})["sq"].boxes_xyxy
    heights = boxes[:, 3] - boxes[:, 1] + 1
    true_heights = truth_a[:, 3] - truth_a[:, 1] + 1
    np.testing.assert_allclose(heights, true_heights, rtol=0.06)  # the final size is 1.03^11 = 1.38× the first
    fixed = track_given_boxes(frames_a, {"sq": InitBox("box", truth_a[0], False)},
                              config=GivenTrackConfig(flow_scale=False))["sq"].boxes_xyxy
    assert abs(fixed[-1, 3] - fixed[-1, 1] + 1 - true_heights[-1]) > 3 * abs(heights[-1] - true_heights[-1])


def test_mil_alternative_keeps_the_box_size_and_bad_method_is_an_error() -> None:
    frames, truth = _square_clip(n=6)
    boxes = track_given_boxes(frames, {"sq": InitBox("box", truth[0], False)},
                              config=GivenTrackConfig(method="mil"))["sq"].boxes_xyxy
    assert np.isfinite(boxes).all()
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 23, atol=1)  # MIL does not change scale
    with pytest.raises(DsrError, match="'ncc' or 'mil'"):
        track_given_boxes(frames, {"sq": InitBox("box", truth[0], False)}, config=GivenTrackConfig(method="kcf"))


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mujoco")
    from dsr.world import WorldConfig, render_world

    out = tmp_path_factory.mktemp("world")
    render_world(WorldConfig(seed=3, camera_motion="static", duration_s=2.4, fps=10.0, width=160, height=120,
                             num_objects=3), out, progress=False)
    return out


def _gt_init(world: Path) -> tuple[dict[str, InitBox], object]:
    from dsr.scene.io import read_record

    gt = read_record(world / "record.npz")
    init = {o.object_id: InitBox(o.class_phrase, o.boxes_xyxy[0], o.is_agent) for o in gt.objects if o.visible[0]}
    assert init, "the world should show at least one object in its first frame"
    return init, gt


def test_given_boxes_on_a_tiny_world_keep_ids_classes_and_agent_flags(tiny_world: Path) -> None:
    init, gt = _gt_init(tiny_world)
    out = extract_video(tiny_world / "video.mp4", FAST, init_boxes=init)
    assert out.status == "ok", out.reason
    rec = out.record
    assert [o.object_id for o in rec.objects] == list(init)
    for obj in rec.objects:
        given = init[obj.object_id]
        assert obj.class_phrase == given.class_phrase
        # an agent needs the user's word and a measured heading: on 2.4 s at 160x120 the calibrated heading noise
        # (dsr.extract.uncertainty) may leave a walker's heading unmeasured, and then it is no agent (no guessed
        # orientation questions); an object the user did not call an agent never becomes one
        assert obj.is_agent <= given.is_agent
        assert (obj.orientation is not None) == obj.is_agent
        assert obj.track_source.name == "grounding/given+tracking/ncc"
        np.testing.assert_allclose(obj.boxes_xyxy[0], np.clip(given.box_xyxy, 0, [159, 119, 159, 119]))
        assert obj.center_known[0]
        g = next(x for x in gt.objects if x.object_id == obj.object_id)
        idx = rec.video.frame_indices
        both = np.flatnonzero(obj.visible & g.visible[idx])
        ious = [box_iou(obj.boxes_xyxy[t], g.boxes_xyxy[idx[t]])[0, 0] for t in both]
        assert np.mean(ious[:4]) > 0.4, (obj.object_id, ious)  # the start of the track stays on the object


def test_cli_init_boxes(tiny_world: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dsr.cli import app
    from dsr.scene.io import read_record

    init, _ = _gt_init(tiny_world)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({k: {"class": b.class_phrase, "box": b.box_xyxy.tolist(), "is_agent": b.is_agent}
                                 for k, b in init.items()}))
    args = ["--out", str(tmp_path / "out"), "--camera", "fast", "--num-samples", "12", "--dense-fps", "10",
            "--init-boxes", str(boxes)]
    result = CliRunner().invoke(app, ["extract", str(tiny_world / "video.mp4"), *args])
    assert result.exit_code == 0, result.output
    (record_path,) = (tmp_path / "out").glob("*.npz")
    assert {o.object_id for o in read_record(record_path).objects} == set(init)
    copy = tmp_path / "copy.mp4"
    copy.write_bytes((tiny_world / "video.mp4").read_bytes())
    two = CliRunner().invoke(app, ["extract", str(tiny_world / "video.mp4"), str(copy), *args])
    assert two.exit_code != 0 and "one video" in str(two.exception)
