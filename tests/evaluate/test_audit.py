"""dsr audit: blind probes, letter and answer balance, per-item bias, the CLI."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from dsr.evaluate.audit import audit_items, letter_test, load_question_sets, type_balance
from dsr.evaluate.audit_probes import (
    PROBES,
    OptionTable,
    credit_of,
    group_folds,
    run_probes,
    segment_count,
    segments,
    text_prior_scores,
)
from dsr.evaluate.datasets import Item

STATES = ["Keep nearly constant.", "Become larger.", "Become smaller.", "Keep nearly constant then become larger."]


def _answer(rng: random.Random, n_seg: int) -> str:
    return " ".join(f"({k + 1}) {rng.choice(STATES)}" for k in range(n_seg))


def make_set(n_videos: int, per_video: int, *, bias: str | None, seed: int = 0, share: float = 1.0,
             types: tuple[str, ...] = ("abs_dis", "rel_dis"), prefix: str = "") -> list[Item]:
    """DSR-like items. bias='shortest': the gold is the option with the fewest segments (hence the
    shortest) in a ``share`` of the items; None: gold and distractors drawn from one distribution.
    Letters are uniform."""
    rng = random.Random(seed)
    items = []
    for v in range(n_videos):
        for q in range(per_video):
            texts: list[str] = []
            while len(texts) < 4:
                t = _answer(rng, rng.randint(1, 4))
                if t not in texts:
                    texts.append(t)
            if bias == "shortest" and rng.random() < share:
                gold_text = min(texts, key=lambda t: (segment_count(t), len(t)))
                texts.remove(gold_text)
                texts = [t for t in texts if segment_count(t) > segment_count(gold_text)]
                while len(texts) < 3:
                    t = _answer(rng, segment_count(gold_text) + rng.randint(1, 3))
                    if t not in texts:
                        texts.append(t)
            else:
                gold_text = texts.pop()
            letter = rng.randrange(4)
            texts.insert(letter, gold_text)
            options = dict(zip("ABCD", texts, strict=True))
            items.append(Item(item_id=f"v{v}/{prefix}q{q}", video_id=f"v{v}", video_path=None,
                              question=f"How does the distance between object {q % 3} and the camera change?",
                              options=options, answer="ABCD"[letter], type=types[q % len(types)]))
    return items


# ---------------------------------------------------------------------------------------------- units


def test_segments_and_counts() -> None:
    assert segment_count("(1) Keep nearly constant. (2) Become larger.") == 2
    assert segment_count("left") == 0
    assert segments("(1) Keep nearly constant. (2) Front|Left.") == ["keep nearly constant", "front|left"]
    assert segments("Not moving") == ["not moving"]


def test_credit_counts_ties_fractionally() -> None:
    items = [Item("a", "v", None, "q", {"A": "x", "B": "y", "C": "z"}, "B", "t"),
             Item("b", "v", None, "q", {"A": "x", "B": "y"}, "A", "t")]
    table = OptionTable.of(items)
    # item a: B and C tie at the top (gold B) -> 1/2; item b: A strictly best (gold) -> 1
    credit, pick = credit_of(np.array([0.0, 2.0, 2.0, 5.0, 1.0]), table)
    assert credit.tolist() == [0.5, 1.0]
    assert pick.tolist() == [1, 0]
    credit, _ = credit_of(np.array([3.0, 2.0, 1.0, 0.0, 1.0]), table)
    assert credit.tolist() == [0.0, 0.0]


def test_group_folds_never_split_a_video() -> None:
    vids = [f"v{i % 23}" for i in range(300)]
    folds = group_folds(vids, 5, seed=3)
    assert set(folds.tolist()) == set(range(5))
    for v in set(vids):
        assert len({f for f, x in zip(folds, vids, strict=True) if x == v}) == 1
    assert (group_folds(vids, 5, seed=3) == folds).all()  # fixed seed, same folds
    assert (group_folds(["only"] * 10, 5, seed=0) == -1).all()  # one video: no folds


def test_letter_test_and_balance_by_hand() -> None:
    opts = {"A": "x", "B": "y", "C": "z", "D": "w"}
    items = [Item(str(i), "v", None, "q", opts, g, "t") for i, g in enumerate("AAAAAAAABBCD")]
    lt = letter_test(items)
    assert lt.counts == {"A": 8, "B": 2, "C": 1, "D": 1}
    assert lt.expected == {"A": 3.0, "B": 3.0, "C": 3.0, "D": 3.0}
    # chi2 = (25 + 1 + 4 + 4) / 3
    assert lt.chi2 == pytest.approx(34 / 3)
    from scipy.stats import chi2

    assert lt.p_value == pytest.approx(chi2.sf(34 / 3, 3))
    bal = type_balance(items)
    assert (bal.classes, bal.top_class, bal.top_share) == (4, "x", 8 / 12)
    p = np.array([8, 2, 1, 1]) / 12
    assert bal.entropy_bits == pytest.approx(-(p * np.log2(p)).sum())
    assert bal.normalized_entropy == pytest.approx(bal.entropy_bits / 2)
    one = type_balance(items[:8])
    assert (one.classes, one.entropy_bits, one.normalized_entropy) == (1, 0.0, 0.0)


def test_text_prior_matches_the_text_prior_model() -> None:
    """The audit's text prior is the rule of TextPriorModel (same rate), fitted on the same items."""
    from dsr.evaluate.base import Request
    from dsr.evaluate.models import TextPriorModel
    from dsr.evaluate.prompt import build_prompt

    items = make_set(12, 10, bias=None, seed=5)
    fit_items, test_items = items[:80], items[80:]
    table = OptionTable.of(items)
    feats_codes = np.unique([" ".join(t.lower().split()) for t in table.texts], return_inverse=True)[1]
    rows = np.arange(table.start[80], table.start[-1])
    scores = text_prior_scores(table, feats_codes, np.arange(80), rows)
    model = TextPriorModel(fit_items=fit_items, leave_one_out=False)
    for k, it in enumerate(test_items):
        own = scores[table.start[80 + k] - table.start[80]: table.start[81 + k] - table.start[80]]
        best = np.flatnonzero(own == own.max())
        if len(best) == 1:  # the model breaks ties by letter; the audit splits the credit
            reply = model.generate(Request(item=it, prompt=build_prompt(it, (), ()))).text
            assert reply == list(it.options)[best[0]]


# ---------------------------------------------------------------------------------------------- probes

MORE_STATES = [*STATES, "Keep nearly constant then become smaller."]
OBJECTS = ["ball", "person", "car", "box"]


def shortcut_set(kind: str, n_videos: int = 30, per_video: int = 8, seed: int = 0) -> list[Item]:
    """One kind of text shortcut at a time:

    * ``medoid`` — every distractor is the gold with one segment changed (the gold is the medoid);
    * ``most_segments`` — the gold has more segments than every distractor;
    * ``question`` — the gold's first state follows from the object the question names;
    * ``none`` — gold and distractors drawn alike.
    """
    rng = random.Random(seed)

    def seq(n: int) -> list[str]:
        return [rng.choice(MORE_STATES) for _ in range(n)]

    items = []
    for v in range(n_videos):
        for q in range(per_video):
            obj = rng.choice(OBJECTS)
            gold = seq(rng.randint(3, 5) if kind == "most_segments" else rng.randint(1, 4))
            if kind == "question":
                gold[0] = MORE_STATES[OBJECTS.index(obj)]
            wrong: list[list[str]] = []
            while len(wrong) < 3:
                if kind == "medoid":
                    d = list(gold)
                    k = rng.randrange(len(d))
                    d[k] = rng.choice([x for x in MORE_STATES if x != gold[k]])
                elif kind == "most_segments":
                    d = seq(rng.randint(1, len(gold) - 1))
                else:
                    d = seq(rng.randint(1, 4))
                if d != gold and d not in wrong:
                    wrong.append(d)
            texts = [" ".join(f"({k + 1}) {x}" for k, x in enumerate(o)) for o in wrong]
            letter = rng.randrange(4)
            texts.insert(letter, " ".join(f"({k + 1}) {x}" for k, x in enumerate(gold)))
            items.append(Item(f"v{v}/q{q}", f"v{v}", None,
                              f"How does the distance between the {obj} and the camera change?",
                              dict(zip("ABCD", texts, strict=True)), "ABCD"[letter], "abs_dis"))
    return items


@pytest.mark.parametrize(("kind", "low", "high"), [("none", 0.0, 0.36), ("medoid", 0.55, 1.0),
                                                   ("most_segments", 0.95, 1.0), ("question", 0.45, 1.0)])
def test_classifier_finds_each_kind_of_shortcut(kind: str, low: float, high: float) -> None:
    """The k-fold classifier sees relations between options (medoid), counts (segments) and the
    question (the object named), and stays near chance when there is nothing to find."""
    run = run_probes(shortcut_set(kind), folds=5, seed=0)
    acc = float(np.mean(run.credit["text_classifier"]))
    assert low <= acc <= high, acc
    if kind in ("medoid", "question"):  # shortcuts no rule probe sees
        assert max(float(np.mean(run.credit[p])) for p in PROBES[:4]) < 0.40


def test_biased_set_is_flagged() -> None:
    items = make_set(30, 12, bias="shortest")
    result = audit_items(items, folds=5, seed=0, resamples=300)
    assert result.probes["fewest_segments"].overall.value == 1.0
    assert result.probes["shortest_option"].overall.value > 0.9
    clf = result.probes["text_classifier"].overall
    assert clf.value > 0.9 and clf.lo > 0.8
    assert result.max_probe()[1] - result.chance > 0.6
    scores = np.array([s.bias_score for s in result.items])
    assert np.nanmean(scores) > 0.7


def test_unbiased_set_stays_near_chance() -> None:
    items = make_set(40, 12, bias=None, seed=1)
    result = audit_items(items, folds=5, seed=0, resamples=300)
    assert result.chance == 0.25
    for name in PROBES:
        est = result.probes[name].overall
        assert 0.0 <= est.lo <= est.value <= est.hi <= 1.0
        assert abs(est.value - 0.25) < 0.08, (name, est)
    assert set(result.types) == {"abs_dis", "rel_dis"}
    assert result.probes["letter_prior"].per_type["abs_dis"].n == 240


def test_probes_are_deterministic_and_held_out() -> None:
    items = make_set(20, 8, bias="shortest", seed=2)
    seen: list[tuple[str, int, int]] = []
    a = run_probes(items, folds=4, seed=7, progress=lambda *x: seen.append(x))
    assert seen[-1] == ("folds", 4, 4) and ("features", 160, 160) in seen  # the bar reaches its total
    b = run_probes(items, folds=4, seed=7)
    for name in PROBES:
        assert np.array_equal(a.credit[name], b.credit[name])
    assert np.allclose(a.p_gold, b.p_gold)
    assert a.k == 4 and set(a.folds.tolist()) == {0, 1, 2, 3}
    # a classifier that memorised its fitting items would score every item; held-out p_gold is a probability
    assert ((a.p_gold > 0) & (a.p_gold < 1)).all()


def test_one_video_gets_no_fitted_probe() -> None:
    items = [it for it in make_set(1, 12, bias="shortest")]
    result = audit_items(items, resamples=200)
    assert math.isnan(result.probes["text_classifier"].overall.value)
    assert result.probes["fewest_segments"].overall.value == 1.0
    assert result.folds == 0


# ---------------------------------------------------------------------------------------------- loading + CLI


def _write_jsonl(path: Path, items: list[Item]) -> None:
    path.write_text("".join(json.dumps(it.to_json()) + "\n" for it in items), encoding="utf-8")


def test_bad_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    items = make_set(6, 4, bias=None)
    path = tmp_path / "qas.jsonl"
    _write_jsonl(path, items)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"item_id": "x1", "question": "q?", "options": {"A": "a", "B": "b"},
                             "answer": "Z"}) + "\n")
        fh.write(json.dumps({"item_id": "x2", "options": {"A": "a", "B": "b"}, "answer": "A"}) + "\n")
        fh.write(json.dumps(items[0].to_json()) + "\n")
    qs = load_question_sets([path])
    assert len(qs.items) == 24
    assert qs.problems == {"malformed_json": 1, "answer_not_in_options": 1, "bad_row": 1, "duplicate_id": 1}


def test_cli_audit_writes_report_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    path = tmp_path / "biased.jsonl"
    _write_jsonl(path, make_set(20, 10, bias="shortest"))
    main(["audit", str(path), "--out", str(tmp_path / "rep"), "--no-progress", "--resamples", "200"])  # exit 0
    out = capsys.readouterr().out
    assert "FLAG: best blind probe" in out and "letter prior" in out
    summary = json.loads((tmp_path / "rep" / "audit.json").read_text())
    assert summary["n_items"] == 200 and summary["probes"]["fewest_segments"]["overall"]["value"] == 1.0
    html = (tmp_path / "rep" / "audit.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "FLAG" in html
    rows = (tmp_path / "rep" / "items.csv").read_text().splitlines()
    assert len(rows) == 201 and rows[0].startswith("item_id,video_id,type,gold")


def test_cli_unreadable_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    for path in (bad, tmp_path / "missing.jsonl"):
        with pytest.raises(SystemExit) as exc:
            main(["audit", str(path), "--no-progress"])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.shared
def test_vlm4d_real_audit(vlm4d_dir: Path) -> None:
    qs = load_question_sets([vlm4d_dir / "real_mc.json"])
    assert len(qs.items) == 1371
    result = audit_items(qs.items, resamples=300, problems=qs.problems)
    assert result.n_items == 1371 and result.n_videos == 600 and result.folds == 5
    for name in PROBES:
        est = result.probes[name].overall
        assert 0.0 <= est.value <= 1.0 and est.n == 1371
        assert est.lo <= est.value <= est.hi
    assert 0.0 < result.letters.p_value <= 1.0
    assert sum(result.letters.counts.values()) == 1371
    assert result.problems.get("duplicate_options") == 1  # validation_633: C and D are the same text
    # VLM4D options carry no "(k)" segments: fewest segments ties every option, exactly chance
    assert result.probes["fewest_segments"].overall.value == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------- prune


def _mixed_set() -> list[Item]:
    """Two unbiased types plus a third whose gold is always the option with the fewest segments."""
    return (make_set(30, 8, bias=None, seed=11)
            + make_set(30, 4, bias="shortest", seed=12, types=("abs_spd",), prefix="s"))


def test_prune_cli_removes_the_shortcut_and_the_subset_passes(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from dsr.cli import main

    items = _mixed_set()
    src = tmp_path / "mixed.jsonl"
    _write_jsonl(src, items)
    out = tmp_path / "pruned.jsonl"
    main(["audit", str(src), "--prune", str(out), "--out", str(tmp_path / "rep"), "--no-progress",
          "--resamples", "200"])  # exit 0: the prune passed
    assert "prune: passed" in capsys.readouterr().out
    before = audit_items(items, resamples=200)
    assert before.probes["fewest_segments"].overall.value - before.chance > 0.15  # flagged
    # the subset keeps the input's own lines, and an independent audit of the file passes
    src_lines = set(src.read_text().splitlines())
    kept_lines = out.read_text().splitlines()
    assert kept_lines and set(kept_lines) <= src_lines
    kept = load_question_sets([out]).items
    after = audit_items(kept, seed=0, resamples=200)
    for name in PROBES:
        assert after.probes[name].overall.value <= after.chance + 0.03, name
    assert after.probes["text_classifier"].overall.value >= after.chance - 0.03
    # what went is mostly the biased type, and every removal is listed with its reason
    removed = (tmp_path / "rep" / "removed.csv").read_text().splitlines()[1:]
    assert len(removed) == len(items) - len(kept)
    removed_types = [r.split(",")[1] for r in removed]
    assert removed_types.count("abs_spd") >= 0.8 * len(removed_types)
    assert sum(it.type == "abs_spd" for it in kept) < 0.3 * 120
    assert sum(it.type != "abs_spd" for it in kept) > 0.9 * 240  # unbiased types keep their items
    assert all(r.split(",")[4] for r in removed)  # probes_right: the probes that had the item
    summary = json.loads((tmp_path / "rep" / "audit.json").read_text())
    assert summary["prune"]["passed"] is True and summary["prune"]["kept"] == len(kept)


def test_avoiding_a_probe_below_chance_is_a_reader_too() -> None:
    from dsr.evaluate.audit import avoid_reader

    assert avoid_reader(0.25, 0.25) == pytest.approx(0.25)  # at chance either way
    assert avoid_reader(0.10, 0.25) == pytest.approx(0.30)  # wrong 90%: the other three hold the gold
    assert avoid_reader(0.0, 0.5) == pytest.approx(1.0)  # two options, always wrong: avoiding is perfect
    assert avoid_reader(1 - 3 * 0.28, 0.25) == pytest.approx(0.28)  # the 3-point bound for four options


def test_fully_biased_set_cannot_pass(tmp_path: Path) -> None:
    from dsr.evaluate.audit import prune_items

    result = prune_items(make_set(10, 8, bias="shortest"), resamples=200, max_rounds=8)
    assert not result.passed  # every item has the shortcut: no subset is free of it


def test_subset_keeps_the_input_format(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dsr.evaluate.audit_report import write_subset
    from dsr.evaluate.datasets import load_dataset

    items = make_set(4, 3, bias=None)
    keep = {items[1].item_id, items[4].item_id, items[7].item_id}
    # VLM4D-style JSON list: answer as text, choices
    rows = [{"id": it.item_id, "video": f"https://x/{it.video_id}.mp4", "question_type": it.type,
             "question": it.question, "choices": it.options, "answer": it.options[it.answer]} for it in items]
    src = tmp_path / "set.json"
    src.write_text(json.dumps(rows))
    assert write_subset(tmp_path / "sub.json", load_question_sets([src]), keep) == "vlm4d"
    assert json.loads((tmp_path / "sub.json").read_text()) == [rows[1], rows[4], rows[7]]
    # DSR-Bench parquet (no id column: ids are content hashes)
    table = pa.table({"videoID": [it.video_id for it in items], "question": [it.question for it in items],
                      "options": [[f"{k}. {v}" for k, v in it.options.items()] for it in items],
                      "answer": [it.answer for it in items], "type": [it.type for it in items]})
    pq.write_table(table, tmp_path / "bench.parquet")
    loaded = load_question_sets([tmp_path / "bench.parquet"])
    ids = [it.item_id for it in loaded.items]
    assert write_subset(tmp_path / "sub.parquet", loaded, {ids[0], ids[5]}) == "dsr_parquet"
    sub = load_dataset(tmp_path / "sub.parquet", check_videos=False)
    assert [it.item_id for it in sub.items] == [ids[0], ids[5]]
    # another suffix, or several inputs: our JSON Lines, read back by the plain loader
    assert write_subset(tmp_path / "sub.jsonl", loaded, {ids[2]}) == "plain"
    back = load_dataset(tmp_path / "sub.jsonl", check_videos=False).items
    assert [it.item_id for it in back] == [ids[2]] and back[0].options == loaded.items[2].options


# ---------------------------------------------------------------------------------------------- eval report


def _result_rows(items: list[Item], answer_of: dict[str, str], rotations: bool = False) -> list[dict]:
    """Result lines as dsr.evaluate.run writes them (the keys the report reads)."""
    from dsr.evaluate.datasets import rotate_options

    rows = []
    for it in items:
        for k in range(4 if rotations else 1):
            r = rotate_options(it, k) if rotations else it
            letter = answer_of[it.item_id] if not rotations else r.answer
            rows.append({"item_id": r.item_id, "base_id": it.item_id, "video_id": it.video_id,
                         "question": it.question, "options": dict(r.options), "gold": r.answer, "type": it.type,
                         "letter": letter, "correct": letter == r.answer, "n_options": 4})
    return rows


def test_blind_probe_table_sits_beside_every_run() -> None:
    from dsr.evaluate.audit_report import blind_probe_table, items_from_results

    items = make_set(20, 6, bias="shortest", seed=3)
    always_a = _result_rows(items, {it.item_id: "A" for it in items})
    circular = _result_rows(items[:60], {}, rotations=True)  # a perfect model, asked every rotation
    assert len(items_from_results(circular)) == 60  # rotations count once
    assert [it.options for it in items_from_results(circular)] == [it.options for it in items[:60]]
    header, rows, note = blind_probe_table([("always A", always_a), ("oracle (circular)", circular)],
                                           ["abs_dis", "rel_dis"], resamples=200)
    assert header[:4] == ["Run / blind probe", "All", "AbsDis", "RelDis"]
    labels = [r[0] for r in rows]
    assert labels[:2] == ["always A", "oracle (circular)"] and labels[-1] == "chance"
    assert [lab for lab in labels if lab.startswith("probe: ")] == \
        ["probe: letter prior", "probe: text prior", "probe: fewest segments", "probe: shortest option",
         "probe: k-fold text classifier"]
    audit = audit_items(items, resamples=200)
    fewest = rows[labels.index("probe: fewest segments")]
    assert fewest[1] == audit.probes["fewest_segments"].overall.pct() and fewest[1].startswith("100.0")
    # the always-A run: its accuracy, the best probe on its items (fewest segments, 100%) and the margin
    acc_a = np.mean([r["correct"] for r in always_a])
    assert rows[0][1] == f"{100 * acc_a:.1f}"
    assert rows[0][-2].endswith("100.0") and rows[0][-1] == f"{100 * (acc_a - 1.0):+.1f}"
    assert rows[1][1] == "100.0" and rows[1][-1] == "+0.0"
    assert "FLAG" in note and "120 items" in note


def test_eval_report_shows_the_blind_probes_beside_every_model(tmp_path: Path) -> None:
    from dsr.evaluate.datasets import load_dataset
    from dsr.evaluate.models import create_model
    from dsr.evaluate.report import write_report
    from dsr.evaluate.run import RunConfig, run_eval

    items = make_set(12, 6, bias="shortest", seed=4)
    _write_jsonl(tmp_path / "set.jsonl", items)
    ds = load_dataset(tmp_path / "set.jsonl", check_videos=False)
    dirs = []
    for spec in ("always:A", "text-prior", "random"):
        d = tmp_path / spec.replace(":", "_")
        run_eval(ds, create_model(spec, items=ds.items), d, RunConfig(), progress=False)
        dirs.append(d)
    md, html = write_report(dirs, tmp_path / "report", resamples=200, thumbnails=False)
    text = md.read_text()
    assert "## Blind probes on these items (text only, no model)" in text
    section = text.split("## Blind probes on these items")[1].split("\n## ")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| Run / blind probe | All | AbsDis | RelDis | Best probe on its items |")
    by_label = {ln.split(" | ")[0].lstrip("| "): ln for ln in lines[1:]}
    assert list(by_label)[:3] == ["always-A", "text-prior", "random"]  # every run, then the probes
    assert by_label["always-A"].split(" | ")[-2] == "fewest segments 100.0"  # best probe on its items
    # the probes are the audit's figures on the 72 items the runs cover (fewest segments is exact)
    audit = audit_items(list(ds.items), resamples=200)
    assert by_label["probe: fewest segments"].split(" | ")[1] == audit.probes["fewest_segments"].overall.pct()
    assert audit.probes["fewest_segments"].overall.value == 1.0
    assert "FLAG" in section and "72 items" in section
    assert "Blind probes on these items" in html.read_text()
