"""Where the pipeline's tasks run: in this process, one after another, or on Ray.

An executor runs *chains*: per video, a first function (curate) whose result feeds a second (extract).
Both executors return results as chains finish, so the driver can journal each one at once.

* :class:`LocalExecutor` — serial, in this process; no extra dependency (the reference for equality).
* :class:`RayExecutor` — ``ray.init()`` starts a local Ray instance (``num_cpus`` workers), or joins a
  cluster with ``address``. Each step is a Ray task with its own resource hint: the CPU extractor asks
  for one CPU, a learned backend for one GPU as well. The second step is submitted with the first's
  ``ObjectRef``, so Ray starts it on whichever worker is free once the first is done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dsr.errors import DsrError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Resources:
    """A task's resource hint (Ray's ``num_cpus`` / ``num_gpus``)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class Chain:
    """``second(key, first(key, *first_args), *second_args)`` for one ``key`` (a video)."""

    key: str
    first: Callable[..., Any]
    first_args: tuple[Any, ...]
    second: Callable[..., Any]
    second_args: tuple[Any, ...]
    first_resources: Resources = Resources()
    second_resources: Resources = Resources()


class Executor(Protocol):
    name: str

    def run(self, chains: Sequence[Chain]) -> Iterator[tuple[str, Any, Any]]:
        """Yield (key, first result, second result) per chain, in completion order."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    name = "local"

    def run(self, chains: Sequence[Chain]) -> Iterator[tuple[str, Any, Any]]:
        for c in chains:
            first = c.first(c.key, *c.first_args)
            yield c.key, first, c.second(c.key, first, *c.second_args)

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "workers": 1}

    def close(self) -> None:
        pass


def _chain_second(key: str, first: Any, second: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """Runs on a Ray worker: the second step, returning the first's result too (one fetch per chain)."""
    return first, second(key, first, *args)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class RayExecutor:
    """Ray tasks; ``address=None`` starts a local instance with ``num_cpus`` CPUs (default: all)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise DsrError("--executor ray needs the package ray (pip install 'dsr[pipeline]')") from None
        self._ray = ray
        self.address = address
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
                # workers import dsr from this interpreter's environment (editable installs included)
                kwargs["runtime_env"] = {"env_vars": {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}}
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError ... for a bad address
                raise DsrError(f"cannot start or join Ray ({address or 'local'}): {exc}") from None
            self._owned = True
        else:
            self._owned = False
        self._first = ray.remote(_call)
        self._second = ray.remote(_chain_second)

    def run(self, chains: Sequence[Chain]) -> Iterator[tuple[str, Any, Any]]:
        ray = self._ray
        pending: dict[Any, str] = {}
        for c in chains:
            first_ref = self._first.options(num_cpus=c.first_resources.num_cpus,
                                            num_gpus=c.first_resources.num_gpus).remote(c.first, c.key, *c.first_args)
            ref = self._second.options(num_cpus=c.second_resources.num_cpus,
                                       num_gpus=c.second_resources.num_gpus).remote(c.key, first_ref, c.second,
                                                                                    *c.second_args)
            pending[ref] = c.key
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            first, second = ray.get(done[0])
            yield key, first, second

    def describe(self) -> dict[str, Any]:
        resources = self._ray.cluster_resources()
        return {"executor": "ray", "address": self.address or "local", "ray": self._ray.__version__,
                "cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0)}

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()


def create_executor(name: str, *, address: str | None = None, num_cpus: int | None = None) -> Executor:
    if name == "local":
        if address is not None:
            raise DsrError("--address joins a Ray cluster: use it with --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    raise DsrError(f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")
