"""Exclusive locks on output folders and files: two processes never write one run at once.

A lock is the kernel's advisory ``flock`` on a small file beside the output (through :mod:`filelock`).
The kernel drops it when the holder exits, however it exits — ``kill -9`` included — so a crashed run
never leaves a stale lock behind and its resume takes the lock at once. A second process that finds
the lock held does not wait: it stops with one line naming the output and the lock file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dsr.errors import DsrError

FOLDER_LOCK_NAME = ".dsr.lock"


class LockedError(DsrError):
    """The output is being written by another process."""


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Hold the lock file ``lock_path`` for the ``with`` block, or raise :class:`LockedError` at once.

    what: the output the lock guards, for the message (``runs/gpt4o``).
    """
    from filelock import FileLock, Timeout

    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(f"{what} is in use by another dsr process (lock file {path}); wait for it to "
                          "finish, or write to another output") from None
    try:
        yield path
    finally:
        lock.release()


def lock_folder(folder: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """An exclusive lock on an output folder (``<folder>/.dsr.lock``; the folder is created)."""
    folder = Path(folder)
    return exclusive(folder / FOLDER_LOCK_NAME, str(folder))


def lock_file(target: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """An exclusive lock on an output file (``.<name>.lock`` beside it), e.g. a QA export."""
    target = Path(target)
    return exclusive(target.with_name(f".{target.name}.lock"), str(target))
