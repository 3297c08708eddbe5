"""Encode a world's frames in a fresh child process, so that the video is the same file on every run.

Measured: the same RGB frames encoded by libx264 (one thread) in the process that renders with MuJoCo
and Mesa gave different bytes from run to run (about one run in five, more with several threads),
while a process that only encodes gave the same bytes every time. The renderer's threads and
allocations leave the encoder's process state different from run to run; a fresh interpreter that
imports nothing but :mod:`dsr.video` does not see them.

The child is ``python -m dsr.world.encode PATH FPS HEIGHT WIDTH`` (not ``multiprocessing``, whose
"spawn" re-runs the caller's main script). Frames arrive on its stdin, each announced by one byte
``F``; the byte ``E`` ends the clip. A pipe that closes before ``E`` (the renderer was killed) leaves
no video: :func:`dsr.video.write_video` writes atomically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from dsr.errors import DsrError

_FRAME, _END = b"F", b"E"


class _PipeClosed(Exception):
    """The renderer closed the pipe mid-clip."""


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise _PipeClosed
    return data


def _frames_from(stream: IO[bytes], height: int, width: int) -> Iterator[Any]:
    import numpy as np

    size = height * width * 3
    while True:
        tag = _read_exactly(stream, 1)
        if tag == _END:
            return
        if tag != _FRAME:
            raise _PipeClosed
        yield np.frombuffer(_read_exactly(stream, size), np.uint8).reshape(height, width, 3)


def main(argv: list[str]) -> int:
    """The child: ``PATH FPS HEIGHT WIDTH``, frames on stdin."""
    from dsr.video import write_video

    path, fps, height, width = argv[0], float(argv[1]), int(argv[2]), int(argv[3])
    try:
        write_video(path, _frames_from(sys.stdin.buffer, height, width), fps)
    except _PipeClosed:
        print(f"{path}: the renderer stopped before the last frame; no video written", file=sys.stderr)
        return 1
    return 0


def encode_video(path: str | os.PathLike[str], frames: Iterable[Any], fps: float) -> None:
    """Encode RGB frames (H, W, 3) uint8 to ``path`` (H.264 mp4, atomic) in a fresh child process."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise DsrError(f"{path}: no frames to write")
    height, width = first.shape[:2]
    child = subprocess.Popen([sys.executable, "-m", "dsr.world.encode", os.fspath(path), repr(float(fps)),
                              str(height), str(width)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdin is not None
    try:
        frame = first
        while frame is not None:
            child.stdin.write(_FRAME)
            child.stdin.write(frame.tobytes())
            frame = next(it, None)
        child.stdin.write(_END)
        child.stdin.close()
    except BaseException:
        child.kill()
        child.wait()
        raise
    assert child.stderr is not None
    err = child.stderr.read()
    child.wait()
    if child.returncode != 0:
        last = (err or b"").decode(errors="replace").strip().splitlines()
        raise DsrError(f"{path}: the video encoder failed ({last[-1] if last else f'exit {child.returncode}'})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
