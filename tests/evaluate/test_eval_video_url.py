"""``--video-mode video_url``: the served frames travel as one mp4 clip, checked on a real loopback server.

The fake server dumps every request body; the test decodes the clip with PyAV and reads back which
source frame each clip frame is (the toy videos' red square moves 2 px per frame), so it can assert the
exact frames sent, their order, the clip's frame rate and that nothing at or past the visibility limit
went out.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsr.cli import app
from dsr.errors import DsrError
from dsr.evaluate.datasets import load_dataset
from dsr.evaluate.models import OpenAIChatModel
from dsr.evaluate.run import RunConfig, run_eval
from dsr.evaluate.sampling import FramePolicy, clip_fps, encode_clip, encode_jpeg, median_spacing_s
from dsr.video import iter_frames, probe


def _source_frame(rgb: np.ndarray) -> int:
    """Which frame of a toy clip (shift 0) this is: the square's left edge is at x = 4 + 2t."""
    red = rgb[20:28, :, 0].astype(float).mean(axis=0)
    return round((int(np.flatnonzero(red > 125)[0]) - 4) / 2)


@pytest.fixture()
def limited_dataset(tmp_path: Path, video_dir: Path) -> Path:
    rows = [
        # visible until 1.55 s: frames 0..15 of the 10 fps clip; 4 uniform → 0, 5, 10, 15
        {"id": "lim/q0", "video": str(video_dir / "vid0.mp4"), "question": "Limited: where does it go?",
         "options": ["A. left", "B. right"], "answer": "B", "type": "abs_dir", "visible_until_s": 1.55},
        # *_dir_pred without a limit: the final second is hidden → frames 0..19; 4 uniform → 0, 6, 13, 19
        {"id": "pred/q0", "video": str(video_dir / "vid0.mp4"), "question": "Predict: where will it go?",
         "options": ["A. left", "B. right"], "answer": "B", "type": "abs_dir_pred"},
    ]
    path = tmp_path / "limited.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_video_url_sends_exactly_the_visible_frames(limited_dataset: Path, chat_server, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    url = chat_server(dump=dump)
    ds = load_dataset(limited_dataset)
    policy = FramePolicy(num_frames=4, max_side=64)
    model = OpenAIChatModel(model="fake-vlm", base_url=url, video_mode="video_url", max_retries=0)
    for arm in ("main", "reversed-frames", "blind"):
        out = run_eval(ds, model, tmp_path / arm, RunConfig(policy=policy, arm=arm, concurrency=2), progress=False)
        assert out.n_new == 2 and not out.failures
    rows = {r["item_id"]: r for r in map(json.loads, (tmp_path / "main" / "results.jsonl").read_text().splitlines())}
    assert rows["lim/q0"]["frames"]["indices"] == [0, 5, 10, 15]
    assert rows["pred/q0"]["frames"]["indices"] == [0, 6, 13, 19]

    bodies = [json.loads(f.read_text()) for f in sorted(dump.glob("*.json"))]
    assert len(bodies) == 6  # two questions × (main, reversed, blind)
    sent: dict[tuple[str, str], list[int]] = {}  # (arm seen, question) → source frame of each clip frame
    for k, body in enumerate(bodies):
        content = body["messages"][0]["content"]
        kinds = [p["type"] for p in content]
        text = content[-1]["text"]
        question = "Limited" if "Limited" in text else "Predict"
        # no JPEG parts and no "<t s>" labels: the clip's own timeline carries time
        assert "image_url" not in kinds and "<0.0 s>" not in text and text.endswith("Answer: ")
        if kinds == ["text"]:  # the blind arm sends the text alone
            sent[("blind", question)] = []
            continue
        assert kinds == ["video_url", "text"]
        head, _, data = content[0]["video_url"]["url"].partition(",")
        assert head == "data:video/mp4;base64"
        clip = tmp_path / f"body{k}.mp4"
        clip.write_bytes(base64.b64decode(data))
        decoded = list(iter_frames(clip))
        order = [_source_frame(rgb) for _, rgb in decoded]
        sent[("main" if order == sorted(order) else "reversed", question)] = order
        # the clip runs at real speed: 1 / the median spacing of the served frames (0.5 s; 0.6 s)
        gap = 0.5 if question == "Limited" else median_spacing_s([0.0, 0.6, 1.3, 1.9])
        assert np.allclose(np.diff([t for t, _ in decoded]), gap, atol=0.02)
    assert sent == {
        ("main", "Limited"): [0, 5, 10, 15],      # exactly 4 frames, none at or after 1.55 s
        ("main", "Predict"): [0, 6, 13, 19],      # none in the hidden final second (>= 2.0 s)
        ("reversed", "Limited"): [15, 10, 5, 0],  # the arm's order is kept in the clip
        ("reversed", "Predict"): [19, 13, 6, 0],
        ("blind", "Limited"): [], ("blind", "Predict"): [],
    }
    manifest = json.loads((tmp_path / "main" / "manifest.json").read_text())
    assert manifest["model"]["input"] == "video_url"


def test_encode_clip_pads_odd_sizes(tmp_path: Path) -> None:
    frames = [np.full((33, 47, 3), 40 * k, np.uint8) for k in range(3)]
    clip = tmp_path / "odd.mp4"
    clip.write_bytes(encode_clip([encode_jpeg(f, 0, 90) for f in frames], clip_fps([0.0, 0.25, 0.5])))
    meta = probe(clip)
    assert (meta.width, meta.height, meta.num_frames) == (48, 34, 3) and meta.fps == pytest.approx(4.0)
    decoded = [rgb for _, rgb in iter_frames(clip)]
    assert [int(np.median(f)) for f in decoded] == pytest.approx([0, 40, 80], abs=3)
    with pytest.raises(DsrError, match="no frames"):
        encode_clip([], 1.0)


def test_cli_video_mode_is_validated_and_recorded(limited_dataset: Path, chat_server, tmp_path: Path) -> None:
    url = chat_server()
    cli = CliRunner()
    base = ["eval", "run", str(limited_dataset), "--model", "openai:fake-vlm", "--base-url", url,
            "--frames", "4", "--max-side", "64", "--no-progress"]
    bad = cli.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--video-mode", "native"])
    assert isinstance(bad.exception, DsrError) and "video mode" in str(bad.exception)  # main() → one line, exit 2
    assert not (tmp_path / "bad").exists()  # refused before anything is written
    ok = cli.invoke(app, [*base, "--out", str(tmp_path / "ok"), "--video-mode", "video_url"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "ok" / "manifest.json").read_text())["model"]["input"] == "video_url"
    # frames mode keeps the manifest of runs made before the option existed (no "input" key)
    plain = cli.invoke(app, [*base, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert "input" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())["model"]


def test_unencodable_frames_fail_the_item_with_a_reason(limited_dataset: Path) -> None:
    from dsr.evaluate.base import ModelError, Request
    from dsr.evaluate.prompt import Prompt

    item = load_dataset(limited_dataset).items[0]
    model = OpenAIChatModel(model="x", base_url="http://127.0.0.1:9/v1", video_mode="video_url", max_retries=0)
    request = Request(item=item, prompt=Prompt(parts=(("image", 0),), images=(b"not a jpeg",)), timestamps_s=(0.0,))
    with pytest.raises(ModelError) as exc:
        model.generate(request)
    assert exc.value.reason == "clip_error"  # raised before any connection is tried
    with pytest.raises(DsrError, match="video mode"):
        OpenAIChatModel(model="x", video_mode="native")
