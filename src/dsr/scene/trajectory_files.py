"""Readers for common trajectory file formats → (timestamps_s (N,), c2w (N, 4, 4)).

* TUM: ``t tx ty tz qx qy qz qw`` per line (quaternion x, y, z, w), '#' comments.
* KITTI odometry: 12 numbers per line, a row-major 3×4 [R | t]; no timestamps (use a times file).
* EuRoC ground-truth CSV: ``timestamp_ns, px, py, pz, qw, qx, qy, qz, ...`` with a header line.

All of them store camera- (or body-) to-world poses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dsr.errors import DsrError
from dsr.scene.frames import make_pose


def _load_numeric(path: str | os.PathLike[str], delimiter: str | None, min_cols: int) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DsrError(f"{p}: trajectory file not found")
    rows = []
    with p.open() as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#") or line[0].isalpha():
                continue
            parts = line.replace(",", " ").split() if delimiter == "," else line.split()
            try:
                values = [float(x) for x in parts]
            except ValueError:
                raise DsrError(f"{p}:{lineno}: not a numeric row") from None
            if len(values) < min_cols:
                raise DsrError(f"{p}:{lineno}: expected at least {min_cols} columns, got {len(values)}")
            rows.append(values[:min_cols])
    if not rows:
        raise DsrError(f"{p}: no poses")
    return np.asarray(rows, dtype=np.float64)


def read_tum(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    data = _load_numeric(path, None, 8)
    rot = Rotation.from_quat(data[:, 4:8]).as_matrix()  # scipy order: x, y, z, w
    return data[:, 0], make_pose(rot, data[:, 1:4])


def read_kitti(path: str | os.PathLike[str], times_path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    data = _load_numeric(path, None, 12).reshape(-1, 3, 4)
    poses = make_pose(data[:, :, :3], data[:, :, 3])
    stamps = _load_numeric(times_path, None, 1)[:, 0] if times_path else np.arange(len(poses), dtype=np.float64)
    if len(stamps) != len(poses):
        raise DsrError(f"{times_path}: {len(stamps)} times for {len(poses)} poses")
    return stamps, poses


def read_euroc(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    data = _load_numeric(path, ",", 8)
    quat_xyzw = data[:, [5, 6, 7, 4]]
    return data[:, 0] * 1e-9, make_pose(Rotation.from_quat(quat_xyzw).as_matrix(), data[:, 1:4])
