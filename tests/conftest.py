"""Shared pytest configuration: where the optional real-data folder lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository; tests needing it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared (real-data fixtures) is not present")
    return SHARED
