"""Group commit: writes that arrive together share one commit; a failing write is undone alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from dsr.review.auth import Reviewer
from dsr.review.db import Decision, Event
from dsr.review.decisions import Verdict
from dsr.review.store import Conflict, write_decision
from dsr.review.writer import GroupCommitWriter

from .conftest import ReviewDb


def test_queued_writes_share_one_commit_and_fail_alone(review_db: ReviewDb) -> None:
    engine: Any = review_db.engine
    writer = GroupCommitWriter(engine)
    alice = Reviewer(1, "alice", False)
    gate, entered = threading.Event(), threading.Event()

    def blocker(conn: Any) -> str:
        entered.set()
        gate.wait(10)
        return "first"

    first = writer.submit(blocker)
    assert entered.wait(10)
    # while the first group is running, queue 12 decisions, one of them stale (409), one writing then failing
    futures = [writer.submit(lambda conn, pk=pk: write_decision(conn, alice, pk, Verdict("accept"), 0))
               for pk in range(1, 11)]
    stale = writer.submit(lambda conn: write_decision(conn, alice, 11, Verdict("accept"), 3))

    def half_then_fail(conn: Any) -> None:
        conn.execute(insert(Event).values(at="x", actor="ghost", target="item", action="import"))
        raise RuntimeError("boom")

    broken = writer.submit(half_then_fail)
    gate.set()
    assert first.result(10) == "first"
    results = [f.result(10) for f in futures]
    assert [r.version for r in results] == [1] * 10 and len({r.event_id for r in results}) == 10
    with pytest.raises(Conflict, match="no decision on item 11 at version 3"):
        stale.result(10)
    with pytest.raises(RuntimeError, match="boom"):
        broken.result(10)
    writer.close()
    assert writer.groups == 2 and writer.writes == 13  # the blocker, then everything queued behind it
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Decision)).scalar() == 10
        assert conn.execute(select(func.count()).where(Event.actor == "ghost")).scalar() == 0  # undone alone
