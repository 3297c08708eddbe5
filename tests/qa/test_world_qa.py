"""QAs from tiny rendered MuJoCo worlds: answers re-derived from the exported per-frame quantities
and from the record agree 100%, and the correct letters are balanced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsr.qa.export import read_jsonl
from dsr.qa.generate import GenerationReport
from dsr.qa.query import answer
from dsr.qa.question_types import TYPES
from dsr.qa.rules import QAConfig, answer_text
from dsr.qa.run import generate_files
from dsr.scene.io import read_record

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from dsr.world import WorldConfig, render_world

    out = tmp_path_factory.mktemp("worlds")
    paths = []
    for seed in (3, 4):
        try:
            res = render_world(WorldConfig(seed=seed, duration_s=20.0, fps=8.0, width=160, height=120, num_objects=5),
                               out / f"w{seed}", progress=False)
        except Exception as exc:  # no OpenGL context on this machine
            pytest.skip(f"MuJoCo cannot render here: {exc}")
        paths.append(res.record_path)
    return paths


def test_rendered_world_qas_recompute_exactly(worlds: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "world.jsonl"
    cfg = QAConfig(stability_k=4)
    report = generate_files(worlds, out, cfg, per_video=100, seed=11)
    qas = list(read_jsonl(out))
    assert len(qas) == sum(report.made.values()) >= 150
    assert len({q.type for q in qas}) == len(TYPES)
    by_id = {r.record_id: r for r in map(read_record, worlds)}
    assert len(by_id) == 2
    for qa in qas:
        assert answer_text(TYPES[qa.type].rule, qa.quantity.values, cfg) == qa.answer_text
        assert answer(by_id[qa.video_id], qa.query, cfg).text == qa.answer_text
        assert (out.parent / qa.record_path).resolve() in {p.resolve() for p in worlds}
        assert (out.parent / qa.video_path).is_file()
    rep = json.loads(Path(str(out) + ".report.json").read_text())
    assert rep["letters"]["p_value"] > 0.001, rep["letters"]
    assert rep["failed_attempts"] == sum(rep["failures"].values())
    assert isinstance(GenerationReport.from_json(rep), GenerationReport)
