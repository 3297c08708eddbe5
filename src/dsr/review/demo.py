"""The review database of ``make demo``: the demo's questions and an admin account "demo"."""

from __future__ import annotations

from pathlib import Path

from dsr.review.auth import add_user, list_users
from dsr.review.db import ReviewDbError, open_db
from dsr.review.store import import_files

DEMO_USER = "demo"


def build_demo_database(qas: str | Path, db: str | Path) -> tuple[int, str]:
    """Import ``qas`` into ``db`` (idempotent) with an admin "demo"; returns (items added, open command).

    The demo user's token is not kept anywhere: the printed command logs in with a one-time link.
    """
    from sqlalchemy.exc import SQLAlchemyError

    engine = open_db(db)
    try:
        report = import_files(engine, [qas], actor="demo")
        if DEMO_USER not in {u.name for u in list_users(engine)}:
            add_user(engine, DEMO_USER, admin=True, actor="demo")
    except SQLAlchemyError as exc:
        raise ReviewDbError(f"{db}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None
    finally:
        engine.dispose()
    return report.added, f"dsr review serve --db {db} --login-as {DEMO_USER} --open"
