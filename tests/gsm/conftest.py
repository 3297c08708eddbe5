"""Shared tiny fixtures: real Qwen2.5-VL / DINOv2-with-registers architectures at toy sizes, no downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny base Qwen2.5-VL dir, π³ safetensors and the assembled GSM checkpoint (K=4)."""
    from transformers.utils import logging

    from dsr.gsm.assemble import assemble_checkpoint
    from dsr.gsm.tiny import make_tiny_checkpoints

    logging.set_verbosity_error()
    root = tmp_path_factory.mktemp("gsm_ckpts")
    qwen, pi3 = make_tiny_checkpoints(str(root))
    gsm = assemble_checkpoint(qwen, pi3, root / "gsm", num_queries=4, pi3_heads=4)
    return {"qwen": qwen, "pi3": pi3, "gsm": str(gsm), "root": str(root)}


@pytest.fixture(scope="session")
def synthetic_export(tmp_path_factory: pytest.TempPathFactory) -> str:
    from dsr.gsm.tiny import make_synthetic_export

    return make_synthetic_export(str(tmp_path_factory.mktemp("gsm_data")), 4, broken=1)


def video_rows(seed: int, frames: int = 4, size: tuple[int, int] = (56, 56)) -> tuple:
    """Random CLIP-normalised frames → Qwen patch rows and grid."""
    from dsr.gsm.geometry import patchify_frames

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(frames, 3, *size, generator=g)
    return patchify_frames(x)


def shared_dir() -> Path:
    return Path(__file__).resolve().parents[2] / ".." / "shared"
