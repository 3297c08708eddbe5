"""Named evaluation protocols: parity parsers on hand-read replies, the table, the manifest, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dsr.cli import app
from dsr.errors import DsrError
from dsr.evaluate.datasets import Item, load_dataset
from dsr.evaluate.models import OpenAIChatModel
from dsr.evaluate.prompt import build_prompt
from dsr.evaluate.protocols import (
    PROTOCOLS,
    extract_letter,
    get_protocol,
    protocol_policy,
    protocol_record,
    regex6_letter,
    rescore_rows,
    spatial_bench_letter,
    videomme_letter,
)
from dsr.evaluate.run import RunConfig, run_eval
from dsr.evaluate.sampling import FramePolicy

ABCD = ("A", "B", "C", "D")
OPTIONS = {"A": "left", "B": "right", "C": "up", "D": "down"}


@pytest.mark.parametrize(("reply", "expected"), [
    ("The best answer is D", "D"),
    ("C", "C"),
    ("Answer: (A)", "A"),
    ("Based on the video, the square moves up: C", "B"),  # the official harness's known misread
    ("the square moves to the left side of the frame as the camera pans slowly", None),  # long, no capital letter
    ("", None),
])
def test_videomme_extraction(reply: str, expected: str | None) -> None:
    assert videomme_letter(reply, ABCD) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("<think>A or C?</think><answer>C</answer>", "C"),
    ("Let me see. It goes up.\nD</think>", "D"),
    ("<think>maybe A</think>\nThe square moves right.\nB", "A"),  # the letter closing the thinking comes first
    ("The square moves right.\nB", "B"),
    ("A. left\nB. right\nC. up\nD. down\nI am not sure.", "D"),  # the harness reads the last "X. ..." line
    ("The options were many; I am not sure.", None),
    ("Reasoning over frames.\nFinal answer: c", None),  # lowercase letters are not read
    ("It is D, not the others", "D"),
    ("A or B", None),  # two standalone letters: no answer
])
def test_spatial_bench_cascade(reply: str, expected: str | None) -> None:
    assert spatial_bench_letter(reply, ABCD) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("(C) up", "C"),
    ("Ans=B", "B"),
    ("My Answer: D", "D"),
    ("I choose Option A", "A"),
    ("B is correct", "B"),
    ("It moves up, so C.", "C"),
    ("D", "D"),
    ("it moves up", None),
])
def test_vlm4d_script_regexes(reply: str, expected: str | None) -> None:
    assert regex6_letter(reply, ABCD) == expected


def test_extract_letter_routes_and_rejects_unknown_parsers() -> None:
    assert extract_letter("dsr", "Based on the video, the answer is C.", OPTIONS) == "C"
    assert extract_letter("videomme", "Based on the video, the answer is C.", OPTIONS) == "B"
    assert extract_letter("regex6", None, OPTIONS) is None
    with pytest.raises(DsrError, match="unknown answer parser"):
        extract_letter("vibes", "A", OPTIONS)


def test_protocol_table_fixes_frames_prompt_and_parser() -> None:
    paper = PROTOCOLS["paper"]
    assert (paper.policy.num_frames, paper.policy.fps, paper.policy.timestamps_in_prompt,
            paper.policy.serve_full_video, paper.prompt_style, paper.parser) == (32, None, True, False, "dsr", "dsr")
    one_fps = PROTOCOLS["vlmevalkit-dsrbench-1fps"]
    assert (one_fps.policy.fps, one_fps.policy.serve_full_video, one_fps.parser) == (1.0, True, "spatial-bench")
    assert [PROTOCOLS[f"vlmevalkit-dsrbench{s}"].policy.num_frames for s in ("", "-64frame", "-30frame")] == [32, 64, 30]
    assert PROTOCOLS["dsr-official"].parser == "videomme" and PROTOCOLS["dsr-official"].policy.fps == 2.0
    assert (PROTOCOLS["vlm4d"].prompt_style, PROTOCOLS["vlm4d"].parser) == ("vlm4d", "regex6")
    with pytest.raises(DsrError, match="unknown protocol"):
        get_protocol("paper-ish")


def test_explicit_options_override_the_protocol_and_are_recorded() -> None:
    proto = get_protocol("vlmevalkit-dsrbench-1fps")
    policy = protocol_policy(proto, num_frames=16, fps=None, timestamps_in_prompt=None)
    assert (policy.num_frames, policy.fps, policy.serve_full_video) == (16, None, True)
    record = protocol_record(proto.name, policy, "dsr")
    assert record["overrides"] == {"num_frames": 16, "fps": None}
    assert protocol_record("paper", FramePolicy(), "dsr")["overrides"] == {}  # the defaults are the paper's


def test_vlm4d_prompt_text() -> None:
    item = Item(item_id="v/q0", video_id="v", video_path=None, question="Where does it go?", options=dict(OPTIONS),
                answer="C", type="abs_dir")
    prompt = build_prompt(item, (b"jpeg",), (0.5,), timestamps=False, style="vlm4d")
    assert prompt.text == ("<image>Where does it go?. Choose the closest answer from the following 4 candidates and "
                           "only output your choice as one of A,B,C,D: A: left; B: right; C: up; D: down")
    assert prompt.style == "vlm4d"


def test_rescore_counts_items_that_parse_differently() -> None:
    rows = [{"item_id": f"q{k}", "response": reply, "options": OPTIONS, "gold": gold, "error": None}
            for k, (reply, gold) in enumerate([("Based on the video, the answer is C.", "C"), ("A", "A"),
                                               ("The best answer is D", "D"), ("up, so C", "C")])]
    rows.append({"item_id": "failed", "response": None, "options": OPTIONS, "gold": "A", "error": {"reason": "x"}})
    result = rescore_rows(rows, get_protocol("dsr-official"))
    # ours: C, A, D, C (4 right); Video-MME style: B, A, D, C (3 right); one item differs
    assert (result.n, result.correct_ours, result.correct_theirs, result.differ) == (4, 4, 3, 1)
    assert result.examples[0]["item_id"] == "q0" and result.examples[0]["theirs"] == "B"


# frames served for a 3-s, 10-fps clip (30 frames) that is not a prediction item
SERVED = {"paper": 30, "dsr-official": 6, "vlmevalkit-dsrbench": 30, "vlmevalkit-dsrbench-64frame": 30,
          "vlmevalkit-dsrbench-30frame": 30, "vlmevalkit-dsrbench-1fps": 3, "vlm4d": 30}


def test_every_protocol_is_covered_here() -> None:
    assert set(SERVED) == set(PROTOCOLS)


@pytest.mark.parametrize("name", sorted(SERVED))
def test_run_records_the_protocol_and_serves_its_frames_and_prompt(name: str, toy_dataset: Path, chat_server,
                                                                   tmp_path: Path) -> None:
    """Each protocol's run names it in the manifest, serves its frames and sends its prompt."""
    dump = tmp_path / "bodies"
    url = chat_server(dump=dump)
    ds = load_dataset(toy_dataset)
    proto = get_protocol(name)
    model = OpenAIChatModel(model="fake-vlm", base_url=url, backoff_s=0.01, max_retries=1)
    run_eval(ds, model, tmp_path / "r", RunConfig(policy=proto.policy, prompt_style=proto.prompt_style,
                                                  protocol=proto.name, limit=2, concurrency=1), progress=False)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["protocol"]["name"] == name and manifest["protocol"]["parser"] == proto.parser
    assert manifest["protocol"]["overrides"] == {} and manifest["prompt"]["style"] == proto.prompt_style
    rows = [json.loads(x) for x in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["frames"]["indices"]) == SERVED[name] for r in rows)
    texts = [json.dumps(json.loads(p.read_text())) for p in sorted(dump.glob("*.json"))]
    assert texts and all(("Choose the closest answer" in t) == (proto.prompt_style == "vlm4d") for t in texts)
    assert all(("<0.0 s>" in t) == proto.policy.timestamps_in_prompt for t in texts)


def test_cli_score_reports_parse_differences(toy_dataset: Path, tmp_path: Path) -> None:
    replies = {"vid0/q0": "Based on the video, the answer is A.", "vid0/q1": "B", "vid0/q2": "C", "vid0/q3": "D"}
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": k, "response": v}) + "\n" for k, v in replies.items()))
    result = CliRunner().invoke(app, ["eval", "score", str(pred), "--dataset", str(toy_dataset), "--out",
                                      str(tmp_path / "s"), "--protocol", "dsr-official"])
    assert result.exit_code == 0, result.output
    assert "1 of 4 items parse differently" in result.output
    saved = json.loads((tmp_path / "s" / "protocol-dsr-official.json").read_text())
    assert (saved["n"], saved["differ"], saved["correct_ours"], saved["correct_theirs"]) == (4, 1, 4, 3)
    bad = CliRunner().invoke(app, ["eval", "score", str(tmp_path / "s"), "--protocol", "nope"])
    assert isinstance(bad.exception, DsrError) and "unknown protocol" in str(bad.exception)
