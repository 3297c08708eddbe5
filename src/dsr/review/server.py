"""Run the review app with uvicorn (``dsr review serve``)."""

from __future__ import annotations

import webbrowser
from pathlib import Path

from dsr.review.auth import new_login_code
from dsr.review.db import open_db


def serve(db: str | Path, *, host: str = "127.0.0.1", port: int = 8765, login_as: str | None = None,
          open_browser: bool = False, access_log: bool = False, secure_cookies: bool = False) -> None:
    """Serve ``db`` until interrupted. ``login_as``: print a one-time login link for that user.

    The access log is off by default: it would repeat the one-time link, and each line costs time.
    """
    import uvicorn

    from dsr.review.app import create_app

    engine = open_db(db, create=False)
    app = create_app(engine, secure_cookies=secure_cookies)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    print(f"dsr review: {db} at {url}/  (Ctrl+C stops)", flush=True)
    target = f"{url}/queue"
    if login_as:
        target = f"{url}/login?code={new_login_code(engine, login_as)}"
        print(f"log in as {login_as} (one-time link, valid 15 minutes): {target}", flush=True)
    if open_browser:
        webbrowser.open(target)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=access_log)
