"""Reviewer accounts, tokens, browser sessions and one-time login links.

Tokens are 256-bit random strings (``secrets.token_urlsafe(32)``) shown once; the database keeps only
their sha256 (a fast hash is enough for secrets with this much entropy; there is nothing to guess).
A browser logs in once with its token (or a one-time link) and then carries a session cookie whose id
is also stored only as a hash. Each session has its own CSRF token, which every form and every
cookie-authenticated write must send back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from dsr.errors import DsrError
from dsr.review.db import BrowserSession, Event, LoginCode, User, now_iso, read_session, write_session

SESSION_DAYS = 7
LOGIN_CODE_MINUTES = 15
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class AuthError(DsrError):
    """A bad user name, an unknown token or an expired login link."""


@dataclass(frozen=True)
class Reviewer:
    """Who is asking (as the request handlers see it)."""

    id: int
    name: str
    is_admin: bool


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _iso_in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_user(engine: Engine, name: str, *, admin: bool = False, actor: str = "cli") -> str:
    """Create a reviewer and return their token (the only time it exists outside a hash)."""
    if not _NAME.match(name):
        raise AuthError(f"user name {name!r}: use 1-64 letters, digits or _ . @ - (starting with a letter or digit)")
    token = new_secret()
    with write_session(engine) as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise AuthError(f"user {name!r} already exists")
        user = User(name=name, token_hash=hash_secret(token), is_admin=admin)
        session.add(user)
        session.flush()
        session.add(Event(actor=actor, target="user", target_id=user.id, action="add_user",
                          after={"name": name, "is_admin": admin}))
    return token


def list_users(engine: Engine) -> list[Reviewer]:
    with read_session(engine) as session:
        return [Reviewer(u.id, u.name, u.is_admin) for u in session.scalars(select(User).order_by(User.id))]


def user_by_token(conn: Session | Connection, token: str) -> Reviewer | None:
    row = conn.execute(select(User.id, User.name, User.is_admin).where(User.token_hash == hash_secret(token))).first()
    return Reviewer(row.id, row.name, row.is_admin) if row is not None else None


def user_by_name(conn: Session | Connection, name: str) -> Reviewer | None:
    row = conn.execute(select(User.id, User.name, User.is_admin).where(User.name == name)).first()
    return Reviewer(row.id, row.name, row.is_admin) if row is not None else None


def start_session(engine: Engine, user: Reviewer) -> tuple[str, str]:
    """A new browser session for ``user``: (cookie value, csrf token)."""
    cookie, csrf = new_secret(), new_secret()
    with write_session(engine) as session:
        session.add(BrowserSession(token_hash=hash_secret(cookie), user_id=user.id, csrf=csrf,
                                   expires_at=_iso_in(timedelta(days=SESSION_DAYS))))
    return cookie, csrf


def session_user(conn: Session | Connection, cookie: str) -> tuple[Reviewer, str] | None:
    """The reviewer and CSRF token of a live session cookie, or None."""
    row = conn.execute(select(User.id, User.name, User.is_admin, BrowserSession.csrf, BrowserSession.expires_at)
                       .join(User, User.id == BrowserSession.user_id)
                       .where(BrowserSession.token_hash == hash_secret(cookie))).first()
    if row is None or row.expires_at <= now_iso():
        return None
    return Reviewer(row.id, row.name, row.is_admin), row.csrf


def end_session(engine: Engine, cookie: str) -> None:
    with write_session(engine) as session:
        sess = session.scalar(select(BrowserSession).where(BrowserSession.token_hash == hash_secret(cookie)))
        if sess is not None:
            session.delete(sess)


def new_login_code(engine: Engine, name: str) -> str:
    """A one-time login code for ``name`` (valid for LOGIN_CODE_MINUTES, usable once)."""
    code = new_secret()
    with write_session(engine) as session:
        user = user_by_name(session, name)
        if user is None:
            raise AuthError(f"no user {name!r} (add one with `dsr review user add {name}`)")
        session.add(LoginCode(code_hash=hash_secret(code), user_id=user.id,
                              expires_at=_iso_in(timedelta(minutes=LOGIN_CODE_MINUTES))))
    return code


def use_login_code(engine: Engine, code: str) -> Reviewer | None:
    """The reviewer of a valid, unused code (marking it used), else None."""
    with write_session(engine) as session:
        row = session.scalar(select(LoginCode).where(LoginCode.code_hash == hash_secret(code)))
        if row is None or row.used_at is not None or row.expires_at <= now_iso():
            return None
        row.used_at = now_iso()
        user = session.get(User, row.user_id)
        return Reviewer(user.id, user.name, user.is_admin) if user is not None else None  # type: ignore[union-attr]


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two secrets (False if either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
