"""Synthetic 4D worlds rendered with MuJoCo, with exact ground-truth scene records.

``render_world(WorldConfig(seed=1), "out/")`` writes ``out/video.mp4`` (H.264) and ``out/record.npz``
(the scene record: camera intrinsics and poses, object centres, agent orientations, boxes and masks
from the renderer's segmentation). The pieces, in pipeline order:

* :mod:`dsr.world.config` — ``WorldConfig``, the user-facing settings;
* :mod:`dsr.world.scene` — ``generate_scene(config) -> SceneSpec``, every pose of every frame (pure);
* :mod:`dsr.world.motion` — camera paths and their stop-and-go speed profiles (pure numpy);
* :mod:`dsr.world.dynamics` — scripted walkers and cars, kicked balls and boxes, simulated together;
* :mod:`dsr.world.bodies` / :mod:`dsr.world.mjcf` — object shapes and the MuJoCo model text;
* :mod:`dsr.world.render` — offscreen rendering, segmentation, the video and the record.

Importing this package imports neither numpy nor MuJoCo (the CLI reads :mod:`dsr.world.config` at
start-up); the other names load their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsr.world.config import CAMERA_MOTIONS, WorldConfig, WorldConfigError

if TYPE_CHECKING:
    from dsr.world.render import WorldResult, render_world
    from dsr.world.scene import SceneSpec, generate_scene

__all__ = ["CAMERA_MOTIONS", "SceneSpec", "WorldConfig", "WorldConfigError", "WorldResult", "generate_scene",
           "render_world"]


def __getattr__(name: str) -> Any:
    if name in ("render_world", "WorldResult"):
        from dsr.world import render

        return getattr(render, name)
    if name in ("generate_scene", "SceneSpec"):
        from dsr.world import scene

        return getattr(scene, name)
    raise AttributeError(f"module 'dsr.world' has no attribute {name!r}")
