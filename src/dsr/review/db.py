"""The review database: tables, engine set-up and transactions (SQLAlchemy 2.x).

SQLite is the embedded default (a file path); any SQLAlchemy URL (``postgresql://…``) works too.
SQLite runs in WAL mode with ``synchronous=FULL``: a commit is on disk before the server answers, so a
``kill -9`` (or a power cut) never loses an acknowledged write. Writes take the database lock at the
start of their transaction (``BEGIN IMMEDIATE``), so a read-then-write never fails half-way with
"database is locked" and the version check of a decision is atomic with its update.

Tables: ``users``, ``sessions`` (browser logins), ``login_codes`` (one-time links), ``items`` (the
questions as imported), ``decisions`` (one per item and reviewer), ``resolutions`` (one per item, by
an admin), ``events`` (the audit trail: append-only, enforced by triggers), ``meta`` (schema version).
Times are UTC ISO-8601 strings with microseconds (sortable and the same on every backend).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dsr.errors import DsrError

SCHEMA_VERSION = 1


class ReviewDbError(DsrError):
    """A review database that cannot be opened or was written by a newer dsr."""


def now_iso() -> str:
    """The current UTC time, ISO-8601 with microseconds and a Z (sorts as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Base(DeclarativeBase):
    pass


class User(Base):
    """A reviewer. Only the sha256 of the token is stored (tokens are 256-bit random strings)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(String(32), default=now_iso)


class BrowserSession(Base):
    """A login from the form: the cookie holds a random id whose sha256 is stored; ``csrf`` guards forms."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32), default=now_iso)
    expires_at: Mapped[str] = mapped_column(String(32))


class LoginCode(Base):
    """A one-time login link (``dsr review serve --login-as NAME``): hashed, short-lived, used once."""

    __tablename__ = "login_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Item(Base):
    """One question as imported. ``qa`` keeps the whole source row (our QA fields: query, frames,
    quantity, generator …) so the export can write it back; ``video_path`` is absolute."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(512), unique=True)
    position: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(512))
    video_id: Mapped[str] = mapped_column(String(512))
    video_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    record_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    type: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, str]] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(String(8))
    stability: Mapped[float | None] = mapped_column(Float, nullable=True)
    visible_until_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    qa: Mapped[dict[str, Any]] = mapped_column(JSON)
    imported_at: Mapped[str] = mapped_column(String(32), default=now_iso)

    __table_args__ = (Index("ix_items_type", "type"), Index("ix_items_stability", "stability"),
                      Index("ix_items_position", "position"))


class Decision(Base):
    """A reviewer's current decision on an item; ``version`` counts its writes (optimistic locking)."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("items.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    answer: Mapped[str | None] = mapped_column(String(8), nullable=True)
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[str] = mapped_column(String(32), default=now_iso)
    updated_at: Mapped[str] = mapped_column(String(32), default=now_iso)

    __table_args__ = (UniqueConstraint("item_pk", "user_id", name="uq_decision_item_user"),
                      Index("ix_decisions_user", "user_id"))


class Resolution(Base):
    """An admin's final word on an item (overrides its decisions); one per item, versioned."""

    __tablename__ = "resolutions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_pk: Mapped[int] = mapped_column(ForeignKey("items.id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    answer: Mapped[str | None] = mapped_column(String(8), nullable=True)
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[str] = mapped_column(String(32), default=now_iso)
    updated_at: Mapped[str] = mapped_column(String(32), default=now_iso)


class Event(Base):
    """One change, forever: who (``actor``), when, what (``target``/``target_id``, ``action``), before, after."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(32), default=now_iso)
    actor: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    item_pk: Mapped[int | None] = mapped_column(ForeignKey("items.id"), nullable=True)
    target: Mapped[str] = mapped_column(String(32))  # item, decision, resolution, user
    target_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_events_item", "item_pk"),)


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# Append-only audit trail: the database itself refuses to change or drop an event.
_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION dsr_events_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'events are append-only'; END $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS events_append_only ON events",
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION dsr_events_append_only()",
    ],
}


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL: ``db`` itself when it has a scheme, else a SQLite file path."""
    text_db = str(db)
    if "://" in text_db:
        return text_db
    return f"sqlite:///{Path(text_db).expanduser().resolve()}"


def make_engine(db: str | Path, *, synchronous: str = "FULL") -> Engine:
    """An engine for ``db`` (a file path → SQLite in WAL mode, or a URL).

    ``synchronous``: SQLite's PRAGMA; FULL (default) survives power loss, NORMAL only process crashes.
    """
    url = database_url(db)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ReviewDbError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                           pool_size=16, max_overflow=32)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below issues BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("dsr_write") else "BEGIN")

    return engine


def init_db(engine: Engine) -> None:
    """Create the tables and triggers if missing; refuse a database from a newer schema."""
    Base.metadata.create_all(engine)
    with write_session(engine) as session:
        conn = session.connection()
        for statement in _APPEND_ONLY.get(engine.dialect.name, []):
            conn.exec_driver_sql(statement)
        row = session.get(Meta, "schema_version")
        if row is None:
            session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(row.value) > SCHEMA_VERSION:
            raise ReviewDbError(f"review database schema v{row.value} is newer than this dsr's v{SCHEMA_VERSION}")


def open_db(db: str | Path, *, create: bool = True, synchronous: str = "FULL") -> Engine:
    """The engine of an existing (or, with ``create``, new) review database, schema checked."""
    url = database_url(db)
    if url.startswith("sqlite:///"):
        file = Path(url[len("sqlite:///"):])
        if not create and not file.is_file():
            raise ReviewDbError(f"{db}: review database not found (create it with `dsr review import`)")
        file.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db, synchronous=synchronous)
    try:
        init_db(engine)
    except Exception as exc:
        if isinstance(exc, ReviewDbError):
            raise
        raise ReviewDbError(f"{db}: cannot open review database ({exc.__class__.__name__}: {exc})") from None
    return engine


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start and commits on success."""
    with Session(engine.execution_options(dsr_write=True), expire_on_commit=False) as session, session.begin():
        yield session


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only session (its snapshot is consistent; nothing is committed)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session

