"""What a synthetic world is made of: the user-facing settings, checked once.

Everything that varies between worlds and is not set here is drawn from the seed by
:func:`dsr.world.scene.generate_scene`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from dsr.errors import DsrError

# Bump when the same seed and config would render a different world (scene rules, geometry, textures).
GENERATOR_VERSION = "3"
SOURCE_NAME = "mujoco-world"

CameraMotion = Literal["static", "pan", "dolly", "orbit", "handheld"]
CAMERA_MOTIONS: tuple[str, ...] = get_args(CameraMotion)

ObjectKind = Literal["person", "robot", "ball", "box", "car"]
AGENT_KINDS: tuple[str, ...] = ("person", "robot")
THING_KINDS: tuple[str, ...] = ("ball", "box", "car")

MIN_OBJECTS, MAX_OBJECTS = 1, 8
# DSR's source clips last 20–120 s and `dsr curate` keeps 20 s and more; 24 s passes with margin and
# makes a step between two of the 32 frames questions sample 0.77 s long, long enough for walking to
# clear the answer rules' 0.1 floor (docs/bench-world.md).
DEFAULT_DURATION_S = 24.0
FOVY_DEG = (45.0, 58.0)  # vertical field of view drawn from the seed when not set
MAX_SIDE_PX = 1920


class WorldConfigError(DsrError):
    """A world setting out of range (one line naming the setting)."""


@dataclass(frozen=True)
class WorldConfig:
    """Settings of one synthetic world.

    seed: every random choice (layout, colours, paths, camera) follows from it.
    duration_s, fps: the clip has ``round(duration_s * fps)`` frames at times ``i / fps`` (24 s, 10 fps).
    width, height: frame size in pixels (even, for H.264 yuv420p).
    num_objects: how many moving objects; None draws 3–6 from the seed.
    camera_motion: static, pan, dolly, orbit or handheld; None draws one from the seed.
    motion_scale: multiplies every camera motion amplitude (0 = no motion at all).
    fovy_deg: vertical field of view; None draws one in FOVY_DEG (45–58°) from the seed.
    shadows: render the key light's shadows (nicer, but 2–4× slower on CPU Mesa, so off by default).
    """

    seed: int = 0
    duration_s: float = DEFAULT_DURATION_S
    fps: float = 10.0
    width: int = 320
    height: int = 240
    num_objects: int | None = None
    camera_motion: CameraMotion | None = None
    motion_scale: float = 1.0
    fovy_deg: float | None = None
    shadows: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise WorldConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (self.fps > 0 and self.fps <= 240):
            raise WorldConfigError(f"fps must be in (0, 240], got {self.fps}")
        if not self.duration_s > 0:
            raise WorldConfigError(f"duration must be > 0 s, got {self.duration_s}")
        if self.num_frames < 2:
            raise WorldConfigError(f"duration × fps gives {self.num_frames} frames; a world needs at least 2")
        for name in ("width", "height"):
            side = getattr(self, name)
            if not 16 <= side <= MAX_SIDE_PX or side % 2:
                raise WorldConfigError(f"{name} must be an even number of pixels in [16, {MAX_SIDE_PX}], got {side}")
        if self.num_objects is not None and not MIN_OBJECTS <= self.num_objects <= MAX_OBJECTS:
            raise WorldConfigError(f"objects must be in [{MIN_OBJECTS}, {MAX_OBJECTS}], got {self.num_objects}")
        if self.camera_motion is not None and self.camera_motion not in CAMERA_MOTIONS:
            raise WorldConfigError(
                f"camera motion must be one of {', '.join(CAMERA_MOTIONS)}, got {self.camera_motion!r}")
        if not 0.0 <= self.motion_scale <= 3.0:
            raise WorldConfigError(f"motion scale must be in [0, 3], got {self.motion_scale}")
        if self.fovy_deg is not None and not 10.0 <= self.fovy_deg <= 120.0:
            raise WorldConfigError(f"fovy must be in [10, 120] degrees, got {self.fovy_deg}")

    @property
    def num_frames(self) -> int:
        return round(self.duration_s * self.fps)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
