"""Load benchmark of the review app: concurrent reviewers on loopback against a real uvicorn server.

Each reviewer has its own token and HTTP client and makes its decisions back to back (no think time)
through the JSON API, ``PUT /api/items/{id}/decision``: four in five are first decisions on items in
the reviewer's own random order, one in five revises an earlier decision (so the version check runs).
The server is ``dsr review serve`` in its own process (one uvicorn worker, SQLite in WAL mode with
``synchronous=FULL``: every acknowledged write is on disk). Afterwards the database is read directly:
every acknowledged write must be an event in the audit trail and every decision must end at the last
acknowledged version (0 lost events, 0 lost updates).

    python benchmarks/review_load.py                       # 20 reviewers x 500 decisions, 500 items
    python benchmarks/review_load.py --reviewers 5 --decisions 100 --json out.json

Prints one JSON object: latency percentiles (ms), throughput, lost events, machine, date and load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from dsr.review.auth import add_user
from dsr.review.db import open_db
from dsr.review.store import import_files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _make_db(folder: Path, items: int, reviewers: int) -> tuple[Path, list[str]]:
    qas = folder / "items.jsonl"
    rng = random.Random(0)
    with open(qas, "w") as fh:
        for k in range(items):
            fh.write(json.dumps({"id": f"load/{k}", "question": f"Between 1.0s and 3.0s, how does item {k} move?",
                                 "options": {"A": "(1) Become larger.", "B": "(1) Keep nearly constant.",
                                             "C": "(1) Become smaller.", "D": "(1) Become larger. (2) Become smaller."},
                                 "answer": "ABCD"[rng.randrange(4)], "type": ("abs_dis", "rel_dis", "abs_dir")[k % 3],
                                 "stability": rng.random()}) + "\n")
    db = folder / "review.db"
    engine = open_db(db)
    import_files(engine, [qas])
    tokens = [add_user(engine, f"reviewer{r:02d}") for r in range(reviewers)]
    engine.dispose()
    return db, tokens


async def _reviewer(url: str, token: str, items: list[int], decisions: int, seed: int,
                    latencies: list[float], acks: list[dict[str, Any]], errors: list[str]) -> None:
    rng = random.Random(seed)
    order = items[:]
    rng.shuffle(order)
    versions: dict[int, int] = {}
    answers: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for k in range(decisions):
            revise = k % 5 == 4 and versions
            pk = rng.choice(list(versions)) if revise else order[len(versions) % len(order)]
            action = rng.choice(("accept", "accept", "accept", "flag", "reject"))
            body: dict[str, Any] = {"action": action, "version": versions.get(pk, 0), "note": f"{seed}/{k}"}
            if action == "reject":
                body["reason"] = "wrong_object"
            start = time.perf_counter()
            r = await client.put(f"/api/items/{pk}/decision", json=body)
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:200]}")
                continue
            got = r.json()
            versions[pk] = got["version"]
            answers[pk] = action
            acks.append({"token": seed, "item": pk, "event_id": got["event_id"], "id": got["id"],
                         "version": got["version"], "note": body["note"]})


async def _run(url: str, tokens: list[str], items: list[int], decisions: int) -> dict[str, Any]:
    latencies: list[float] = []
    acks: list[dict[str, Any]] = []
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tokens[0]}"}) as warm:
        for _ in range(20):
            await warm.get("/api/me")
    start = time.perf_counter()
    await asyncio.gather(*(_reviewer(url, tok, items, decisions, seed, latencies, acks, errors)
                           for seed, tok in enumerate(tokens)))
    wall = time.perf_counter() - start
    return {"latencies": latencies, "acks": acks, "errors": errors, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=500, help="decisions per reviewer")
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dsr-review-load-") as tmp:
        db, tokens = _make_db(Path(tmp), args.items, args.reviewers)
        port = _free_port()
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "dsr.cli", "review", "serve", "--db", str(db),
                                       "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            items = list(range(1, args.items + 1))
            cpu_before, client_before = _cpu_seconds(server.pid), time.process_time()
            result = asyncio.run(_run(url, tokens, items, args.decisions))
            server_cpu = _cpu_seconds(server.pid) - cpu_before
            client_cpu = time.process_time() - client_before
        finally:
            server.terminate()
            server.wait(timeout=30)
        load_after = os.getloadavg()

        conn = sqlite3.connect(db)
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        events = {row[0]: json.loads(row[1]) for row in
                  conn.execute("SELECT id, after FROM events WHERE target = 'decision'")}
        final = {row[0]: row[1] for row in conn.execute("SELECT id, version FROM decisions")}
        conn.close()
    acks = result["acks"]
    lost_events = sum(1 for a in acks if a["event_id"] not in events
                      or events[a["event_id"]]["note"] != a["note"] or events[a["event_id"]]["version"] != a["version"])
    last: dict[int, int] = {}
    for a in acks:
        last[a["id"]] = max(last.get(a["id"], 0), a["version"])
    lost_updates = sum(1 for did, version in last.items() if final.get(did) != version)
    lat_ms = np.asarray(result["latencies"]) * 1000.0
    out = {
        "benchmark": "review_load", "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "reviewers": args.reviewers, "decisions_per_reviewer": args.decisions, "items": args.items,
        "requests": int(lat_ms.size), "acknowledged": len(acks), "errors": len(result["errors"]),
        "error_examples": result["errors"][:3],
        "latency_ms": {"p50": round(float(np.percentile(lat_ms, 50)), 2),
                       "p95": round(float(np.percentile(lat_ms, 95)), 2),
                       "p99": round(float(np.percentile(lat_ms, 99)), 2), "max": round(float(lat_ms.max()), 2)},
        "throughput_per_s": round(len(lat_ms) / result["wall_s"], 1), "wall_s": round(result["wall_s"], 2),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(len(lat_ms), 1), 2),
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(len(lat_ms), 1), 2),
        "events_in_db": len(events), "lost_events": lost_events, "lost_updates": lost_updates,
        "integrity_check": integrity, "p95_target_ms": 100, "p95_met": bool(np.percentile(lat_ms, 95) < 100),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
