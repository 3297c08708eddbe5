"""Dense identity-safe tracking: crossings, occlusion and re-appearance, cuts, interpolation, camera motion."""

from __future__ import annotations

import numpy as np
import pytest

from dsr.extract.dense_track import (
    CameraMotionTracker,
    CutDetector,
    DenseTrack,
    DenseTrackConfig,
    DenseTracker,
    FrameDetection,
    bhattacharyya,
    box_appearance,
    boxes_at,
    reidentify,
    tracking_frame_indices,
)

FPS = 10.0
RED = np.array([10.0, 0, 0, 0, 0, 0])
BLUE = np.array([0, 0, 0, 10.0, 0, 0])
GREEN = np.array([0, 0, 0, 0, 0, 10.0])


def _box(cx: float, cy: float, w: float = 20.0, h: float = 40.0) -> np.ndarray:
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _run(frames: list[list[tuple[str, np.ndarray, np.ndarray]]], config: DenseTrackConfig = DenseTrackConfig(),
         hists: list[np.ndarray] | None = None) -> tuple[list[DenseTrack], dict[tuple[int, int, int], str]]:
    """frames[k] = [(gt_name, box, appearance)] at t = k / FPS → (tracks, (frame, rounded x1) → gt name)."""
    tracker = DenseTracker(config)
    cuts = CutDetector(config)
    truth: dict[tuple[int, int, int], str] = {}
    for k, dets in enumerate(frames):
        fds = []
        for name, box, app in dets:
            truth[(k, round(float(box[0]) * 10), round(float(box[1]) * 10))] = name
            fds.append(FrameDetection(box, 0.9, "person", app))
        tracker.update(k, k / FPS, fds, cut=hists is not None and cuts.step(hists[k]))
    return tracker.finish(), truth


def _names(track: DenseTrack, truth: dict[tuple[int, int, int], str]) -> set[str]:
    return {truth[(int(f), round(float(b[0]) * 10), round(float(b[1]) * 10))]
            for f, b in zip(track.frame_indices, track.boxes_xyxy, strict=True)}


def _crossing(app_a: np.ndarray, app_b: np.ndarray) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    # A walks right and B left at 60 px/s, 4 px apart in height; their boxes overlap for ~0.6 s around x = 100
    return [[("A", _box(10 + 6 * k, 100), app_a), ("B", _box(190 - 6 * k, 104), app_b)] for k in range(31)]


def test_crossing_people_with_different_clothes_keep_their_ids() -> None:
    tracks, truth = _run(_crossing(RED, BLUE))
    assert len(tracks) == 2
    assert sorted(frozenset(_names(t, truth)) for t in tracks) == [{"A"}, {"B"}]
    assert all(len(t.frame_indices) == 31 for t in tracks)


def test_crossing_lookalikes_never_switch_identity() -> None:
    """Same clothes: the tracker cannot tell them apart where they overlap, so it ends both tracks there
    (and re-identification, seeing two equally good candidates, does not join them) — never a chimera."""
    tracks, truth = _run(_crossing(RED, RED))
    tracks = reidentify(tracks)
    assert all(len(_names(t, truth)) == 1 for t in tracks)
    assert len(tracks) >= 3  # at least one of them was cut at the crossing
    assert {"ambiguous"} <= {t.ended_by for t in tracks}


def test_occlusion_then_reappearance_is_the_same_id() -> None:
    """A walks right, is hidden for 1.5 s (longer than the tracker coasts), and reappears where its motion says;
    C, dressed differently, appears elsewhere at the same moment."""
    frames: list[list[tuple[str, np.ndarray, np.ndarray]]] = []
    for k in range(50):
        dets = []
        if not 15 <= k < 30:
            dets.append(("A", _box(20 + 5 * k, 100), RED))
        if k >= 30:
            dets.append(("C", _box(60, 160), BLUE))
        frames.append(dets)
    online, truth = _run(frames)
    assert len(online) == 3  # A before, A after, C
    tracks = reidentify(online)
    a_tracks = [t for t in tracks if _names(t, truth) == {"A"}]
    assert len(a_tracks) == 1 and len(a_tracks[0].parts) == 2
    assert len(a_tracks[0].frame_indices) == 35
    assert [len(_names(t, truth)) for t in tracks] == [1, 1]


def test_reappearance_far_from_the_motion_or_in_other_clothes_is_a_new_id() -> None:
    frames: list[list[tuple[str, np.ndarray, np.ndarray]]] = []
    for k in range(50):
        if k < 15:
            frames.append([("A", _box(20 + 5 * k, 100), RED)])
        elif k >= 30:
            # "B" starts where A would be but dressed in green; "D" dressed like A but 150 px off its path
            frames.append([("B", _box(20 + 5 * k, 100), GREEN), ("D", _box(20 + 5 * k, 250), RED)])
        else:
            frames.append([])
    tracks = reidentify(_run(frames)[0])
    assert len(tracks) == 3
    assert all(len(t.parts) == 0 for t in tracks)


def test_hard_cut_ends_every_track_and_blocks_reidentification() -> None:
    hist_a, hist_b = np.array([1.0, 0, 0, 0]), np.array([0, 0, 0, 1.0])
    frames = [[("A" if k < 10 else "A2", _box(50 + 2 * k, 100), RED)] for k in range(20)]
    hists = [hist_a if k < 10 else hist_b for k in range(20)]
    # a slight flicker before the cut so the running median is not zero
    hists = [h + 0.01 * (k % 2) for k, h in enumerate(hists)]
    tracks, _ = _run(frames, hists=hists)
    assert [t.ended_by for t in tracks] == ["cut", "end"]
    assert len(reidentify(tracks, cut_times_s=[1.0])) == 2  # continuous motion and clothes, but across a cut
    assert len(reidentify(tracks)) == 1  # the same tracks without the cut would be joined


def test_short_tracks_are_detector_noise() -> None:
    frames = [[("A", _box(50, 100), RED)] if k in (3, 4) else [] for k in range(10)]
    assert _run(frames)[0] == []


def test_boxes_at_sampled_times_exact_or_interpolated_over_short_gaps() -> None:
    track = DenseTrack(0, "person", np.array([0, 1, 2, 8]), np.array([0.0, 0.1, 0.2, 0.8]),
                       np.array([_box(0, 0), _box(10, 0), _box(20, 0), _box(80, 0)]), np.array([0.9, 0.8, 0.7, 0.6]),
                       RED)
    boxes, scores = boxes_at(track, np.array([0.1, 0.15, 0.5, 0.8, 1.0]), max_interp_s=0.5)
    np.testing.assert_allclose(boxes[0], _box(10, 0))
    np.testing.assert_allclose(boxes[1], _box(15, 0))  # halfway between two observations 0.1 s apart
    assert np.isnan(boxes[2]).all()  # inside a 0.6-s gap: too long to interpolate
    np.testing.assert_allclose(boxes[3], _box(80, 0))
    assert np.isnan(boxes[4]).all()  # after the track
    np.testing.assert_allclose(scores, [0.8, 0.7, 0.0, 0.6, 0.0])


def test_tracking_frames_every_frame_for_short_clips_else_the_rate() -> None:
    short = np.arange(100) / 25.0  # 4 s at 25 fps
    assert len(tracking_frame_indices(short)) == 100
    long = np.arange(800) / 25.0  # 32 s at 25 fps → 10 fps grid → every 2nd or 3rd frame
    idx = tracking_frame_indices(long, DenseTrackConfig(track_fps=10.0), must_include=np.array([1, 799]))
    gaps = np.diff(long[idx])
    # the first frame at or after each 0.1-s tick: never more than one video frame (0.04 s) late
    assert gaps.max() <= 0.1 + 0.04 + 1e-9 and 1 in idx and 799 in idx
    assert 320 <= len(idx) <= 322


def test_bhattacharyya_bounds() -> None:
    assert bhattacharyya(RED, RED * 3) == pytest.approx(0.0, abs=1e-9)
    assert bhattacharyya(RED, BLUE) == pytest.approx(1.0)
    assert 0 < bhattacharyya(RED + BLUE, RED) < 1


def test_box_appearance_tells_clothes_apart() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :100] = (200, 30, 30)  # red
    frame[:, 100:] = (30, 30, 200)  # blue
    red1 = box_appearance(frame, np.array([10, 10, 60, 90.0]))
    red2 = box_appearance(frame, np.array([30, 20, 80, 80.0]))
    blue = box_appearance(frame, np.array([120, 10, 190, 90.0]))
    assert bhattacharyya(red1, red2) < 0.05
    assert bhattacharyya(red1, blue) > 0.9


def test_camera_motion_of_a_shifted_texture() -> None:
    rng = np.random.default_rng(0)
    import cv2

    tex = cv2.GaussianBlur((rng.random((260, 360)) * 255).astype(np.uint8), (0, 0), 2.0)
    first = np.repeat(tex[10:250, 10:330, None], 3, axis=2)
    second = np.repeat(tex[10:250, 16:336, None], 3, axis=2)  # the view moved right: content moves 6 px left
    cam = CameraMotionTracker(work_side=320)
    assert cam.step(first) is None
    m = cam.step(second)
    assert m is not None
    np.testing.assert_allclose(m, [[1, 0, -6], [0, 1, 0]], atol=0.15)


def test_panning_camera_is_compensated() -> None:
    """The camera pans 20 px per frame; a person walks 2 px per frame the other way. Without the camera's image
    motion the prediction misses by 20 px per frame and, in a crowd of lookalikes, the tracker must stop."""
    frames = []
    motions = []
    for k in range(20):
        pan = -20.0 * k
        frames.append([("A", _box(300 + 2 * k + pan, 100), RED), ("B", _box(330 + 2 * k + pan, 100), RED)])
        motions.append(np.array([[1.0, 0, -20.0], [0, 1.0, 0]]))
    tracker = DenseTracker()
    for k, dets in enumerate(frames):
        tracker.update(k, k / FPS, [FrameDetection(b, 0.9, "person", a) for _, b, a in dets],
                       camera_motion=motions[k] if k else None)
    tracks = tracker.finish()
    assert len(tracks) == 2 and all(len(t.frame_indices) == 20 for t in tracks)


def test_reappearance_beside_a_stranger_is_not_joined_on_clothes_alone() -> None:
    """A is hidden for 1.5 s; two people then start within its motion gate, one dressed like A. The place
    cannot tell them apart, and low-resolution clothes alone are not enough: both keep new ids."""
    frames: list[list[tuple[str, np.ndarray, np.ndarray]]] = []
    for k in range(50):
        if k < 15:
            frames.append([("A", _box(20 + 5 * k, 100), RED)])
        elif k >= 30:
            frames.append([("A", _box(20 + 5 * k, 100), RED), ("E", _box(20 + 5 * k, 130), BLUE)])
        else:
            frames.append([])
    online, _ = _run(frames)
    assert len(online) == 3
    assert all(len(t.parts) == 0 for t in reidentify(online))


# --------------------------------------------------------------------------------------------------
# detection cadence: the detector at detect_fps, median flow on the frames between


def _textured_scene(n: int, step_px: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n RGB frames (240×320): a static blurred-noise background and a 40×60 patch of another texture moving
    ``step_px`` to the right per frame; and the patch's true box per frame."""
    import cv2

    rng = np.random.default_rng(3)
    bg = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (0, 0), 1.5)
    patch = cv2.GaussianBlur((rng.random((60, 40)) * 255).astype(np.uint8), (0, 0), 1.0)
    frames, boxes = [], []
    for k in range(n):
        x = 60 + step_px * k
        xi = round(x)
        img = bg.copy()
        img[90:150, xi:xi + 40] = patch
        frames.append(np.repeat(img[:, :, None], 3, axis=2))
        boxes.append(np.array([xi, 90, xi + 40, 150], np.float64))
    return frames, boxes


def test_median_flow_moves_a_box_with_its_texture() -> None:
    from dsr.extract.camera.features import work_gray
    from dsr.extract.dense_track import median_flow_box

    frames, boxes = _textured_scene(2, 4.0)
    (a, s), (b, _) = work_gray(frames[0], 320), work_gray(frames[1], 320)
    moved = median_flow_box(a, b, s, boxes[0])
    assert moved is not None
    np.testing.assert_allclose(moved, boxes[1], atol=0.5)  # 4 px right, same size
    # a flat box has no corners to follow: unsure, no box
    flat = np.zeros_like(a)
    assert median_flow_box(flat, flat, s, boxes[0]) is None


class _CountingDetector:
    """The patch's true box as a 'person' detection, on the frames it is asked about; ``skip`` frames
    (by detector call number) return nothing (a detector miss)."""

    def __init__(self, frames: list[np.ndarray], boxes: list[np.ndarray], skip: set[int] = frozenset()) -> None:
        self.by_id = {id(f): b for f, b in zip(frames, boxes, strict=True)}
        self.calls = 0
        self.skip = skip

    def __call__(self, frame: np.ndarray) -> list:
        from dsr.extract.detect import ObjectDetection

        self.calls += 1
        if self.calls - 1 in self.skip:
            return []
        return [ObjectDetection(self.by_id[id(frame)], 0.9, "person")]


def test_detector_runs_at_detect_fps_and_flow_fills_every_frame_between() -> None:
    from dsr.extract.dense_track import track_frames

    frames, boxes = _textured_scene(24, 3.0)
    det = _CountingDetector(frames, boxes)
    config = DenseTrackConfig(detect_fps=2.5)  # frames at 10 fps: the detector every 4th frame
    result = track_frames(((k, k / FPS, f) for k, f in enumerate(frames)), det, config, compensate_camera=False)
    assert det.calls == 6 and result.num_detected == 6  # frames 0, 4, 8, 12, 16, 20
    assert len(result.tracks) == 1
    track = result.tracks[0]
    # every frame up to the last detection carries a box; the flow's tail after it is dropped
    assert track.frame_indices.tolist() == list(range(21))
    err = np.abs(track.boxes_xyxy - np.array(boxes[:21])).max()
    assert err < 1.0


def test_a_missed_detection_is_bridged_by_the_flow_not_a_new_identity() -> None:
    from dsr.extract.dense_track import track_frames

    frames, boxes = _textured_scene(30, 3.0)
    # detector calls 3 and 4 (frames 12, 16) miss: 1.2 s without a detection, beyond max_coast_s (0.6 s)
    det = _CountingDetector(frames, boxes, skip={3, 4})
    config = DenseTrackConfig(detect_fps=2.5)
    result = track_frames(((k, k / FPS, f) for k, f in enumerate(frames)), det, config, compensate_camera=False)
    assert len(result.tracks) == 1 and result.tracks[0].frame_indices.tolist() == list(range(29))
    assert result.tracks[0].parts == ()  # one online track, no re-identification needed
    # when the flow may not carry it, the same misses end the track by coasting: two online tracks (joined
    # afterwards by re-identification), and no box between frames 8 and 20
    stop = DenseTrackConfig(detect_fps=2.5, max_flow_coast_s=0.6)
    det = _CountingDetector(frames, boxes, skip={3, 4})
    result = track_frames(((k, k / FPS, f) for k, f in enumerate(frames)), det, stop, compensate_camera=False)
    assert len(result.tracks) == 1 and result.tracks[0].parts == (0, 1)
    assert result.tracks[0].frame_indices.tolist() == list(range(9)) + list(range(20, 29))


def test_flow_drift_is_spread_back_over_the_propagated_boxes() -> None:
    from dsr.extract.dense_track import _Live, _remove_drift

    tr = _Live(0, "person", frames=[0, 1, 2, 3], times=[0.0, 0.1, 0.2, 0.3],
               boxes=[np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(4)], detected=[True, False, False, False],
               last_detected=0.0)
    # at t = 0.4 the detection lies 4 px right of where the flow put the box: the flow erred 1 px per step
    _remove_drift(tr, 0.4, np.array([4.0, 0, 4.0, 0]))
    np.testing.assert_allclose([b[0] for b in tr.boxes], [0.0, 1.0, 2.0, 3.0])
