"""Curation: duration filter, shot cuts, world-motion filter, and the table."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dsr.errors import DsrError
from dsr.extract.curate import (
    CurateConfig,
    curate_video,
    detect_shot_cuts,
    llm_agent_object_classes,
    llm_motion_filter,
    make_llm_client,
    parse_class_lines,
    parse_yes_no_last_line,
    write_curation_table,
)


def test_shot_cut_detection_on_frames(static_clip, pan_clip) -> None:
    frames = np.concatenate([static_clip.frames[:6], pan_clip.frames[:6, :, :, ::-1]])
    assert detect_shot_cuts(frames).tolist() == [5]
    assert detect_shot_cuts(static_clip.frames).tolist() == []


def test_curate_rows_and_reasons(videos: dict[str, Path], tmp_path: Path) -> None:
    short = replace(CurateConfig(), min_duration_s=1.0, max_duration_s=10.0)
    rows = {name: curate_video(videos[name], short) for name in ("static", "no_objects", "cut", "garbage")}
    assert rows["static"].keep and rows["static"].reason == "ok" and rows["static"].moving_pair_frac >= 0.3
    assert not rows["no_objects"].keep and rows["no_objects"].reason.startswith("too little world motion")
    assert not rows["cut"].keep and rows["cut"].num_cuts == 1 and "shot cut" in rows["cut"].reason
    assert not rows["garbage"].keep and rows["garbage"].reason.startswith("unreadable")
    # DSR's default 20–120 s rejects these 2–3 s clips first
    default = curate_video(videos["static"])
    assert not default.keep and default.reason.startswith("duration 2.4s outside [20, 120]s")
    table = tmp_path / "curation.csv"
    write_curation_table(list(rows.values()), table)
    read = list(csv.DictReader(table.open()))
    assert [r["keep"] for r in read] == ["True", "False", "False", "False"]


def test_cli_curate_smoke(videos: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dsr.cli import app

    out = tmp_path / "t.jsonl"
    result = CliRunner().invoke(app, ["curate", str(videos["static"]), "--out", str(out), "--min-duration", "1"])
    assert result.exit_code == 0, result.output
    assert "1/1 clips kept" in result.output and out.read_text().count("\n") == 1


@pytest.fixture()
def chat_server():
    """A real OpenAI-compatible HTTP server on loopback that answers from a script of canned replies."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    replies: list[str] = []
    prompts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompts.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            content = replies.pop(0)
            data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", replies, prompts
    server.shutdown()


def test_llm_caption_steps_through_an_openai_compatible_endpoint(chat_server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, replies, prompts = chat_server
    monkeypatch.setenv("DSR_TEST_KEY", "sk-test")
    client = make_llm_client(url, api_key_env="DSR_TEST_KEY")
    replies += ["Three dogs run around.\nyes", "Maybe.\nno, not really", "dog. person\nball. frisbee"]
    caption = "Two dogs and a man chase a frisbee."
    assert llm_motion_filter(caption, client, "test-model") is True
    assert llm_motion_filter(caption, client, "test-model") is False
    assert llm_agent_object_classes(caption, client, "test-model") == (["dog", "person"], ["ball", "frisbee"])
    assert prompts[0]["path"] == "/v1/chat/completions" and prompts[0]["auth"] == "Bearer sk-test"
    assert caption in prompts[0]["messages"][1]["content"] and prompts[0]["model"] == "test-model"
    # malformed class answers are retried, then reported in one line
    replies += ["just one line", "a\nb\nc", "x"]
    with pytest.raises(DsrError, match="two class lines"):
        llm_agent_object_classes(caption, client, "test-model")


@pytest.mark.parametrize(("text", "keep"), [("yes", True), ("reasoning...\nYes.", True), ("no", False),
                                            ("yes\nno", False), ("yes or no", False), ("", False)])
def test_yes_no_rule(text: str, keep: bool) -> None:
    assert parse_yes_no_last_line(text) is keep


def test_class_lines() -> None:
    assert parse_class_lines("None\nrock. bottle.") == ([], ["rock", "bottle"])
    assert parse_class_lines("one line only") is None
