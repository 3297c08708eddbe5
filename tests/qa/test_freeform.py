"""Free-form questions through a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dsr.qa.freeform import LLMError, geometric_check, parse_reply, sample_input
from dsr.qa.generate import GenerationReport
from dsr.qa.query import Geometry
from dsr.qa.rules import QAConfig
from dsr.qa.run import FreeFormSettings, generate_files
from dsr.scene.io import write_record

from .conftest import busy_objects, make_record

SERVER = Path(__file__).with_name("llm_server.py")


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen([sys.executable, str(SERVER), request.param, str(log)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/v1", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _record():
    n = 48
    objs = busy_objects(n)
    objs["cone_0"] = {"class": "cone", "centers": np.tile([0.5, 1.5, 0.2], (n, 1))}
    objs["bin_0"] = {"class": "bin", "centers": np.tile([3.0, 2.5, 0.5], (n, 1))}
    return make_record(n, objects=objs, force_visible=True, record_id="ff")


@pytest.mark.parametrize("server", ["good"], indirect=True)
def test_freeform_end_to_end_with_retry_and_check(server: tuple[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url, log = server
    monkeypatch.setenv("DSR_TEST_LLM_KEY", "test-key")
    rec_path = write_record(tmp_path / "ff.npz", _record())
    out = tmp_path / "qa.jsonl"
    settings = FreeFormSettings(base_url=url, model="tiny-chat", api_key_env="DSR_TEST_LLM_KEY", per_video=2)
    report = generate_files([rec_path], out, QAConfig(stability_k=0), per_video=3, seed=1, freeform=settings)
    qas = [json.loads(line) for line in out.read_text().splitlines()]
    free = [q for q in qas if q["source"] == "free_form"]
    assert len(free) == 2 and report.made["non_temp"] == 2
    for q in free:
        assert q["type"] == "non_temp" and q["query"]["type"] == "non_temp"
        assert q["question"].startswith(("Following the perspective of ", "From the perspective of "))
        assert ", which object is the closest to the observer at the end?" in q["question"]
        assert q["options"][q["answer"]] == q["answer_text"] and not q["options"]["A"].startswith("A.")
        assert q["geometric_check"]["status"] in ("agree", "unchecked")
        assert len(q["quantity"]["values"]) == len(q["quantity"]["objects"])
    assert report.checks["agree"] >= 1
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(requests) == 3  # one malformed reply retried, then two good ones
    assert all(r["auth"] == "Bearer test-key" and r["model"] == "tiny-chat" for r in requests)
    assert "test-key" not in out.read_text() and "test-key" not in Path(str(out) + ".report.json").read_text()


@pytest.mark.parametrize("server", ["wrong"], indirect=True)
def test_disagreeing_answer_is_flagged(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    rec_path = write_record(tmp_path / "ff.npz", _record())
    out = tmp_path / "qa.jsonl"
    settings = FreeFormSettings(base_url=url, model="m", api_key_env="DSR_UNSET_KEY_VAR", per_video=3)
    report = generate_files([rec_path], out, QAConfig(stability_k=0), per_video=0, seed=2, freeform=settings)
    free = [json.loads(line) for line in out.read_text().splitlines()]
    assert free and report.checks["disagree"] >= 1
    flagged = [q for q in free if q["geometric_check"]["status"] == "disagree"]
    assert flagged and all(q["geometric_check"]["expected"] != q["answer"] for q in flagged)


@pytest.mark.parametrize("server", ["garbage", "down"], indirect=True)
def test_invalid_endpoint_output_is_counted(server: tuple[str, Path], tmp_path: Path) -> None:
    url, log = server
    rec_path = write_record(tmp_path / "ff.npz", _record())
    out = tmp_path / "qa.jsonl"
    settings = FreeFormSettings(base_url=url, model="m", per_video=1, retries=2)
    report = generate_files([rec_path], out, QAConfig(stability_k=0), per_video=2, seed=3, freeform=settings)
    assert report.failures["llm_invalid_output"] == 1
    assert report.made["non_temp"] == 0 and sum(report.made.values()) == 2
    assert len(log.read_text().splitlines()) == 3  # 1 try + 2 retries


def test_unreachable_endpoint_is_counted(tmp_path: Path) -> None:
    rec_path = write_record(tmp_path / "ff.npz", _record())
    settings = FreeFormSettings(base_url="http://127.0.0.1:9/v1", model="m", per_video=1, retries=0, timeout_s=2)
    report = generate_files([rec_path], tmp_path / "q.jsonl", QAConfig(stability_k=0), per_video=1, freeform=settings)
    assert report.failures["llm_invalid_output"] == 1


DESCS = ("dog with initial bounding box coordinates [1,2,3,4]", "cat with initial bounding box coordinates [5,6,7,8]")


@pytest.mark.parametrize(("text", "problem"), [
    ("q?\nA\nB\nC\nD", "expected 6"),
    (f"Which is first, the {DESCS[0]}?\nA. a\nB. b\nC. c\nD. d\nE", "correct letter"),
    (f"Which is first, the {DESCS[0]}?\nA. a\nC. b\nC. c\nD. d\nA", "labelled"),
    (f"Which is first, the {DESCS[0]}?\na\na\nc\nd\nA", "not distinct"),
    (f"From your perspective, is the {DESCS[0]} first?\na\nb\nc\nd\nA", "perspective"),
    (f"Is the {DESCS[0]} first.\na\nb\nc\nd\nA", "end with"),
    ("Is the dog with initial bounding box coordinates [9,9,9,9] first?\na\nb\nc\nd\nA", "unknown bounding box"),
    ("Which animal jumps?\na\nb\nc\nd\nA", "no object"),
])
def test_parse_reply_rejects(text: str, problem: str) -> None:
    with pytest.raises(LLMError, match=problem):
        parse_reply(text, DESCS)


def test_parse_reply_accepts_prefixes_and_think_blocks() -> None:
    text = f"<think>\nA\nB\n</think>\nQuestion: Which is higher, the {DESCS[0]}?\n(A) yes\nB) no\nC: maybe\nD. never\nAnswer: b"
    r = parse_reply(text, DESCS)
    assert r.question.startswith("Which is higher") and r.options == ("yes", "no", "maybe", "never") and r.letter == "B"


def test_geometric_check_rules() -> None:
    rec = _record()
    geom = Geometry.from_record(rec)
    inp = sample_input(rec, geom, QAConfig(), np.random.default_rng(4))
    names = inp.descriptions[:4]
    opts = tuple(f"the {n}" for n in names)
    end = np.linalg.norm(inp.positions[:4, -1], axis=1)
    best = "ABCD"[int(np.argmin(end))]
    ok = geometric_check("Which object is nearest at the end?", opts, best, inp)
    assert ok["status"] in ("agree", "unchecked") and ok["expected"] == best
    worst = "ABCD"[int(np.argmax(end))]
    assert geometric_check("Which object is closest by the end?", opts, worst, inp)["status"] in ("disagree", "unchecked")
    assert geometric_check("Which object jumps?", opts, "A", inp)["status"] == "unchecked"
    assert geometric_check("Which object is closest?", opts, "A", inp)["status"] == "unchecked"  # no time phrase
    report = GenerationReport()
    assert report.to_json()["freeform_checks"] == {}


@pytest.mark.parametrize("server", ["good"], indirect=True)
def test_qa_command_with_endpoint(server: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    url, _ = server
    rec_path = write_record(tmp_path / "ff.npz", _record())
    out = tmp_path / "all.parquet"
    main(["qa", str(rec_path), "--out", str(out), "--per-video", "4", "--stability-k", "0",
          "--llm-base-url", url, "--llm-model", "tiny", "--free-form-per-video", "1"])
    assert "no LLM endpoint" not in capsys.readouterr().err
    import pyarrow.parquet as pq

    types = pq.read_table(out).column("type").to_pylist()
    assert types.count("non_temp") == 1 and len(types) == 5


def test_prompt_snapshot() -> None:
    from dsr.qa.freeform import FreeFormInput, build_prompt, final_question

    inp = FreeFormInput(viewpoint="absolute", observer="camera", viewpoint_text="camera at 2.0s", t_v=4,
                        frames=(2, 3), timestamps_s=(1.0, 1.5), object_ids=("d",), descriptions=(DESCS[0],),
                        positions=np.array([[[1.234, -0.5, 0.0], [1.0, 0.25, 0.126]]]))
    assert build_prompt(inp) == (
        "From the viewpoint of camera at 2.0s, these are the 3D coordinates (x, y, z) of some objects between "
        "1.0s and 1.5s. +x points forward, +y points left and +z points up. The coordinates were collected at "
        "these timestamps: 1.0s, 1.5s.\n"
        '{"dog with initial bounding box coordinates [1,2,3,4]": [[1.23, -0.5, 0.0], [1.0, 0.25, 0.13]]}\n\n'
        "From how the 3D relationships between these objects change over time, write ONE multiple-choice "
        "question that cannot be answered with 2D knowledge alone, and 4 answers of which exactly one is "
        "correct. Do not describe the viewpoint or perspective in the question. Do not ask anything "
        "quantitative or tied to exact coordinates. Refer to every object by its full description exactly "
        "as written above, bounding box included.\n"
        "Output exactly 6 lines and nothing else: line 1 the question; lines 2-5 the four answers; "
        "line 6 the letter (A, B, C or D) of the correct answer.")
    assert final_question(inp, "Which object rises?") == (
        "From the perspective of camera at 2.0s, between 1.0s and 1.5s, which object rises?")
