"""Encode a world's frames in a fresh child process, so that the video is the same file on every run.

Measured: the same RGB frames encoded by libx264 (one thread) in the process that renders with MuJoCo
and Mesa gave different bytes from run to run (about one run in five, more with several threads),
while a process that only encodes gave the same bytes every time. The renderer's own threads and
allocations leave the encoder's process state different from run to run; a child process started with
``spawn`` that imports nothing but :mod:`dsr.video` does not see them. Frames go to it over a pipe.

This module imports neither MuJoCo nor numpy at import time (it is the child's entry point).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from dsr.errors import DsrError

_END = b"end"


def _frames_from(conn: Connection, height: int, width: int) -> Iterator[Any]:
    import numpy as np

    while True:
        data = conn.recv_bytes()
        if data == _END:
            return
        yield np.frombuffer(data, np.uint8).reshape(height, width, 3)


def _encoder_main(conn: Connection, path: str, fps: float) -> None:
    """Child: read (height, width), then frames, then the end marker; write the video atomically.

    A pipe closed before the end marker (the parent was killed) raises, so no partial video is kept.
    """
    from dsr.video import write_video

    height, width = conn.recv()
    write_video(path, _frames_from(conn, height, width), fps)


def encode_video(path: str | os.PathLike[str], frames: Iterable[Any], fps: float) -> None:
    """Encode RGB frames (H, W, 3) uint8 to ``path`` (H.264 mp4, atomic) in a fresh child process."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_encoder_main, args=(receive, os.fspath(path), float(fps)), daemon=True)
    child.start()
    receive.close()
    try:
        started = False
        for frame in frames:
            if not started:
                send.send(tuple(frame.shape[:2]))
                started = True
            send.send_bytes(memoryview(frame.tobytes()))
        if not started:
            raise DsrError(f"{path}: no frames to write")
        send.send_bytes(_END)
    except BaseException:
        child.kill()
        raise
    finally:
        send.close()
        child.join()
    if child.exitcode != 0:
        raise DsrError(f"{path}: the video encoder exited with code {child.exitcode}")
