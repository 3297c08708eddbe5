"""The security and durability targets of issue 13.

401 without a token, 403 on another reviewer's decision, XSS payloads inert, path traversal 404,
CSRF, tokens hashed at rest, an append-only audit trail, two concurrent edits → one 409 and no lost
update (real uvicorn server, real clients on loopback), and kill -9 during writes → integrity_check ok
and no acknowledged event missing.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dsr.review.auth import add_user, new_login_code
from dsr.review.db import Event, read_session
from dsr.review.store import import_files

from .conftest import XSS_QUESTION, LiveServer, ReviewDb, start_server


def _events(db: ReviewDb) -> int:
    with read_session(db.engine) as session:  # type: ignore[arg-type]
        return session.query(Event).count()


# ---------------------------------------------------------------------------------------------- 401 / 403


def test_write_without_token_is_401(client: Any, review_db: ReviewDb) -> None:
    before = _events(review_db)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {review_db.tokens['alice']}"},
                    {"Authorization": "Bearer "}):
        r = client.put("/api/items/1/decision", headers=headers, json={"action": "accept", "version": 0})
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer" and "not signed in" in r.json()["detail"]
    r = client.post("/items/1/decision", data={"action": "accept", "version": "0"}, follow_redirects=False)
    assert r.status_code == 401
    assert client.put("/api/items/1/resolution", json={"action": "accept"}).status_code == 401
    assert client.get("/api/items").status_code == 401
    assert client.get("/media/items/1/video", follow_redirects=False).status_code == 303  # to the login page
    assert _events(review_db) == before


def test_changing_another_reviewers_decision_is_403(client: Any, review_db: ReviewDb) -> None:
    r = client.put("/api/items/1/decision", headers=review_db.auth("alice"), json={"action": "accept", "version": 0})
    decision = r.json()["id"]
    before = _events(review_db)
    for who in ("bob", "carol"):  # an admin resolves; they do not rewrite a reviewer's decision
        r = client.put(f"/api/decisions/{decision}", headers=review_db.auth(who),
                       json={"action": "reject", "reason": "wrong_object", "version": 1})
        assert r.status_code == 403 and "belongs to another reviewer" in r.json()["detail"]
    assert client.get(f"/api/decisions/{decision}", headers=review_db.auth("bob")).status_code == 403
    assert client.get(f"/api/decisions/{decision}", headers=review_db.auth("carol")).status_code == 200
    mine = client.get(f"/api/decisions/{decision}", headers=review_db.auth("alice")).json()
    assert mine["action"] == "accept" and mine["version"] == 1
    assert _events(review_db) == before
    # the owner may change it
    r = client.put(f"/api/decisions/{decision}", headers=review_db.auth("alice"),
                   json={"action": "flag", "note": "second look", "version": 1})
    assert r.status_code == 200 and r.json()["version"] == 2


# ---------------------------------------------------------------------------------------------- XSS


def test_xss_payload_is_escaped(client: Any, xss_db: ReviewDb) -> None:
    pk = 17
    r = client.put(f"/api/items/{pk}/decision", headers=xss_db.auth("alice"),
                   json={"action": "flag", "note": "<script>window.__xss = 4</script>", "version": 0})
    assert r.status_code == 200
    r = client.put(f"/api/items/{pk}/decision", headers=xss_db.auth("bob"),
                   json={"action": "edit", "question": XSS_QUESTION + " edited", "version": 0})
    assert r.status_code == 200
    pages = [client.get(f"/items/{pk}", headers=xss_db.auth("carol")).text,
             client.get("/queue?view=all", headers=xss_db.auth("carol")).text,
             client.get("/audit", headers=xss_db.auth("carol")).text,
             client.get("/stats", headers=xss_db.auth("carol")).text]
    for html in pages:
        assert "<script>window.__xss" not in html and "<img src=x" not in html and "<svg onload" not in html
        assert "abs_dir<script>" not in html
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in pages[0]
    assert "&lt;svg onload=" in pages[0] or "&#34;&gt;&lt;svg onload=" in pages[0]
    assert "&lt;script&gt;window.__xss = 4" in pages[0]  # the note, in the admin's table
    scripts = re.findall(r"<script[^>]*>", pages[0])
    assert scripts == ['<script src="/static/review.js" defer>']  # the only script is our own file
    csp = client.get(f"/items/{pk}", headers=xss_db.auth("carol")).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


# ---------------------------------------------------------------------------------------------- traversal


def _raw_get(server: LiveServer, path: str, token: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (no client-side normalisation of .. or %2e)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


def test_path_traversal_is_404(review_db: ReviewDb, tmp_path: Path, qa_dir: Path) -> None:
    # an item that references a file that is not a video is not served either
    plain = tmp_path / "notvideo.jsonl"
    plain.write_text(json.dumps({"id": "nv", "video": "/etc/passwd", "question": "q?", "options": ["a", "b"],
                                 "answer": "a"}) + "\n")
    import_files(review_db.engine, [plain])  # type: ignore[arg-type]
    server = start_server(review_db.path, tmp_path / "server.log")
    token = review_db.tokens["alice"]
    try:
        assert _raw_get(server, "/media/items/1/video", token)[0] == 200  # controls: these exist
        assert _raw_get(server, "/static/review.js", token)[0] == 200
        attacks = [
            "/media/items/1/video/../../../../../../etc/passwd",
            "/media/items/../../../../etc/passwd",
            "/media/items/%2e%2e%2f%2e%2e%2fetc%2fpasswd/video",
            "/media/items/1/frame/..%2f..%2f..%2fetc%2fpasswd.jpg",
            "/media/items/1/frame/99999.jpg",  # a frame the item does not show
            "/media/items/9999/video",
            "/media/items/17/video",  # imported, but /etc/passwd is no video
            "/static/../../../../../etc/passwd",
            "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/static/..%2f..%2fapp.py",
            "/static/%2e%2e%2fapp.py",
            "/media/items/1/video?path=/etc/passwd&file=../../etc/passwd",
        ]
        for path in attacks[:-1]:
            status, body = _raw_get(server, path, token)
            assert status == 404, (path, status)
            assert b"root:" not in body and b"import" not in body, path
        status, body = _raw_get(server, attacks[-1], token)  # query parameters are ignored: the item's video
        assert status == 200 and body[4:8] == b"ftyp"
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- CSRF, sessions


def _login(client: Any, token: str, next_path: str = "/queue") -> Any:
    page = client.get("/login")
    nonce = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"token": token, "login_csrf": nonce, "next": next_path}, follow_redirects=False)


def test_forms_need_the_csrf_token(client: Any, review_db: ReviewDb) -> None:
    r = _login(client, review_db.tokens["alice"])
    assert r.status_code == 303 and r.headers["location"] == "/queue"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/items/1").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"action": "accept", "version": "0"}
    assert client.post("/items/1/decision", data=form, follow_redirects=False).status_code == 403
    assert client.post("/items/1/decision", data={**form, "csrf_token": "x" * 43},
                       follow_redirects=False).status_code == 403
    r = client.post("/items/1/decision", data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/items/2")
    # the JSON API with the cookie needs the header; with a bearer token it does not
    body = {"action": "flag", "version": 1}
    assert client.put("/api/items/1/decision", json=body).status_code == 403
    assert client.put("/api/items/1/decision", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    # logging out ends the session
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/api/me").status_code == 401


def test_login_form_csrf_open_redirect_and_one_time_links(client: Any, review_db: ReviewDb) -> None:
    assert client.post("/login", data={"token": review_db.tokens["alice"], "login_csrf": "x"},
                       follow_redirects=False).status_code == 403
    assert _login(client, "wrong-token").status_code == 401
    assert _login(client, review_db.tokens["bob"], "//evil.example/x").headers["location"] == "/queue"
    code = new_login_code(review_db.engine, "carol")  # type: ignore[arg-type]
    client.cookies.clear()
    r = client.get(f"/login?code={code}", follow_redirects=False)
    assert r.status_code == 303 and client.get("/api/me").json()["name"] == "carol"
    client.cookies.clear()
    assert client.get(f"/login?code={code}", follow_redirects=False).status_code == 401  # used once


def test_secrets_are_hashed_at_rest(client: Any, review_db: ReviewDb) -> None:
    r = _login(client, review_db.tokens["alice"])
    session_cookie = client.cookies.get("dsr_review_session")
    assert r.status_code == 303 and session_cookie
    review_db.engine.dispose()  # type: ignore[attr-defined]
    stored = b"".join(p.read_bytes() for p in review_db.path.parent.glob("review.db*"))
    for secret in (*review_db.tokens.values(), session_cookie):
        assert secret.encode() not in stored


def test_events_are_append_only(client: Any, review_db: ReviewDb) -> None:
    client.put("/api/items/1/decision", headers=review_db.auth("alice"), json={"action": "accept", "version": 0})
    from sqlalchemy.exc import DatabaseError

    for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
        with pytest.raises(DatabaseError, match="append-only"), review_db.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text(statement))
    with read_session(review_db.engine) as session:  # type: ignore[arg-type]
        assert {e.actor for e in session.query(Event)} >= {"alice"}
        assert session.query(Event).filter(Event.actor == "mallory").count() == 0


# ---------------------------------------------------------------------------------------------- 409


def _race(url: str, token: str, path: str, bodies: tuple[dict[str, Any], dict[str, Any]]) -> list[httpx.Response]:
    """Send two writes at the same moment from two clients; return both responses."""
    barrier = threading.Barrier(2)
    out: list[httpx.Response | None] = [None, None]

    def send(k: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            c.get("/healthz")  # connect first, so both requests leave together
            barrier.wait()
            out[k] = c.put(path, json=bodies[k])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


def _chain_is_unbroken(db: ReviewDb, target: str, target_id: int, acked: list[int]) -> None:
    """Every acknowledged write is an event, versions run 1..n, and each write's 'before' is the
    previous write's 'after' (a write made on a stale base would break the chain)."""
    with read_session(db.engine) as session:  # type: ignore[arg-type]
        events = (session.query(Event).filter(Event.target == target, Event.target_id == target_id)
                  .order_by(Event.id).all())
    assert sorted(acked) == [e.id for e in events]
    assert [e.after["version"] for e in events] == list(range(1, len(events) + 1))
    for prev, event in itertools.pairwise(events):
        assert event.before == prev.after


def test_two_concurrent_edits_one_409_no_lost_update(review_db: ReviewDb, live_server: LiveServer) -> None:
    add_user(review_db.engine, "dave", admin=True)  # type: ignore[arg-type]
    dave = None
    with read_session(review_db.engine) as session:  # type: ignore[arg-type]
        from dsr.review.auth import user_by_name

        dave = user_by_name(session, "dave")
    assert dave is not None
    token = review_db.tokens["alice"]
    answer = httpx.get(f"{live_server.url}/api/items/1", headers=review_db.auth("alice")).json()["answer"]
    other = next(x for x in "ABCD" if x != answer)
    acked: list[int] = []
    decision_id = None
    for round_ in range(8):
        mine = httpx.get(f"{live_server.url}/api/items/1", headers=review_db.auth("alice")).json()["mine"]
        version = mine["version"] if mine else 0
        bodies = ({"action": "accept", "version": version},
                  {"action": "change_answer", "answer": other, "version": version, "note": f"round {round_}"})
        responses = _race(live_server.url, token, "/api/items/1/decision", bodies)
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409], [r.text for r in responses]
        won = next(r for r in responses if r.status_code == 200).json()
        lost = next(r for r in responses if r.status_code == 409).json()
        assert "changed after you loaded it" in lost["detail"] or "at the same moment" in lost["detail"]
        assert "nothing was saved" in lost["detail"]
        acked.append(won["event_id"])
        decision_id = won["id"]
        # the loser reloads and makes its change on top of the winner's
        loser_body = bodies[[r.status_code for r in responses].index(409)]
        retry = httpx.put(f"{live_server.url}/api/items/1/decision", headers=review_db.auth("alice"),
                          json={**loser_body, "version": won["version"]})
        assert retry.status_code == 200 and retry.json()["version"] == won["version"] + 1
        acked.append(retry.json()["event_id"])
    assert decision_id is not None
    _chain_is_unbroken(review_db, "decision", decision_id, acked)
    final = httpx.get(f"{live_server.url}/api/decisions/{decision_id}", headers=review_db.auth("alice")).json()
    assert final["version"] == 16

    # two admins resolving one item at the same moment
    dave_token = add_user(review_db.engine, "erin", admin=True)  # type: ignore[arg-type]
    responses = []
    barrier = threading.Barrier(2)

    def resolve(tok: str, body: dict[str, Any]) -> None:
        with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {tok}"}, timeout=30) as c:
            c.get("/healthz")
            barrier.wait()
            responses.append(c.put("/api/items/2/resolution", json=body))

    threads = [threading.Thread(target=resolve, args=(review_db.tokens["carol"], {"action": "accept", "version": 0})),
               threading.Thread(target=resolve, args=(dave_token, {"action": "reject", "reason": "not_visible",
                                                                   "version": 0}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in responses) == [200, 409]
    won = next(r for r in responses if r.status_code == 200).json()
    _chain_is_unbroken(review_db, "resolution", won["id"], [won["event_id"]])


# ---------------------------------------------------------------------------------------------- kill -9


def _writer(url: str, name: str, token: str, cycle: int, versions: dict[tuple[str, int], int],
            stop: threading.Event, errors: list[str], acks: list[dict[str, Any]], acks_lock: threading.Lock) -> None:
    """Write decisions back to back (each on top of the last acknowledged version) until stopped or cut off."""
    k = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
        while not stop.is_set():
            pk = 1 + k % 16
            action = ("accept", "flag")[k // 16 % 2]
            body = {"action": action, "note": f"{name} {cycle} {k}", "version": versions.get((name, pk), 0)}
            try:
                r = c.put(f"/api/items/{pk}/decision", json=body)
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code != 200:
                errors.append(f"{name}: {r.status_code} {r.text[:200]}")
                return
            got = r.json()
            versions[(name, pk)] = got["version"]
            with acks_lock:
                acks.append({"who": name, "item": pk, **got, "note": body["note"]})
            k += 1


def test_kill_9_during_writes_loses_nothing_acknowledged(review_db: ReviewDb, tmp_path: Path) -> None:
    tokens = dict(review_db.tokens)
    tokens["dave"] = add_user(review_db.engine, "dave")  # type: ignore[arg-type]
    review_db.engine.dispose()  # type: ignore[attr-defined]
    wal = Path(str(review_db.path) + "-wal")
    acks: list[dict[str, Any]] = []
    acks_lock = threading.Lock()
    for cycle in range(2):
        server = start_server(review_db.path, tmp_path / f"server{cycle}.log")
        versions: dict[tuple[str, int], int] = {}
        conn = sqlite3.connect(review_db.path)
        for name, pk, version in conn.execute(
                "SELECT u.name, d.item_pk, d.version FROM decisions d JOIN users u ON u.id = d.user_id"):
            versions[(name, pk)] = version
        conn.close()
        stop = threading.Event()
        errors: list[str] = []
        threads = [threading.Thread(target=_writer, args=(server.url, name, token, cycle, versions, stop, errors,
                                                          acks, acks_lock)) for name, token in tokens.items()]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acks) < 80 * (cycle + 1) and time.monotonic() < deadline and not errors:
            time.sleep(0.02)
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        server.kill()  # SIGKILL while the writers are still sending
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert wal_bytes > 0  # the kill landed while the write-ahead log held un-checkpointed writes

        conn = sqlite3.connect(review_db.path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        events = {row[0]: json.loads(row[1]) for row in conn.execute("SELECT id, after FROM events")}
        current = {(name, pk): version for name, pk, version in conn.execute(
            "SELECT u.name, d.item_pk, d.version FROM decisions d JOIN users u ON u.id = d.user_id")}
        conn.close()
        missing = [a for a in acks if a["event_id"] not in events]
        assert not missing, f"{len(missing)} acknowledged events missing, e.g. {missing[0]}"
        for a in acks:
            after = events[a["event_id"]]
            assert after["version"] == a["version"] and after["note"] == a["note"]
        last_acked: dict[tuple[str, int], int] = {}
        for a in acks:
            last_acked[(a["who"], a["item"])] = max(a["version"], last_acked.get((a["who"], a["item"]), 0))
        for key, version in last_acked.items():
            # at most the one write in flight at the kill may have committed without its answer arriving
            assert version <= current[key] <= version + 1, key
    assert len(acks) >= 160

    # the server starts again on the same file and goes on from the recovered versions
    server = start_server(review_db.path, tmp_path / "server-after.log")
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens['alice']}"}) as c:
            mine = c.get("/api/items/1").json()["mine"]
            assert c.put("/api/items/1/decision", json={"action": "accept", "version": mine["version"]}).status_code == 200
    finally:
        server.stop()
