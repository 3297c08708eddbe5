"""`dsr show`: the PNG plot and the Rerun recording of a record, including its unknowns."""

from __future__ import annotations

import shutil
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from dsr.cli import app, main
from dsr.errors import DsrError
from dsr.scene import SceneRecord, VideoInfo, write_record
from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.frames import invert_pose, look_at_c2w, project_points, rotation_about_z, transform_points
from dsr.scene.plot import plot_record
from dsr.scene.show import (
    camera_distances,
    ground_axes,
    known_runs,
    log_record_to_rerun,
    object_color,
    speeds,
    world_up_axis,
)
from dsr.video import write_video

rr = pytest.importorskip("rerun")

W, H = 96, 72
FPS = 10.0
T = 12
INVALID_CAMERA_FRAMES = (4, 5)
BALL_UNKNOWN_FRAMES = (6, 7)
AGENT_HEADING_UNKNOWN = 8
BG = np.array([90, 90, 90], np.uint8)


def _boxes(centres_world: np.ndarray, c2w: np.ndarray, K: np.ndarray, half_px: float) -> np.ndarray:
    uv = project_points(transform_points(invert_pose(c2w), centres_world), K)
    return np.concatenate([uv - half_px, uv + half_px], axis=1)


def build_show_record() -> SceneRecord:
    """A dollying camera with two invalid poses; an agent that walks and turns (masks on some frames,
    heading unknown at one frame); a ball unknown for two frames and without masks; a static box."""
    t = np.arange(T)
    c2w = np.stack([look_at_c2w(np.array([-1.0 + 0.15 * i, -6.0, 1.6]), np.array([0.0, 0.0, 0.5])) for i in t])
    K = np.array([[70.0, 0, W / 2], [0, 70.0, H / 2], [0, 0, 1]])
    yaw = np.where(t < 6, 0.0, np.radians(15.0) * (t - 5))
    agent_c = np.stack([[-1.5 + 0.25 * i, 0.3 * np.sin(i / 3), 0.9] for i in t])
    heading = np.stack([rotation_about_z(a) for a in yaw])
    heading[AGENT_HEADING_UNKNOWN] = np.nan
    agent_vis = np.ones(T, bool)
    agent_vis[9:11] = False  # occluded, then back
    # TODO: let the agent leave the view for good once MaskTrack accepts trailing mask-less frames
    # (record.py's np.add.reduceat raises IndexError on an offset equal to len(counts))
    agent_boxes = _boxes(agent_c, c2w, K, 6.0)
    masks: list[np.ndarray | None] = []
    for i in t:
        if not agent_vis[i] or i % 4 == 1:  # some visible frames have no mask
            masks.append(None)
            continue
        m = np.zeros((H, W), bool)
        x1, y1, x2, y2 = np.clip(np.round(agent_boxes[i]).astype(int), 0, [W, H, W, H])
        m[y1:y2, x1:x2] = True
        masks.append(m)
    agent = object_track_from_world(
        "agent_0", "person", is_agent=True, centers_world=agent_c, c2w=c2w, visible=agent_vis,
        boxes_xyxy=agent_boxes, world_from_agent=heading, masks=masks, frame_size=(H, W))
    ball_c = np.stack([[1.2, -0.5 + 0.3 * i, 0.2] for i in t])
    ball_c[list(BALL_UNKNOWN_FRAMES)] = np.nan
    ball_vis = np.isfinite(ball_c).all(axis=1)
    ball = object_track_from_world(
        "ball_0", "red ball", centers_world=ball_c, c2w=c2w, visible=ball_vis,
        boxes_xyxy=np.where(ball_vis[:, None], _boxes(np.nan_to_num(ball_c), c2w, K, 3.0), np.nan))
    box_c = np.tile([0.0, 2.0, 0.3], (T, 1))
    box = object_track_from_world(
        "box_0", "cardboard box", centers_world=box_c, c2w=c2w, visible=np.ones(T, bool),
        boxes_xyxy=_boxes(box_c, c2w, K, 4.0))
    valid = np.ones(T, bool)
    valid[list(INVALID_CAMERA_FRAMES)] = False
    frame_indices = 2 * t  # every other frame of a 2*T frame video
    video = VideoInfo(path="clip.mp4", fps=FPS, width=W, height=H, num_frames=2 * T, duration_s=2 * T / FPS,
                      frame_indices=frame_indices, timestamps_s=frame_indices / FPS)
    return SceneRecord(record_id="show_test", video=video, camera=camera_track(K, c2w, valid=valid),
                       objects=(agent, ball, box), scale_kind="metric", meters_per_unit=1.0)


def _video_frames(record: SceneRecord) -> list[np.ndarray]:
    """2*T frames: grey background, each visible object's box filled with its colour at sampled frames."""
    frames = []
    for j in range(record.video.num_frames):
        img = np.tile(BG, (H, W, 1))
        t = j // 2
        for i, obj in enumerate(record.objects):
            if obj.visible[t]:
                x1, y1, x2, y2 = np.clip(np.round(obj.boxes_xyxy[t]).astype(int), 0, [W, H, W, H])
                img[y1:y2, x1:x2] = object_color(i)
        frames.append(img)
    return frames


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("show")
    record = build_show_record()
    write_video(folder / "clip.mp4", _video_frames(record), FPS)
    return write_record(folder / "scene.npz", record)


def _entities(rrd: Path) -> dict[str, set[str]]:
    """Entity path → names of the columns logged there, read back from the .rrd file."""
    out: dict[str, set[str]] = {}
    for chunk in rr.chunk.RrdReader(rrd).stream():
        cols = out.setdefault(chunk.entity_path, set())
        cols.update(chunk.to_record_batch().schema.names)
    return out


def _column(rrd: Path, entity: str, suffix: str) -> list[tuple[int | None, object]]:
    """(frame, value) rows of the first column ending in ``suffix`` at ``entity`` (frame None = static)."""
    rows: list[tuple[int | None, object]] = []
    for chunk in rr.chunk.RrdReader(rrd).stream():
        if chunk.entity_path != entity:
            continue
        batch = chunk.to_record_batch()
        names = [n for n in batch.schema.names if n.endswith(suffix)]
        if not names:
            continue
        frames = batch.column("frame").to_pylist() if "frame" in batch.schema.names else [None] * batch.num_rows
        rows += list(zip(frames, batch.column(names[0]).to_pylist(), strict=True))
    return sorted(rows, key=lambda r: -1 if r[0] is None else r[0])


def _check_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert 1200 <= im.width <= 2400 and 800 <= im.height <= 1600, im.size
        pixels = np.asarray(im.convert("RGB"))
    non_white = (pixels < 240).any(axis=2).mean()
    assert 0.03 < non_white < 0.9, non_white  # drawn on, but not a solid block
    return pixels


# --------------------------------------------------------------------------------------------------
# the command


@pytest.fixture(scope="module")
def shown(record_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("show_out")
    result = CliRunner().invoke(app, ["show", str(record_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_show_prints_where_files_went(shown: tuple[Path, str]) -> None:
    out, output = shown
    assert str(out / "scene.rrd") in output and str(out / "scene.png") in output
    assert sorted(p.name for p in out.iterdir()) == ["scene.png", "scene.rrd"]  # no temp files left


def test_show_png_is_a_drawn_image_with_object_colours(shown: tuple[Path, str]) -> None:
    pixels = _check_png(shown[0] / "scene.png")
    flat = pixels.reshape(-1, 3).astype(int)
    for i in range(3):  # every object's colour is drawn somewhere (trajectories, curves, bars)
        assert (np.abs(flat - np.array(object_color(i))).sum(axis=1) < 30).sum() > 200, i


def test_show_rrd_has_every_part_of_the_scene(shown: tuple[Path, str]) -> None:
    ents = _entities(shown[0] / "scene.rrd")
    expected = {
        "/world": "ViewCoordinates", "/world/axes": "Arrows3D",
        "/world/camera": "Transform3D", "/world/camera/image": "Pinhole",
        "/world/camera/image/boxes": "Boxes2D", "/world/camera/image/masks": "SegmentationImage",
        "/world/camera_path": "LineStrips3D", "/world/camera_path/invalid": "Points3D",
        "/world/objects/agent_0": "Points3D", "/world/objects/agent_0/forward": "Arrows3D",
        "/world/objects/ball_0/trajectory": "LineStrips3D", "/world/objects/box_0": "Points3D",
        "/plots/distance/ball_0": "Scalars", "/plots/speed/camera": "Scalars",
    }
    for entity, archetype in expected.items():
        assert entity in ents, (entity, sorted(ents))
        assert any(archetype in c for c in ents[entity]), (entity, ents[entity])
    assert any("EncodedImage" in c or "Image:buffer" in c for c in ents["/world/camera/image"])
    assert "/world/objects/ball_0/forward" not in ents  # only agents get heading arrows
    for entity in ("/world/camera", "/world/objects/agent_0"):
        assert {"time", "frame"} <= ents[entity]


def test_show_rrd_respects_unknowns(shown: tuple[Path, str]) -> None:
    rrd = shown[0] / "scene.rrd"
    # the ball's trajectory is split at its unknown frames 6-7 into two strips of 6 and 4 points
    strips = _column(rrd, "/world/objects/ball_0/trajectory", ":strips")
    assert len(strips) == 1 and [len(s) for s in strips[0][1]] == [6, 4]
    # its point is logged where known and cleared (not left stale) where unknown
    positions = dict(_column(rrd, "/world/objects/ball_0", ":positions"))
    assert sorted(positions) == [t for t in range(T) if t not in BALL_UNKNOWN_FRAMES]
    np.testing.assert_allclose(positions[3], [[1.2, 0.4, 0.2]], atol=1e-6)
    cleared = [f for f, v in _column(rrd, "/world/objects/ball_0", "Clear:is_recursive") if v is not None]
    assert cleared == list(BALL_UNKNOWN_FRAMES)
    # the agent's heading arrow is cleared at the frame its orientation is unknown
    arrows = dict(_column(rrd, "/world/objects/agent_0/forward", ":vectors"))
    assert AGENT_HEADING_UNKNOWN not in arrows and len(arrows) == T - 1
    np.testing.assert_allclose(np.asarray(arrows[9])[0] / np.linalg.norm(arrows[9][0]),
                               [np.cos(np.radians(60)), np.sin(np.radians(60)), 0.0], atol=1e-5)
    # invalid camera frames: frustum red and a warning on the log
    colors = dict(_column(rrd, "/world/camera/image", "Pinhole:color"))
    red = {f for f, c in colors.items() if c is not None and (c[0] if isinstance(c, list) else c) == 0xE61E1EFF}
    assert red == set(INVALID_CAMERA_FRAMES)
    invalid_at = _column(rrd, "/world/camera_path/invalid", ":positions")
    np.testing.assert_allclose(invalid_at[0][1], [[-1.0 + 0.15 * t, -6.0, 1.6] for t in INVALID_CAMERA_FRAMES],
                               atol=1e-6)
    logs = [v for _, v in _column(rrd, "/log", ":text")]
    assert len(logs) == 2 and all("invalid" in str(v) for v in logs)
    # the segmentation is cleared at frames where no object has a mask (agent: every 4th from 1, hidden 9-10)
    mask_cleared = [f for f, v in _column(rrd, "/world/camera/image/masks", "Clear:is_recursive") if v is not None]
    assert mask_cleared == [1, 5, 9, 10]
    # boxes only for visible objects: the agent is hidden at frames 9-10, the ball at 6-7
    ids = dict(_column(rrd, "/world/camera/image/boxes", ":class_ids"))
    assert ids[0] == [1, 2, 3] and ids[6] == [1, 3] and ids[9] == [2, 3] and ids[11] == [1, 2, 3]


def test_show_without_video_or_with_missing_video(record_file: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    lonely = shutil.copy(record_file, moved / "scene.npz")  # the video stays behind
    result = CliRunner().invoke(app, ["show", str(lonely)])
    assert result.exit_code == 0, result.output
    assert "not found" in result.output and "no images" in result.output
    assert (moved / "scene.png").is_file()  # default output folder: beside the record
    ents = _entities(moved / "scene.rrd")
    assert not any("Image:" in c and "Segmentation" not in c for c in ents["/world/camera/image"])
    result = CliRunner().invoke(app, ["show", str(record_file), "--no-video", "--out", str(tmp_path / "nv")])
    assert result.exit_code == 0 and "--no-video" in result.output


def test_show_bad_record_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit) as exc:
        main(["show", str(bad)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(bad) in err and "\n" not in err
    assert not list(tmp_path.glob("*.rrd")) and not list(tmp_path.glob("*.png"))


def test_show_without_rerun_keeps_the_plot_and_says_why(record_file: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "rerun", None)  # as if the `viz` extra were not installed
    with pytest.raises(SystemExit) as exc:
        main(["show", str(record_file), "--no-video", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == "error: writing a .rrd needs rerun-sdk: pip install 'dsr[viz]'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.png"]


# --------------------------------------------------------------------------------------------------
# the library functions


def test_log_record_rejects_frames_of_the_wrong_count(tmp_path: Path) -> None:
    record = build_show_record()
    with pytest.raises(DsrError, match=r"video_frames has shape \(3, 72, 96, 3\)"):
        log_record_to_rerun(record, tmp_path / "x.rrd", np.zeros((3, H, W, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_plot_record_survives_all_unknown_objects_and_invalid_camera(tmp_path: Path) -> None:
    import dataclasses

    record = build_show_record()
    ghost = object_track_from_world(
        "ghost_0", "ghost", is_agent=True, centers_world=np.full((T, 3), np.nan), c2w=record.camera.c2w,
        visible=np.zeros(T, bool), boxes_xyxy=np.full((T, 4), np.nan),
        world_from_agent=np.full((T, 3, 3), np.nan))
    camera = dataclasses.replace(record.camera, valid=np.zeros(T, bool))
    odd = dataclasses.replace(record, camera=camera, objects=(*record.objects, ghost))
    _check_png(plot_record(odd, tmp_path / "odd.png"))
    rrd = log_record_to_rerun(odd, tmp_path / "odd.rrd")
    ents = _entities(rrd)
    assert "/world/objects/ghost_0/trajectory" not in ents
    assert "/world/objects/ghost_0/forward" in ents  # logged only as clears


# --------------------------------------------------------------------------------------------------
# shared helpers (hand-computed cases and invariants)


def test_speed_and_distance_hand_computed() -> None:
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [np.nan] * 3, [5.0, 0, 0]])
    t_s = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # ends one-sided, inside central: (3-0)/2 = 1.5; any NaN neighbour gives NaN
    np.testing.assert_allclose(speeds(pos, t_s), [1.0, 1.5, np.nan, np.nan, np.nan])
    record = build_show_record()
    cam0 = record.camera.c2w[0, :3, 3]  # (-1, -6, 1.6); box at (0, 2, 0.3)
    assert camera_distances(record, record.objects[2])[0] == pytest.approx(np.sqrt(1 + 64 + 1.3**2))
    assert np.isnan(camera_distances(record, record.objects[1])[6]) and cam0[1] == -6.0


def test_world_up_axis_from_cameras() -> None:
    z_up = np.stack([look_at_c2w(np.array([4.0, -3.0, 2.0]), np.zeros(3))])
    assert world_up_axis(z_up) == (2, 1)
    first_camera_world = np.eye(4)[None]  # OpenCV: y down, so world up is −y
    assert world_up_axis(first_camera_world) == (1, -1)
    assert ground_axes((1, -1)) == (0, 2)  # x–z seen from above
    # invalid frames are ignored when some are valid
    mixed = np.concatenate([z_up, first_camera_world, first_camera_world])
    assert world_up_axis(mixed, np.array([True, False, False])) == (2, 1)


@given(st.sampled_from([0, 1, 2]), st.sampled_from([-1, 1]))
def test_ground_axes_form_a_right_handed_top_view(axis: int, sign: int) -> None:
    a, b = ground_axes((axis, sign))
    np.testing.assert_array_equal(np.cross(np.eye(3)[a], np.eye(3)[b]), sign * np.eye(3)[axis])


@given(st.lists(st.booleans(), max_size=40))
def test_known_runs_cover_exactly_the_true_values(flags: list[bool]) -> None:
    runs = known_runs(np.array(flags, bool))
    rebuilt = np.zeros(len(flags), bool)
    for a, b in runs:
        assert a < b and not rebuilt[a:b].any()
        rebuilt[a:b] = True
    np.testing.assert_array_equal(rebuilt, np.array(flags, bool))
    assert all(b1 < a2 for (_, b1), (a2, _) in pairwise(runs))  # separated by a False
