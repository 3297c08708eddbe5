"""Group commit: one thread runs the app's writes, committing those that arrive together at once.

With ``synchronous=FULL`` every SQLite commit waits for the disk (an fsync of the write-ahead log),
and SQLite lets one writer in at a time, so committing each request alone caps the app at one fsync
per decision. Here a request hands its write (a function of a session) to the writer thread and waits;
the thread takes every write queued so far, runs each inside its own SAVEPOINT on one connection (a write that fails —
409, 403, 422 — is undone alone and answered with its error), commits the group with one fsync, and
only then answers the requests. An answer therefore always means "on disk".
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
_STOP = object()


class GroupCommitWriter:
    """Runs ``submit``-ted writes on one thread, in arrival order, committing them in groups."""

    def __init__(self, engine: Engine, *, max_group: int = 256) -> None:
        self.engine = engine
        self.max_group = max_group
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.groups = 0  # commits made (for tests and the benchmark)
        self.writes = 0

    def submit(self, write: Callable[[Connection], T]) -> Future[T]:
        """Queue ``write``; the future holds its result (or error) once its group is committed."""
        future: Future[T] = Future()
        self._ensure_started()
        self._queue.put((write, future))
        return future

    def run(self, write: Callable[[Connection], T]) -> T:
        """Submit and wait (for synchronous callers)."""
        return self.submit(write).result()

    def close(self) -> None:
        """Finish the queued writes and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="dsr-review-writer", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop = False
            while len(group) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                group.append(nxt)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Callable[[Connection], Any], Future[Any]]]) -> None:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self.engine.execution_options(dsr_write=True).connect() as conn, conn.begin():
                for write, future in group:
                    if not future.set_running_or_notify_cancel():
                        continue
                    try:
                        with conn.begin_nested():
                            outcomes.append((future, True, write(conn)))
                    except Exception as exc:  # this write's own error (409, 403, 404, 422): undone alone
                        outcomes.append((future, False, exc))
        except Exception as exc:  # the group's commit failed: none of its writes is acknowledged
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.groups += 1
        self.writes += len(outcomes)
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
