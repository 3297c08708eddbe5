"""The contract between the harness and a model under evaluation.

A model turns a :class:`Request` (the item and its prompt) into a :class:`Reply` (raw text, token
usage, latency) or raises :class:`ModelError` with a short ``reason`` (recorded per item; transient
reasons are retried when the run resumes). ``identity()`` goes into the run manifest.

Backends live in :mod:`dsr.evaluate.models` (baselines, OpenAI-compatible) and :mod:`dsr.evaluate.hf`
(local transformers); both import this module and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsr.errors import DsrError
from dsr.evaluate.datasets import Item
from dsr.evaluate.prompt import Prompt

# Failures worth retrying on resume (the model may answer next time); others are final.
TRANSIENT_REASONS = frozenset({"server_error", "rate_limited", "timeout", "connection_error", "model_error"})


class ModelError(DsrError):
    """A model call that produced no reply. ``reason`` is a short code counted in reports."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class Request:
    """The item, its prompt, and the times (s) of ``prompt.images`` in the order they are shown."""

    item: Item
    prompt: Prompt
    timestamps_s: tuple[float, ...] = ()


@dataclass(frozen=True)
class Reply:
    text: str
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0


class Model(Protocol):
    name: str
    uses_frames: bool

    def identity(self) -> dict[str, Any]: ...

    def generate(self, request: Request) -> Reply: ...


@dataclass(frozen=True)
class ModelContext:
    """What a model factory may read besides its own options: the evaluated items (baselines fit
    their priors on them), the run's seed and how many calls the harness keeps in flight."""

    items: Sequence[Item] = ()
    seed: int = 0
    concurrency: int = 8
