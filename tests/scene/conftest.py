from __future__ import annotations

import numpy as np
import pytest

from dsr.scene import SceneRecord, VideoInfo
from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.frames import look_at_c2w
from dsr.scene.frames import rotation_about_z as yaw_rotation

W, H = 64, 48


def build_record(num_frames: int = 8, with_masks: bool = True) -> SceneRecord:
    """A small valid record: a dollying camera, a walking agent (with masks) and a ball unknown at frame 2."""
    t = np.arange(num_frames)
    c2w = np.stack([look_at_c2w(np.array([0.2 * i, -6.0, 1.5]), np.array([0.0, 0.0, 0.5])) for i in t])
    K = np.array([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]])
    visible = np.ones(num_frames, bool)
    visible[3] = False
    masks = None
    if with_masks:
        masks = []
        for i in t:
            if not visible[i]:
                masks.append(None)
                continue
            m = np.zeros((H, W), bool)
            m[10 + i % 3: 20, 5 + i: 15 + i] = True
            masks.append(m)
    agent = object_track_from_world(
        "person_0", "person", is_agent=True,
        centers_world=np.stack([[0.3 * i, 0.0, 0.9] for i in t]).astype(float), c2w=c2w, visible=visible,
        boxes_xyxy=np.tile([5.0, 10.0, 15.0, 20.0], (num_frames, 1)) + t[:, None],
        world_from_agent=np.stack([yaw_rotation(0.1 * i) for i in t]),
        masks=masks, frame_size=(H, W), center_sigma=0.01, orientation_sigma_deg=2.0,
    )
    ball_centres = np.stack([[1.0, 0.5 * i, 0.2] for i in t]).astype(float)
    ball_centres[2] = np.nan
    ball = object_track_from_world(
        "ball_0", "ball", centers_world=ball_centres, c2w=c2w, visible=np.ones(num_frames, bool),
        boxes_xyxy=np.tile([30.0, 30.0, 34.0, 34.0], (num_frames, 1)),
    )
    video = VideoInfo(path="video.mp4", fps=10.0, width=W, height=H, num_frames=num_frames + 2,
                      duration_s=(num_frames + 2) / 10.0, frame_indices=t + 1, timestamps_s=(t + 1) / 10.0)
    return SceneRecord(record_id="unit", video=video, camera=camera_track(K, c2w, position_sigma=0.02),
                       objects=(agent, ball), scale_kind="metric", meters_per_unit=1.0)


@pytest.fixture
def record() -> SceneRecord:
    return build_record()
