"""People: torso normal maths, PnP registration, fusion with the walking direction, and MediaPipe on real and
rendered frames (expected facings read off the frames by eye)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dsr.extract.orient import confidence_from_sigma, fuse_torso_and_velocity, velocity_heading
from dsr.extract.people import (
    L_HIP,
    L_SHOULDER,
    R_HIP,
    R_SHOULDER,
    MediaPipePeople,
    crop_box,
    landmark_frame_to_camera,
    torso_forward,
)


def _skeleton(yaw_deg: float) -> np.ndarray:
    """33 landmarks (OpenCV-like axes: x right, y down, z away) of a person turned ``yaw_deg`` from facing the
    camera (positive: turning towards image-right). Only the torso matters; the rest sit on the spine."""
    lm = np.zeros((33, 3))
    a = np.radians(yaw_deg)
    # the person's left, seen facing the camera, is image-right (+x); turning rotates it about the vertical
    left = np.array([np.cos(a), 0.0, np.sin(a)])
    lm[L_SHOULDER], lm[R_SHOULDER] = 0.2 * left + [0, -0.5, 0], -0.2 * left + [0, -0.5, 0]
    lm[L_HIP], lm[R_HIP] = 0.12 * left, -0.12 * left
    return lm


@pytest.mark.parametrize(("yaw", "forward"), [(0.0, [0, 0, -1]), (90.0, [1, 0, 0]), (180.0, [0, 0, 1]),
                                              (-90.0, [-1, 0, 0])])
def test_torso_forward_of_hand_built_skeletons(yaw: float, forward: list[float]) -> None:
    # facing the camera: forward −z; turned 90° to image-right: +x; back to the camera: +z
    np.testing.assert_allclose(torso_forward(_skeleton(yaw)), forward, atol=1e-9)


def test_pnp_recovers_the_landmark_frame_rotation() -> None:
    rng = np.random.default_rng(0)
    world = rng.normal(0, 0.3, (33, 3))
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [10, -25, 5], degrees=True).as_matrix()
    t = np.array([0.1, -0.2, 3.0])
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    cam = world @ rot.T + t
    pix = cam[:, :2] / cam[:, 2:] * 500.0 + [320, 240]
    np.testing.assert_allclose(landmark_frame_to_camera(world, pix, K), rot, atol=1e-6)


def test_crop_box_grows_and_clips() -> None:
    assert crop_box(np.array([10, 20, 30, 60.0]), 100, 100, 0.25) == (5, 10, 36, 71)
    assert crop_box(np.array([0, 0, 99, 99.0]), 100, 100, 0.25) == (0, 0, 100, 100)


def _walk(n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A person walking along +x (world, z up) at 1 m/s, exact centres: velocity heading +x with confidence."""
    t = np.arange(n) * 0.5
    centers = np.column_stack([t, np.zeros(n), np.zeros(n)])
    rot, conf, sig = velocity_heading(centers, np.full(n, 0.01), t, np.array([0, 0, 1.0]))
    return t, rot, conf, sig


def test_fusion_turns_a_back_to_front_torso_round_and_measures_its_scatter() -> None:
    _, vrot, vconf, vsig = _walk()
    assert (vconf >= 0.6).sum() >= 8
    torso = np.tile([1.0, 0.1, 0.0], (12, 1))
    torso[3] = [-1.0, -0.1, 0.0]  # read front-to-back at one frame
    torso[7] = np.nan  # not measured
    rot, conf, sig = fuse_torso_and_velocity(torso, vrot, vconf, vsig, np.array([0, 0, 1.0]))
    fwd = rot[:, :, 0]
    expected = np.array([1.0, 0.1, 0.0]) / np.linalg.norm([1.0, 0.1])
    for t in range(12):
        if t == 7:
            np.testing.assert_allclose(fwd[t], vrot[t][:, 0])  # the velocity heading stays
        else:
            np.testing.assert_allclose(fwd[t], expected, atol=1e-9)  # frame 3 turned round
    # a constant torso has no scatter: the floor (10°) applies, and 10° passes DSR's gate (15°)
    assert sig[0] == pytest.approx(10.0)
    assert conf[0] == pytest.approx(confidence_from_sigma(np.array([10.0]))[0]) and conf[0] >= 0.6


def test_fusion_without_walking_direction_leaves_flips_unresolved_and_says_so() -> None:
    n = 6
    torso = np.tile([0.0, 1.0, 0.0], (n, 1))
    rot, conf, sig = fuse_torso_and_velocity(torso, np.full((n, 3, 3), np.nan), np.zeros(n), np.zeros(n),
                                             np.array([0, 0, 1.0]))
    np.testing.assert_allclose(rot[:, :, 0], torso, atol=1e-9)
    assert np.all(sig == 60.0) and np.all(conf < 0.6)  # a standing person's front/back is not confirmed


def _heading(x: float, y: float) -> np.ndarray:
    """world_from_agent of a velocity heading along (x, y) (z up)."""
    fwd = np.array([x, y, 0.0]) / np.hypot(x, y)
    left = np.cross([0, 0, 1.0], fwd)
    return np.stack([fwd, left, [0, 0, 1.0]], axis=1)


def test_a_torso_that_turned_while_standing_is_not_turned_back_by_its_neighbours() -> None:
    """Frames 0-4: walking along +x (confident). Frames 5-9: standing (no velocity), the torso now faces -x: a
    real turn and a front-to-back reading look alike, so those frames keep their reading and say they are
    unresolved, where the neighbours' vote used to turn frames 5-7 round to +x."""
    n = 10
    vrot = np.full((n, 3, 3), np.nan)
    vrot[:5] = _heading(1, 0)
    vconf = np.where(np.arange(n) < 5, 0.75, 0.0)
    vsig = np.where(np.arange(n) < 5, 5.0, 0.0)
    torso = np.array([[1.0, 0.0, 0.0]] * 5 + [[-1.0, 0.05, 0.0]] * 5)
    rot, conf, sig = fuse_torso_and_velocity(torso, vrot, vconf, vsig, np.array([0, 0, 1.0]))
    assert np.all(rot[5:, 0, 0] < -0.99)  # kept as read
    assert np.all(sig[5:] == 60.0) and np.all(conf[5:] < 0.6)
    assert np.all(sig[:5] == 10.0) and np.all(rot[:5, 0, 0] > 0.99)


def test_a_neighbour_confirms_a_torso_that_agrees_and_a_weak_velocity_can_veto() -> None:
    n = 6
    vrot = np.full((n, 3, 3), np.nan)
    vrot[[0, 1, 2]] = _heading(1, 0)
    vconf = np.array([0.75, 0.75, 0.75, 0.0, 0.0, 0.5])
    vsig = np.array([5.0, 5.0, 5.0, 0.0, 0.0, 20.0])
    vrot[5] = _heading(-1, 0.1)  # a weak walking direction facing away from the torso
    torso = np.tile([1.0, 0.05, 0.0], (n, 1))
    rot, conf, sig = fuse_torso_and_velocity(torso, vrot, vconf, vsig, np.array([0, 0, 1.0]))
    # frames 3 and 4: no velocity; frames 0-2 (velocity-resolved, within 3) face the same way: confirmed
    assert np.all(sig[:5] == 10.0) and np.all(conf[:5] >= 0.6)
    # frame 5: its own weak velocity faces away, though its neighbours agree with the torso: unresolved
    assert sig[5] == 60.0 and rot[5, 0, 0] > 0.99


def test_confidence_from_sigma_matches_the_velocity_rule() -> None:
    np.testing.assert_allclose(confidence_from_sigma(np.array([15.0])), [0.45 + 0.04 / np.tan(np.radians(15))])
    assert confidence_from_sigma(np.array([15.0]))[0] == pytest.approx(0.5993, abs=1e-3)
    assert confidence_from_sigma(np.array([np.nan]))[0] == 0.0
    assert confidence_from_sigma(np.array([1.0]))[0] == 0.75


@pytest.fixture(scope="module")
def people() -> MediaPipePeople:
    ok, reason = MediaPipePeople.available()
    if not ok:
        pytest.skip(reason)
    est = MediaPipePeople()
    yield est
    est.close()


def _K(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.array([[1.2 * w, 0, w / 2], [0, 1.2 * w, h / 2], [0, 0, 1.0]])


@pytest.mark.shared
@pytest.mark.parametrize("index", [20, 40])
def test_parkour_runner_mask_and_facing(shared_dir: Path, people: MediaPipePeople, index: int) -> None:
    """DAVIS parkour, frames 20 and 40: the runner faces image-left (seen by eye); the mask matches DAVIS's."""
    import cv2

    root = shared_dir / "realdata" / "davis2016_val"
    frame = cv2.cvtColor(cv2.imread(str(root / "JPEGImages" / "parkour" / f"{index:05d}.jpg")), cv2.COLOR_BGR2RGB)
    gt = cv2.imread(str(root / "Annotations" / "parkour" / f"{index:05d}.png"), cv2.IMREAD_GRAYSCALE) > 0
    ys, xs = np.nonzero(gt)
    pose = people.estimate(frame, np.array([xs.min(), ys.min(), xs.max(), ys.max()], float), _K(frame))
    assert pose.mask is not None
    assert (pose.mask & gt).sum() / (pose.mask | gt).sum() >= 0.7
    assert pose.forward_cam[0] < -0.7  # image-left


@pytest.mark.shared
def test_sam2_gallery_woman_faces_right(shared_dir: Path, people: MediaPipePeople) -> None:
    """sam2 01_dog, frame 30: the woman stands facing image-right, towards the dog (seen by eye)."""
    from dsr.video import iter_frames

    frame = next(f for i, (_, f) in enumerate(iter_frames(shared_dir / "realdata" / "videos" /
                                                            "sam2-gallery-01_dog.mp4")) if i == 30)
    pose = people.estimate(frame, np.array([223.0, 84, 427, 551]), _K(frame))
    assert pose.forward_cam[0] > 0.9


@pytest.mark.shared
def test_cafe_walker_seen_from_behind(shared_dir: Path, people: MediaPipePeople) -> None:
    """DAVIS lady-running, frame 60: the woman in the middle walks away from the camera (her back to it)."""
    from dsr.video import iter_frames

    frame = next(f for i, (_, f) in enumerate(iter_frames(shared_dir / "realdata" / "videos" /
                                                            "davis-lady-running__monst3r.mp4")) if i == 60)
    pose = people.estimate(frame, np.array([405.0, 58, 556, 474]), _K(frame))
    assert pose.forward_cam[2] > 0.8


def test_rendered_person_is_found_inside_its_box(tmp_path: Path, people: MediaPipePeople) -> None:
    """MuJoCo's capsule people are found by Pose: the mask lies on the person (GT box), and a box around
    empty floor finds nobody."""
    from dsr.scene.io import read_record
    from dsr.video import iter_frames
    from dsr.world import WorldConfig, render_world

    render_world(WorldConfig(seed=1, camera_motion="static", width=640, height=480, duration_s=0.3), tmp_path,
                 progress=False)
    record = read_record(next(tmp_path.glob("*.npz")))
    frame = next(iter_frames(next(tmp_path.glob("*.mp4"))))[1]
    person = next(o for o in record.objects if o.class_phrase == "person")
    box = person.boxes_xyxy[0]
    pose = people.estimate(frame, box, record.camera.K[0])
    assert pose.mask is not None
    ys, xs = np.nonzero(pose.mask)
    assert box[0] - 10 <= np.median(xs) <= box[2] + 10 and box[1] - 10 <= np.median(ys) <= box[3] + 10
    assert np.isfinite(pose.forward_cam).all() and pose.torso_px > 10
    empty = people.estimate(np.full_like(frame, 128), box, record.camera.K[0])
    assert empty.mask is None and np.isnan(empty.forward_cam).all()


@pytest.mark.shared
def test_pose_graphs_side_by_side_give_the_poses_one_graph_gives(shared_dir: Path) -> None:
    """The pipeline shares a clip's person boxes out among several Pose graphs: the poses must be those one
    graph computes in order (static image mode keeps nothing between calls)."""
    import cv2

    from dsr.extract.people import PeopleConfig
    from dsr.extract.pipeline import ExtractConfig, _people_poses

    ok, reason = MediaPipePeople.available()
    if not ok:
        pytest.skip(reason)
    root = shared_dir / "realdata" / "davis2016_val"
    frames, boxes = [], []
    for index in range(10, 50, 5):
        frames.append(cv2.cvtColor(cv2.imread(str(root / "JPEGImages" / "parkour" / f"{index:05d}.jpg")),
                                   cv2.COLOR_BGR2RGB))
        ys, xs = np.nonzero(cv2.imread(str(root / "Annotations" / "parkour" / f"{index:05d}.png"),
                                       cv2.IMREAD_GRAYSCALE) > 0)
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
    boxes[3] = [np.nan] * 4  # a frame without the box is skipped, not sent to a graph
    runner = SimpleNamespace(class_name="person", boxes_xyxy=np.array(boxes, float))
    clip = SimpleNamespace(frames_rgb=np.stack(frames))
    K = np.stack([_K(f) for f in frames])
    one, two = (_people_poses(clip, K, [runner], ExtractConfig(people=PeopleConfig(workers=w)), None)[id(runner)]
                for w in (1, 2))
    assert one[3] is None and two[3] is None
    found = [p for p in one if p is not None and p.mask is not None]
    assert len(found) >= 6  # the runner was found, so masks and facings were compared
    for a, b in zip(one, two, strict=True):
        if a is None:
            continue
        assert (a.mask is None) == (b.mask is None) and (a.mask is None or np.array_equal(a.mask, b.mask))
        np.testing.assert_array_equal(a.forward_cam, b.forward_cam)
        assert a.visibility == b.visibility and a.torso_px == b.torso_px


def test_people_workers_must_be_positive() -> None:
    from dsr.errors import DsrError
    from dsr.extract.people import PeopleConfig

    with pytest.raises(DsrError, match="people workers must be >= 1"):
        PeopleConfig(workers=0)
