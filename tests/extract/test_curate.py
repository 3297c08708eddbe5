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
    SCENE_CATEGORIES,
    CurateConfig,
    LlmSteps,
    curate_video,
    curate_videos,
    detect_shot_cuts,
    frames_as_jpeg,
    journal_path,
    llm_agent_object_classes,
    llm_curation_fields,
    llm_frames_filter,
    llm_motion_filter,
    make_llm_client,
    parse_class_lines,
    parse_frames_answer,
    parse_yes_no_last_line,
    read_captions,
    reason_kind,
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


Reply = str | tuple[int, bytes]  # a chat answer, or a raw (HTTP status, body)


def _user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "\n".join(p["text"] for p in content if p["type"] == "text")


@pytest.fixture()
def chat_server():
    """A real OpenAI-compatible HTTP server on loopback.

    It answers with the first rule whose substrings all occur in the user message's text (rules stay), else
    with the next canned reply. A reply is the assistant's text or a raw (status, body) — "{auth}" in a raw
    body is replaced by the request's Authorization header, like a server that echoes what it was sent.
    """
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    replies: list[Reply] = []
    rules: list[tuple[tuple[str, ...], Reply]] = []
    prompts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompts.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            text = _user_text(body)
            reply = next((r for subs, r in rules if all(s in text for s in subs)), None)
            reply = reply if reply is not None else replies.pop(0)
            if isinstance(reply, tuple):
                status, data = reply[0], reply[1].replace(b"{auth}", str(self.headers.get("Authorization")).encode())
            else:
                status, data = 200, json.dumps({
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", replies, prompts, rules
    server.shutdown()


def test_llm_caption_steps_through_an_openai_compatible_endpoint(chat_server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, replies, prompts, _ = chat_server
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


# --------------------------------------------------------------------------------------------------
# frames filter with the six scene classes


def _decode_data_url(url: str) -> np.ndarray:
    import base64

    import cv2

    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    data = base64.b64decode(url[len(prefix):], validate=True)
    assert data[:3] == b"\xff\xd8\xff"  # JPEG start-of-image marker
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_frames_filter_sends_sampled_jpeg_frames_and_the_six_categories(chat_server) -> None:
    url, replies, prompts, _ = chat_server
    client = make_llm_client(url, api_key_env="DSR_UNSET_KEY_FOR_TESTS")
    # 20 flat frames, 720×1280, frame i has grey level 10·i: the decoded parts show which frames were sent
    frames = np.repeat((np.arange(20, dtype=np.uint8) * 10)[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (20, 720, 1280, 3))
    replies.append("No\nnature and wildlife")
    assert llm_frames_filter(frames, client, "vlm", ["dog", "person"], ["ball"]) == (False, "Nature & Wildlife")
    (request,) = prompts
    assert request["model"] == "vlm" and request["messages"][0]["role"] == "system"
    parts = request["messages"][1]["content"]
    images = [_decode_data_url(p["image_url"]["url"]) for p in parts if p["type"] == "image_url"]
    assert [im.shape for im in images] == [(288, 512, 3)] * 8  # long side 1280 → 512
    # round(linspace(0, 19, 8)) = 0, 3, 5, 8, 11, 14, 16, 19
    assert [round(float(im.mean()) / 10) for im in images] == [0, 3, 5, 8, 11, 14, 16, 19]
    (text,) = [p["text"] for p in parts if p["type"] == "text"]
    assert parts[-1]["type"] == "text"  # frames first, then the question
    assert all(c in text for c in SCENE_CATEGORIES) and len(SCENE_CATEGORIES) == 6
    assert "dog, person" in text and "ball" in text and "8 images" in text


def test_frames_as_jpeg_keeps_small_frames_and_never_repeats_one() -> None:
    frames = np.zeros((3, 40, 60, 3), np.uint8)
    jpegs = frames_as_jpeg(frames, num_frames=8)
    assert len(jpegs) == 3  # 3 distinct frames, not 8 with repeats
    assert all(j[:3] == b"\xff\xd8\xff" for j in jpegs)
    with pytest.raises(DsrError, match="at least one frame"):
        frames_as_jpeg(frames[:0])


@pytest.mark.parametrize(("text", "parsed"), [
    ("yes\nSports & Recreation", (True, "Sports & Recreation")),
    ("  No. \n\n  art performance.  ", (False, "Art Performance")),
    ("Yes\nCategory: Manual Labor and Craftsmanship", (True, "Manual Labor & Craftsmanship")),
    ("no\nTRANSPORTATION & VEHICLE OPERATION", (False, "Transportation & Vehicle Operation")),
    ("yes or no\nNature & Wildlife", (False, "Nature & Wildlife")),  # the last-line rule: not a clean yes
    ("yes", None),  # one line
    ("Thinking...\nyes\nDaily Activities & Hobbies", None),  # three lines
    ("maybe\nArt Performance", None),  # neither yes nor no
    ("yes\nCooking", None),  # not one of the six
    ("yes\nArt Performance or Sports & Recreation", None),  # two categories
    ("", None),
])
def test_frames_answer_parser(text: str, parsed: tuple[bool, str] | None) -> None:
    assert parse_frames_answer(text) == parsed


def test_frames_filter_retries_then_one_line_error(chat_server) -> None:
    url, replies, prompts, _ = chat_server
    client = make_llm_client(url, api_key_env="DSR_UNSET_KEY_FOR_TESTS")
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    replies += ["yes", "yes\nSports & Recreation"]
    assert llm_frames_filter(frames, client, "vlm", None, []) == (True, "Sports & Recreation")
    assert len(prompts) == 2 and prompts[0]["messages"] == prompts[1]["messages"]  # the same question again
    # unknown classes (no caption) and an empty list are told apart, never left blank
    assert "Agent classes in it: not given." in _user_text(prompts[0])
    assert "Other object classes in it: none." in _user_text(prompts[0])
    replies += ["I cannot tell.", "yes\nCooking", "no\nArt Performance\nbecause"]
    with pytest.raises(DsrError, match="after 3 tries") as info:
        llm_frames_filter(frames, client, "vlm", [], [])
    assert "\n" not in str(info.value) and len(prompts) == 5


# --------------------------------------------------------------------------------------------------
# the LLM steps inside `dsr curate`


def test_read_captions(tmp_path: Path) -> None:
    good = tmp_path / "captions.csv"
    good.write_text('\ufeffvideoID,caption,extra\npheRFyBV4ZQ_5,"Dogs run, a man throws."\nempty_1,\n',
                    encoding="utf-8")
    assert read_captions(good) == {"pheRFyBV4ZQ_5": "Dogs run, a man throws."}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\na,b\n")
    with pytest.raises(DsrError, match=r"lacks column\(s\) caption, videoID"):
        read_captions(bad)
    bad.write_text("videoID,caption\na,one\na,two\n")
    with pytest.raises(DsrError, match="line 3: videoID a has two different captions"):
        read_captions(bad)
    bad.write_bytes(b"videoID,caption\na,\xff\xfe\n")
    with pytest.raises(DsrError, match="not a readable CSV"):
        read_captions(bad)
    with pytest.raises(DsrError, match="cannot read caption CSV"):
        read_captions(tmp_path / "missing.csv")


def _clip_folder(videos: dict[str, Path], tmp_path: Path, names: dict[str, str]) -> Path:
    """A folder of copies of the fixture videos under new stems ({new stem: fixture name})."""
    import shutil

    folder = tmp_path / "clips"
    folder.mkdir()
    for stem, name in names.items():
        shutil.copy(videos[name], folder / f"{stem}.mp4")
    return folder


CAPTIONS = {"pheRFyBV4ZQ_5": "Three dogs chase a ball while a man runs after them.",
            "quiet_1": "A calm lake at dawn; nothing moves.",
            "cutclip_3": "Two scenes of a busy street cut together."}


def test_cli_curate_with_llm_steps_drops_with_reasons(videos: dict[str, Path], chat_server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dsr.cli import app

    url, _, prompts, rules = chat_server
    folder = _clip_folder(videos, tmp_path, {"pheRFyBV4ZQ_5": "static", "quiet_1": "static",
                                             "nocaption_2": "static", "cutclip_3": "cut"})
    captions = tmp_path / "captions.csv"
    captions.write_text("videoID,caption\n" + "".join(f'{k},"{v}"\n' for k, v in CAPTIONS.items()))
    rules += [
        (("Three dogs", "world coordinates"), "Dogs and a man all run.\nyes"),
        (("Three dogs", "Line 1"), "dog. person\nball"),
        (("frames taken", "dog, person", "ball"), "yes\nSports & Recreation"),
        (("calm lake", "world coordinates"), "Nothing moves.\nno"),
        (("frames taken", "not given"), "no\nDaily Activities & Hobbies"),
    ]
    monkeypatch.setenv("DSR_TEST_KEY", "sk-curate-secret")
    out = tmp_path / "curation.jsonl"
    result = CliRunner().invoke(app, ["curate", str(folder), "--out", str(out), "--min-duration", "1",
                                      "--llm-base-url", url, "--llm-model", "judge", "--llm-key-env", "DSR_TEST_KEY",
                                      "--captions", str(captions), "--llm-frames"])
    assert result.exit_code == 0, result.output
    assert "1/4 clips kept; llm: frames filter said no: 1; llm: no ≥3 movers in caption: 1; shot cuts: 1" \
        in result.output
    rows = {Path(r["video"]).stem: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["pheRFyBV4ZQ_5"] | {"video": ""} == {
        "video": "", "keep": True, "reason": "ok", "duration_s": rows["pheRFyBV4ZQ_5"]["duration_s"], "num_cuts": 0,
        "moving_pair_frac": rows["pheRFyBV4ZQ_5"]["moving_pair_frac"], "llm_caption_motion": True,
        "llm_agents": "dog.person", "llm_objects": "ball", "llm_frames_keep": True, "llm_scene": "Sports & Recreation"}
    # the first failing step is the reason; later steps were not run (no class or frames request for it)
    quiet = rows["quiet_1"]
    assert (quiet["keep"], quiet["reason"], quiet["llm_caption_motion"], quiet["llm_agents"], quiet["llm_scene"]) \
        == (False, "llm: no ≥3 movers in caption", False, None, None)
    # no caption: only the frames filter, told that no class lists exist
    nocap = rows["nocaption_2"]
    assert (nocap["keep"], nocap["reason"], nocap["llm_caption_motion"], nocap["llm_frames_keep"], nocap["llm_scene"]) \
        == (False, "llm: frames filter said no", None, False, "Daily Activities & Hobbies")
    # an offline failure is never sent to the LLM
    assert not rows["cutclip_3"]["keep"] and "shot cut" in rows["cutclip_3"]["reason"]
    assert rows["cutclip_3"]["llm_caption_motion"] is None
    assert not any("busy street" in _user_text(p) for p in prompts)
    assert len(prompts) == 5  # motion+classes+frames, motion, frames
    assert {p["auth"] for p in prompts} == {"Bearer sk-curate-secret"}  # the key comes from the environment
    assert "sk-curate-secret" not in out.read_text() + result.output


def test_cli_curate_llm_garbage_marks_the_clip_and_the_batch_goes_on(
        videos: dict[str, Path], chat_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dsr.cli import app

    url, _, _, rules = chat_server
    folder = _clip_folder(videos, tmp_path, {"a_garbage": "static", "b_echo": "static", "c_fine": "static"})
    captions = tmp_path / "captions.csv"
    captions.write_text("videoID,caption\na_garbage,Alpha clip.\nb_echo,Bravo clip.\nc_fine,Charlie clip.\n")
    rules += [
        (("Alpha clip",), (200, b"<html>not json at all</html>")),
        # a 400 (not retried by the client) whose message repeats the Authorization header it got
        (("Bravo clip",), (400, b'{"error": {"message": "rejected key {auth}", "type": "invalid_request_error"}}')),
        (("Charlie clip", "world coordinates"), "yes"),
        (("Charlie clip", "Line 1"), "person\nNone"),
    ]
    monkeypatch.setenv("DSR_TEST_KEY", "sk-curate-secret")
    out = tmp_path / "curation.csv"
    result = CliRunner().invoke(app, ["curate", str(folder), "--out", str(out), "--min-duration", "1",
                                      "--llm-base-url", url, "--llm-model", "judge", "--llm-key-env", "DSR_TEST_KEY",
                                      "--captions", str(captions)])
    assert result.exit_code == 0, result.output
    assert "1/3 clips kept" in result.output
    text = out.read_text()
    rows = {Path(r["video"]).stem: r for r in csv.DictReader(text.splitlines())}
    assert rows["a_garbage"]["keep"] == "False"
    assert rows["a_garbage"]["reason"].startswith("llm: error: JSONDecodeError")
    assert rows["b_echo"]["keep"] == "False" and rows["b_echo"]["reason"].startswith("llm: error: BadRequestError")
    assert "rejected key Bearer ***" in rows["b_echo"]["reason"]  # the echoed key is blanked
    assert (rows["c_fine"]["keep"], rows["c_fine"]["reason"], rows["c_fine"]["llm_agents"],
            rows["c_fine"]["llm_objects"], rows["c_fine"]["llm_scene"]) == ("True", "ok", "person", "", "")
    assert all("\n" not in r["reason"] for r in rows.values())
    assert "sk-curate-secret" not in text + result.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--captions", "c.csv"], "need --llm-base-url"),
    (["--llm-base-url", "http://127.0.0.1:9/v1", "--captions", "c.csv"], "--llm-model is required"),
    (["--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m"], "needs a step to run"),
    (["--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", "--captions", "missing.csv"],
     "cannot read caption CSV"),
])
def test_cli_curate_llm_option_errors_are_one_line(videos: dict[str, Path], tmp_path: Path, extra: list[str],
                                                   message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["curate", str(videos["static"]), "--out", str(tmp_path / "t.csv"), *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "t.csv").exists()


# --------------------------------------------------------------------------------------------------
# resuming an interrupted batch


def test_curate_videos_resumes_without_repeating_llm_calls(videos: dict[str, Path], chat_server,
                                                           tmp_path: Path) -> None:
    url, _, prompts, rules = chat_server
    folder = _clip_folder(videos, tmp_path, {"a_one": "static", "b_two": "static", "c_three": "static"})
    clips = sorted(folder.glob("*.mp4"))
    captions = {"a_one": "Alpha clip.", "b_two": "Bravo clip.", "c_three": "Charlie clip."}
    rules += [(("world coordinates",), "yes"), (("Line 1",), "person\nNone")]
    config = replace(CurateConfig(), min_duration_s=1.0)
    llm = LlmSteps(make_llm_client(url, api_key_env="DSR_UNSET_KEY_FOR_TESTS"), "judge")
    table = tmp_path / "curation.jsonl"
    journal = Path(journal_path(table))

    def stop_after_two(row: object, resumed: bool) -> None:
        if len(prompts) >= 4:
            raise KeyboardInterrupt  # killed after the second clip's row was journalled

    with pytest.raises(KeyboardInterrupt):
        curate_videos(clips, table, config, llm, captions, progress=stop_after_two)
    assert not table.exists() and len(journal.read_text().splitlines()) == 3  # settings + 2 rows
    with journal.open("a") as f:
        f.write('{"row": {"video": "torn')  # a write cut off by a kill
    seen: list[tuple[str, bool]] = []
    rows = curate_videos(clips, table, config, llm, captions, progress=lambda r, done: seen.append((r.video, done)))
    assert seen == [(str(clips[0]), True), (str(clips[1]), True), (str(clips[2]), False)]
    assert len(prompts) == 6 and "Charlie clip." in _user_text(prompts[4])  # only the third clip was asked
    assert [r.keep for r in rows] == [True, True, True] and not journal.exists()
    assert [json.loads(line)["video"] for line in table.read_text().splitlines()] == [str(c) for c in clips]
    # a leftover journal from other settings is refused, not silently mixed in
    journal.write_text(json.dumps({"settings": {"config": {}}}) + "\n")
    with pytest.raises(DsrError, match="other settings"):
        curate_videos(clips, table, config, None, {})


@pytest.mark.parametrize(("reason", "kind"), [
    ("ok", "ok"), ("duration 2.4s outside [20, 120]s", "duration"), ("2 shot cut(s), first near 1.2s", "shot cuts"),
    ("too little world motion (10% of sampled pairs move)", "too little world motion"),
    ("unreadable: x.mp4: bad", "unreadable"), ("llm: error: APIConnectionError: Connection error.", "llm: error"),
    ("llm: frames filter said no", "llm: frames filter said no"),
])
def test_reason_kind(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_caption_without_agents_drops_the_clip_before_the_frames_filter(chat_server) -> None:
    url, replies, prompts, _ = chat_server
    llm = LlmSteps(make_llm_client(url, api_key_env="DSR_UNSET_KEY_FOR_TESTS"), "judge", frames=True)
    replies += ["Rocks tumble down a slope.\nyes", "None\nrock. bottle."]
    reason, fields = llm_curation_fields(np.zeros((4, 32, 32, 3), np.uint8), "Rocks tumble.", llm)
    assert reason == "llm: no agent class in caption"
    assert fields == {"llm_caption_motion": True, "llm_agents": "", "llm_objects": "rock.bottle"}
    assert len(prompts) == 2  # the frames filter was not asked
