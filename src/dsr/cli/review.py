"""CLI of the review stage: ``dsr review import | serve | export | user add | user list``."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

review_app = typer.Typer(help="Verify and fix benchmark questions in a web app, with an audit trail.",
                         no_args_is_help=True)
user_app = typer.Typer(help="Reviewer accounts.", no_args_is_help=True)
review_app.add_typer(user_app, name="user")

DB_OPTION_HELP = "Review database: a SQLite file, or a SQLAlchemy URL (postgresql://…)."


@review_app.command("import")
def import_cmd(
    qas: list[Path] = typer.Argument(..., help="Question files: QA export JSONL, DSR-Bench parquet, VLM4D JSON, plain."),
    db: str = typer.Option("review.db", "--db", help=DB_OPTION_HELP),
    videos: Path | None = typer.Option(None, "--videos", help="Folder holding the videos (DSR-Bench: {videoID}.mp4)."),
    format: str = typer.Option("auto", "--format", help="auto, dsr_parquet, qa_jsonl, plain, vlm4d."),
) -> None:
    """Add questions to the review database (creating it); items already there are left alone."""
    from rich.progress import Progress

    from dsr.review.db import open_db
    from dsr.review.store import import_files

    engine = open_db(db)
    with Progress(transient=True) as progress:
        task = progress.add_task("importing", total=len(qas))
        report = import_files(engine, qas, videos_dir=videos, format=format, actor=f"cli:{getpass.getuser()}",
                              on_file=lambda _p, _n: progress.advance(task))
    typer.echo(f"{db}: {report.added} item(s) added, {report.unchanged} already there"
               + (f", {report.conflicting} with an id already imported with other content (kept the first; "
                  f"e.g. {', '.join(report.conflict_examples)})" if report.conflicting else ""))
    for code, n in sorted(report.findings.items()):
        typer.echo(f"  lint {code}: {n} item(s)")


@review_app.command("serve")
def serve_cmd(
    db: str = typer.Option("review.db", "--db", help=DB_OPTION_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    login_as: str | None = typer.Option(None, "--login-as", help="Print a one-time login link for this user."),
    open_browser: bool = typer.Option(False, "--open", help="Open the (login) page in a browser."),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log every request."),
    secure_cookies: bool = typer.Option(False, "--secure-cookies", help="Mark cookies Secure (behind HTTPS)."),
) -> None:
    """Run the review app."""
    from dsr.review.server import serve

    serve(db, host=host, port=port, login_as=login_as, open_browser=open_browser, access_log=access_log,
          secure_cookies=secure_cookies)


@review_app.command("export")
def export_cmd(
    db: str = typer.Option("review.db", "--db", help=DB_OPTION_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="refined.parquet (DSR-Bench schema) or refined.jsonl."),
    min_reviewers: int = typer.Option(1, "--min-reviewers", help="Decisions an unresolved item needs."),
) -> None:
    """Write the accepted and edited items with provenance (reviewers, decisions, times)."""
    from dsr.review.db import open_db
    from dsr.review.export import export_reviewed

    report = export_reviewed(open_db(db, create=False), out, min_reviewers=min_reviewers)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
    typer.echo(f"{out}: {report.written} item(s) written ({statuses})")


@user_app.command("add")
def user_add_cmd(
    name: str = typer.Argument(..., help="Reviewer name."),
    admin: bool = typer.Option(False, "--admin", help="May resolve disagreements and see statistics."),
    db: str = typer.Option("review.db", "--db", help=DB_OPTION_HELP),
) -> None:
    """Create a reviewer and print their token (shown only this once; the database keeps a hash)."""
    from dsr.review.auth import add_user
    from dsr.review.db import open_db

    token = add_user(open_db(db), name, admin=admin, actor=f"cli:{getpass.getuser()}")
    typer.echo(token)
    typer.echo(f"(token of {name}{' (admin)' if admin else ''}: shown once, not stored; log in with it at /login)",
               err=True)


@user_app.command("list")
def user_list_cmd(db: str = typer.Option("review.db", "--db", help=DB_OPTION_HELP)) -> None:
    """List reviewers."""
    from dsr.review.auth import list_users
    from dsr.review.db import open_db

    for user in list_users(open_db(db, create=False)):
        typer.echo(f"{user.name}{'  admin' if user.is_admin else ''}")


def register(app: typer.Typer) -> None:
    """Add ``review`` to ``app``."""
    app.add_typer(review_app, name="review")
