"""A run directory: ``manifest.json`` (written before inference) + ``results.jsonl`` (append-only).

Crash safety (``evaluation.md`` §8):

* each result is one JSON line written with a single ``write`` on an ``O_APPEND`` descriptor, then
  fsync'd — a ``kill -9`` can at worst leave one partial last line;
* :func:`open_results` repairs that (cuts the partial line), keeps the last line per item key, drops
  transient failures so they are retried, and rewrites the file atomically when anything changed, so
  the file always holds at most one line per (item id, arm);
* a run directory belongs to one experiment: resuming with a different manifest is refused, but how much
  of the dataset an invocation asks for (``--limit``) is not part of the experiment, so a smoke run
  extended to the full set keeps what it has done;
* one process at a time: :func:`dsr.locking.lock_folder` guards the directory (``run_eval`` holds it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.errors import DsrError

MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"
# Manifest keys that describe the moment, not the experiment; they do not enter the hash.
_VOLATILE = ("created_utc", "manifest_hash")
# Dataset keys that say how much of the dataset this invocation asked for (``--limit``), not what the
# experiment is: items are evaluated the same way whatever the limit, so a smoke run can be extended.
_EXTENT = ("limit", "n_evaluated")


class RunError(DsrError):
    """A run directory that cannot be used (other manifest, unreadable files)."""


def git_hash() -> str | None:
    """The source tree's commit (with ``-dirty`` when it has changes), or None outside git."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def _experiment(manifest: dict[str, Any]) -> dict[str, Any]:
    """The keys that define the experiment: no timestamps, no code version, no ``--limit``."""
    body = {k: v for k, v in manifest.items() if k not in _VOLATILE and k != "code"}
    if isinstance(body.get("dataset"), dict):
        body["dataset"] = {k: v for k, v in body["dataset"].items() if k not in _EXTENT}
    return body


def manifest_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_experiment(manifest), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def write_or_check_manifest(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest (with its hash) or, if one exists, insist it describes the same experiment.

    Resuming keeps the stored manifest (and the hash its result lines carry); only the extent
    (``dataset.limit``, ``dataset.n_evaluated``) follows the new invocation. The comparison recomputes
    both hashes, so directories written before the extent left the hash still resume.
    """
    manifest = dict(manifest)
    manifest["manifest_hash"] = manifest_hash(manifest)
    path = run_dir / MANIFEST
    if path.is_file():
        old = read_manifest(run_dir)
        if manifest_hash(old) != manifest["manifest_hash"]:
            changed = _diff_keys(_experiment(old), _experiment(manifest))
            raise RunError(f"{run_dir}: this run directory holds a different experiment "
                           f"(changed: {', '.join(changed[:6]) or 'manifest'}); use a new --out directory")
        new_extent = {k: (manifest.get("dataset") or {}).get(k) for k in _EXTENT}
        if isinstance(old.get("dataset"), dict) and any(old["dataset"].get(k) != v for k, v in new_extent.items()):
            old = {**old, "dataset": {**old["dataset"], **new_extent}}
            atomic_write_text(path, json.dumps(old, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return old
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return manifest


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{run_dir}: not a run directory (no {MANIFEST})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable manifest ({exc})") from None


def result_key(row: dict[str, Any]) -> tuple[str, str]:
    return (str(row["item_id"]), str(row.get("arm", "main")))


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """Result rows, the last one per key winning; a partial last line (after a crash) is ignored."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn write from a killed process
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[result_key(row)] = row
    return list(rows.values())


def open_results(run_dir: Path, transient: frozenset[str]) -> tuple[dict[tuple[str, str], dict[str, Any]], int]:
    """Repair and compact ``results.jsonl`` for resuming. Returns (finished rows by key, rows dropped)."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return {}, 0
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the piece after the last newline is empty or a torn write
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    bad = 0
    for line in complete:
        try:
            row = json.loads(line)
            key = result_key(row)
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
            continue
        kept[key] = row
    done = {k: r for k, r in kept.items() if not (r.get("error") and r["error"].get("reason") in transient)}
    dropped = len(complete) - len(done)
    if dropped or lines[-1]:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done.values())
        atomic_write_text(path, text)
    return done, dropped


class ResultWriter:
    """Appends one JSON line per result; each line is one write() then fsync (thread-safe)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / RESULTS
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def append(self, row: dict[str, Any]) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
