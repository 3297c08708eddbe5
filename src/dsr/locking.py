"""Exclusive locks on output folders and files: two processes never write one output at once.

A lock is the kernel's advisory ``flock`` on a small file beside the output. The kernel drops it when
the holder exits, however it exits — ``kill -9`` included — so a crashed run never leaves a stale lock
behind and its resume takes the lock at once. A second process that finds the lock held does not wait:
it stops with one line naming the output and the lock file.

The holder removes the lock file before it lets go, so a finished run leaves nothing behind (a killed
one leaves an empty, unlocked file that the next run takes and removes). Removing a lock file is safe
because a taker checks, once it holds the lock, that the path still names the file it locked, and
starts over if the previous holder removed it in between (the usual ``flock`` + ``unlink`` protocol).
POSIX only (Linux, macOS), like the rest of the toolkit.
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


def _take(path: Path, what: str) -> int:
    """A descriptor of ``path`` holding its exclusive lock; LockedError at once if another process holds it."""
    import fcntl

    for _ in range(100):  # each retry means the holder removed the file between our open and our flock
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{what} is in use by another dsr process (lock file {path}); wait for it to "
                              "finish, or write to another output") from None
        except BaseException:
            os.close(fd)
            raise
        held = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)  # we locked a file the previous holder had already removed: take the new one
    raise LockedError(f"{what}: could not take the lock file {path} (it keeps being replaced)")


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Hold the lock file ``lock_path`` for the ``with`` block, or raise :class:`LockedError` at once.

    what: the output the lock guards, for the message (``runs/gpt4o``).
    """
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _take(path, what)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still holding it: a process that opened it meanwhile will start over
        os.close(fd)  # releases the lock


def lock_folder(folder: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """An exclusive lock on an output folder (``<folder>/.dsr.lock``; the folder is created)."""
    folder = Path(folder)
    return exclusive(folder / FOLDER_LOCK_NAME, str(folder))


def lock_file(target: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Path]:
    """An exclusive lock on an output file (``.<name>.lock`` beside it), e.g. a QA export."""
    target = Path(target)
    return exclusive(target.with_name(f".{target.name}.lock"), str(target))
