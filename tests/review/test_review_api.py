"""The JSON API and pages through FastAPI's test client: decisions, queue, resolution, stats, audit."""

from __future__ import annotations

from typing import Any

import pytest

from dsr.review.agreement import cohen_kappa
from dsr.review.db import Event, read_session

from .conftest import ReviewDb


def _item(client: Any, db: ReviewDb, pk: int, who: str = "alice") -> dict[str, Any]:
    r = client.get(f"/api/items/{pk}", headers=db.auth(who))
    assert r.status_code == 200
    return r.json()


def _decide(client: Any, db: ReviewDb, who: str, pk: int, status: int = 200, **body: Any) -> dict[str, Any]:
    body.setdefault("version", (_item(client, db, pk, who)["mine"] or {"version": 0})["version"])
    r = client.put(f"/api/items/{pk}/decision", headers=db.auth(who), json=body)
    assert r.status_code == status, r.text
    return r.json()


def _other(letter: str, k: int = 1) -> str:
    letters = "ABCD"
    return letters[(letters.index(letter) + k) % 4]


def test_decision_lifecycle_and_audit(client: Any, review_db: ReviewDb) -> None:
    item = _item(client, review_db, 1)
    assert item["mine"] is None and "decisions" not in item  # a reviewer sees no one else's decisions
    first = _decide(client, review_db, "alice", 1, action="accept")
    assert first["created"] and first["version"] == 1 and first["decision"]["answer"] == item["answer"]
    second = _decide(client, review_db, "alice", 1, action="change_answer", answer=_other(item["answer"]))
    assert not second["created"] and second["version"] == 2 and second["id"] == first["id"]
    r = client.get(f"/api/decisions/{first['id']}", headers=review_db.auth("alice"))
    assert r.json()["action"] == "change_answer" and r.json()["version"] == 2
    with read_session(review_db.engine) as session:  # type: ignore[arg-type]
        events = session.query(Event).filter(Event.target == "decision").order_by(Event.id).all()
    assert [(e.actor, e.action) for e in events] == [("alice", "create"), ("alice", "update")]
    assert events[1].before["action"] == "accept" and events[1].after["action"] == "change_answer"
    assert events[0].id == first["event_id"] and events[1].id == second["event_id"]
    assert events[0].at < events[1].at


def test_invalid_decisions_are_422_with_a_reason(client: Any, review_db: ReviewDb) -> None:
    item = _item(client, review_db, 2)
    r = client.put("/api/items/2/decision", headers=review_db.auth("alice"),
                   json={"action": "change_answer", "answer": item["answer"], "version": 0})
    assert r.status_code == 422 and "accept instead" in r.json()["detail"]
    r = client.put("/api/items/2/decision", headers=review_db.auth("alice"), json={"action": "reject", "version": 0})
    assert r.status_code == 422 and "needs a reason" in r.json()["detail"]
    r = client.put("/api/items/2/decision", headers=review_db.auth("alice"), json={"action": "accept", "version": -1})
    assert r.status_code == 422 and "version" in r.json()["detail"]
    assert client.put("/api/items/9999/decision", headers=review_db.auth("alice"),
                      json={"action": "accept"}).status_code == 404


def test_queue_filters(client: Any, review_db: ReviewDb) -> None:
    items = client.get("/api/items", headers=review_db.auth("alice")).json()["items"]
    assert len(items) == 16 and all(i["status"] == "pending" for i in items)
    some_type = items[0]["type"]
    of_type = client.get("/api/items", params={"type": some_type}, headers=review_db.auth("alice")).json()
    assert of_type["total"] == sum(i["type"] == some_type for i in items) and of_type["total"] >= 1
    _decide(client, review_db, "alice", items[0]["pk"], action="accept")
    _decide(client, review_db, "alice", items[1]["pk"], action="reject", reason="wrong_object")
    mine = client.get("/api/items", params={"status": "rejected"}, headers=review_db.auth("alice")).json()
    assert [i["pk"] for i in mine["items"]] == [items[1]["pk"]]
    pending = client.get("/api/items", params={"status": "pending"}, headers=review_db.auth("alice")).json()
    assert pending["total"] == 14
    assert client.get("/api/items", params={"status": "pending"}, headers=review_db.auth("bob")).json()["total"] == 16
    stab = sorted(i["stability"] for i in items)
    cut = stab[len(stab) // 2]
    low = client.get("/api/items", params={"max_stability": cut}, headers=review_db.auth("alice")).json()
    assert low["total"] == sum(s <= cut for s in stab)
    by_stab = client.get("/api/items", params={"sort": "stability"}, headers=review_db.auth("alice")).json()["items"]
    assert [i["stability"] for i in by_stab] == stab
    # disagreement is an admin's filter over everyone's decisions
    _decide(client, review_db, "bob", items[0]["pk"], action="change_answer",
            answer=_other(_item(client, review_db, items[0]["pk"])["answer"]))
    dis = client.get("/api/items", params={"view": "all", "disagreement": "1"}, headers=review_db.auth("carol")).json()
    assert [i["pk"] for i in dis["items"]] == [items[0]["pk"]]
    ignored = client.get("/api/items", params={"view": "all", "disagreement": "1"}, headers=review_db.auth("bob")).json()
    assert ignored["total"] == 16  # a reviewer cannot look at other people's decisions


def test_admin_resolves_a_disagreement(client: Any, review_db: ReviewDb) -> None:
    item = _item(client, review_db, 3)
    _decide(client, review_db, "alice", 3, action="accept")
    _decide(client, review_db, "bob", 3, action="change_answer", answer=_other(item["answer"]))
    admin_view = _item(client, review_db, 3, "carol")
    assert admin_view["status"] == "disagreement" and [d["reviewer"] for d in admin_view["decisions"]] == ["alice", "bob"]
    r = client.put("/api/items/3/resolution", headers=review_db.auth("bob"), json={"action": "accept", "version": 0})
    assert r.status_code == 403
    r = client.put("/api/items/3/resolution", headers=review_db.auth("carol"),
                   json={"action": "change_answer", "answer": _other(item["answer"]), "version": 0})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert _item(client, review_db, 3, "carol")["status"] == "edited"
    r = client.put("/api/items/3/resolution", headers=review_db.auth("carol"), json={"action": "accept", "version": 0})
    assert r.status_code == 409 and r.json()["current"]["version"] == 1
    assert client.get("/api/items/3/decisions", headers=review_db.auth("alice")).status_code == 403


def test_stats_agreement_and_precision(client: Any, review_db: ReviewDb) -> None:
    gen = {pk: _item(client, review_db, pk)["answer"] for pk in range(1, 7)}
    plan = {  # item: (alice, bob)
        1: ({"action": "accept"}, {"action": "accept"}),
        2: ({"action": "accept"}, {"action": "change_answer", "answer": _other(gen[2])}),
        3: ({"action": "reject", "reason": "wrong_object"}, {"action": "reject", "reason": "not_visible"}),
        4: ({"action": "change_answer", "answer": _other(gen[4], 2)}, {"action": "change_answer", "answer": _other(gen[4], 2)}),
        5: ({"action": "flag"}, {"action": "accept"}),
        6: ({"action": "accept"}, None),
    }
    for pk, (a, b) in plan.items():
        _decide(client, review_db, "alice", pk, **a)
        if b is not None:
            _decide(client, review_db, "bob", pk, **b)
    assert client.get("/api/stats", headers=review_db.auth("alice")).status_code == 403
    stats = client.get("/api/stats", headers=review_db.auth("carol")).json()
    overall = stats["agreement"]["all"]
    # items 1-4 carry two labels (5 has one: the flag is not a judgement)
    alice = [gen[1], gen[2], "reject", _other(gen[4], 2)]
    bob = [gen[1], _other(gen[2]), "reject", _other(gen[4], 2)]
    assert (overall["items"], overall["raters"], overall["method"]) == (4, 2, "cohen")
    assert overall["kappa"] == pytest.approx(cohen_kappa(alice, bob))
    assert overall["observed"] == pytest.approx(0.75)
    # judged: 1 (agree), 3 (rejected), 4 (changed), 6 (agree); 2 disagrees, 5 is flagged
    prec = stats["precision"]["all"]
    assert (prec["judged"], prec["agree"], prec["rejected"], prec["changed"]) == (4, 2, 1, 1)
    assert prec["precision"] == pytest.approx(0.5)
    assert prec["decisions"] == 10 and prec["decisions_agree"] == 5  # alice 1, 2, 6 + bob 1, 5
    assert stats["statuses"]["all"]["disagreement"] == 1 and stats["statuses"]["all"]["flagged"] == 1
    assert stats["reject_reasons"] == {"wrong_object": 1, "not_visible": 1}
    # per type rows add up to the overall ones
    per_type = [v for k, v in stats["precision"].items() if k != "all"]
    assert sum(p["judged"] for p in per_type) == 4
    page = client.get("/stats", headers=review_db.auth("carol"))
    assert page.status_code == 200 and "cohen" in page.text


def test_pages_render_for_every_item(client: Any, review_db: ReviewDb) -> None:
    for pk in range(1, 17):
        r = client.get(f"/items/{pk}", headers=review_db.auth("alice"))
        assert r.status_code == 200
        assert "<video" in r.text and f"/media/items/{pk}/quantity.png" in r.text
        assert "content-security-policy" in r.headers and r.headers["cache-control"] == "no-store"
    item = _item(client, review_db, 1)
    assert item["question"].split("[")[0].replace("&", "&amp;") in client.get(
        "/items/1", headers=review_db.auth("alice")).text
    for path in ("/queue", "/queue?view=all&status=pending", "/audit"):
        assert client.get(path, headers=review_db.auth("carol")).status_code == 200
    assert client.get("/audit", headers=review_db.auth("alice")).status_code == 403
    r = client.get("/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
