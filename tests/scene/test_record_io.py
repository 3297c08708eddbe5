"""Scene record: exact round trip, atomic writes, and one-line rejection of every class of bad input."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dsr.errors import RecordError
from dsr.scene import read_record, write_record
from dsr.scene.io import record_to_parts, write_parts
from dsr.scene.record import SCHEMA_VERSION, SceneRecord


def assert_records_equal(a: SceneRecord, b: SceneRecord) -> None:
    meta_a, arrays_a = record_to_parts(a)
    meta_b, arrays_b = record_to_parts(b)
    assert meta_a == meta_b
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        assert np.array_equal(arrays_a[name], arrays_b[name], equal_nan=True), name


def test_round_trip_is_exact(tmp_path: Path, record: SceneRecord) -> None:
    path = write_record(tmp_path / "r.npz", record)
    back = read_record(path)
    assert_records_equal(record, back)
    # masks decode to the very pixels that were encoded
    for t in range(record.num_frames):
        a, b = record.objects[0].masks.decode(t), back.objects[0].masks.decode(t)
        assert (a is None and b is None) or np.array_equal(a, b)
    # NaN stays NaN where the ball's centre is unknown, and numpy can open the file directly
    assert np.isnan(back.objects[1].centers_world[2]).all()
    with np.load(path) as npz:
        assert npz["camera/c2w"].shape == (record.num_frames, 4, 4)


def test_v2_uncertainty_fields_round_trip(tmp_path: Path, record: SceneRecord) -> None:
    n = record.num_frames
    ball = dataclasses.replace(record.objects[1], center_sigma_along=np.full(n, 0.3),
                               center_sigma_across=np.full(n, 0.05), center_sigma_shared=np.full(n, 0.2))
    rec = dataclasses.replace(record, objects=(record.objects[0], ball),
                              camera=dataclasses.replace(record.camera, trusted=False))
    back = read_record(write_record(tmp_path / "r.npz", rec))
    assert back.schema_version == SCHEMA_VERSION == 5 and back.camera.trusted is False
    np.testing.assert_array_equal(back.objects[1].center_sigma_shared, 0.2)
    # the v1-style isotropic sigma keeps the total variance: √((0.3² + 2·0.05²) / 3)
    np.testing.assert_allclose(back.objects[1].center_sigma, np.sqrt((0.09 + 0.005) / 3))
    with pytest.raises(RecordError, match="center_sigma_shared: exceeds center_sigma_along at frame 0"):
        dataclasses.replace(ball, center_sigma_shared=np.full(n, 0.31))


def test_v3_camera_scale_drift_round_trips_and_v2_reads_as_none(tmp_path: Path, record: SceneRecord) -> None:
    rec = dataclasses.replace(record, camera=dataclasses.replace(record.camera, scale_drift_sigma=0.085,
                                                                 scale_jitter_sigma=0.6))
    back = read_record(write_record(tmp_path / "r.npz", rec))
    assert back.camera.scale_drift_sigma == 0.085 and back.camera.scale_jitter_sigma == 0.6
    meta, arrays = record_to_parts(rec)
    meta["schema_version"] = 2
    del meta["camera"]["scale_drift_sigma"], meta["camera"]["scale_jitter_sigma"]
    v2 = read_record(write_parts(tmp_path / "v2.npz", meta, arrays)).camera
    assert v2.scale_drift_sigma == 0.0 and v2.scale_jitter_sigma == 0.0
    # a v3 file must state the drift; the jitter came later in v3, and a file without it states none
    meta["schema_version"] = 3
    with pytest.raises(RecordError, match=r"camera\.scale_drift_sigma: missing"):
        read_record(write_parts(tmp_path / "v3.npz", meta, arrays))
    meta["camera"]["scale_drift_sigma"] = 0.1
    assert read_record(write_parts(tmp_path / "v3b.npz", meta, arrays)).camera.scale_jitter_sigma == 0.0
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(RecordError, match="scale_drift_sigma"):
            dataclasses.replace(record.camera, scale_drift_sigma=bad)
        with pytest.raises(RecordError, match="scale_jitter_sigma"):
            dataclasses.replace(record.camera, scale_jitter_sigma=bad)


def test_v4_scale_reset_round_trips_and_v3_reads_as_none(tmp_path: Path, record: SceneRecord) -> None:
    rec = dataclasses.replace(record, camera=dataclasses.replace(record.camera, scale_reset_bound=1.93))
    assert read_record(write_record(tmp_path / "r.npz", rec)).camera.scale_reset_bound == 1.93
    meta, arrays = record_to_parts(rec)
    meta["schema_version"] = 3  # a v3 file stated no reset, whatever else it holds
    assert read_record(write_parts(tmp_path / "v3.npz", meta, arrays)).camera.scale_reset_bound == 0.0
    meta["schema_version"] = 4
    del meta["camera"]["scale_reset_bound"]
    with pytest.raises(RecordError, match=r"camera\.scale_reset_bound: missing"):
        read_record(write_parts(tmp_path / "v4.npz", meta, arrays))
    for bad in (-0.1, float("inf"), "2"):
        with pytest.raises(RecordError, match="scale_reset_bound"):
            dataclasses.replace(record.camera, scale_reset_bound=bad)


def test_v5_focal_range_round_trips_and_v4_reads_as_known(tmp_path: Path, record: SceneRecord) -> None:
    assert record.camera.focal_range == (1.0, 1.0) and record.camera.focal_known
    rec = dataclasses.replace(record, camera=dataclasses.replace(record.camera, focal_range=(0.42, 1.56)))
    back = read_record(write_record(tmp_path / "r.npz", rec)).camera
    assert back.focal_range == (0.42, 1.56) and not back.focal_known
    meta, arrays = record_to_parts(rec)
    meta["schema_version"] = 4  # a v4 file stated no focal error, whatever else it holds
    assert read_record(write_parts(tmp_path / "v4.npz", meta, arrays)).camera.focal_range == (1.0, 1.0)
    meta["schema_version"] = 5
    del meta["camera"]["focal_range"]
    with pytest.raises(RecordError, match=r"camera\.focal_range: missing"):
        read_record(write_parts(tmp_path / "v5.npz", meta, arrays))
    meta["camera"]["focal_range"] = [0.8, "1.4"]
    with pytest.raises(RecordError, match="focal_range: must be two numbers"):
        read_record(write_parts(tmp_path / "v5b.npz", meta, arrays))
    # the range must hold the record's own focal length (lo <= 1 <= hi), positive and finite
    for bad in ((1.1, 1.5), (0.5, 0.9), (0.0, 1.2), (0.5, float("inf")), (0.5,), (True, 1.2)):
        with pytest.raises(RecordError, match="focal_range"):
            dataclasses.replace(record.camera, focal_range=bad)


def test_v1_records_are_read_and_upgraded(tmp_path: Path, record: SceneRecord) -> None:
    meta, arrays = record_to_parts(record)
    meta["schema_version"] = 1
    del meta["camera"]["trusted"]
    for i in range(len(record.objects)):
        p = f"objects/{i}/"
        arrays[p + "center_sigma"] = arrays.pop(p + "center_sigma_along")
        del arrays[p + "center_sigma_across"], arrays[p + "center_sigma_shared"]
    back = read_record(write_parts(tmp_path / "v1.npz", meta, arrays))
    assert back.schema_version == SCHEMA_VERSION and back.camera.trusted and back.camera.scale_drift_sigma == 0.0
    agent = back.objects[0]  # the fixture's agent has sigma 0.01: isotropic, nothing shared
    np.testing.assert_array_equal(agent.center_sigma_along, 0.01)
    np.testing.assert_array_equal(agent.center_sigma_across, 0.01)
    np.testing.assert_array_equal(agent.center_sigma_shared, 0.0)
    np.testing.assert_allclose(agent.center_sigma, 0.01)
    # a v1 file without its sigma is still a one-line error naming the field
    del arrays["objects/0/center_sigma"]
    with pytest.raises(RecordError, match=r"0\.center_sigma: array missing"):
        read_record(write_parts(tmp_path / "v1bad.npz", meta, arrays))


def test_read_without_masks(tmp_path: Path, record: SceneRecord) -> None:
    path = write_record(tmp_path / "r.npz", record)
    light = read_record(path, masks=False)
    assert all(o.masks is None for o in light.objects) and record.objects[0].masks is not None
    full = read_record(path)
    np.testing.assert_array_equal(light.objects[0].centers_world, full.objects[0].centers_world)
    # a broken mask is not read, so it does not fail the light read; the full read names it
    bad = _corrupt(tmp_path, record, BAD_CASES["mask_runs_wrong"][0])
    read_record(bad, masks=False)
    with pytest.raises(RecordError, match="do not cover"):
        read_record(bad)


def test_same_record_gives_same_bytes(tmp_path: Path, record: SceneRecord) -> None:
    a = write_record(tmp_path / "a.npz", record).read_bytes()
    b = write_record(tmp_path / "b.npz", record).read_bytes()
    assert a == b


def test_arrays_are_read_only(record: SceneRecord) -> None:
    with pytest.raises(ValueError):
        record.camera.c2w[0, 0, 0] = 2.0


def test_write_is_atomic(tmp_path: Path, record: SceneRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_record(tmp_path / "r.npz", record)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # a kill in the middle of writing arrays

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        write_record(path, dataclasses.replace(record, record_id="other"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # no temp file left behind


# ----------------------------------------------------------------------------- bad input, one case each


def _corrupt(tmp_path: Path, record: SceneRecord, change) -> Path:
    meta, arrays = record_to_parts(record)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    change(meta, arrays)
    return write_parts(tmp_path / "bad.npz", meta, arrays)


def _set(arrays: dict, name: str, index: tuple, value: float) -> None:
    arrays[name][index] = value


def _rotate_badly(arrays: dict) -> None:
    arrays["camera/c2w"][4, :3, :3] *= 1.1


def _swap_times(arrays: dict) -> None:
    arrays["video/timestamps_s"][[2, 3]] = arrays["video/timestamps_s"][[3, 2]]


def _never_located(arrays: dict, i: int) -> None:
    """Object i stays visible, but its centre is unknown (NaN, method "none") at every frame."""
    for name in ("centers_world", "centers_cam"):
        arrays[f"objects/{i}/{name}"][:] = np.nan
    arrays[f"objects/{i}/center_method"][:] = 0


BAD_CASES = {
    "nan_pose": (lambda m, a: _set(a, "camera/c2w", (1, 0, 3), np.nan), "camera.c2w", "non-finite"),
    "inf_centre": (lambda m, a: _set(a, "objects/0/centers_world", (0, 0), np.inf), "objects[0].centers_world",
                   "infinite"),
    "nan_visible_box": (lambda m, a: _set(a, "objects/1/boxes_xyxy", (5, 2), np.nan), "objects[1].boxes_xyxy",
                        "non-finite"),
    "non_orthonormal": (lambda m, a: _rotate_badly(a), "camera.c2w", "not orthonormal"),
    "wrong_shape": (lambda m, a: a.__setitem__("camera/K", a["camera/K"][:, :2]), "camera.K", "shape"),
    "short_track": (lambda m, a: a.__setitem__("objects/1/visible", a["objects/1/visible"][:-1]),
                    "objects[1].boxes_xyxy", "has shape (8, 4), expected (7, 4)"),
    "time_backwards": (lambda m, a: _swap_times(a), "video.timestamps_s", "strictly increasing"),
    "unknown_schema": (lambda m, a: m.__setitem__("schema_version", 99), "schema_version", "unknown schema"),
    "missing_array": (lambda m, a: a.pop("camera/valid"), "camera.valid", "missing"),
    "duplicate_id": (lambda m, a: m["objects"][1].__setitem__("object_id", "person_0"), "objects[1].object_id",
                     "duplicate"),
    "bad_scale_kind": (lambda m, a: m.__setitem__("scale_kind", "meters"), "scale_kind", "must be one of"),
    "frame_past_end": (lambda m, a: _set(a, "video/frame_indices", (-1,), 10_000), "video.frame_indices",
                       "must lie in"),
    "orientation_on_non_agent": (lambda m, a: m["objects"][0].__setitem__("is_agent", False),
                                 "objects[0].orientation", "only agents"),
    "mask_runs_wrong": (lambda m, a: _set(a, "objects/0/masks/counts", (0,), 1), "objects[0].masks.counts",
                        "do not cover"),
    # issue 15 item 6: it passed validation, and qa skipped the object silently
    "visible_never_located": (lambda m, a: _never_located(a, 1), "objects[1].centers_world",
                              "visible at 8 frame(s) but the centre is unknown at every frame"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_read_rejects_bad_record_naming_the_field(tmp_path: Path, record: SceneRecord, case: str) -> None:
    change, field, words = BAD_CASES[case]
    path = _corrupt(tmp_path, record, change)
    with pytest.raises(RecordError) as info:
        read_record(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and field in message and words in message, message


def test_truncated_and_garbage_files(tmp_path: Path, record: SceneRecord) -> None:
    good = write_record(tmp_path / "good.npz", record).read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    for path in (truncated, garbage):
        with pytest.raises(RecordError, match="unreadable or truncated"):
            read_record(path)
    not_record = tmp_path / "other.npz"
    with zipfile.ZipFile(not_record, "w") as zf:
        zf.writestr("x.npy", b"")
    with pytest.raises(RecordError, match="not a scene record"):
        read_record(not_record)
    broken_json = tmp_path / "json.npz"
    with zipfile.ZipFile(broken_json, "w") as zf:
        zf.writestr("record.json", "{not json")
    with pytest.raises(RecordError, match=r"record\.json: malformed JSON"):
        read_record(broken_json)


def _dsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsr.cli", *args], capture_output=True, text=True, timeout=120)


def test_validate_cli(tmp_path: Path, record: SceneRecord) -> None:
    good = write_record(tmp_path / "good.npz", record)
    (tmp_path / "video.mp4").write_bytes(b"")  # only its existence is checked here
    ok = _dsr("validate", str(good))
    assert ok.returncode == 0 and "ok" in ok.stdout and "2 objects (1 agents)" in ok.stdout
    bad = _corrupt(tmp_path, record, BAD_CASES["nan_pose"][0])
    (tmp_path / "video.mp4").unlink()
    res = _dsr("validate", str(good), str(bad))
    assert res.returncode == 2  # no record valid: exit code policy of dsr.cli.outcome
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3, res.stderr  # one line per bad record and a summary, no traceback
    assert lines[2] == "error: nothing succeeded: 2 of 2 records failed (invalid)"
    assert "video.path: video file not found" in lines[0]
    assert "camera.c2w: non-finite value at frame 1" in lines[1]
    assert "Traceback" not in res.stderr


def test_validate_cli_rejects_a_visible_object_that_is_never_located(tmp_path: Path, record: SceneRecord) -> None:
    bad = _corrupt(tmp_path, record, BAD_CASES["visible_never_located"][0])
    res = _dsr("validate", str(bad))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"invalid {bad}: objects[1].centers_world: visible at 8 frame(s) but the centre is unknown at every frame"]


def test_masks_absent_at_the_last_frames(tmp_path: Path) -> None:
    from dsr.scene.record import MaskTrack
    from dsr.scene.rle import encode_mask_frames, rle_area

    m = np.zeros((4, 5), bool)
    m[1, 1:3] = True
    counts, offsets = encode_mask_frames([m, None, None], 4, 5)
    track = MaskTrack(4, 5, counts, offsets)
    assert list(track.present) == [True, False, False]
    assert track.decode(2) is None and rle_area(counts) == 2
    empty = MaskTrack(4, 5, *encode_mask_frames([None, None], 4, 5))
    assert not empty.present.any()
