"""A small OpenAI-compatible chat-completions server for testing clients and measuring the harness.

Run ``python -m dsr.evaluate.fakeserver --port 0 --latency 0.2``; it prints ``PORT <n>`` on its first
stdout line; ``GET /v1/stats`` reports requests served, the most requests in flight at once, and how
many carried a bearer token. It answers ``POST /v1/chat/completions`` with a letter chosen by a hash of the request's
text (deterministic: the same question always gets the same letter), counts images, and reports
``usage``. Failure injection through ``--rules FILE`` (JSON list), first matching rule wins::

    {"match": "substring of the request text", "status": 500, "times": 2}   # fail the first 2 tries
    {"match": "...", "status": 429, "retry_after": 0.1}                     # always rate-limited
    {"match": "...", "reply": "any text"}                                    # a scripted reply
    {"match": "...", "body": "not json"}                                     # a broken 200 body

``--dump DIR`` writes every chat-completions request body to ``DIR/<n>.json`` (n counts from 0), so a
test can check what a client really sent (images, a video clip). Standard library only; not for
production use.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _State:
    def __init__(self, latency_s: float, rules: list[dict[str, Any]], dump_dir: Path | None = None) -> None:
        self.latency_s = latency_s
        self.rules = rules
        self.dump_dir = dump_dir
        self.attempts: dict[tuple[int, str], int] = {}
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth_seen = 0
        self.lock = threading.Lock()


def _request_text(body: dict[str, Any]) -> tuple[str, int]:
    text, images = [], 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            text.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                text.append(part.get("text", ""))
            elif part.get("type") in ("image_url", "video_url"):
                images += 1
    return "".join(text), images


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in separate writes; with Nagle on, delayed ACKs add ~40 ms a request
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/stats"):
                with state.lock:
                    stats = {"requests": state.requests, "max_in_flight": state.max_in_flight,
                             "auth_seen": state.auth_seen}
                self._send(200, json.dumps(stats).encode())
            elif self.path.rstrip("/").endswith("/models"):
                self._send(200, json.dumps({"data": [{"id": "fake-vlm", "object": "model"}]}).encode())
            else:
                self._send(404, b'{"error": "not found"}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": "not found"}')
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send(400, b'{"error": "bad json"}')
                return
            with state.lock:
                if state.dump_dir is not None:
                    (state.dump_dir / f"{state.requests:06d}.json").write_bytes(raw)
                state.requests += 1
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.auth_seen += self.headers.get("Authorization", "").startswith("Bearer ")
            try:
                self._answer(body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _answer(self, body: dict[str, Any]) -> None:
            text, images = _request_text(body)
            if state.latency_s:
                time.sleep(state.latency_s)
            reply = None
            for n, rule in enumerate(state.rules):
                if rule.get("match", "") not in text:
                    continue
                key = (n, hashlib.sha256(text.encode()).hexdigest())
                with state.lock:
                    state.attempts[key] = state.attempts.get(key, 0) + 1
                    attempt = state.attempts[key]
                if "status" in rule and attempt <= rule.get("times", 10**9):
                    headers = {"Retry-After": str(rule["retry_after"])} if "retry_after" in rule else None
                    self._send(int(rule["status"]), json.dumps({"error": "injected"}).encode(), headers)
                    return
                if "body" in rule:
                    self._send(200, str(rule["body"]).encode())
                    return
                if "reply" in rule:
                    reply = str(rule["reply"])
                break
            if reply is None:
                letters = "ABCD"
                reply = letters[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(letters)]
            usage = {"prompt_tokens": len(text) // 4 + 256 * images, "completion_tokens": max(1, len(reply) // 4),
                     "total_tokens": len(text) // 4 + 256 * images + max(1, len(reply) // 4)}
            payload = {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model", ""),
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": reply}}],
                       "usage": usage}
            self._send(200, json.dumps(payload).encode())

    return Handler


def serve(port: int = 0, latency_s: float = 0.0, rules: list[dict[str, Any]] | None = None,
          host: str = "127.0.0.1", dump_dir: str | Path | None = None) -> ThreadingHTTPServer:
    """A started server (call ``shutdown()`` to stop); its port is ``server.server_address[1]``."""
    dump = Path(dump_dir) if dump_dir is not None else None
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), _make_handler(_State(latency_s, rules or [], dump)))
    server.daemon_threads = True
    server.request_queue_size = 128
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds to wait before answering")
    ap.add_argument("--rules", default=None, help="JSON file with failure-injection rules")
    ap.add_argument("--dump", default=None, help="folder to write every request body to")
    args = ap.parse_args(argv)
    rules = json.loads(Path(args.rules).read_text(encoding="utf-8")) if args.rules else []
    server = serve(args.port, args.latency, rules, dump_dir=args.dump)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
        sys.exit(0)


if __name__ == "__main__":
    main()
