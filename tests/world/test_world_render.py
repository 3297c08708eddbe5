"""Rendered worlds: determinism, ground truth that agrees with the pixels, record contents, resume."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dsr.errors import DsrError
from dsr.scene.frames import invert_pose, project_points, transform_points
from dsr.scene.io import read_record, record_to_parts
from dsr.scene.record import SceneRecord
from dsr.scene.validate import validate_record_file
from dsr.video import probe, read_frames
from dsr.world.config import WorldConfig
from dsr.world.render import WorldModel, WorldResult, intrinsics, render_world
from dsr.world.scene import generate_scene

# Three small worlds that together use several camera motions (6 s at 5 fps, 96×72; the default 24 s
# would make the tests four times slower and show nothing more).
WORLDS = [dict(seed=0, duration_s=6.0, fps=5.0, camera_motion="handheld"),
          dict(seed=5, duration_s=6.0, fps=5.0, camera_motion="orbit"),
          dict(seed=7, duration_s=6.0, fps=5.0, camera_motion="pan")]
QUICK = dict(seed=3, duration_s=1.5, fps=10.0)

Render = Callable[..., WorldResult]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_renders_identical_records_and_frames(tmp_path: Path) -> None:
    """Twice in one process: the same record arrays and the same video file, byte for byte.

    Run in a fresh interpreter: in the full suite's long-lived workers (after extraction, GSM and pipeline
    tests) the first of the two videos differed in about one run in ten (2026-12-04; the records were equal),
    and never in a process that only renders: 15 + 15 renders in two parallel processes, 8 after MediaPipe, YOLO
    and torch had run, and 60 encodes of the same frames all gave the same bytes. What state the suite leaves
    behind is not found yet; a fresh ``dsr world`` process, which is how worlds are made, does not carry it."""
    import subprocess
    import sys

    script = """if True:
        import hashlib, sys
        import numpy as np
        from dsr.scene.io import record_to_parts
        from dsr.video import read_frames
        from dsr.world import WorldConfig, render_world
        config = WorldConfig(seed=3, duration_s=1.5, fps=10.0, width=96, height=72)
        a = render_world(config, sys.argv[1] + "/a", progress=False)
        b = render_world(config, sys.argv[1] + "/b", progress=False)
        meta_a, arrays_a = record_to_parts(a.record)
        meta_b, arrays_b = record_to_parts(b.record)
        assert meta_a == meta_b and arrays_a.keys() == arrays_b.keys()
        for name in arrays_a:
            assert np.array_equal(arrays_a[name], arrays_b[name], equal_nan=True), name
        sha = [hashlib.sha256(r.video_path.read_bytes()).hexdigest() for r in (a, b)]
        assert sha[0] == sha[1], sha
        n = a.spec.num_frames
        assert np.array_equal(read_frames(a.video_path, range(n)), read_frames(b.video_path, range(n)))
        print("same", n)
    """
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["same", "15"]


def test_same_seed_renders_the_same_video_file_in_another_process(tmp_path: Path) -> None:
    """Across processes too: the generator's swscale / threaded x264 encoding gave different bytes (up
    to 16 grey levels apart) on every run at 320×240, and extraction results with them."""
    import subprocess
    import sys

    script = """if True:
        import sys
        from dsr.world import WorldConfig, render_world
        render_world(WorldConfig(seed=3, duration_s=2.0, fps=10.0, camera_motion="handheld"), sys.argv[1],
                     progress=False)
    """
    digests = set()
    for k in range(2):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"w{k}")], check=True, timeout=300)
        digests.add(_sha(tmp_path / f"w{k}" / "video.mp4"))
    assert len(digests) == 1


def test_other_seed_renders_another_world(rendered: Render) -> None:
    a, b = rendered(**QUICK), rendered(**{**QUICK, "seed": 4})
    assert not np.array_equal(a.record.camera.c2w, b.record.camera.c2w)
    assert not np.array_equal(read_frames(a.video_path, [0]), read_frames(b.video_path, [0]))


def _object_index_maps(record: SceneRecord) -> np.ndarray:
    maps = np.full((record.num_frames, record.video.height, record.video.width), -1, np.int16)
    for k, obj in enumerate(record.objects):
        for t in np.flatnonzero(obj.visible):
            maps[t][obj.masks.decode(t)] = k
    return maps


def test_ground_truth_centres_project_into_their_boxes_and_masks(rendered: Render) -> None:
    """Every visible frame: the projected 3D centre lies in the object's mask and box, unless hidden.

    A centre inside the object's volume can only be hidden by a nearer object (then the pixel shows
    that object) or lie outside the image (then what shows is cut by the image border, or by a nearer
    object).
    """
    exact = near = hidden = outside = toggles = 0
    for world in WORLDS:
        record = rendered(**world).record
        w, h = record.video.width, record.video.height
        maps = _object_index_maps(record)
        for k, obj in enumerate(record.objects):
            toggles += int(np.any(np.diff(obj.visible.astype(int)) != 0))
            for t in np.flatnonzero(obj.visible):
                centre = obj.centers_cam[t]
                assert centre[2] > 0, (obj.object_id, t)
                u, v = project_points(centre, record.camera.K[t])
                x1, y1, x2, y2 = obj.boxes_xyxy[t]
                if not (-0.5 <= u < w - 0.5 and -0.5 <= v < h - 0.5):
                    # out of view: what shows is cut by the image border, or by a nearer object
                    cut = x1 == -0.5 or y1 == -0.5 or x2 == w - 0.5 or y2 == h - 0.5
                    around = maps[t][max(int(y1) - 1, 0):int(y2) + 3, max(int(x1) - 1, 0):int(x2) + 3]
                    assert cut or np.any((around >= 0) & (around != k)), (obj.object_id, t)
                    outside += 1
                    continue
                col, row = round(u), round(v)
                mask = obj.masks.decode(t)
                if mask[row, col]:
                    exact += 1
                    assert x1 <= u <= x2 and y1 <= v <= y2, (obj.object_id, t)
                elif mask[max(row - 2, 0):row + 3, max(col - 2, 0):col + 3].any():
                    near += 1  # within 2 px of a thin silhouette at this tiny size
                    assert x1 - 2 <= u <= x2 + 2 and y1 - 2 <= v <= y2 + 2, (obj.object_id, t)
                else:
                    other = maps[t][row, col]
                    assert other not in (-1, k), f"{obj.object_id} frame {t}: centre lands on background"
                    hidden += 1
    checked = exact + near + hidden + outside
    assert exact >= 0.8 * checked and near + hidden + outside <= 0.2 * checked
    # the worlds show what the questions need: occlusions and objects entering or leaving the view
    assert hidden > 0 and toggles > 0


def _sphere_image_centre(centre_cam: np.ndarray, radius: float, K: np.ndarray) -> np.ndarray:
    """Centre of the ellipse a sphere projects to (exact; not the projection of the sphere's centre)."""
    m = np.outer(centre_cam, centre_cam) - (centre_cam @ centre_cam - radius**2) * np.eye(3)
    k_inv = np.linalg.inv(K)
    conic = k_inv.T @ m @ k_inv
    return np.linalg.solve(conic[:2, :2], -conic[:2, 2])


def test_intrinsics_and_pose_match_the_renderer_to_a_fraction_of_a_pixel() -> None:
    """Balls seen whole: their mask centroid is the analytic centre of the projected sphere."""
    checked = 0
    for seed in range(6):
        spec = generate_scene(WorldConfig(seed=seed, width=320, height=240, duration_s=1.0, fps=4.0))
        balls = [k for k, o in enumerate(spec.objects) if o.kind == "ball"]
        if not balls:
            continue
        world = WorldModel(spec)
        try:
            K = intrinsics(spec.fovy_deg, 320, 240)
            for t in range(spec.num_frames):
                _, objects = world.render(t)
                for k in balls:
                    mask = objects == k
                    rows, cols = np.nonzero(mask)
                    if len(rows) < 80 or rows.min() == 0 or cols.min() == 0 or rows.max() == 239 or cols.max() == 319:
                        continue
                    grown = np.zeros_like(mask)  # skip balls touching another object (maybe occluded)
                    grown[max(rows.min() - 2, 0):rows.max() + 3, max(cols.min() - 2, 0):cols.max() + 3] = True
                    if np.any(grown & (objects >= 0) & (objects != k)):
                        continue
                    obj = spec.objects[k]
                    centre = transform_points(invert_pose(spec.c2w[t]), obj.centers[t])
                    expected = _sphere_image_centre(centre, obj.size, K)
                    assert np.abs([cols.mean(), rows.mean()] - expected).max() < 0.35, (seed, t)
                    checked += 1
        finally:
            world.close()
    assert checked >= 5


def test_agents_face_marker_is_on_their_forward_side() -> None:
    spec = generate_scene(WorldConfig(**{**WORLDS[0], "width": 320, "height": 240}))  # type: ignore[arg-type]
    world = WorldModel(spec)
    model, data = world.model, world.data
    K = intrinsics(spec.fovy_deg, 320, 240)
    try:
        agents = [o for o in spec.objects if o.is_agent]
        assert agents
        seen_facing = seen_away = 0
        for t in range(spec.num_frames):
            geom_ids = world.render_geom_ids(t)
            for obj in agents:
                marker = model.geom(f"{obj.object_id}/{'nose' if obj.kind == 'person' else 'visor'}").id
                body = model.body(obj.object_id).id
                axes = obj.rotations[t]
                assert np.allclose(data.xmat[body].reshape(3, 3), axes, atol=1e-12)
                offset = data.geom_xpos[marker] - obj.centers[t]
                assert offset @ axes[:, 0] > 0.05 * obj.size  # ahead of the centre ...
                assert abs(offset @ axes[:, 1]) < 1e-9  # ... on the midline
                # the renderer agrees: the marker shows when the agent faces the camera, and not when it
                # faces away (checked where the marker's pixel is not covered by something else)
                to_camera = spec.c2w[t, :3, 3] - obj.centers[t]
                facing = axes[:, 0] @ to_camera / np.linalg.norm(to_camera)
                u, v = np.round(project_points(transform_points(invert_pose(spec.c2w[t]), data.geom_xpos[marker]), K))
                if not (2 <= u < 318 and 2 <= v < 238):
                    continue
                near = geom_ids[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3]
                if facing > 0.7 and np.isin(near, np.flatnonzero(model.geom_bodyid == body)).all():
                    seen_facing += 1
                    assert (near == marker).any(), (obj.object_id, t)
                elif facing < -0.85:
                    # from behind, the nose (0.14 s ahead of the head's centre, radius 0.05 s) hides behind
                    # the head (radius 0.13 s) while 0.14 sin θ + 0.05 < 0.13, θ < 35° off straight behind
                    seen_away += 1
                    assert not (geom_ids == marker).any(), (obj.object_id, t)
        assert seen_facing > 0 and seen_away > 0, (seen_facing, seen_away)
    finally:
        world.close()


def test_record_is_complete_and_round_trips(rendered: Render) -> None:
    result = rendered(**QUICK)
    record = result.record
    assert validate_record_file(result.record_path).record_id == record.record_id
    loaded = read_record(result.record_path)
    for name, arr in record_to_parts(record)[1].items():
        assert np.array_equal(arr, record_to_parts(loaded)[1][name], equal_nan=True), name
    cfg = result.spec.config
    n = cfg.num_frames
    assert (record.scale_kind, record.meters_per_unit, record.video.path) == ("metric", 1.0, "video.mp4")
    assert np.array_equal(record.video.frame_indices, np.arange(n))
    assert np.array_equal(record.video.timestamps_s, np.arange(n) / cfg.fps)
    assert record.camera.source.name == "mujoco-world" and record.camera.valid.all()
    meta = probe(result.video_path)
    assert (meta.num_frames, meta.width, meta.height) == (n, cfg.width, cfg.height)
    assert meta.fps == pytest.approx(cfg.fps)
    f = 0.5 * cfg.height / np.tan(np.radians(result.spec.fovy_deg) / 2)
    assert np.allclose(record.camera.K, [[f, 0, (cfg.width - 1) / 2], [0, f, (cfg.height - 1) / 2], [0, 0, 1]])
    assert {o.class_phrase for o in record.objects} <= {"person", "robot", "ball", "box", "car"}
    for obj, spec_obj in zip(record.objects, result.spec.objects, strict=True):
        assert np.array_equal(obj.centers_world, spec_obj.centers)
        assert (obj.orientation is not None) == obj.is_agent
        if obj.is_agent:
            assert np.allclose(obj.orientation.world_from_agent, spec_obj.rotations)
        for t in range(n):
            mask = obj.masks.decode(t)
            assert obj.visible[t] == (mask is not None)
            if mask is not None:
                rows, cols = np.nonzero(mask)
                assert np.array_equal(obj.boxes_xyxy[t], [cols.min() - 0.5, rows.min() - 0.5,
                                                          cols.max() + 0.5, rows.max() + 0.5])


def test_a_finished_world_is_reused_and_an_unfinished_one_rendered_again(tmp_path: Path) -> None:
    config = WorldConfig(seed=11, width=64, height=48, duration_s=0.4, fps=10.0)
    first = render_world(config, tmp_path, progress=False)
    assert not first.reused
    stamp = first.record_path.stat().st_mtime_ns
    assert render_world(config, tmp_path, progress=False).reused
    # another config in the same folder renders anew
    other = render_world(dataclasses.replace(config, seed=12), tmp_path, progress=False)
    assert not other.reused and other.record.record_id != first.record.record_id
    # a run killed before world.json was written leaves the world unfinished: it is rendered again
    render_world(config, tmp_path, progress=False)
    (tmp_path / "world.json").unlink()
    again = render_world(config, tmp_path, progress=False)
    assert not again.reused and again.record_path.stat().st_mtime_ns != stamp
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files behind


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(DsrError, match="not a folder"):
        render_world(WorldConfig(seed=1, width=64, height=48, duration_s=0.4), target, progress=False)
