"""Import from every loader format, idempotent re-import, the refined export and the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dsr.cli import main
from dsr.evaluate.datasets import load_dataset
from dsr.qa.export import _bench_schema, write_qas
from dsr.review.auth import Reviewer, list_users
from dsr.review.db import Decision, Event, Item, open_db, read_session
from dsr.review.decisions import Verdict
from dsr.review.export import export_reviewed
from dsr.review.store import import_files, put_decision, put_resolution

from .conftest import ReviewDb
from .scene import read_rows


def _items(engine: Any) -> list[Item]:
    with read_session(engine) as session:
        return list(session.query(Item).order_by(Item.position))


def test_import_keeps_our_fields_and_is_idempotent(review_db: ReviewDb, qa_dir: Path) -> None:
    rows = read_rows(qa_dir / "qas.jsonl")
    items = _items(review_db.engine)
    assert [i.item_id for i in items] == [r["qa_id"] for r in rows]
    first = items[0]
    assert first.qa["quantity"] == rows[0]["quantity"] and first.stability == rows[0]["stability"]
    assert Path(first.video_path).is_absolute() and Path(first.video_path).is_file()  # type: ignore[arg-type]
    again = import_files(review_db.engine, [qa_dir / "qas.jsonl"])
    assert (again.added, again.unchanged, again.conflicting) == (0, 16, 0)
    changed = dict(rows[0], question=rows[0]["question"] + " (v2)")
    other = qa_dir / "changed.jsonl"
    other.write_text(json.dumps(changed) + "\n")
    report = import_files(review_db.engine, [other])
    assert (report.added, report.conflicting, report.conflict_examples) == (0, 1, [rows[0]["qa_id"]])
    assert _items(review_db.engine)[0].question == rows[0]["question"]  # the first import is kept
    with read_session(review_db.engine) as session:  # type: ignore[arg-type]
        assert session.query(Event).filter(Event.action == "import").count() == 16


def test_import_every_loader_format(tmp_path: Path, qa_dir: Path) -> None:
    rows = read_rows(qa_dir / "qas.jsonl")
    video = str(qa_dir / "scene0" / "video.mp4")
    # our DSR-Bench parquet (via the qa stage's writer), next to the jsonl so relative paths resolve
    parquet = qa_dir / "bench_copy.parquet"
    write_qas(parquet, rows[:4])
    # the official DSR-Bench parquet: no id, videos as {videoID}.mp4 in --videos
    official = tmp_path / "official.parquet"
    import pyarrow as pa

    pq.write_table(pa.table({"videoID": ["video"], "question": [rows[0]["question"]],
                             "options": [[f"{k}. {v}" for k, v in rows[0]["options"].items()]],
                             "answer": [rows[0]["answer"]], "type": [rows[0]["type"]]}), official)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"id": "p1", "video": video, "question": "Where does the ball go?",
                                 "options": ["left", "right", "up", "down"], "answer": "right", "type": "abs_dir"}) + "\n")
    vlm4d = tmp_path / "vlm4d.json"
    vlm4d.write_text(json.dumps([{"id": "v1", "video": "https://example.org/x/video.mp4", "question_type": "rel_dir",
                                  "question": "Which way?", "choices": {"A": "a", "B": "b", "C": "c", "D": "d"},
                                  "answer": "c"}]))
    engine = open_db(tmp_path / "all.db")
    report = import_files(engine, [parquet])
    report2 = import_files(engine, [official, vlm4d], videos_dir=qa_dir / "scene0")
    report3 = import_files(engine, [plain])
    assert (report.added, report2.added, report3.added) == (4, 2, 1)
    items = {i.item_id: i for i in _items(engine)}
    assert items[rows[1]["qa_id"]].qa["frames"] == rows[1]["frames"]  # JSON columns decoded
    assert items["p1"].answer == "B" and items["p1"].options["B"] == "right"
    assert items["v1"].answer == "C" and items["v1"].video_path == str((qa_dir / "scene0" / "video.mp4").resolve())
    official_item = next(i for i in items.values() if i.dataset == "official.parquet")
    assert official_item.video_path == str((qa_dir / "scene0" / "video.mp4").resolve())
    assert report2.findings == {} and report3.findings == {}
    # every kind of item exports to the DSR-Bench parquet and loads back
    reviewer = Reviewer(add_user_id(engine), "rita", False)
    for item in items.values():
        put_decision(engine, reviewer, item.id, Verdict("accept"), 0)
    out = tmp_path / "all.parquet"
    assert export_reviewed(engine, out).written == 7
    back = load_dataset(out, check_videos=False).by_id()
    assert back["p1"].answer == "B" and back["v1"].options["C"] == "c" and back[official_item.item_id].type == rows[0]["type"]
    assert json.loads(pq.read_table(out).to_pylist()[0]["quantity"]) == rows[0]["quantity"]
    engine.dispose()


def add_user_id(engine: Any) -> int:
    from dsr.review.auth import add_user, user_by_name

    add_user(engine, "rita")
    with engine.connect() as conn:
        return user_by_name(conn, "rita").id  # type: ignore[union-attr]


def _decide_all(db: ReviewDb) -> dict[str, Any]:
    """alice: accept 1, answer C/other on 2, edit 3, reject 4, flag 5; bob disagrees on 6 (resolved) and 7."""
    items = _items(db.engine)
    alice, bob = Reviewer(1, "alice", False), Reviewer(2, "bob", False)
    carol = Reviewer(3, "carol", True)
    it = {k + 1: items[k] for k in range(8)}
    other = {k: next(x for x in "ABCD" if x != it[k].answer) for k in it}
    put_decision(db.engine, alice, it[1].id, Verdict("accept"), 0)
    put_decision(db.engine, alice, it[2].id, Verdict("change_answer", answer=other[2]), 0)
    edited_q = "Reviewed wording: " + it[3].question
    put_decision(db.engine, alice, it[3].id, Verdict("edit", question=edited_q), 0)
    put_decision(db.engine, alice, it[4].id, Verdict("reject", reason="not_visible"), 0)
    put_decision(db.engine, alice, it[5].id, Verdict("flag", note="unsure"), 0)
    put_decision(db.engine, alice, it[6].id, Verdict("accept"), 0)
    put_decision(db.engine, bob, it[6].id, Verdict("change_answer", answer=other[6]), 0)
    put_resolution(db.engine, carol, it[6].id, Verdict("change_answer", answer=other[6]), 0)
    put_decision(db.engine, alice, it[7].id, Verdict("accept"), 0)
    put_decision(db.engine, bob, it[7].id, Verdict("reject", reason="wrong_object"), 0)
    return {"items": it, "other": other, "edited_q": edited_q}


def test_export_parquet_schema_rows_and_provenance(review_db: ReviewDb, qa_dir: Path, tmp_path: Path) -> None:
    plan = _decide_all(review_db)
    it, other = plan["items"], plan["other"]
    out = tmp_path / "out" / "refined.parquet"
    report = export_reviewed(review_db.engine, out)  # type: ignore[arg-type]
    assert report.written == 4
    assert report.statuses == {"accepted": 1, "edited": 3, "rejected": 1, "flagged": 1, "disagreement": 1,
                               "pending": 9}
    table = pq.read_table(out)
    bench = _bench_schema()
    assert table.schema.names[:len(bench.names)] == bench.names
    for name in bench.names:
        assert table.schema.field(name).type == bench.field(name).type
    assert table.schema.names[len(bench.names):] == ["reviewers", "decisions", "decided_at", "review_status",
                                                     "resolved_by", "resolved_at", "review_detail", "original"]
    rows = {r["qa_id"]: r for r in table.to_pylist()}
    assert list(rows) == [it[k].item_id for k in (1, 2, 3, 6)]
    r1, r2, r3, r6 = (rows[it[k].item_id] for k in (1, 2, 3, 6))
    assert r1["answer"] == it[1].answer and r1["review_status"] == "accepted" and r1["original"] is None
    assert r1["reviewers"] == ["alice"] and r1["decisions"] == ["accept"] and len(r1["decided_at"]) == 1
    assert r2["answer"] == other[2] and r2["decisions"] == [f"change_answer:{other[2]}"]
    assert json.loads(r2["original"])["answer"] == it[2].answer
    assert r2["options"] == [f"{k}. {v}" for k, v in it[2].options.items()]
    assert r3["question"] == plan["edited_q"] and json.loads(r3["original"])["question"] == it[3].question
    assert r6["reviewers"] == ["alice", "bob"] and r6["resolved_by"] == "carol" and r6["answer"] == other[6]
    assert json.loads(r6["review_detail"])[1]["reviewer"] == "bob"
    assert json.loads(r1["quantity"]) == it[1].qa["quantity"]
    # the file loads with the evaluation harness' loader, videos included
    ds = load_dataset(out)
    assert [x.item_id for x in ds.items] == list(rows)
    assert not [f for f in ds.findings if f.code in ("missing_video", "unreadable_video")]
    assert ds.by_id()[it[2].item_id].answer == other[2]
    # min_reviewers=2: only items with two agreeing reviewers or a resolution
    assert export_reviewed(review_db.engine, tmp_path / "two.parquet", min_reviewers=2).written == 1  # type: ignore[arg-type]


def test_export_jsonl_round_trips(review_db: ReviewDb, tmp_path: Path) -> None:
    plan = _decide_all(review_db)
    out = tmp_path / "refined.jsonl"
    export_reviewed(review_db.engine, out)  # type: ignore[arg-type]
    rows = read_rows(out)
    assert len(rows) == 4 and rows[2]["question"] == plan["edited_q"]
    assert rows[0]["review_detail"][0]["action"] == "accept" and isinstance(rows[0]["quantity"], dict)
    ds = load_dataset(out)
    assert ds.format == "qa_jsonl" and len(ds.items) == 4
    from dsr.errors import DsrError

    with pytest.raises(DsrError, match="parquet"):
        export_reviewed(review_db.engine, tmp_path / "x.csv")  # type: ignore[arg-type]


def test_commands(tmp_path: Path, qa_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.db")
    main(["review", "import", str(qa_dir / "qas.jsonl"), "--db", db])
    assert "16 item(s) added" in capsys.readouterr().out
    main(["review", "user", "add", "dana", "--admin", "--db", db])
    out = capsys.readouterr()
    token = out.out.strip()
    assert len(token) >= 40 and "shown once" in out.err
    engine = open_db(db)
    assert [(u.name, u.is_admin) for u in list_users(engine)] == [("dana", True)]
    assert token.encode() not in Path(db).read_bytes()  # only its hash is stored
    with pytest.raises(SystemExit) as exit_info:
        main(["review", "user", "add", "dana", "--db", db])
    assert exit_info.value.code == 2 and "already exists" in capsys.readouterr().err
    put_decision(engine, Reviewer(1, "dana", True), 1, Verdict("accept"), 0)
    main(["review", "export", "--db", db, "--out", str(tmp_path / "r.parquet")])
    assert "1 item(s) written" in capsys.readouterr().out
    with read_session(engine) as session:
        assert session.query(Decision).count() == 1
    with pytest.raises(SystemExit):
        main(["review", "export", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "r.parquet")])
    assert "not found" in capsys.readouterr().err
    engine.dispose()


def test_demo_database_is_idempotent(tmp_path: Path, qa_dir: Path) -> None:
    from dsr.review.demo import build_demo_database

    db = tmp_path / "demo" / "review.db"
    added, command = build_demo_database(qa_dir / "qas.jsonl", db)
    assert added == 16 and command == f"dsr review serve --db {db} --login-as demo --open"
    assert build_demo_database(qa_dir / "qas.jsonl", db)[0] == 0
    engine = open_db(db, create=False)
    assert [(u.name, u.is_admin) for u in list_users(engine)] == [("demo", True)]
    engine.dispose()
