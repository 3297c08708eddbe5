"""Render a SceneSpec with MuJoCo offscreen and write the video and its exact scene record.

Rendering goes through ``mujoco.Renderer`` (EGL on headless machines: ``MUJOCO_GL=egl``, set here
before MuJoCo is imported unless the caller chose another backend). Each frame is drawn twice: RGB
for the video and segmentation (geom ids) for the masks, boxes and visibility of every object.

Camera conventions: the record uses OpenCV c2w (x right, y down, z forward); a MuJoCo camera looks
along its −z with y up, so ``R_mujoco = R_opencv · diag(1, −1, −1)``. Intrinsics follow from the
vertical field of view with square pixels and the principal point at the image centre, in OpenCV
pixel coordinates (pixel centres at integers): ``cx = (W − 1) / 2``.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import mujoco
import numpy as np

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError
from dsr.scene.build import camera_track, object_track_from_world
from dsr.scene.io import read_record, write_record
from dsr.scene.record import MaskTrack, SceneRecord, Source, VideoInfo
from dsr.scene.rle import rle_encode
from dsr.world.config import GENERATOR_VERSION, SOURCE_NAME, WorldConfig
from dsr.world.encode import encode_video
from dsr.world.mjcf import CAMERA_NAME, build_mjcf
from dsr.world.scene import SceneSpec, generate_scene

VIDEO_NAME = "video.mp4"
RECORD_NAME = "record.npz"
DONE_NAME = "world.json"  # written last: its presence (with a matching config) means the world is complete

# OpenCV camera axes → MuJoCo camera axes (flip y and z).
MUJOCO_FROM_OPENCV_CAM = np.diag([1.0, -1.0, -1.0])


def world_source() -> Source:
    """Who produced a world's ground truth: this generator and the MuJoCo that rendered it."""
    return Source(SOURCE_NAME, f"{GENERATOR_VERSION}+mujoco-{mujoco.__version__}")


def intrinsics(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """K (3, 3) of a MuJoCo camera with vertical field of view ``fovy_deg`` rendering W×H pixels."""
    f = 0.5 * height / np.tan(np.radians(fovy_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def mujoco_camera_xmat(c2w: np.ndarray) -> np.ndarray:
    """MuJoCo's camera frame (3, 3) (columns x right, y up, z backward) from an OpenCV c2w (4, 4)."""
    return c2w[:3, :3] @ MUJOCO_FROM_OPENCV_CAM


class WorldModel:
    """A compiled MuJoCo model of a spec with an offscreen renderer; call :meth:`close` when done.

    ``geom_object[g]`` is the index into ``spec.objects`` of geom ``g``'s object, or −1 for static geoms.
    """

    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        try:
            self.model = mujoco.MjModel.from_xml_string(build_mjcf(spec))
        except ValueError as exc:  # a bug in the generator, not user input; keep it loud but short
            raise RuntimeError(f"MuJoCo rejected the generated model: {exc}") from exc
        self.data = mujoco.MjData(self.model)
        self.camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        body_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, o.object_id) for o in spec.objects]
        self.mocap_ids = np.array([self.model.body_mocapid[b] for b in body_ids])
        root_to_object = np.full(self.model.nbody, -1)
        root_to_object[body_ids] = np.arange(len(body_ids))
        # an object is every geom of its body tree: map geoms through their root body
        self.geom_object = root_to_object[self.model.body_rootid[self.model.geom_bodyid]]
        try:
            self.renderer = mujoco.Renderer(self.model, spec.config.height, spec.config.width)
        except Exception as exc:  # no GL: say how to fix it in one line
            raise DsrError(f"cannot start MuJoCo offscreen rendering (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): "
                           f"{exc.__class__.__name__}: {exc}") from None

    def pose(self, frame: int) -> None:
        """Put every object and the camera where the spec has them at ``frame``."""
        d, spec = self.data, self.spec
        for obj, mocap in zip(spec.objects, self.mocap_ids, strict=True):
            d.mocap_pos[mocap] = obj.centers[frame]
            d.mocap_quat[mocap] = obj.quats[frame]
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_camlight(self.model, d)
        # set the camera's world pose directly (no quaternion round trip): it is the record's c2w exactly
        d.cam_xpos[self.camera_id] = spec.c2w[frame, :3, 3]
        d.cam_xmat[self.camera_id] = mujoco_camera_xmat(spec.c2w[frame]).ravel()

    def render(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, object index map (H, W) int16 with −1 = no object) of ``frame``."""
        self.pose(frame)
        self.renderer.update_scene(self.data, camera=self.camera_id)
        self.renderer.disable_segmentation_rendering()
        rgb = self.renderer.render()
        return rgb, object_map(self._segmentation(), self.geom_object)

    def render_geom_ids(self, frame: int) -> np.ndarray:
        """(H, W) int32 id of the geom seen at each pixel of ``frame``, −1 = none (sky)."""
        self.pose(frame)
        self.renderer.update_scene(self.data, camera=self.camera_id)
        seg = self._segmentation()
        return np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)

    def _segmentation(self) -> np.ndarray:
        self.renderer.enable_segmentation_rendering()
        try:
            return self.renderer.render()
        finally:
            self.renderer.disable_segmentation_rendering()

    def close(self) -> None:
        self.renderer.close()


def object_map(seg: np.ndarray, geom_object: np.ndarray) -> np.ndarray:
    """MuJoCo segmentation (H, W, 2) [object id, object type] → (H, W) int16 object index, −1 = none."""
    ids, types = seg[..., 0], seg[..., 1]
    is_geom = (types == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids >= 0)
    out = np.full(ids.shape, -1, np.int16)
    out[is_geom] = geom_object[ids[is_geom]]
    return out


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Box [x1, y1, x2, y2] enclosing the mask's pixel squares (OpenCV coordinates: pixel centres at integers)."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return np.array([cols[0] - 0.5, rows[0] - 0.5, cols[-1] + 0.5, rows[-1] + 0.5])


@dataclass
class _Collector:
    """Per-object masks (RLE), boxes and visibility, gathered frame by frame while the video encodes."""

    num_objects: int
    num_frames: int
    runs: list[list[np.ndarray]] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    visible: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.runs = [[] for _ in range(self.num_objects)]
        self.boxes = np.full((self.num_objects, self.num_frames, 4), np.nan)
        self.visible = np.zeros((self.num_objects, self.num_frames), bool)

    def add(self, frame: int, objects: np.ndarray) -> None:
        for k in range(self.num_objects):
            mask = objects == k
            if mask.any():
                self.visible[k, frame] = True
                self.boxes[k, frame] = mask_box(mask)
                self.runs[k].append(rle_encode(mask))
            else:
                self.runs[k].append(np.zeros(0, np.uint32))

    def mask_track(self, k: int, height: int, width: int) -> MaskTrack:
        chunks = self.runs[k]
        offsets = np.concatenate(([0], np.cumsum([len(c) for c in chunks]))).astype(np.int64)
        return MaskTrack(height=height, width=width, counts=np.concatenate(chunks).astype(np.uint32), offsets=offsets)


def render_frames(spec: SceneSpec, on_frame: Callable[[int], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rgb, object map) for every frame of ``spec``; ``on_frame(i)`` after each one."""
    world = WorldModel(spec)
    try:
        for i in range(spec.num_frames):
            yield world.render(i)
            if on_frame is not None:
                on_frame(i)
    finally:
        world.close()


def config_digest(config: WorldConfig) -> str:
    text = json.dumps({"config": config.to_json(), "generator": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def build_record(spec: SceneSpec, collected: _Collector) -> SceneRecord:
    """The exact ground-truth record of a rendered spec (every rendered frame is sampled)."""
    cfg = spec.config
    n = spec.num_frames
    src = world_source()
    K = intrinsics(spec.fovy_deg, cfg.width, cfg.height)
    objects = []
    for k, obj in enumerate(spec.objects):
        track = object_track_from_world(
            obj.object_id, obj.class_phrase, is_agent=obj.is_agent, centers_world=obj.centers, c2w=spec.c2w,
            visible=collected.visible[k], boxes_xyxy=collected.boxes[k],
            world_from_agent=obj.rotations if obj.is_agent else None, track_source=src, center_source=src,
        )
        objects.append(replace(track, masks=collected.mask_track(k, cfg.height, cfg.width)))
    video = VideoInfo(path=VIDEO_NAME, fps=float(cfg.fps), width=cfg.width, height=cfg.height, num_frames=n,
                      duration_s=n / cfg.fps, frame_indices=np.arange(n), timestamps_s=spec.times_s)
    return SceneRecord(record_id=f"world-seed{cfg.seed}-{config_digest(cfg)}", video=video,
                       camera=camera_track(K, spec.c2w, src), objects=tuple(objects), scale_kind="metric",
                       meters_per_unit=1.0)


@dataclass(frozen=True)
class WorldResult:
    """A rendered world: where its files are, its spec and its record; ``reused`` if already on disk."""

    out_dir: Path
    video_path: Path
    record_path: Path
    spec: SceneSpec
    record: SceneRecord
    seconds: float
    reused: bool = False


def _done_text(config: WorldConfig) -> str:
    return json.dumps({"config": config.to_json(), "generator": GENERATOR_VERSION,
                       "source": world_source().version, "video": VIDEO_NAME, "record": RECORD_NAME},
                      indent=1, sort_keys=True)


def render_world(config: WorldConfig, out_dir: str | os.PathLike[str], *, progress: bool = True,
                 overwrite: bool = False) -> WorldResult:
    """Render the world of ``config`` into ``out_dir``: ``video.mp4``, ``record.npz`` and ``world.json``.

    Every file is written atomically and ``world.json`` last, so a killed run leaves either a complete
    world or one that the next call renders again. The same config gives the same files, byte for byte,
    in any process: the video is encoded in a fresh child process (:mod:`dsr.world.encode`). A complete world with the same config is reused
    unless ``overwrite``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DsrError(f"{out}: output path exists and is not a folder")
    video_path, record_path, done_path = out / VIDEO_NAME, out / RECORD_NAME, out / DONE_NAME
    spec = generate_scene(config)
    start = time.perf_counter()
    if (not overwrite and done_path.is_file() and video_path.is_file() and record_path.is_file()
            and done_path.read_text(encoding="utf-8") == _done_text(config)):
        return WorldResult(out, video_path, record_path, spec, read_record(record_path),
                           time.perf_counter() - start, reused=True)
    done_path.unlink(missing_ok=True)
    collected = _Collector(len(spec.objects), spec.num_frames)

    def frames(advance: Callable[[int], None] | None) -> Iterator[np.ndarray]:
        for i, (rgb, objects) in enumerate(render_frames(spec, advance)):
            collected.add(i, objects)
            yield rgb

    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("frames"), TimeRemainingColumn(), transient=False) as bar:
            task = bar.add_task(f"rendering world seed {config.seed}", total=spec.num_frames)
            encode_video(video_path, frames(lambda _i: bar.advance(task)), config.fps)
    else:
        encode_video(video_path, frames(None), config.fps)
    record = build_record(spec, collected)
    write_record(record_path, record)
    atomic_write_text(done_path, _done_text(config))
    return WorldResult(out, video_path, record_path, spec, record, time.perf_counter() - start)
