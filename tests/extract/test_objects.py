"""Movers, tracking, centre lifting and velocity heading."""

from __future__ import annotations

import numpy as np
import pytest
from extract_synth import SynthClip

from dsr.extract.adapters import box_iou
from dsr.extract.base import SparsePoints
from dsr.extract.lift import LiftConfig, fit_ground_plane, lift_centers, normalize_object_depths
from dsr.extract.motion import MotionConfig, detect_movers, nanmedian_first_axis, residual_flow
from dsr.extract.orient import HeadingConfig, velocity_heading
from dsr.extract.tracking import TrackerConfig, associate_tracks
from dsr.scene.frames import look_at_c2w, project_points
from dsr.scene.record import CENTER_METHODS


@pytest.mark.parametrize("fit", ["ransac", "usac"])
@pytest.mark.parametrize("clip_name", ["static_clip", "pan_clip", "truck_clip"])
def test_movers_find_the_ball(clip_name: str, fit: str, request: pytest.FixtureRequest) -> None:
    clip: SynthClip = request.getfixturevalue(clip_name)
    config = MotionConfig(homography_fit=fit)
    hits = 0
    frames = [4, 10, 16]
    for i in frames:
        dets = detect_movers(clip.frames[i], clip.frames[i + 3], clip.frames.shape[1:3], config)
        u, v = project_points(np.linalg.inv(clip.c2w[i])[:3, :3] @ clip.ball_world[i] + np.linalg.inv(clip.c2w[i])[:3, 3],
                              clip.K)
        hits += any(d.box_xyxy[0] - 5 <= u <= d.box_xyxy[2] + 5 and d.box_xyxy[1] - 5 <= v <= d.box_xyxy[3] + 5
                    for d in dets)
    assert hits >= len(frames) - 1


def test_translating_camera_explained_by_a_coarsely_fitted_epipolar_model(truck_clip: SynthClip) -> None:
    """The fundamental matrix, fitted on a grid twice as coarse as the flow's (the default), explains the translating
    camera's static parallax: at each frame pair the one mover is the ball. Without the epipolar model the
    parallax itself comes out as movers."""
    pairs = (4, 10, 16, 22)

    def movers(config: MotionConfig) -> list[list]:
        return [detect_movers(truck_clip.frames[i], truck_clip.frames[i + 3], truck_clip.frames.shape[1:3], config)
                for i in pairs]

    for i, dets in zip(pairs, movers(MotionConfig()), strict=True):
        w2c = np.linalg.inv(truck_clip.c2w[i])
        u, v = project_points(w2c[:3, :3] @ truck_clip.ball_world[i] + w2c[:3, 3], truck_clip.K)
        assert len(dets) == 1
        x1, y1, x2, y2 = dets[0].box_xyxy
        assert x1 - 5 <= u <= x2 + 5 and y1 - 5 <= v <= y2 + 5
    assert max(len(d) for d in movers(MotionConfig(min_parallax_px=1e9))) >= 2


def test_movers_are_the_same_on_any_number_of_workers(truck_clip: SynthClip) -> None:
    # each sampled frame's movers come from its own frames, and every RANSAC is seeded in the thread that runs it
    from dsr.errors import DsrError
    from dsr.extract.clip import clip_from_arrays
    from dsr.extract.motion import MotionGrounder

    clip = clip_from_arrays(truck_clip.frames, truck_clip.fps, num_samples=12)
    alone = MotionGrounder(MotionConfig(workers=1)).detect_clip(clip)
    assert sum(len(frame) for frame in alone) >= 6  # the ball is found, so there is something to compare
    for workers in (2, 3):
        side_by_side = MotionGrounder(MotionConfig(workers=workers)).detect_clip(clip)
        assert [[(d.box_xyxy.tolist(), d.score, d.mask.tobytes()) for d in frame] for frame in side_by_side] == \
            [[(d.box_xyxy.tolist(), d.score, d.mask.tobytes()) for d in frame] for frame in alone]
    with pytest.raises(DsrError, match="motion workers must be >= 1"):
        MotionConfig(workers=0)


@pytest.mark.parametrize("fit", ["ransac", "usac"])
def test_static_scene_has_no_residual_motion(pan_clip: SynthClip, fit: str) -> None:
    """The pan clip's camera without the ball: a 3° rotation leaves no residual motion anywhere."""
    from extract_synth import render

    config = MotionConfig(homography_fit=fit)
    a, b = (render(pan_clip.c2w[i], pan_clip.K, pan_clip.frames.shape[1:3], None) for i in (4, 7))
    res, _, _ = residual_flow(a, b, config)
    assert np.percentile(res, 99) < 0.5
    assert detect_movers(a, b, a.shape[:2], config) == []


def test_tracker_hand_case() -> None:
    a = lambda x: np.array([[x, 10.0, x + 20, 40]])  # noqa: E731
    frames = []
    for t in range(10):
        boxes = [a(5.0 * t)[0]]
        if t != 4:  # a one-frame gap
            boxes.append(np.array([200.0, 100, 230, 150]) + 2 * t)
        if t == 6:
            boxes.append(np.array([400.0, 400, 410, 410]))  # one-off noise
        frames.append(np.array(boxes))
    tracks = associate_tracks(frames, TrackerConfig(min_frames=3))
    assert len(tracks) == 2
    assert sorted(tracks[0].members) == list(range(10))
    assert sorted(tracks[1].members) == [t for t in range(10) if t != 4]


def _ground_scene():
    """Cameras 1.5 above the ground z = 0 looking at the origin; 300 ground points."""
    rng = np.random.default_rng(0)
    c2w = np.stack([look_at_c2w(np.array([x, -5.0, 1.5]), np.array([0.0, 0.0, 0.0])) for x in (-0.5, 0.0, 0.5)])
    ground = np.column_stack([rng.uniform(-3, 3, 300), rng.uniform(-2, 4, 300), rng.normal(0, 0.003, 300)])
    wall = np.column_stack([rng.uniform(-3, 3, 100), np.full(100, 6.0), rng.uniform(0, 3, 100)])
    return c2w, np.concatenate([ground, wall])


def test_ground_plane_and_contact_lifting() -> None:
    c2w, pts = _ground_scene()
    plane = fit_ground_plane(pts, c2w)
    assert plane is not None
    normal, d = plane
    assert normal @ np.array([0, 0, 1.0]) > 0.999 and abs(d) < 0.01
    # a 0.5-tall object standing at world (0.3, 1.0, 0): its box bottom is the contact pixel
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    t = 1
    w2c = np.linalg.inv(c2w[t])
    bottom = w2c[:3, :3] @ np.array([0.3, 1.0, 0.0]) + w2c[:3, 3]
    top = w2c[:3, :3] @ np.array([0.3, 1.0, 0.5]) + w2c[:3, 3]
    (ub, vb), (_, vt) = project_points(bottom, K), project_points(top, K)
    box = np.array([ub - 10, vt, ub + 10, vb])
    mask = np.zeros((240, 320), bool)
    masks = [None, mask, None]
    boxes = np.stack([np.zeros(4), box, np.zeros(4)])
    res = lift_centers(masks, boxes, np.stack([K] * 3), c2w, None, "moving object", LiftConfig(), plane)
    assert res.method[1] == CENTER_METHODS.index("ground_contact") and res.method[0] == 0
    center_world = c2w[t, :3, :3] @ res.centers_cam[1] + c2w[t, :3, 3]
    np.testing.assert_allclose(center_world, [0.3, 1.0, 0.25], atol=0.03)


def test_sfm_points_then_size_prior() -> None:
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    c2w = np.stack([np.eye(4)] * 2)
    # frame 0: six SfM points at depth 4 inside the mask; frame 1: none
    pts = np.array([[0.0, 0.0, 4.0]] * 6) + np.linspace(-0.05, 0.05, 6)[:, None]
    obs0 = np.column_stack([np.full(6, 50.0), np.full(6, 50.0), np.arange(6)])
    points = SparsePoints(points_world=pts, observations=(obs0, np.zeros((0, 3))))
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    boxes = np.array([[40.0, 40, 59, 59], [40.0, 30, 59, 69]])  # twice as tall in frame 1 → half as far
    res = lift_centers([mask, mask], boxes, np.stack([K, K]), c2w, points, "moving object")
    assert [CENTER_METHODS[m] for m in res.method] == ["sfm_points", "size_prior"]
    assert res.centers_cam[0, 2] == pytest.approx(4.0, abs=0.06)
    assert res.centers_cam[1, 2] == pytest.approx(2.0, rel=0.05)
    # without any solved frame and without permission, the size prior stays off
    res2 = lift_centers([None, mask], boxes, np.stack([K, K]), c2w, None, "moving object")
    assert (res2.method == 0).all() and np.isnan(res2.centers_cam).all()
    res3 = lift_centers([None, mask], boxes, np.stack([K, K]), c2w, None, "person",
                        LiftConfig(allow_unscaled_size_prior=True))
    assert res3.centers_cam[1, 2] == pytest.approx(100 * 1.7 / 40.0)
    normed, factor = normalize_object_depths([res3])
    assert normed[0].centers_cam[1, 2] == pytest.approx(1.0) and factor == pytest.approx(40.0 / 170.0)


def test_velocity_heading_straight_walk() -> None:
    t = np.arange(12) * 0.5
    centers = np.column_stack([0.4 * t, np.zeros(12), np.full(12, 0.5)])  # walking along +x, z up
    sigma = np.full(12, 0.01)
    rot, conf, sig = velocity_heading(centers, sigma, t, np.array([0, 0, 1.0]))
    assert np.all(sig[np.isfinite(rot).all(axis=(1, 2))] < 5.0)  # fast and clean: a sharp heading
    known = np.isfinite(rot).all(axis=(1, 2))
    assert known.sum() >= 10
    np.testing.assert_allclose(rot[known][:, :, 0], np.tile([1.0, 0, 0], (known.sum(), 1)), atol=1e-9)
    np.testing.assert_allclose(rot[known][:, :, 1], np.tile([0, 1.0, 0], (known.sum(), 1)), atol=1e-9)
    # fast and clean: past DSR's 0.6 gate, at the cap
    np.testing.assert_allclose(conf[known], 0.75)
    # the same walk with noisier centres: displacement over ±2 steps (4 × 0.2 m = 0.8 m) vs √2·0.15 noise
    # → ratio 3.77 → confidence 0.45 + 0.04·3.77 = 0.601, heading sigma atan(1/3.77) = 14.9°
    _, conf_noisy, sig_noisy = velocity_heading(centers, np.full(12, 0.15), t, np.array([0, 0, 1.0]))
    mid = slice(2, 10)  # frames with the full baseline on both sides
    np.testing.assert_allclose(conf_noisy[mid], 0.45 + 0.04 * 0.8 / (np.sqrt(2) * 0.15), rtol=1e-9)
    np.testing.assert_allclose(sig_noisy[mid], np.degrees(np.arctan2(np.sqrt(2) * 0.15, 0.8)), rtol=1e-9)
    # no noise estimate at all (too short a track to measure it): no confidence to give
    _, conf_nan, _ = velocity_heading(centers, np.full(12, np.nan), t, np.array([0, 0, 1.0]))
    assert (conf_nan == 0).all()


def test_velocity_heading_needs_one_full_baseline_of_known_centres() -> None:
    # a clean walk along +x; baseline 2 steps each side: 5 known centres are the least that give one frame both
    t = np.arange(12) * 0.5
    walk = np.column_stack([0.4 * t, np.zeros(12), np.full(12, 0.5)])
    up = np.array([0, 0, 1.0])
    for seen, headed in ((3, 0), (4, 0), (5, 5)):
        centers = np.full_like(walk, np.nan)
        centers[4:4 + seen] = walk[4:4 + seen]
        rot, conf, sig = velocity_heading(centers, np.full(12, 0.01), t, up)
        assert int((conf > 0).sum()) == headed and int(np.isfinite(rot).all(axis=(1, 2)).sum()) == headed
        assert (sig[conf == 0] == 0).all()
    # known centres count across a gap: 3 + 2 seen frames are enough
    centers = walk.copy()
    centers[[0, 1, 2, 3, 7, 8, 11]] = np.nan
    _, conf, _ = velocity_heading(centers, np.full(12, 0.01), t, up)
    assert int((conf > 0).sum()) == 5
    # the setting's default is the baseline's own length
    assert HeadingConfig().min_known_centres == 2 * HeadingConfig().baseline_frames + 1


def test_velocity_heading_counts_the_shared_depth_error_of_a_moving_camera() -> None:
    """A depth scale error ε moves every centre by ε × the camera's displacement (the other way): a camera
    travelling 0.5 m per step along y with ε's σ = 0.1 adds 0.1 × 2 m = 0.2 m of noise to the 0.8 m walk over
    ±2 steps; a still camera adds none; with σ = 0.2 the walk is no longer told from the camera's own motion."""
    t = np.arange(12) * 0.5
    centers = np.column_stack([0.4 * t, np.zeros(12), np.full(12, 0.5)])
    up = np.array([0, 0, 1.0])
    sigma = np.full(12, 0.15)
    moving = np.column_stack([np.zeros(12), 1.0 * t, np.full(12, 1.5)])
    still = np.tile([0.0, -3.0, 1.5], (12, 1))
    mid = slice(2, 10)
    _, conf_ref, sig_ref = velocity_heading(centers, sigma, t, up)
    _, _, sig_still = velocity_heading(centers, sigma, t, up, scale_sigma=np.full(12, 0.1),
                                         camera_centers=still)
    np.testing.assert_allclose(sig_still, sig_ref)
    _, conf_move, sig_move = velocity_heading(centers, sigma, t, up, scale_sigma=np.full(12, 0.1),
                                              camera_centers=moving)
    noise = np.hypot(np.sqrt(2) * 0.15, 0.1 * 2.0)  # 0.1 × |Δcam| = 0.1 × (4 steps × 0.5 m)
    np.testing.assert_allclose(sig_move[mid], np.degrees(np.arctan2(noise, 0.8)), rtol=1e-9)
    assert (conf_move[mid] < 0.6).all() and (conf_ref[mid] >= 0.6).all()  # no longer past DSR's gate
    rot, conf, _ = velocity_heading(centers, sigma, t, up, scale_sigma=np.full(12, 0.2), camera_centers=moving)
    assert not np.isfinite(rot[mid]).any() and (conf[mid] == 0).all()  # ratio 0.8 / 0.46 < 2: unknown
    # noisier still (ratio 1.6 < 2): no heading at all rather than a guess
    _, conf_bad, _ = velocity_heading(centers, np.full(12, 0.35), t, np.array([0, 0, 1.0]))
    assert (conf_bad == 0).all()
    # standing still: no orientation at all
    rot2, conf2, _ = velocity_heading(np.tile([1.0, 2.0, 0.5], (12, 1)), sigma, t, np.array([0, 0, 1.0]))
    assert np.isnan(rot2).all() and (conf2 == 0).all()


def test_interpolate_gaps_fills_short_runs_only() -> None:
    from dsr.extract.lift import interpolate_gaps

    t = np.arange(9, dtype=float)
    centers = np.full((9, 3), np.nan)
    method = np.zeros(9, np.uint8)
    for k in (0, 3, 8):  # gap of 2 (filled) and gap of 4 (> max_gap 3: left unknown)
        centers[k] = [k, 0.0, 1.0]
        method[k] = CENTER_METHODS.index("ground_contact")
    sigma = np.where(method > 0, 0.1, 0.0)
    c, m, s = interpolate_gaps(centers, method, sigma, t, max_gap=3)
    np.testing.assert_allclose(c[1:3], [[1.0, 0, 1], [2.0, 0, 1]])
    assert [CENTER_METHODS[x] for x in m[1:3]] == ["interpolated"] * 2 and np.allclose(s[1:3], 0.2)
    assert (m[4:8] == 0).all() and np.isnan(c[4:8]).all()
    assert np.isnan(centers[1]).all()  # input untouched


def test_stitching_joins_a_fast_mover_split_by_a_gap() -> None:
    from dsr.extract.tracking import stitch_tracks

    # a box moving 30 px per frame; frames 4–5 missing and the box shrinks: IoU association cannot bridge it
    frames = [np.array([[30.0 * t, 50, 30.0 * t + 40, 90]]) for t in range(4)]
    frames += [np.zeros((0, 4)), np.zeros((0, 4))]
    frames += [np.array([[30.0 * t + 5, 55, 30.0 * t + 30, 80]]) for t in range(6, 10)]
    split = associate_tracks(frames, TrackerConfig(min_frames=1, min_frame_frac=0.0, max_gap=1, stitch_gap=0))
    assert len(split) == 2
    joined = associate_tracks(frames, TrackerConfig(min_frames=1, min_frame_frac=0.0, max_gap=1, stitch_gap=4))
    assert len(joined) == 1 and sorted(joined[0].members) == [0, 1, 2, 3, 6, 7, 8, 9]
    # a box that reappears far from the extrapolated path stays separate
    far = frames[:6] + [np.array([[400.0, 300, 420, 320]])] * 4
    assert len(stitch_tracks(associate_tracks(far, TrackerConfig(min_frames=1, min_frame_frac=0.0, max_gap=1,
                                                                 stitch_gap=0)), far)) == 2


def test_smoothing_reduces_frame_noise_rejects_an_outlier_and_keeps_unknown_frames() -> None:
    from dsr.extract.lift import smooth_centers

    t = np.linspace(0.0, 6.0, 32)
    truth = np.stack([np.sin(t), 0.5 * t, np.full(32, 3.0)], axis=1)
    noisy = truth + np.random.default_rng(0).normal(0.0, 0.05, truth.shape)
    noisy[10] += 1.0  # one wild frame (a tracking glitch)
    noisy[20] = np.nan
    smoothed = smooth_centers(noisy, t, half_window=3, degree=1)
    known = np.isfinite(noisy).all(axis=1)
    assert np.isnan(smoothed[20]).all()  # unknown stays unknown: smoothing is not interpolation
    rms_before = np.sqrt(np.mean((noisy[known] - truth[known]) ** 2))
    rms_after = np.sqrt(np.mean((smoothed[known] - truth[known]) ** 2))
    assert rms_after < 0.25 * rms_before
    assert np.abs(smoothed[10] - truth[10]).max() < 0.1  # the outlier is re-weighted away, not averaged in
    # a straight constant-speed path is reproduced exactly by the local line
    line = np.stack([t, 2 * t, np.ones(32)], axis=1)
    np.testing.assert_allclose(smooth_centers(line, t), line, atol=1e-9)
    np.testing.assert_array_equal(smooth_centers(noisy, t, half_window=0), noisy)  # 0 = off


def test_smoothed_track_noise_hand_example() -> None:
    from dsr.extract.lift import LiftConfig, smoothed_track_noise

    smoothed = np.zeros((6, 3))
    raw = np.zeros((6, 3))
    raw[:5, 0] = [0.1, -0.2, 0.3, 0.4, -0.5]  # 3D residual norms 0.1 … 0.5, median 0.3
    raw[5] = np.nan  # unknown frame
    noise = smoothed_track_noise(raw, smoothed, LiftConfig(smooth_half_window=3))
    np.testing.assert_allclose(noise[:5], 1.4826 * 0.3 / 2.0)  # robust sigma / sqrt(3 + 1)
    assert np.isnan(noise[5])
    assert np.isnan(smoothed_track_noise(raw, smoothed, LiftConfig(smooth_half_window=0))).all()


@pytest.mark.parametrize("clip_name", ["static_clip", "pan_clip"])
def test_background_movers_outline_the_whole_ball(clip_name: str, request: pytest.FixtureRequest) -> None:
    """Cameras that do not translate: the warped temporal-median background gives the ball's whole disc, so
    its box matches the projected ball tightly (exact poses, as the rotation-only model would give)."""
    from dsr.extract.motion import camera_is_static, detect_by_background

    clip: SynthClip = request.getfixturevalue(clip_name)
    n = len(clip.frames)
    K = np.tile(clip.K, (n, 1, 1))
    valid = np.ones(n, bool)
    assert camera_is_static(clip.c2w, valid)
    dets = detect_by_background(clip.frames, clip.c2w, K, valid)
    ious = []
    for t in range(4, n - 4):
        w2c = np.linalg.inv(clip.c2w[t])
        centre = w2c[:3, :3] @ clip.ball_world[t] + w2c[:3, 3]
        u, v = project_points(centre, clip.K)
        r = clip.K[0, 0] * 0.45 / centre[2]  # the ball's radius in pixels (≈, ignoring perspective)
        truth = np.array([u - r, v - r, u + r, v + r])
        best = max((float(box_iou(d.box_xyxy, truth)[0, 0]) for d in dets[t]), default=0.0)
        ious.append(best)
    assert np.median(ious) > 0.6, np.round(ious, 2)
    # a translating camera is not "static": the pipeline keeps the flow movers there
    truck: SynthClip = request.getfixturevalue("truck_clip")
    assert not camera_is_static(truck.c2w, np.ones(len(truck.c2w), bool))


def test_tracker_never_links_detections_far_apart_in_time() -> None:
    """Two walkers seen at frames 2.5 s apart: the nearest box is someone else, so no track is made at all;
    the same boxes 0.2 s apart are tracked; a 3-s hole in a 0.2-s sequence splits the track there."""
    person_a = [np.array([[10.0 + 40 * t, 50, 40 + 40 * t, 110]]) for t in range(6)]
    times_sparse = np.arange(6) * 2.5
    assert associate_tracks(person_a, TrackerConfig(min_frame_frac=0.0), times_s=times_sparse) == []
    times_dense = np.arange(6) * 0.2
    (whole,) = associate_tracks(person_a, TrackerConfig(min_frame_frac=0.0, min_frames=2), times_s=times_dense)
    assert sorted(whole.members) == [0, 1, 2, 3, 4, 5]
    times_hole = np.array([0.0, 0.2, 0.4, 3.4, 3.6, 3.8])
    parts = associate_tracks(person_a, TrackerConfig(min_frame_frac=0.0, min_frames=2, stitch_gap=0),
                             times_s=times_hole)
    assert [sorted(p.members) for p in parts] == [[0, 1, 2], [3, 4, 5]]


def test_ground_height_line_from_people_on_a_plane() -> None:
    """Box heights h = 0.5 (y_feet − 100): the line comes back despite 10% jitter and two bad boxes; too few
    boxes, a narrow band of rows or heights that shrink towards the camera give no line."""
    from dsr.extract.lift import ground_height_line

    rng = np.random.default_rng(0)
    feet = rng.uniform(250, 550, 40)
    heights = 0.5 * (feet - 100) * rng.uniform(0.9, 1.1, 40)
    heights[:2] = [20.0, 400.0]  # a detector's half box and a merged group
    boxes = np.column_stack([np.full(40, 50.0), feet - heights + 1, np.full(40, 80.0), feet])
    a, horizon = ground_height_line(boxes)
    # the slope's standard error with 40 boxes at ±10% jitter is ~3%: allow 4 of them
    assert a == pytest.approx(0.5, rel=0.12) and horizon == pytest.approx(100, abs=30)
    assert ground_height_line(boxes[:8]) is None
    narrow = boxes.copy()
    narrow[:, 3] = 500 + rng.uniform(0, 20, 40)
    assert ground_height_line(narrow) is None
    upside = boxes.copy()
    upside[:, 1] = upside[:, 3] - 0.5 * (700 - upside[:, 3])
    assert ground_height_line(upside) is None


def test_size_prior_takes_the_given_pixel_heights() -> None:
    K = np.tile(np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]), (2, 1, 1))
    c2w = np.tile(np.eye(4), (2, 1, 1))
    boxes = np.array([[300, 200, 340, 300.0], [300, 200, 340, 300.0]])
    masks = [np.ones((480, 640), bool)] * 2
    cfg = LiftConfig(allow_unscaled_size_prior=True)
    plain = lift_centers(masks, boxes, K, c2w, None, "person", cfg)
    given = lift_centers(masks, boxes, K, c2w, None, "person", cfg, heights_px=np.array([202.0, np.nan]))
    # Z = f H / h: 500 * 1.7 / 101 for the box, / 202 where a height is given, the box where it is NaN
    assert plain.centers_cam[0, 2] == pytest.approx(500 * 1.7 / 101)
    assert given.centers_cam[0, 2] == pytest.approx(500 * 1.7 / 202)
    assert given.centers_cam[1, 2] == pytest.approx(plain.centers_cam[1, 2])


def test_nanmedian_first_axis_hand_example_and_numpy() -> None:
    nan = np.nan
    # per pixel: {1, 5, 3} -> 3; {2, 4} (one NaN) -> 3.0; {7} -> 7; all NaN -> NaN; {4, 1, 2, 8} sorted 1 2 4 8 -> 3
    stack = np.array([[1.0, 2.0, nan, nan, 4.0],
                      [5.0, nan, 7.0, nan, 1.0],
                      [3.0, 4.0, nan, nan, 2.0],
                      [nan, nan, nan, nan, 8.0]], np.float32)
    got = nanmedian_first_axis(stack)
    np.testing.assert_array_equal(got, np.array([3.0, 3.0, 7.0, nan, 3.0], np.float32))
    assert got.dtype == np.float32
    rng = np.random.default_rng(0)
    x = rng.random((6, 5, 4, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # numpy warns on the all-NaN pixels
        x[:, 0, 0] = np.nan
        expected = np.nanmedian(x, axis=0)
    np.testing.assert_array_equal(nanmedian_first_axis(x), expected)


def test_floor_scale_reads_the_floor_beside_the_feet_and_skips_the_object() -> None:
    from dsr.extract.lift import FloorScaleConfig, floor_scale

    K = np.tile(np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 50.0], [0.0, 0.0, 1.0]]), (6, 1, 1))
    c2w = np.tile(np.eye(4), (6, 1, 1))
    # the floor 1 unit below the camera (+y is down): a row of points at depth 4 (the object's) lands on row
    # 50 + 100·1/4 = 75, the box's bottom edge; a far row at depth 20 lands on row 55, outside the band
    floor = [[x, 1.0, z] for z in (4.0, 20.0) for x in np.linspace(-2.0, 2.0, 41)]
    # 30 points on the object itself (depth 1, rows 71-74 inside its box, in the band): never read as floor
    own = [[0.0025 * (i - 15), 0.21 + 0.001 * i, 1.0] for i in range(30)]
    points = np.array(floor + own)
    boxes = np.tile([45.0, 35.0, 55.0, 75.0], (6, 1))
    prior_depth = np.full(6, 2.0)  # the size prior says 2: the floor says 4, so 2 prior units = 4 camera units
    cfg = FloorScaleConfig(above_frac=0.1, below_frac=0.1, min_points=3, min_readings=5)
    assert floor_scale([boxes], [prior_depth], K, c2w, np.ones(6, bool), points, cfg) == pytest.approx(2.0)
    # fewer readings than min_readings (4 valid frames), no points at all: no scale
    valid = np.array([True] * 4 + [False] * 2)
    assert floor_scale([boxes], [prior_depth], K, c2w, valid, points, cfg) is None
    assert floor_scale([boxes], [prior_depth], K, c2w, np.ones(6, bool), np.zeros((0, 3)), cfg) is None
    # a frame where the object has no depth gives no reading
    no_depth = prior_depth.copy()
    no_depth[:2] = np.nan
    assert floor_scale([boxes], [no_depth], K, c2w, np.ones(6, bool), points, cfg) is None


def test_refine_component_cuts_the_blob_back_to_the_object() -> None:
    """A flow blob that overshoots a red square by 6 px on every side, on a textured grey floor: the colour
    model keeps the square (box within 1 px) and drops the floor the blob spilled onto."""
    from dsr.extract.motion import refine_component

    rng = np.random.default_rng(0)
    frame = rng.integers(90, 140, (120, 160, 1), dtype=np.uint8).repeat(3, axis=2)
    frame[40:70, 60:90] = (200, 30, 30)
    blob = np.zeros((120, 160), bool)
    blob[34:76, 54:96] = True
    out = refine_component(frame, blob)
    ys, xs = np.nonzero(out)
    assert abs(xs.min() - 60) <= 1 and abs(xs.max() - 89) <= 1 and abs(ys.min() - 40) <= 1 and abs(ys.max() - 69) <= 1
    assert out.sum() < 0.6 * blob.sum()


def test_refine_component_splits_a_blob_bridging_two_objects() -> None:
    """One blob over two objects of different colours with floor between them: the largest object is kept."""
    from dsr.extract.motion import refine_component

    rng = np.random.default_rng(1)
    frame = rng.integers(90, 140, (120, 200, 1), dtype=np.uint8).repeat(3, axis=2)
    frame[40:80, 40:80] = (30, 30, 200)  # the larger object
    frame[50:70, 110:130] = (30, 200, 30)
    blob = np.zeros((120, 200), bool)
    blob[36:84, 36:134] = True
    out = refine_component(frame, blob)
    ys, xs = np.nonzero(out)
    assert xs.max() < 100 and abs(xs.min() - 40) <= 1 and abs(ys.min() - 40) <= 1


def test_refine_component_keeps_a_blob_it_cannot_model() -> None:
    """A blob filling its whole frame leaves no background to learn colours from: it comes back unchanged."""
    from dsr.extract.motion import refine_component

    frame = np.full((20, 20, 3), 128, np.uint8)
    blob = np.ones((20, 20), bool)
    assert np.array_equal(refine_component(frame, blob), blob)


def test_motion_config_rejects_an_unknown_flow_preset_or_fit() -> None:
    from dsr.errors import DsrError

    with pytest.raises(DsrError, match="preset"):
        MotionConfig(flow_preset="slow")
    with pytest.raises(DsrError, match="robust fit 'lmeds'"):
        MotionConfig(fundamental_fit="lmeds")
    with pytest.raises(DsrError, match="fit_grid_px <= fundamental_grid_px"):
        MotionConfig(fundamental_grid_px=2)


def test_colour_refinement_stays_inside_the_motion_box(static_clip: SynthClip) -> None:
    """Opt-in GrabCut on the flow movers: the ball is still found, and each refined box lies inside the motion
    component's box grown by its 2-px ring (in work pixels): GrabCut only ever removes pixels."""
    from dsr.extract.motion import MotionConfig, detect_movers_at

    clip = static_clip
    hw = clip.frames.shape[1:3]
    ring = 2 * max(hw) / MotionConfig().work_max_side + 1
    for i in (6, 12):
        plain = detect_movers_at(clip.frames[i - 3], clip.frames[i], clip.frames[i + 3], hw, MotionConfig())
        refined = detect_movers_at(clip.frames[i - 3], clip.frames[i], clip.frames[i + 3], hw,
                                   MotionConfig(refine_iters=2))
        assert plain and len(refined) == len(plain)
        for p, r in zip(plain, refined, strict=True):
            assert (r.box_xyxy[:2] >= p.box_xyxy[:2] - ring).all() and (r.box_xyxy[2:] <= p.box_xyxy[2:] + ring).all()
            assert r.mask.sum() <= p.mask.sum() * 1.5
