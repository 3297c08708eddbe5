"""Camera estimators against exact synthetic ground truth, and their failure detection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from extract_synth import SynthClip

from dsr.extract.camera import CameraConfig
from dsr.extract.camera.auto import AutoCamera
from dsr.extract.camera.colmap import PycolmapCamera, normalize_scale
from dsr.extract.camera.features import mutual_ratio_matches
from dsr.extract.camera.rotation import RotationOnlyCamera
from dsr.extract.camera.vo import EssentialVOCamera
from dsr.extract.clip import clip_from_arrays
from dsr.scene.align import ate, path_length
from dsr.scene.frames import invert_pose, make_pose, transform_points
from dsr.scene.poses import rotation_angle_deg


def _ate_pct(est_c2w: np.ndarray, gt_c2w: np.ndarray, valid: np.ndarray) -> float:
    stats, _ = ate(est_c2w[valid, :3, 3], gt_c2w[valid, :3, 3])
    return 100.0 * stats.rmse / path_length(gt_c2w[:, :3, 3])


def _relative_rotation_error_deg(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    rel_est = invert_pose(est_c2w[:-1]) @ est_c2w[1:]
    rel_gt = invert_pose(gt_c2w[:-1]) @ gt_c2w[1:]
    return rotation_angle_deg(np.swapaxes(rel_gt[:, :3, :3], 1, 2) @ rel_est[:, :3, :3])


@pytest.fixture(scope="module")
def sfm_truck(truck_clip: SynthClip):
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)
    return clip, PycolmapCamera().estimate(clip)


@pytest.mark.slow
def test_pycolmap_on_synthetic_room(sfm_truck, truck_clip: SynthClip) -> None:
    clip, est = sfm_truck
    assert est.trusted, est.reason
    assert est.track.valid.all() and est.scale_kind == "normalized"
    assert est.attempts[0].method == "pycolmap" and est.attempts[0].ok
    gt = truck_clip.c2w[clip.frame_indices]
    assert _ate_pct(est.track.c2w, gt, est.track.valid) < 2.0
    assert est.track.K[0, 0, 0] == pytest.approx(truck_clip.K[0, 0], rel=0.05)
    assert np.median(_relative_rotation_error_deg(est.track.c2w, gt)) < 0.5
    # the points are normalised: median depth over the sampled frames is 1
    _, _, factor = normalize_scale(est.track.c2w, est.points)
    assert factor == pytest.approx(1.0, rel=1e-6)
    assert est.track.source.name == "camera/pycolmap" and est.track.source.version.startswith("pycolmap-")


@pytest.mark.slow
def test_pycolmap_keeps_a_known_focal_length(truck_clip: SynthClip) -> None:
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)
    focal = float(truck_clip.K[0, 0])
    est = PycolmapCamera(CameraConfig(focal_px=focal)).estimate(clip)
    assert est.trusted, est.reason
    assert est.track.K[0, 0, 0] == pytest.approx(focal, rel=1e-6)  # fixed in bundle adjustment, not refined
    assert _ate_pct(est.track.c2w, truck_clip.c2w[clip.frame_indices], est.track.valid) < 2.0


def test_auto_camera_passes_a_known_focal_to_the_fallbacks(pan_clip: SynthClip) -> None:
    clip = clip_from_arrays(pan_clip.frames, pan_clip.fps, num_samples=16)
    focal = 1.02 * float(pan_clip.K[0, 0])  # a user's calibration, 2% off
    est = AutoCamera(CameraConfig(focal_px=focal), methods=("rotation",)).estimate(clip)
    assert est.trusted, est.reason
    np.testing.assert_allclose(est.track.K[:, 0, 0], focal)  # used as given, not re-estimated
    assert est.attempts[0].stats["focal_px"] == pytest.approx(focal)


def test_vo_on_synthetic_room(truck_clip: SynthClip) -> None:
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)
    est = EssentialVOCamera(focal_px=truck_clip.K[0, 0]).estimate(clip)
    assert est.trusted, est.reason
    gt = truck_clip.c2w[clip.frame_indices]
    assert _ate_pct(est.track.c2w, gt, est.track.valid) < 5.0
    assert np.median(_relative_rotation_error_deg(est.track.c2w, gt)) < 0.5
    assert est.attempts[0].stats["flips_rejected"] == 0
    # the triangulated scene points share the camera's units and frame: put in the first camera's frame, scaled
    # by the cameras' own alignment scale and placed by the true first camera, they lie on the room's walls
    # (planes z = 0, 3; x = ±4; y = ±8; median 0.2; points left unscaled: 71, each step's points at unit
    # baseline: 0.40, rotated the wrong way: 0.30). The path is nearly straight, so its Sim3 rotation is loose:
    # the first camera anchors the frame instead.
    _, sim = ate(est.track.c2w[est.track.valid, :3, 3], gt[est.track.valid, :3, 3])
    local = transform_points(invert_pose(est.track.c2w[0]), est.scene_points) * sim.scale
    pts = transform_points(gt[0], local)
    to_wall = np.min(np.abs(np.stack([pts[:, 2], pts[:, 2] - 3.0, np.abs(pts[:, 0]) - 4.0,
                                      np.abs(pts[:, 1]) - 8.0], axis=1)), axis=1)
    assert len(pts) > 100 and np.median(to_wall) < 0.25


def test_vo_flip_guard_rejects_large_step_rotations(pan_clip: SynthClip) -> None:
    """With an absurdly strict guard every rotating step counts as a flip: the chain is rejected, not used."""
    clip = clip_from_arrays(pan_clip.frames, pan_clip.fps, num_samples=8)
    est = EssentialVOCamera(CameraConfig(max_step_rotation_deg=0.05), focal_px=pan_clip.K[0, 0]).estimate(clip)
    assert not est.trusted
    assert est.attempts[0].stats["flips_rejected"] > 0
    assert not est.track.valid[1:].any()  # everything after the first frame is untrusted


def test_rotation_only_on_pan(pan_clip: SynthClip) -> None:
    clip = clip_from_arrays(pan_clip.frames, pan_clip.fps, num_samples=12)
    est = RotationOnlyCamera(focal_px=pan_clip.K[0, 0]).estimate(clip)
    assert est.trusted, est.reason
    gt = pan_clip.c2w[clip.frame_indices]
    assert np.max(_relative_rotation_error_deg(est.track.c2w, gt)) < 0.3
    np.testing.assert_allclose(est.track.c2w[:, :3, 3], 0.0)


def test_rotation_only_rejects_translation(truck_clip: SynthClip) -> None:
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=12)
    est = RotationOnlyCamera(focal_px=truck_clip.K[0, 0]).estimate(clip)
    assert not est.trusted and "residual" in est.reason


def test_textureless_clip_gets_no_trusted_camera() -> None:
    from extract_synth import make_clip

    flat = make_clip(10, camera="truck", ball=False, textured=False)
    clip = clip_from_arrays(flat.frames, flat.fps, num_samples=8)
    est = AutoCamera(methods=("vo", "rotation")).estimate(clip)
    assert not est.trusted and est.track is None
    assert [a.method for a in est.attempts] == ["vo", "rotation"]
    assert all(not a.ok for a in est.attempts)
    assert est.reason.startswith("no camera method produced trusted poses")


def test_normalize_scale_hand_example() -> None:
    from dsr.extract.base import SparsePoints

    c2w = np.stack([make_pose(np.eye(3), [0.0, 0.0, 0.0]), make_pose(np.eye(3), [1.0, 0.0, 0.0])])
    pts = SparsePoints(points_world=np.array([[0.0, 0.0, 4.0], [1.0, 0.0, 4.0]]),
                       observations=(np.array([[0, 0, 0.0]]), np.array([[0, 0, 1.0]])))
    scaled_c2w, scaled_pts, factor = normalize_scale(c2w, pts)
    assert factor == pytest.approx(0.25)
    np.testing.assert_allclose(scaled_c2w[1, :3, 3], [0.25, 0.0, 0.0])
    np.testing.assert_allclose(scaled_pts.points_world[:, 2], 1.0)
    np.testing.assert_allclose(c2w[1, :3, 3], [1.0, 0.0, 0.0])  # input untouched


def test_camera_extent_flags_collapsed_reconstructions() -> None:
    from dsr.extract.camera.colmap import camera_extent
    from dsr.extract.camera.common import CameraConfig

    # points at depth 4 seen by cameras 1 apart: normalised, the cameras span 0.25 depths (a healthy scene)
    c2w = np.stack([make_pose(np.eye(3), [0.0, 0.0, 0.0]), make_pose(np.eye(3), [1.0, 0.0, 0.0]),
                    make_pose(np.eye(3), [0.5, -2.0, 0.0])])
    assert camera_extent(c2w, np.array([True, True, False])) == pytest.approx(1.0)  # the unknown frame ignored
    assert camera_extent(c2w, np.ones(3, bool)) == pytest.approx(2.0)  # the largest axis (y)
    assert camera_extent(c2w, np.zeros(3, bool)) == 0.0
    # an orbit world's collapsed model: points 1e-6 from the cameras, which then span 7.5e6 depths
    collapsed = c2w.copy()
    collapsed[:, :3, 3] *= 3.75e6
    assert camera_extent(collapsed, np.ones(3, bool)) > CameraConfig().max_camera_extent_depths


def test_a_path_of_a_few_long_jumps_is_a_collapse_and_a_long_smooth_drive_is_not() -> None:
    from dsr.extract.camera.colmap import camera_extent, collapse_reason, jump_share
    from dsr.extract.camera.common import CameraConfig

    def path(xs: list[float]) -> np.ndarray:
        return np.stack([make_pose(np.eye(3), [x, 0.0, 0.0]) for x in xs])

    def verdict(c2w: np.ndarray, known: np.ndarray, cfg: CameraConfig) -> str | None:
        return collapse_reason(camera_extent(c2w, known), jump_share(c2w, known), cfg)

    cfg = CameraConfig()
    # hand-held seed 101's pattern: still frames, then three jumps carrying the whole 11-depth path
    jumpy = path([0.0] * 10 + [3.0, 3.0, 7.0, 7.0, 7.0, 11.0] + [11.0] * 10)
    everywhere = np.ones(len(jumpy), bool)
    assert jump_share(jumpy, everywhere) == pytest.approx(1.0)  # (3 + 4 + 4) / 11
    assert "few jumps" in verdict(jumpy, everywhere, cfg)
    # a drive 30 depths long at a steady pace: far, but spread over every step (3 of 30 steps = 10%)
    drive = path([float(x) for x in range(31)])
    assert jump_share(drive, np.ones(31, bool)) == pytest.approx(0.1)
    assert verdict(drive, np.ones(31, bool), cfg) is None
    # the same jumps within 5 depths (a walk with pauses in a room) stay trusted
    assert verdict(path([0.0] * 10 + [1.0, 2.0, 3.0] + [3.0] * 10), np.ones(23, bool), cfg) is None
    # unknown frames are skipped: the steps run between the known ones
    assert jump_share(path([0.0, 100.0, 1.0, 2.0]), np.array([True, False, True, True])) == pytest.approx(1.0)
    assert jump_share(path([0.0, 0.0]), np.ones(2, bool)) == 0.0  # no path at all


def test_focal_from_exact_homographies() -> None:
    from scipy.spatial.transform import Rotation

    from dsr.extract.camera.common import guess_intrinsics
    from dsr.extract.camera.rotation import focal_from_homographies

    K = np.array([[350.0, 0, 160], [0, 350.0, 120], [0, 0, 1]])
    rots = Rotation.from_rotvec([[0.0, 0.03, 0.0], [0.02, 0.01, 0.0], [0.0, -0.02, 0.01]]).as_matrix()
    hs = [K @ r @ np.linalg.inv(K) for r in rots]
    f = focal_from_homographies(hs, guess_intrinsics(321, 241, 1.2))
    assert f == pytest.approx(350.0, rel=0.01)
    # no rotation → no information; nor from the fit noise of a static camera's homography (measured on a
    # MuJoCo world: sub-pixel shifts, but perspective terms that read as ~0.5° under the guessed focal)
    assert focal_from_homographies([np.eye(3)], guess_intrinsics(321, 241, 1.2)) is None
    static_noise = np.array([[0.9998, 0.0029, 0.0159], [-0.0005, 1.0035, -0.0338], [-2e-5, 1e-5, 1.0]])
    assert focal_from_homographies([static_noise] * 3, guess_intrinsics(321, 241, 1.2)) is None


def test_rotation_from_bearings_is_exact_and_ignores_the_homography_noise() -> None:
    from scipy.spatial.transform import Rotation

    from dsr.extract.camera.rotation import rotation_from_bearings

    K = np.array([[350.0, 0, 160], [0, 350.0, 120], [0, 0, 1]])
    rot = Rotation.from_rotvec([0.01, -0.03, 0.005]).as_matrix()
    p0 = np.random.default_rng(0).uniform([0, 0], [320, 240], (50, 2))
    moved = np.column_stack([p0, np.ones(50)]) @ (K @ rot @ np.linalg.inv(K)).T
    p1 = moved[:, :2] / moved[:, 2:]
    np.testing.assert_allclose(rotation_from_bearings(p0, p1, K), rot, atol=1e-9)
    # a static camera: identity, whatever the focal length
    np.testing.assert_allclose(rotation_from_bearings(p0, p0, K * [[2], [2], [1]]), np.eye(3), atol=1e-12)


def test_rotation_only_estimates_the_focal_on_a_pan(pan_clip: SynthClip) -> None:
    clip = clip_from_arrays(pan_clip.frames, pan_clip.fps, num_samples=12)
    est = RotationOnlyCamera().estimate(clip)
    assert est.trusted, est.reason
    assert est.track.K[0, 0, 0] == pytest.approx(pan_clip.K[0, 0], rel=0.05)


def test_rotation_only_rejects_a_slow_dolly_by_its_long_baseline_parallax(tmp_path: Path) -> None:
    """A slow MuJoCo dolly (0.6 m forward in 6 s, scene ~6 m away) moves < 0.5 px of parallax per dense step,
    so every step passes the rotation model; the parallax chained over 3 s (~7 px) must not."""
    pytest.importorskip("mujoco")
    from dsr.extract.clip import load_clip
    from dsr.world import WorldConfig, render_world

    render_world(WorldConfig(seed=1, camera_motion="dolly", duration_s=6.0, fps=10.0, motion_scale=0.5),
                 tmp_path, progress=False)
    clip, _ = load_clip(tmp_path / "video.mp4")
    est = RotationOnlyCamera().estimate(clip)
    stats = est.attempts[0].stats
    assert stats["median_residual_px"] < 1.5  # the per-step check alone would have trusted it
    assert stats["long_baseline_residual_px"] > 3.0
    assert not est.trusted and "parallax accumulates" in est.reason


def test_vo_keyframes_let_a_slow_dolly_translate_smoothly(tmp_path: Path) -> None:
    """The same slow MuJoCo dolly: each dense step has < 1 px of parallax, so step-by-step VO left the camera
    standing for seconds and then jumped (ATE 13.9% of the path). Keeping the keyframe until the baseline
    is measurable must give a steady forward travel."""
    pytest.importorskip("mujoco")
    from dsr.extract.clip import load_clip
    from dsr.scene.io import read_record
    from dsr.world import WorldConfig, render_world

    render_world(WorldConfig(seed=1, camera_motion="dolly", duration_s=6.0, fps=10.0, motion_scale=0.5),
                 tmp_path, progress=False)
    clip, _ = load_clip(tmp_path / "video.mp4")
    gt = read_record(tmp_path / "record.npz").camera.c2w[clip.frame_indices]
    est = EssentialVOCamera().estimate(clip)
    assert est.trusted, est.reason
    assert _ate_pct(est.track.c2w, gt, est.track.valid) < 8.0  # measured 3.9%
    travelled = np.linalg.norm(est.track.c2w[:, :3, 3] - est.track.c2w[0, :3, 3], axis=1)
    truth = np.linalg.norm(gt[:, :3, 3] - gt[0, :3, 3], axis=1)
    # halfway through the clip the camera has covered about as much of its path as the truth (0.47)
    half = len(truth) // 2
    assert abs(travelled[half] / travelled[-1] - truth[half] / truth[-1]) < 0.15


def test_sfm_grid_keeps_the_ends_and_thins_to_the_rate() -> None:
    from dsr.extract.camera.common import grid_positions

    dense = np.arange(0, 61, 2)  # video frames 0, 2, …, 60 at 10 fps: a dense frame every 0.2 s
    pos = grid_positions(dense, 10.0, 3.0)
    # the first dense frame at or after each 1/3 s tick: 19 of 31 frames over 6 s
    np.testing.assert_array_equal(dense[pos], [0, 4, 8, 10, 14, 18, 20, 24, 28, 30, 34, 38, 40, 44, 48, 50, 54, 58,
                                               60])
    assert np.all(np.diff(pos) > 0) and pos[0] == 0 and pos[-1] == len(dense) - 1
    np.testing.assert_array_equal(grid_positions(dense, 10.0, None), np.arange(len(dense)))


def test_interpolate_poses_between_known_frames_only() -> None:
    from scipy.spatial.transform import Rotation

    from dsr.scene.poses import interpolate_poses

    frames = np.array([0, 10, 20, 30])
    c2w = np.tile(np.eye(4), (4, 1, 1))
    c2w[1, :3, :3] = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    c2w[1, :3, 3] = [1.0, 0.0, 0.0]
    c2w[2, :3, 3] = [3.0, 0.0, 0.0]
    known = np.array([True, True, True, False])
    out, valid, nearest = interpolate_poses(np.array([0, 5, 15, 20, 25, 31]), frames, c2w, known)
    np.testing.assert_array_equal(valid, [True, True, True, True, False, False])  # no extrapolation, no gaps
    np.testing.assert_array_equal(nearest, [0, 0, 1, 2, -1, -1])  # a tie (frame 15) goes to the earlier one
    np.testing.assert_allclose(out[1, :3, 3], [0.5, 0.0, 0.0])  # halfway between frames 0 and 10
    np.testing.assert_allclose(Rotation.from_matrix(out[1, :3, :3]).magnitude(), np.radians(20.0))  # slerp: half of 40°
    np.testing.assert_allclose(out[2, :3, 3], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(out[3], c2w[2])  # an SfM frame keeps its own pose


def test_sfm_takes_every_dense_frame_when_the_image_moves_fast() -> None:
    """Measured step flows (fraction of the long side per dense step): HoloLens walk-through 0.117, DAVIS and
    MuJoCo clips 0.0006–0.02 — a fast camera must not be thinned to the 3 fps SfM grid."""
    from dsr.extract.base import Attempt

    auto = AutoCamera(CameraConfig())
    fast = [Attempt("rotation", False, "translates", 1.0, {"step_flow_frac": 0.117})]
    slow = [Attempt("rotation", False, "translates", 1.0, {"step_flow_frac": 0.02})]
    assert auto.sfm_config(fast).sfm_fps is None
    assert auto.sfm_config(slow).sfm_fps == 3.0
    assert auto.sfm_config([]).sfm_fps == 3.0  # no rotation check ran: the grid


def test_a_partial_reconstruction_lends_its_focal_only_when_sane(truck_clip: SynthClip) -> None:
    from dsr.extract.adapters import intrinsics_matrix
    from dsr.extract.base import Attempt, CameraEstimate
    from dsr.scene.build import camera_track
    from dsr.scene.record import Source

    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)
    auto = AutoCamera(CameraConfig())
    track = camera_track(np.tile(intrinsics_matrix(1.1 * clip.width, 1.1 * clip.width, clip.width / 2, clip.height / 2),
                                 (16, 1, 1)), np.tile(np.eye(4), (16, 1, 1)), Source("camera/pycolmap", "test"))

    def partial(**stats: float) -> CameraEstimate:
        return CameraEstimate(track, False, "collapsed", "normalized", (Attempt("pycolmap", False, "x", 1.0, stats),))

    assert auto._usable_focal(partial(registered_ratio=1.0, radial_k=0.01), clip)
    assert not auto._usable_focal(partial(registered_ratio=0.4, radial_k=0.01), clip)  # half the clip or more
    # a focal length traded against an implausible distortion is not the lens's
    assert not auto._usable_focal(partial(registered_ratio=1.0, radial_k=0.73), clip)


def test_vo_reports_whether_its_focal_length_was_guessed_given_or_borrowed(truck_clip: SynthClip) -> None:
    """What the record's focal range (schema v5) is read from: VO under the guess, under a given focal length, and
    under one an earlier method's partial reconstruction lent it."""
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)
    assert EssentialVOCamera().estimate(clip).attempts[0].stats["focal_guessed"] == 1.0
    given = AutoCamera(CameraConfig(focal_px=float(truck_clip.K[0, 0])), methods=("vo",)).estimate(clip)
    assert given.attempts[-1].stats["focal_guessed"] == 0.0 and "focal_lent" not in given.attempts[-1].stats
    # no method may be trusted (every sampled frame and more must be posed; SfM first however short the clip), so
    # SfM's full but untrusted reconstruction lends its focal length to VO
    strict = AutoCamera(CameraConfig(min_valid_ratio=1.01, short_clip_s=None), methods=("pycolmap", "vo")).estimate(clip)
    assert [a.method for a in strict.attempts] == ["pycolmap", "vo"] and not strict.trusted
    assert strict.attempts[-1].stats["focal_guessed"] == 0.0 and strict.attempts[-1].stats["focal_lent"] == 1.0
    assert "focal_lent" not in strict.attempts[0].stats


def test_mutual_ratio_matches_hand_example() -> None:
    # i0 (0,0): nearest j0 at 1, second j2 at 5.66 -> passes; j0's nearest i is i0 -> mutual
    # i1 (10,0): nearest j1 at 1, second j2 at 8.49 -> passes; j1's nearest i is i1
    # i2 (0,10): nearest j2 at 5.66, second j0 at 10.05 (ratio 0.56) -> passes; j2's nearest i is i2 (5.66 < 7.21)
    di = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], np.float32)
    dj = np.array([[1.0, 0.0], [10.0, 1.0], [4.0, 6.0]], np.float32)
    qi, tj = mutual_ratio_matches(di, dj, 0.8)
    assert qi.tolist() == [0, 1, 2] and tj.tolist() == [0, 1, 2]


def test_mutual_ratio_matches_applies_the_ratio_test_and_mutual_check() -> None:
    # nearest 3, second 4: ratio 0.75 passes at 0.8 and fails at 0.7
    di = np.array([[0.0, 0.0]], np.float32)
    dj = np.array([[3.0, 0.0], [0.0, 4.0]], np.float32)
    assert mutual_ratio_matches(di, dj, 0.8)[1].tolist() == [0]
    assert mutual_ratio_matches(di, dj, 0.7)[0].tolist() == []
    # i0's nearest is j0 (1.1; second 10), but j0's nearest is i1 (0.1): only (i1, j0) is mutual
    di = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    dj = np.array([[1.1, 0.0], [10.0, 0.0]], np.float32)
    qi, tj = mutual_ratio_matches(di, dj, 0.8)
    assert qi.tolist() == [1] and tj.tolist() == [0]


def test_vo_first_chain_never_runs_sfm_when_vo_holds(truck_clip: SynthClip) -> None:
    # a translating camera: the rotation check fails, VO is trusted, and SfM (tens of seconds) is never run
    from dsr.cli.extract import CAMERA_CHOICES
    from dsr.extract.camera.auto import DEFAULT_METHODS, VO_FIRST_METHODS

    assert DEFAULT_METHODS == ("rotation", "pycolmap", "vo") == CAMERA_CHOICES["auto"]  # labels first: SfM first
    assert VO_FIRST_METHODS == ("rotation", "vo", "pycolmap") == CAMERA_CHOICES["vo-first"]
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)
    est = AutoCamera(methods=VO_FIRST_METHODS).estimate(clip)
    assert est.trusted and est.method == "vo"
    assert [(a.method, a.ok) for a in est.attempts] == [("rotation", False), ("vo", True)]


def test_vo_falls_back_to_every_dense_frame_when_the_grid_chain_fails(truck_clip: SynthClip, monkeypatch) -> None:
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)  # 30 dense frames at 10 fps
    seen: list[int] = []
    chain = EssentialVOCamera._chain

    def spy(self, clip, grid, start, max_side):  # the grid chain "fails" (a broken chain on fast motion); rerun
        seen.append(len(grid))
        est = chain(self, clip, grid, start, max_side)
        return est if len(seen) > 1 else replace(est, trusted=False)

    monkeypatch.setattr(EssentialVOCamera, "_chain", spy)
    assert CameraConfig().vo_fps is None  # the default chains every dense frame; the grid is opt-in
    est = EssentialVOCamera(replace(CameraConfig(), vo_fps=6.0)).estimate(clip)
    # the 6 fps grid over frames 0-29 at 10 fps: ticks k/6 s (k = 0..17) -> frame ceil(10k/6) = 0, 2, 4, 5, 7, ...,
    # 27, 29 (the last frame among them): 18 frames; then all 30
    assert seen == [18, 30]
    assert est.trusted and est.attempts[0].stats["grid_fallback"] == 1.0


def test_vo_retries_on_full_size_frames_when_the_downscaled_chain_fails(truck_clip: SynthClip, monkeypatch) -> None:
    frames = np.stack([cv2_resize(f, 2.0) for f in truck_clip.frames])  # 640-px frames: above vo_max_side
    clip = clip_from_arrays(frames, truck_clip.fps, num_samples=16)
    sides: list[int | None] = []
    chain = EssentialVOCamera._chain

    def spy(self, clip, grid, start, max_side):  # the downscaled chains "fail"; the full-size one runs
        sides.append(max_side)
        est = chain(self, clip, grid, start, max_side)
        return est if max_side is None else replace(est, trusted=False)

    monkeypatch.setattr(EssentialVOCamera, "_chain", spy)
    est = EssentialVOCamera(CameraConfig(short_clip_vo_fps=None)).estimate(clip)
    assert sides == [320, None]  # every dense frame already: no grid fallback between
    assert est.trusted and est.attempts[0].stats["full_size_fallback"] == 1.0


def test_vo_chains_a_6fps_grid_on_short_clips_only(truck_clip: SynthClip, monkeypatch) -> None:
    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=16)  # 30 dense frames at 10 fps: 2.9 s
    grids: list[int] = []
    chain = EssentialVOCamera._chain

    def spy(self, clip, grid, start, max_side):
        grids.append(len(grid))
        return chain(self, clip, grid, start, max_side)

    monkeypatch.setattr(EssentialVOCamera, "_chain", spy)
    est = EssentialVOCamera(CameraConfig()).estimate(clip)
    assert est.trusted and grids == [18]  # the 6-fps grid of test_vo_falls_back_…: frames 0, 2, 4, 5, 7, …, 29
    grids.clear()
    EssentialVOCamera(CameraConfig(short_clip_s=2.0)).estimate(clip)  # 2.9 s is not short under a 2-s bound
    assert grids == [30]
    grids.clear()
    EssentialVOCamera(CameraConfig(vo_fps=3.0)).estimate(clip)  # a rate the user set wins on short clips too
    assert grids[0] == 10  # ticks k/3 s, k = 0..8: frames 0, 4, 7, 10, 14, 17, 20, 24, 27, and the last (29)


def cv2_resize(frame: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_LINEAR)


def test_auto_camera_tries_vo_before_sfm_only_on_short_clips() -> None:
    frames = np.zeros((12, 24, 32, 3), np.uint8)
    short = clip_from_arrays(frames, fps=10.0)  # 1.1 s
    long = clip_from_arrays(frames, fps=1.0)  # 11 s
    auto = AutoCamera()
    assert auto.order(short) == ("rotation", "vo", "pycolmap")
    assert auto.order(long) == ("rotation", "pycolmap", "vo")
    never = AutoCamera(CameraConfig(short_clip_s=None))
    assert never.order(short) == ("rotation", "pycolmap", "vo")
    # a chain without SfM has nothing to reorder
    assert AutoCamera(methods=("rotation", "vo")).order(short) == ("rotation", "vo")


def test_vo_features_on_a_downscaled_frame_come_back_in_full_pixels() -> None:
    import cv2

    from dsr.extract.camera.features import FeatureMatcher

    rng = np.random.default_rng(5)
    tex = cv2.GaussianBlur((rng.random((400, 700)) * 255).astype(np.uint8), (0, 0), 2.0)
    a, b = tex[20:380, 20:660], tex[20:380, 32:672]  # 640×360; the content moves 12 px left
    for side in (None, 320):
        p0, p1 = FeatureMatcher([a, b], max_side=side).match(0, 1)
        assert len(p0) > 50
        np.testing.assert_allclose(np.median(p1 - p0, axis=0), [-12.0, 0.0], atol=0.5)
        assert p0[:, 0].max() > 400  # full-resolution coordinates, not the 320-px frame's


def test_track_sequence_hands_each_step_to_keep_going_and_stops_when_told() -> None:
    from extract_synth import make_clip

    from dsr.extract.camera.features import gray, pairs, track_sequence

    synth = make_clip(8, camera="truck", ball=False)
    grays = [gray(f) for f in synth.frames]
    full = track_sequence(grays)
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []

    def keep_going(i: int, p0: np.ndarray, p1: np.ndarray) -> bool:
        seen.append((i, p0, p1))
        return i < 2

    part = track_sequence(grays, keep_going=keep_going)
    assert [s[0] for s in seen] == [0, 1, 2]
    for i, p0, p1 in seen:  # exactly the correspondences the table gives, in its order
        q0, q1 = pairs(full, i, i + 1)
        np.testing.assert_array_equal(p0, q0)
        np.testing.assert_array_equal(p1, q1)
    assert np.isfinite(part[:, 3, 0]).any() and not np.isfinite(part[:, 4:, 0]).any()
    np.testing.assert_array_equal(part[:, :4], full[: len(part), :4])


def test_least_rotation_residual_forgives_a_wrong_focal_but_not_parallax() -> None:
    from scipy.spatial.transform import Rotation

    from dsr.extract.camera.rotation import least_rotation_residual, rotation_residual

    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    guess = K.copy()
    guess[0, 0] = guess[1, 1] = 600.0  # the guessed focal is twice too long
    rng = np.random.default_rng(3)
    p0 = rng.uniform([0, 0], [320, 240], (200, 2))
    rot = Rotation.from_rotvec([0.0, 0.14, 0.0]).as_matrix()  # an 8° pan
    moved = np.column_stack([p0, np.ones(200)]) @ (K @ rot @ np.linalg.inv(K)).T
    p1 = moved[:, :2] / moved[:, 2:]
    inliers = np.ones(200, bool)
    assert rotation_residual(p0, p1, inliers, guess, 0.25)[0] > 1.5  # the guess alone would fail the step …
    assert least_rotation_residual(p0, p1, inliers, guess, 0.25) < 0.2  # … a focal in the range explains it
    # a sideways step past points at 1-10 m: parallax no focal length removes
    depth = rng.uniform(1.0, 10.0, 200)
    xyz = np.column_stack([p0, np.ones(200)]) @ np.linalg.inv(K).T * depth[:, None]
    shifted = (xyz - [0.3, 0.0, 0.0]) @ K.T
    assert least_rotation_residual(p0, shifted[:, :2] / shifted[:, 2:], inliers, guess, 0.25) > 3.0


def test_the_rotation_check_stops_early_only_where_its_verdict_is_settled(truck_clip: SynthClip,
                                                                          pan_clip: SynthClip) -> None:
    # the truck at every second frame: 0.1 m sideways per dense step, parallax no focal length explains
    for frames, fps, trusted in ((truck_clip.frames[::2], truck_clip.fps / 2, False),
                                 (pan_clip.frames, pan_clip.fps, True)):
        clip = clip_from_arrays(frames, fps, num_samples=12)
        early = RotationOnlyCamera(CameraConfig()).estimate(clip)
        full = RotationOnlyCamera(CameraConfig(rotation_stop_early=False)).estimate(clip)
        assert early.trusted == full.trusted == trusted
        stopped = early.attempts[0].stats.get("stopped_at_step")
        if trusted:
            assert stopped is None
            np.testing.assert_array_equal(early.track.c2w, full.track.c2w)
        else:  # the truck fails its first step at any focal: one LK step instead of the clip's 14
            assert stopped == 0 and early.track is None and "at any focal length" in early.reason
            assert full.reason.startswith("step 0: rotation model residual")
            assert full.attempts[0].stats["sampled_valid_ratio"] <= early.attempts[0].stats["sampled_valid_ratio"]


def _panning_tracks(n: int, movers: int, mover_px_per_step: float, side_m_per_step: float,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tracks (P, n, 2), c2w (n, 4, 4) of the pure pan the rotation model assumes, K) for static points 2-6 m away
    seen by a camera panning 0.5° per step (and sliding sideways ``side_m_per_step``), plus ``movers`` tracks that
    also drift right by ``mover_px_per_step`` each step."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    static = 200
    px = rng.uniform([40, 40], [280, 200], (static + movers, 2))
    depth = rng.uniform(2.0, 6.0, static + movers)
    world = np.column_stack([px, np.ones(len(px))]) @ np.linalg.inv(K).T * depth[:, None]
    c2w = np.stack([make_pose(Rotation.from_rotvec([0.0, np.radians(0.5) * t, 0.0]).as_matrix(), np.zeros(3))
                    for t in range(n)])
    tracks = np.empty((len(px), n, 2))
    for t in range(n):
        true = c2w[t].copy()
        true[0, 3] = side_m_per_step * t
        cam = transform_points(invert_pose(true), world)
        uv = cam @ K.T
        tracks[:, t] = uv[:, :2] / uv[:, 2:]
    tracks[static:] += mover_px_per_step * np.arange(n)[None, :, None] * np.array([1.0, 0.0])
    return tracks, c2w, K


def _off_model(tracks: np.ndarray, c2w: np.ndarray, K: np.ndarray, limit: float) -> np.ndarray:
    """(P, n − 1): the track's own reprojection error under the step's rotation exceeds ``limit`` (as the rotation
    check marks them)."""
    import cv2

    out = np.zeros((tracks.shape[0], tracks.shape[1] - 1), bool)
    for i in range(tracks.shape[1] - 1):
        rot = c2w[i + 1, :3, :3].T @ c2w[i, :3, :3]
        pred = cv2.perspectiveTransform(tracks[:, i].reshape(-1, 1, 2), K @ rot @ np.linalg.inv(K)).reshape(-1, 2)
        out[:, i] = np.linalg.norm(pred - tracks[:, i + 1], axis=1) > limit
    return out


def test_long_baseline_check_leaves_out_movers_but_still_sees_a_slow_translation() -> None:
    from dsr.extract.camera.rotation import long_baseline_residuals

    limit = CameraConfig().long_check_off_model_px
    # a pure pan where walkers own 60% of the tracks: the window's median is a walker's drift (6 px x 40 steps)
    tracks, c2w, K = _panning_tracks(41, movers=300, mover_px_per_step=6.0, side_m_per_step=0.0)
    (_, _, everyone), = long_baseline_residuals(tracks, c2w, K, 40, 30)
    assert everyone == pytest.approx(240.0, abs=2.0)
    (_, _, on_model), = long_baseline_residuals(tracks, c2w, K, 40, 30, _off_model(tracks, c2w, K, limit))
    assert on_model < 0.01
    # a camera sliding 6 mm per step: 0.3-0.9 px of parallax a step keeps every static track on the model, and the
    # 24 cm over the window still reads as parallax (12-36 px)
    tracks, c2w, K = _panning_tracks(41, movers=0, mover_px_per_step=0.0, side_m_per_step=0.006)
    off = _off_model(tracks, c2w, K, limit)
    assert not off.any()
    (_, _, sliding), = long_baseline_residuals(tracks, c2w, K, 40, 30, off)
    assert sliding > 10.0
