"""Fixtures for the review app: real generated QAs with a real video, a database, clients, a live server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dsr.review.auth import add_user
from dsr.review.db import open_db
from dsr.review.store import import_files

from .scene import make_qas


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``qas.jsonl`` (16 real template QAs) and ``scene0/{video.mp4, record.npz}``."""
    folder = tmp_path_factory.mktemp("review_qas")
    make_qas(folder)
    return folder


XSS_QUESTION = 'Where does it go? <script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
XSS_OPTION = '"><svg onload="window.__xss = 3">'


@dataclass
class ReviewDb:
    path: Path
    engine: object
    tokens: dict[str, str]  # alice, bob: reviewers; carol: admin

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def make_db(folder: Path, qas: list[Path]) -> ReviewDb:
    path = folder / "review.db"
    engine = open_db(path)
    import_files(engine, qas)
    tokens = {name: add_user(engine, name, admin=(name == "carol")) for name in ("alice", "bob", "carol")}
    return ReviewDb(path=path, engine=engine, tokens=tokens)


@pytest.fixture
def review_db(tmp_path: Path, qa_dir: Path) -> Iterator[ReviewDb]:
    db = make_db(tmp_path, [qa_dir / "qas.jsonl"])
    yield db
    db.engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def xss_db(review_db: ReviewDb, tmp_path: Path, qa_dir: Path) -> ReviewDb:
    """review_db plus item 17, whose question, options and type carry XSS payloads."""
    plain = tmp_path / "xss.jsonl"
    plain.write_text(json.dumps({"id": "xss/1", "video": str(qa_dir / "scene0" / "video.mp4"), "question": XSS_QUESTION,
                                 "options": {"A": XSS_OPTION, "B": "right", "C": "up", "D": "down"}, "answer": "B",
                                 "type": "abs_dir<script>"}) + "\n")
    import_files(review_db.engine, [plain])  # type: ignore[arg-type]
    return review_db


@pytest.fixture
def client(review_db: ReviewDb) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from dsr.review.app import create_app

    with TestClient(create_app(review_db.engine)) as c:  # type: ignore[arg-type]
        yield c


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(db: Path, log: Path, *extra: str) -> LiveServer:
    """``dsr review serve`` as a real uvicorn subprocess on a free loopback port, once it answers."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as fh:
        process = subprocess.Popen([sys.executable, "-m", "dsr.cli", "review", "serve", "--db", str(db),
                                    "--port", str(port), *extra], stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"review server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveServer(url, process, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"review server did not answer within 60 s: {log.read_text()[-2000:]}")


@pytest.fixture
def live_server(review_db: ReviewDb, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(review_db.path, tmp_path / "server.log")
    yield server
    server.stop()


def chromium_path() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None
