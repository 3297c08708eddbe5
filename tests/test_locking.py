"""The output lock (`dsr.locking`): exclusive, refused at once, gone after release, and never held twice
even while holders remove their lock files (issue 15, item 3)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dsr.locking import LockedError, lock_file, lock_folder


def test_exclusive_refused_at_once_and_removed_after(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with lock_folder(out) as path:
        assert path == out / ".dsr.lock" and path.exists()
        start = time.monotonic()
        with pytest.raises(LockedError, match=rf"{out} is in use by another dsr process"), lock_folder(out):
            pass
        assert time.monotonic() - start < 1.0
    assert not path.exists() and out.is_dir()  # nothing left behind
    with lock_folder(out):  # and it can be taken again
        pass
    with lock_file(tmp_path / "qas.jsonl") as path:
        assert path == tmp_path / ".qas.jsonl.lock"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_never_two_holders_while_holders_unlink(tmp_path: Path) -> None:
    """Many threads take and release one lock as fast as they can (each release removes the file): at most
    one ever holds it, and the lock changes hands many times (the race the unlink protocol must win)."""
    inside, peak, taken = [0], [0], [0] * 8
    guard = threading.Lock()

    def worker(k: int) -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                with lock_folder(tmp_path):
                    with guard:
                        inside[0] += 1
                        peak[0] = max(peak[0], inside[0])
                    time.sleep(0.0005)
                    with guard:
                        inside[0] -= 1
                    taken[k] += 1
            except LockedError:
                pass

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and sum(taken) >= 50 and sum(n > 0 for n in taken) >= 2, (peak, taken)
    assert not (tmp_path / ".dsr.lock").exists()
