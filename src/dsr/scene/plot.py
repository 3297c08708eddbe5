"""A one-page PNG summary of a scene record (matplotlib, Agg, no global pyplot state).

Left: top view of every object's trajectory and the camera path (start ○, end ■, agents' heading and
the camera's viewing direction as arrows). Right: camera-to-object distance and speed over time, and
when each object is in view. Colours and labels come from :mod:`dsr.scene.show`, so they match the
Rerun recording.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dsr.atomic import atomic_write_bytes
from dsr.scene.record import SceneRecord
from dsr.scene.show import (
    AXIS_NAMES,
    CAMERA_COLOR,
    INVALID_COLOR,
    camera_distances,
    ground_axes,
    known_runs,
    object_color,
    object_label,
    scene_extent,
    speeds,
    unit_label,
    world_up_axis,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ARROWS_PER_TRACK = 10  # heading arrows drawn along each trajectory in the top view


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def _frame_spans(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time (T,) of each sampled frame's bar: halfway to its neighbours."""
    mid = (t_s[1:] + t_s[:-1]) / 2.0
    first = t_s[0] - (mid[0] - t_s[0])
    last = t_s[-1] + (t_s[-1] - mid[-1])
    edges = np.concatenate(([first], mid, [last]))
    return edges[:-1], edges[1:]


def _bars(ax: Axes, row: float, mask: np.ndarray, starts: np.ndarray, ends: np.ndarray, **style: object) -> None:
    spans = [(starts[a], ends[b - 1] - starts[a]) for a, b in known_runs(mask)]
    if spans:
        ax.broken_barh(spans, (row - 0.35, 0.7), **style)


def _top_view(ax: Axes, record: SceneRecord) -> None:
    from matplotlib.lines import Line2D

    cam = record.camera
    up = world_up_axis(cam.c2w, cam.valid)
    a, b = ground_axes(up)
    extent = scene_extent(record)
    arrow_len = 0.05 * extent
    step = max(1, record.num_frames // ARROWS_PER_TRACK)

    def arrows(xy: np.ndarray, direction: np.ndarray, color: object, **kw: object) -> None:
        d = direction[:, [a, b]]
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        ok = np.isfinite(xy).all(axis=1) & np.isfinite(d).all(axis=1) & (norm[:, 0] > 1e-9)
        if ok.any():
            d = d[ok] / norm[ok] * arrow_len
            ax.quiver(xy[ok, 0], xy[ok, 1], d[:, 0], d[:, 1], color=color, angles="xy", scale_units="xy",
                      scale=1.0, width=0.004, zorder=4, **kw)

    handles: list[Line2D] = []
    cam_xy = cam.c2w[:, :3, 3][:, [a, b]]
    ax.plot(cam_xy[:, 0], cam_xy[:, 1], "--", color=_rgb(CAMERA_COLOR), lw=1.5, zorder=2)
    ax.plot(*cam_xy[0], "o", color=_rgb(CAMERA_COLOR), ms=8, zorder=5)
    ax.plot(*cam_xy[-1], "s", color=_rgb(CAMERA_COLOR), ms=8, zorder=5)
    idx = np.arange(0, record.num_frames, step)
    arrows(cam_xy[idx], cam.c2w[idx, :3, 2], color=(0.45, 0.45, 0.45), alpha=0.8)
    handles.append(Line2D([], [], ls="--", color=_rgb(CAMERA_COLOR), label="camera path (grey arrows: view direction)"))
    if not cam.valid.all():
        bad = ~cam.valid
        ax.plot(cam_xy[bad, 0], cam_xy[bad, 1], "x", color=_rgb(INVALID_COLOR), ms=9, mew=2, zorder=6)
        handles.append(Line2D([], [], ls="", marker="x", color=_rgb(INVALID_COLOR), mew=2,
                              label=f"invalid camera pose ({int(bad.sum())} frames)"))

    for i, obj in enumerate(record.objects):
        color = _rgb(object_color(i))
        xy = obj.centers_world[:, [a, b]]
        known = obj.center_known
        for s, e in known_runs(known):
            ax.plot(xy[s:e, 0], xy[s:e, 1], "-", color=color, lw=2.2, zorder=3)
        label = object_label(obj) + (" — agent" if obj.is_agent else "")
        handles.append(Line2D([], [], color=color, lw=2.2, label=label))
        if not known.any():
            continue
        first, last = np.flatnonzero(known)[[0, -1]]
        ax.plot(*xy[first], "o", color=color, ms=8, mec="k", zorder=5)
        ax.plot(*xy[last], "s", color=color, ms=8, mec="k", zorder=5)
        ax.annotate(obj.object_id, xy[last], textcoords="offset points", xytext=(6, 6), color=color,
                    fontsize=9, fontweight="bold", zorder=7)
        if obj.orientation is not None:
            idx = np.arange(0, record.num_frames, step)
            arrows(xy[idx], obj.orientation.world_from_agent[idx, :, 0], color=color, edgecolor="k",
                   linewidth=0.5)

    handles += [
        Line2D([], [], ls="", marker="o", color="0.5", mec="k", label="start"),
        Line2D([], [], ls="", marker="s", color="0.5", mec="k", label="end"),
    ]
    if record.agents:
        handles.append(Line2D([], [], ls="", marker=r"$\rightarrow$", color="0.2", ms=12,
                              label="agent heading (forward axis)"))
    unit = unit_label(record)
    sign = "+" if up[1] > 0 else "−"
    ax.set_title(f"Top view: world {AXIS_NAMES[a]}–{AXIS_NAMES[b]} seen from {sign}{AXIS_NAMES[up[0]]} (up)")
    ax.set_xlabel(f"world {AXIS_NAMES[a]} [{unit}]")
    ax.set_ylabel(f"world {AXIS_NAMES[b]} [{unit}]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.85)


def _distance_panel(ax: Axes, record: SceneRecord) -> None:
    from matplotlib.lines import Line2D

    t_s = record.timestamps_s
    for i, obj in enumerate(record.objects):
        color = _rgb(object_color(i))
        dist = camera_distances(record, obj)
        ax.plot(t_s, dist, ":", color=color, lw=1.2)
        ax.plot(t_s, np.where(obj.visible, dist, np.nan), "-", marker="o", ms=3, color=color, lw=2,
                label=object_label(obj))
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", lw=2, label="solid: in view"),
                Line2D([], [], color="0.3", ls=":", lw=1.2, label="dotted: out of view / occluded")]
    ax.set_title("Distance from camera to each object")
    ax.set_ylabel(f"distance [{unit_label(record)}]")
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="best", ncol=2)


def _speed_panel(ax: Axes, record: SceneRecord) -> None:
    t_s = record.timestamps_s
    ax.plot(t_s, speeds(record.camera.c2w[:, :3, 3], t_s), "--", color=_rgb(CAMERA_COLOR), lw=1.5,
            label="camera")
    for i, obj in enumerate(record.objects):
        ax.plot(t_s, speeds(obj.centers_world, t_s), "-", color=_rgb(object_color(i)), lw=2,
                label=object_label(obj))
    unit = "m" if record.scale_kind == "metric" else "units"
    ax.set_title("Speed over time (3D centre)")
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(f"speed [{unit}/s]")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)


def _visibility_panel(ax: Axes, record: SceneRecord) -> None:
    from matplotlib.patches import Patch

    starts, ends = _frame_spans(record.timestamps_s)
    rows = [*(object_label(o) for o in reversed(record.objects)), "camera pose"]
    n = len(record.objects)
    for i, obj in enumerate(record.objects):
        row = n - 1 - i
        color = _rgb(object_color(i))
        _bars(ax, row, obj.center_known, starts, ends, facecolors=color, alpha=0.25)
        _bars(ax, row, obj.visible, starts, ends, facecolors=color)
    _bars(ax, n, record.camera.valid, starts, ends, facecolors="0.6")
    _bars(ax, n, ~record.camera.valid, starts, ends, facecolors=_rgb(INVALID_COLOR))
    ax.set_yticks(range(n + 1), rows, fontsize=8)
    ax.set_ylim(-0.6, n + 0.6)
    ax.set_xlim(starts[0], ends[-1])
    ax.set_xlabel("time [s]")
    ax.set_title("When each object is in view")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color="0.35", label="in view (box)"),
                       Patch(color="0.35", alpha=0.25, label="3D centre known, not in view"),
                       Patch(color="0.6", label="camera pose valid"),
                       Patch(color=_rgb(INVALID_COLOR), label="camera pose invalid")],
              fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4, frameon=False)


def plot_record(record: SceneRecord, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Draw the one-page summary of ``record`` and write it atomically as a PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 9.5))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 2, width_ratios=[1.15, 1], height_ratios=[1, 1, 0.8], hspace=0.45, wspace=0.18,
                            left=0.05, right=0.98, top=0.9, bottom=0.1)
    top = fig.add_subplot(grid[:, 0])
    dist = fig.add_subplot(grid[0, 1])
    speed = fig.add_subplot(grid[1, 1], sharex=dist)
    vis = fig.add_subplot(grid[2, 1], sharex=dist)
    _top_view(top, record)
    _distance_panel(dist, record)
    _speed_panel(speed, record)
    _visibility_panel(vis, record)
    v = record.video
    n_agents = len(record.agents)
    span_s = record.timestamps_s[-1] - record.timestamps_s[0]
    agents = f"{n_agents} agent" + ("" if n_agents == 1 else "s")
    fig.suptitle(
        f"{record.record_id}: {record.num_frames} sampled frames over {span_s:.1f} s "
        f"(video {v.width}×{v.height} @ {v.fps:.3g} fps), {len(record.objects)} objects ({agents})\n"
        f"scale: {record.scale_kind} · camera: {record.camera.source.name} · "
        f"valid camera frames: {int(record.camera.valid.sum())}/{record.num_frames}",
        fontsize=13)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    target = Path(path)
    atomic_write_bytes(target, buf.getvalue())
    return target
