"""A tiny OpenAI-compatible chat-completions server for the free-form tests (run as a subprocess).

Usage: python llm_server.py MODE LOGFILE. Prints the port on stdout once listening.
MODE: "good" (first reply malformed, then a valid superlative question answered from the prompt's
coordinates), "wrong" (valid replies with the wrong letter), "garbage" (never 6 lines), "down" (HTTP 500).
Each request's Authorization header and model are appended to LOGFILE as JSON lines.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MODE, LOG = sys.argv[1], sys.argv[2]
STATE = {"requests": 0}


def reply_for(prompt: str) -> str:
    coords = json.loads(next(line for line in prompt.splitlines() if line.startswith("{")))
    names = list(coords)[:4]
    dist = [float(np.linalg.norm(coords[n][-1])) for n in names]
    best = int(np.argmin(dist))
    letter = "ABCD"[best] if MODE == "good" else "ABCD"[(best + 1) % 4]
    lines = ["Which object is the closest to the observer at the end?",
             *[f"{'ABCD'[i]}. The {n}" for i, n in enumerate(names)], letter]
    return "\n".join(lines)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        STATE["requests"] += 1
        with open(LOG, "a") as fh:
            fh.write(json.dumps({"auth": self.headers.get("Authorization"), "model": body["model"],
                                 "path": self.path}) + "\n")
        if MODE == "down":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        prompt = body["messages"][-1]["content"]
        if MODE == "garbage" or (MODE == "good" and STATE["requests"] == 1):
            text = "<think>hmm</think>\nWhich one?\nA. x\nB. y"
        else:
            text = "<think>let me look at the coordinates</think>\n" + reply_for(prompt)
        out = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                       "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
