"""Tiny rendered worlds shared by the world tests (rendered once per session)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dsr.world.config import WorldConfig
from dsr.world.render import WorldResult

TINY = {"width": 96, "height": 72}


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., WorldResult]:
    """``rendered(**config)`` → WorldResult of a tiny world, cached per config."""
    from dsr.world.render import render_world

    cache: dict[WorldConfig, WorldResult] = {}

    def get(**kwargs: object) -> WorldResult:
        config = WorldConfig(**{**TINY, **kwargs})  # type: ignore[arg-type]
        if config not in cache:
            cache[config] = render_world(config, tmp_path_factory.mktemp("world"), progress=False)
        return cache[config]

    return get
