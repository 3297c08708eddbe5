"""Grounding by detection: movers a detection explains, the frames the tracker sees, a real clip end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsr.extract.dense_track import DenseTrack, DenseTrackConfig
from dsr.extract.detected import SampledObject, tracking_frames, unexplained_movers

NAN4 = np.full(4, np.nan)


def _obj(boxes: list) -> SampledObject:
    arr = np.array([NAN4 if b is None else b for b in boxes], float)
    track = DenseTrack(0, "person", np.arange(1), np.zeros(1), arr[:1], np.ones(1), np.ones(3))
    return SampledObject(track, "person", arr, np.ones(len(arr)))


def test_movers_explained_by_a_detection_are_dropped() -> None:
    person = _obj([[100, 100, 140, 200], [110, 100, 150, 200], [120, 100, 160, 200], None])
    movers = [
        # the person's motion blob (overlaps it in 2 of 3 frames) → explained
        np.array([[98, 95, 142, 205], [200, 0, 220, 20], [118, 98, 162, 202], NAN4]),
        # an arm swinging inside the person's box: small, mostly contained → explained
        np.array([[130, 120, 139, 140], NAN4, NAN4, NAN4]),
        # a robot elsewhere → kept
        np.array([[300, 100, 340, 200], [305, 100, 345, 200], [310, 100, 350, 200], [315, 100, 355, 200]]),
        # passes the person once in four frames (25% < 30%) → kept
        np.array([[10, 100, 50, 200], [60, 100, 100, 200], [121, 100, 161, 200], [160, 100, 200, 200]]),
    ]
    assert unexplained_movers(movers, [person]) == [False, False, True, True]


def test_in_memory_clip_tracks_its_dense_frames_at_full_resolution() -> None:
    from dsr.extract.clip import clip_from_arrays

    frames = np.zeros((12, 40, 60, 3), np.uint8)
    for i in range(12):
        frames[i, :, :, 0] = i * 10
    clip = clip_from_arrays(frames, fps=10.0, num_samples=4, dense_step=2, dense_max_side=30)
    got = list(tracking_frames(clip, None, None, DenseTrackConfig()))
    assert [g[0] for g in got] == list(clip.dense_indices)
    assert all(g[2].shape == (40, 60, 3) for g in got)
    sampled = {int(i): float(t) for i, t in zip(clip.frame_indices, clip.timestamps_s, strict=True)}
    for index, t, frame in got:
        if index in sampled:
            assert t == sampled[index] and frame[0, 0, 0] == index * 10  # the full-size sampled frame itself
        else:
            assert t == pytest.approx(index / 10.0)


def test_file_frames_before_decoding_include_the_sampled_frames_and_stop_on_request(videos: dict[str, Path]) -> None:
    """The pipeline starts the detector before the clip is decoded: the file, its probe and the sampled indices
    are enough; a set stop event ends the frames at the next one."""
    import threading

    from dsr.extract.clip import ClipConfig, sampled_indices
    from dsr.video import probe

    meta = probe(videos["static"])  # 24 frames at 10 fps: short, so every frame is a tracking frame
    sampled = sampled_indices(meta, ClipConfig(num_samples=5))
    got = [i for i, _, _ in tracking_frames(None, videos["static"], meta.timestamps_s, DenseTrackConfig(),
                                            sampled=sampled)]
    assert got == list(range(meta.num_frames)) and set(sampled.tolist()) <= set(got)
    long_rate = DenseTrackConfig(every_frame_s=0.0, track_fps=2.0)  # a 2-fps grid: 0, 5, 10, 15, 20 + sampled
    got = [i for i, _, _ in tracking_frames(None, videos["static"], meta.timestamps_s, long_rate, sampled=sampled)]
    assert got == sorted(set(range(0, meta.num_frames, 5)) | set(sampled.tolist()))
    stop = threading.Event()
    seen = []
    for i, _, _ in tracking_frames(None, videos["static"], meta.timestamps_s, DenseTrackConfig(), sampled=sampled,
                                   stop=stop):
        seen.append(i)
        if i == 3:
            stop.set()
    assert seen == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="need a video file or a decoded clip"):
        list(tracking_frames(None, None, None, DenseTrackConfig()))


@pytest.mark.shared
def test_davis_parkour_gets_one_person_with_a_torso_facing(shared_dir: Path) -> None:
    """DAVIS parkour (real, 2 s, handheld camera): the record names a COCO person, one identity over the clip,
    with a Pose mask and an orientation from the torso."""
    from dsr.extract.detect import YoloDetector, detector_precision
    from dsr.extract.pipeline import ExtractConfig, extract_video

    ok, reason = YoloDetector.available()
    if not ok:
        pytest.skip(reason)
    out = extract_video(shared_dir / "realdata" / "davis2016_val" / "mp4" / "parkour.mp4",
                        ExtractConfig(camera_methods=("rotation", "vo")))
    assert out.status == "ok", out.reason
    people = [o for o in out.record.objects if o.class_phrase == "person"]
    assert people, [o.class_phrase for o in out.record.objects]
    runner = max(people, key=lambda o: o.visible.sum())
    assert runner.visible.sum() >= 12  # of 32 sampled frames (the jumps change his box faster than the gates allow)
    assert runner.track_source.name == "grounding/yolov3-tiny+tracking/dense"
    # the detector's arithmetic on this machine is named: bf16 and f32 detections can differ near the threshold
    assert runner.track_source.version == f"1+{detector_precision(ExtractConfig().detection.detector)}"
    assert runner.is_agent and runner.orientation.source.name == "orientation/mediapipe-torso+velocity"


def test_short_tracks_and_tracks_seen_once_are_not_objects() -> None:
    from dsr.extract.clip import clip_from_arrays
    from dsr.extract.dense_track import DenseTrackResult
    from dsr.extract.detected import DetectGroundingConfig, sampled_objects

    clip = clip_from_arrays(np.zeros((40, 20, 20, 3), np.uint8), fps=10.0, num_samples=8)  # samples ~0.56 s apart
    times = np.arange(40) / 10.0

    def track(i: int, first: int, last: int) -> DenseTrack:
        frames = np.arange(first, last + 1)
        boxes = np.tile([1.0, 1, 5, 5], (len(frames), 1))
        return DenseTrack(i, "person", frames, times[frames], boxes, np.ones(len(frames)), np.ones(3))

    result = DenseTrackResult([track(0, 0, 30), track(1, 5, 12), track(2, 10, 20)], [], 40, {})
    kept = sampled_objects(result, clip, DetectGroundingConfig())
    # track 1 lasts 0.7 s (< 1 s); track 2 lasts 1 s and holds 2 sampled frames; track 0 holds 6
    assert [o.track.track_id for o in kept] == [0, 2]
    assert np.isfinite(kept[1].boxes_xyxy).all(axis=1).sum() == 2


def test_a_detection_job_goes_wide_only_once_the_caller_waits_for_it() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from dsr.extract.detected import DetectionJob

    alone, checked = threading.Event(), threading.Event()
    seen: list[bool] = []

    def detector() -> str:
        seen.append(alone.is_set())  # while the caller still works
        checked.set()
        assert alone.wait(5.0)  # the caller's result() call frees the other core
        seen.append(alone.is_set())
        return "tracks"

    with ThreadPoolExecutor(1) as pool:
        job = DetectionJob(pool.submit(detector), alone)
        assert checked.wait(5.0)
        assert job.result() == "tracks"
    assert seen == [False, True]
