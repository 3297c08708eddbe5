"""Everything the app and the commands do to the review database, one transaction each.

Every change writes an :class:`~dsr.review.db.Event` (who, when, before, after) in the same
transaction as the change itself, so the audit trail and the data can never disagree. Writes carry
the version the writer last saw; a stale version is a :class:`Conflict` (HTTP 409), never a silent
overwrite.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dsr.errors import DsrError
from dsr.review.auth import Reviewer
from dsr.review.db import Decision, Event, Item, Resolution, User, now_iso, read_session, write_session
from dsr.review.decisions import ItemText, Outcome, Verdict, check_verdict, item_outcome, status_of


class NotFound(DsrError):
    """No such item or decision (HTTP 404)."""


class Forbidden(DsrError):
    """The decision belongs to someone else, or the action needs an admin (HTTP 403)."""


class Conflict(DsrError):
    """The thing changed since the writer read it (HTTP 409); ``current`` is what is there now."""

    def __init__(self, message: str, current: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.current = current


# ---------------------------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """What ``dsr review import`` did, per file and in total."""

    added: int = 0
    unchanged: int = 0
    conflicting: int = 0  # same item id already imported with other content: the first import is kept
    conflict_examples: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # file → items read
    findings: Counter[str] = field(default_factory=Counter)  # lint codes (missing_video, …) → items

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "unchanged": self.unchanged, "conflicting": self.conflicting,
                "conflict_examples": self.conflict_examples, "files": self.files, "findings": dict(self.findings)}


def _json_safe(value: Any) -> Any:
    """NaN/inf → None, recursively (the database stores strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _raw_rows(path: Path, fmt: str) -> dict[str, dict[str, Any]]:
    """The file's rows by id, with our QA fields decoded (query, frames, quantity, …)."""
    if fmt == "dsr_parquet":
        from dsr.qa.export import read_bench_parquet

        rows = read_bench_parquet(path)
    else:
        text = path.read_text(encoding="utf-8")
        stripped = text.lstrip()
        if stripped.startswith("["):
            rows = json.loads(text)
        elif stripped.startswith("{") and path.suffix == ".json" and "\n{" not in stripped:
            obj = json.loads(text)
            rows = obj.get("items") or obj.get("data") or []
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row.get("qa_id") or row.get("item_id") or row.get("id")
        if key is not None:
            out[str(key)] = row
    return out


def _stability(raw: dict[str, Any]) -> float | None:
    value = raw.get("stability")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def import_files(engine: Engine, paths: Sequence[str | Path], *, videos_dir: str | Path | None = None,
                 format: str = "auto", actor: str = "cli",
                 on_file: Callable[[str, int], None] | None = None) -> ImportReport:
    """Import question files (any format :func:`dsr.evaluate.datasets.load_dataset` reads); one
    transaction per file. Re-importing an item with the same id and content is a no-op."""
    from dsr.evaluate.datasets import load_dataset

    report = ImportReport()
    for path in (Path(p) for p in paths):
        dataset = load_dataset(path, videos_dir=videos_dir, format=format, check_videos=True)
        for finding in dataset.findings:
            if finding.item_id and finding.level in ("warning", "error"):
                report.findings[finding.code] += 1
        raw = _raw_rows(path, dataset.format)
        with write_session(engine) as session:
            position = int(session.scalar(select(func.coalesce(func.max(Item.position), 0))) or 0)
            existing = {row.item_id: row for row in session.execute(
                select(Item.item_id, Item.question, Item.options, Item.answer, Item.type)
                .where(Item.item_id.in_([it.item_id for it in dataset.items])))}
            for it in dataset.items:
                old = existing.get(it.item_id)
                if old is not None:
                    same = (old.question, dict(old.options), old.answer, old.type) == (
                        it.question, dict(it.options), it.answer, it.type)
                    if same:
                        report.unchanged += 1
                    else:
                        report.conflicting += 1
                        if len(report.conflict_examples) < 5:
                            report.conflict_examples.append(it.item_id)
                    continue
                row = _json_safe(raw.get(it.item_id) or it.to_json())
                position += 1
                item = Item(item_id=it.item_id, position=position, dataset=path.name, video_id=it.video_id,
                            video_path=str(Path(it.video_path).resolve()) if it.video_path else None,
                            record_path=str(Path(it.record_path).resolve()) if it.record_path else None,
                            type=it.type, question=it.question, options=dict(it.options), answer=it.answer,
                            stability=_stability(row), visible_until_s=it.visible_until_s, qa=row)
                session.add(item)
                session.flush()
                session.add(Event(actor=actor, item_pk=item.id, target="item", target_id=item.id, action="import",
                                  after={"item_id": it.item_id, "dataset": path.name, "question": it.question,
                                         "options": dict(it.options), "answer": it.answer, "type": it.type}))
                report.added += 1
        report.files[str(path)] = len(dataset.items)
        if on_file is not None:
            on_file(str(path), len(dataset.items))
    return report


# ---------------------------------------------------------------------------------------------- decisions


def item_text(item: Item) -> ItemText:
    return ItemText(question=item.question, options=dict(item.options), answer=item.answer)


def verdict_of(row: Any) -> Verdict:
    """The verdict of a Decision/Resolution (an ORM object or a Core row with the same columns)."""
    return Verdict(action=row.action, answer=row.answer, question=row.question,
                   options=dict(row.options) if row.options is not None else None, reason=row.reason,
                   note=row.note or "")


def decision_json(row: Any, user_name: str | None = None) -> dict[str, Any]:
    out = {"id": row.id, "item": row.item_pk, "user_id": row.user_id, "version": row.version,
           "created_at": row.created_at, "updated_at": row.updated_at, **verdict_of(row).to_json()}
    if user_name is not None:
        out["reviewer"] = user_name
    return out


def resolution_json(row: Any, user_name: str | None = None) -> dict[str, Any]:
    out = {"id": row.id, "item": row.item_pk, "user_id": row.user_id, "version": row.version,
           "created_at": row.created_at, "updated_at": row.updated_at, **verdict_of(row).to_json()}
    if user_name is not None:
        out["admin"] = user_name
    return out


@dataclass(frozen=True)
class WriteResult:
    """An acknowledged write: the row's id and new version, and the event that records it."""

    id: int
    version: int
    event_id: int
    created: bool
    verdict: Verdict


_DECISIONS = Decision.__table__
_RESOLUTIONS = Resolution.__table__
_EVENTS = Event.__table__


def _item_text_of(session: Session | Connection, item_pk: int) -> ItemText:
    row = session.execute(select(Item.question, Item.options, Item.answer).where(Item.id == item_pk)).first()
    if row is None:
        raise NotFound(f"no item {item_pk}")
    return ItemText(row.question, dict(row.options), row.answer)


def _write(session: Session | Connection, table: Any, row: Any, *, user: Reviewer, item_pk: int, verdict: Verdict,
           expected_version: int) -> WriteResult:
    """Insert or update one decision/resolution row and append its event, in the caller's transaction.

    The UPDATE says ``WHERE version = <expected>`` (optimistic locking): a writer that lost a race
    changes nothing and gets a Conflict, on SQLite and on server databases alike.
    """
    kind = "decision" if table is _DECISIONS else "resolution"
    who = "your decision" if kind == "decision" else "the resolution"
    now = now_iso()
    values = {"action": verdict.action, "answer": verdict.answer, "question": verdict.question,
              "options": verdict.options, "reason": verdict.reason, "note": verdict.note, "updated_at": now}
    if row is None:
        if expected_version != 0:
            raise Conflict(f"there is no {kind} on item {item_pk} at version {expected_version} to change; "
                           f"reload the item", current=None)
        try:  # a racing INSERT of the same row fails on the unique key; the caller's transaction rolls back
            row_id = session.execute(insert(table).values(item_pk=item_pk, user_id=user.id, version=1,
                                                          created_at=now, **values)).inserted_primary_key[0]
        except IntegrityError:
            raise Conflict(f"{who} on item {item_pk} was created by another request at the same moment; nothing "
                           f"was saved — reload the item and make your change again") from None
        before, version, created = None, 1, True
    else:
        if row.version != expected_version:
            raise Conflict(f"{who} on item {item_pk} changed after you loaded it (you had version "
                           f"{expected_version}, it is now version {row.version}, saved {row.updated_at}); nothing "
                           f"was saved — reload the item and make your change again",
                           current={"version": row.version, **verdict_of(row).to_json()})
        extra = {"user_id": user.id} if table is _RESOLUTIONS else {}
        changed = session.execute(update(table).where(table.c.id == row.id, table.c.version == expected_version)
                                  .values(version=expected_version + 1, **values, **extra)).rowcount
        if changed != 1:
            raise Conflict(f"{who} on item {item_pk} was changed by another request at the same moment; nothing "
                           f"was saved — reload the item and make your change again")
        before, version, created, row_id = ({"version": row.version, **verdict_of(row).to_json()},
                                            expected_version + 1, False, row.id)
    event_id = session.execute(insert(_EVENTS).values(
        at=now, actor=user.name, user_id=user.id, item_pk=item_pk, target=kind, target_id=row_id,
        action="create" if created else "update", before=before,
        after={"version": version, **verdict.to_json()})).inserted_primary_key[0]
    return WriteResult(id=row_id, version=version, event_id=event_id, created=created, verdict=verdict)


def write_decision(session: Session | Connection, user: Reviewer, item_pk: int, verdict: Verdict,
                   expected_version: int) -> WriteResult:
    """Create (expected_version 0) or update the caller's own decision on an item, in ``session``'s
    transaction (the caller commits)."""
    # the item's text and the caller's decision (if any) in one statement
    found = session.execute(
        select(Item.question.label("item_question"), Item.options.label("item_options"),
               Item.answer.label("item_answer"), _DECISIONS)
        .outerjoin(_DECISIONS, (_DECISIONS.c.item_pk == Item.id) & (_DECISIONS.c.user_id == user.id))
        .where(Item.id == item_pk)).first()
    if found is None:
        raise NotFound(f"no item {item_pk}")
    checked = check_verdict(verdict, ItemText(found.item_question, dict(found.item_options), found.item_answer))
    return _write(session, _DECISIONS, found if found.id is not None else None, user=user, item_pk=item_pk,
                  verdict=checked, expected_version=expected_version)


def _own_decision(session: Session | Connection, user: Reviewer, decision_id: int, *, write: bool) -> Any:
    row = session.execute(select(_DECISIONS).where(_DECISIONS.c.id == decision_id)).first()
    if row is None:
        raise NotFound(f"no decision {decision_id}")
    if row.user_id != user.id and (write or not user.is_admin):
        raise Forbidden(f"decision {decision_id} belongs to another reviewer; you can "
                        f"{'change' if write else 'see'} only your own")
    return row


def write_decision_by_id(session: Session | Connection, user: Reviewer, decision_id: int, verdict: Verdict,
                         expected_version: int) -> WriteResult:
    """Change a decision by id; only its owner may (an admin resolves instead)."""
    row = _own_decision(session, user, decision_id, write=True)
    checked = check_verdict(verdict, _item_text_of(session, row.item_pk))
    return _write(session, _DECISIONS, row, user=user, item_pk=row.item_pk, verdict=checked,
                  expected_version=expected_version)


def write_resolution(session: Session | Connection, admin: Reviewer, item_pk: int, verdict: Verdict,
                     expected_version: int) -> WriteResult:
    """An admin's final word on an item (overrides the reviewers' decisions in the export)."""
    if not admin.is_admin:
        raise Forbidden("only an admin can resolve an item")
    checked = check_verdict(verdict, _item_text_of(session, item_pk), resolution=True)
    row = session.execute(select(_RESOLUTIONS).where(_RESOLUTIONS.c.item_pk == item_pk)).first()
    return _write(session, _RESOLUTIONS, row, user=admin, item_pk=item_pk, verdict=checked,
                  expected_version=expected_version)


def put_decision(engine: Engine, user: Reviewer, item_pk: int, verdict: Verdict, expected_version: int) -> WriteResult:
    """:func:`write_decision` in its own transaction."""
    with write_session(engine) as session:
        return write_decision(session, user, item_pk, verdict, expected_version)


def update_decision(engine: Engine, user: Reviewer, decision_id: int, verdict: Verdict,
                    expected_version: int) -> WriteResult:
    """:func:`write_decision_by_id` in its own transaction."""
    with write_session(engine) as session:
        return write_decision_by_id(session, user, decision_id, verdict, expected_version)


def put_resolution(engine: Engine, admin: Reviewer, item_pk: int, verdict: Verdict,
                   expected_version: int) -> WriteResult:
    """:func:`write_resolution` in its own transaction."""
    with write_session(engine) as session:
        return write_resolution(session, admin, item_pk, verdict, expected_version)


def get_decision(engine: Engine, user: Reviewer, decision_id: int) -> dict[str, Any]:
    """A decision by id: its owner (or an admin, to resolve) may read it."""
    with read_session(engine) as session:
        return decision_json(_own_decision(session, user, decision_id, write=False))


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class QueueFilter:
    """The queue page's filters. ``status`` is the viewer's own status (view "mine") or the item's
    outcome (view "all", admins)."""

    type: str | None = None
    status: str | None = None
    min_stability: float | None = None
    max_stability: float | None = None
    disagreement: bool = False
    view: str = "mine"
    sort: str = "position"

    def query_string(self) -> str:
        from urllib.parse import urlencode

        pairs = {"type": self.type, "status": self.status, "min_stability": self.min_stability,
                 "max_stability": self.max_stability, "disagreement": "1" if self.disagreement else None,
                 "view": self.view if self.view != "mine" else None, "sort": self.sort if self.sort != "position" else None}
        return urlencode({k: v for k, v in pairs.items() if v not in (None, "")})


@dataclass(frozen=True)
class QueueRow:
    pk: int
    item_id: str
    type: str
    question: str
    stability: float | None
    position: int
    status: str  # the viewer's own status, or the item's outcome in view "all"
    my_action: str | None
    decisions: int
    disagreement: bool


def _outcomes(session: Session, item_pks: Iterable[int], items: dict[int, ItemText],
              min_reviewers: int = 1) -> dict[int, Outcome]:
    pks = list(item_pks)
    decisions: dict[int, list[Verdict]] = defaultdict(list)
    resolutions: dict[int, Verdict] = {}
    for chunk in (pks[i:i + 900] for i in range(0, len(pks), 900)):
        for row in session.scalars(select(Decision).where(Decision.item_pk.in_(chunk)).order_by(Decision.id)):
            decisions[row.item_pk].append(verdict_of(row))
        for res in session.scalars(select(Resolution).where(Resolution.item_pk.in_(chunk))):
            resolutions[res.item_pk] = verdict_of(res)
    return {pk: item_outcome(items[pk], decisions.get(pk, []), resolutions.get(pk), min_reviewers=min_reviewers)
            for pk in pks}


def queue(engine: Engine, viewer: Reviewer, flt: QueueFilter) -> list[QueueRow]:
    """The items the queue shows, filtered and sorted (all of them; the page slices)."""
    view_all = flt.view == "all" and viewer.is_admin
    with read_session(engine) as session:
        stmt = select(Item.id, Item.item_id, Item.type, Item.question, Item.options, Item.answer,
                      Item.stability, Item.position)
        if flt.type:
            stmt = stmt.where(Item.type == flt.type)
        if flt.min_stability is not None:
            stmt = stmt.where(Item.stability >= flt.min_stability)
        if flt.max_stability is not None:
            stmt = stmt.where(Item.stability <= flt.max_stability)
        rows = session.execute(stmt.order_by(Item.position)).all()
        texts = {r.id: ItemText(r.question, dict(r.options), r.answer) for r in rows}
        mine = {d.item_pk: d for d in session.scalars(select(Decision).where(Decision.user_id == viewer.id))}
        counts: dict[int, int] = {}
        outcomes: dict[int, Outcome] = {}
        if viewer.is_admin:
            counts = dict(session.execute(select(Decision.item_pk, func.count()).group_by(Decision.item_pk)).all())
            outcomes = _outcomes(session, texts, texts)
    out: list[QueueRow] = []
    for r in rows:
        own = mine.get(r.id)
        own_status = status_of(verdict_of(own), texts[r.id]) if own is not None else "pending"
        outcome = outcomes.get(r.id)
        disagreement = outcome is not None and outcome.status == "disagreement"
        status = (outcome.status if outcome is not None else "pending") if view_all else own_status
        if view_all and outcome is not None and outcome.resolved:
            status = f"resolved:{status}"
        if flt.status and status != flt.status and not (flt.status == "resolved" and status.startswith("resolved:")):
            continue
        if flt.disagreement and not disagreement:
            continue
        out.append(QueueRow(pk=r.id, item_id=r.item_id, type=r.type, question=r.question, stability=r.stability,
                            position=r.position, status=status, my_action=own.action if own is not None else None,
                            decisions=counts.get(r.id, 0), disagreement=disagreement))
    if flt.sort == "stability":
        out.sort(key=lambda q: (q.stability if q.stability is not None else math.inf, q.position))
    return out


def item_types(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return sorted(t for (t,) in session.execute(select(Item.type).distinct()))


@dataclass(frozen=True)
class ItemDetail:
    """What the item page needs: the item, the viewer's decision and, for admins, everyone's."""

    item: Item
    mine: dict[str, Any] | None
    decisions: list[dict[str, Any]]  # admins only (with reviewer names)
    resolution: dict[str, Any] | None
    outcome: Outcome | None  # admins only
    events: list[dict[str, Any]]  # admins only


def item_detail(engine: Engine, viewer: Reviewer, item_pk: int) -> ItemDetail:
    with read_session(engine) as session:
        item = session.get(Item, item_pk)
        if item is None:
            raise NotFound(f"no item {item_pk}")
        own = session.scalar(select(Decision).where(Decision.item_pk == item_pk, Decision.user_id == viewer.id))
        decisions: list[dict[str, Any]] = []
        resolution = None
        outcome = None
        events: list[dict[str, Any]] = []
        res_row = session.execute(select(Resolution, User.name).join(User, User.id == Resolution.user_id)
                                  .where(Resolution.item_pk == item_pk)).first()
        if viewer.is_admin:
            rows = session.execute(select(Decision, User.name).join(User, User.id == Decision.user_id)
                                   .where(Decision.item_pk == item_pk).order_by(Decision.id)).all()
            decisions = [decision_json(d, name) for d, name in rows]
            resolution = resolution_json(*res_row) if res_row is not None else None
            outcome = item_outcome(item_text(item), [verdict_of(d) for d, _ in rows],
                                   verdict_of(res_row[0]) if res_row is not None else None)
            events = [event_json(e) for e in session.scalars(select(Event).where(Event.item_pk == item_pk)
                                                             .order_by(Event.id))]
        elif res_row is not None:
            resolution = {"resolved": True}  # reviewers learn only that an admin closed the item
        return ItemDetail(item=item, mine=decision_json(own) if own is not None else None, decisions=decisions,
                          resolution=resolution, outcome=outcome, events=events)


def item_json(item: Item) -> dict[str, Any]:
    return {"id": item.id, "item_id": item.item_id, "type": item.type, "video_id": item.video_id,
            "question": item.question, "options": dict(item.options), "answer": item.answer,
            "stability": item.stability, "visible_until_s": item.visible_until_s, "dataset": item.dataset}


def event_json(event: Event) -> dict[str, Any]:
    return {"id": event.id, "at": event.at, "actor": event.actor, "user_id": event.user_id, "item": event.item_pk,
            "target": event.target, "target_id": event.target_id, "action": event.action, "before": event.before,
            "after": event.after}


def list_events(engine: Engine, *, after_id: int = 0, limit: int = 500, item_pk: int | None = None) -> list[dict[str, Any]]:
    with read_session(engine) as session:
        stmt = select(Event).where(Event.id > after_id)
        if item_pk is not None:
            stmt = stmt.where(Event.item_pk == item_pk)
        return [event_json(e) for e in session.scalars(stmt.order_by(Event.id).limit(limit))]


def _queue_key(row: QueueRow, sort: str) -> tuple[float, int]:
    if sort == "stability":
        return (row.stability if row.stability is not None else math.inf, row.position)
    return (0.0, row.position)


def next_item(engine: Engine, viewer: Reviewer, flt: QueueFilter, current_pk: int) -> int | None:
    """The item after ``current_pk`` in the filtered queue's order (wrapping), or None when none is left.

    The current item may have left the filter (e.g. "pending" once decided): its place is kept by its
    sort key, so the reviewer moves on instead of jumping back to the start.
    """
    rows = queue(engine, viewer, flt)
    with read_session(engine) as session:
        current = session.execute(select(Item.stability, Item.position).where(Item.id == current_pk)).first()
    if current is None:
        return rows[0].pk if rows else None
    key = ((current.stability if current.stability is not None else math.inf) if flt.sort == "stability" else 0.0,
           current.position)
    for row in rows:
        if _queue_key(row, flt.sort) > key:
            return row.pk
    others = [row.pk for row in rows if row.pk != current_pk]
    return others[0] if others else None
