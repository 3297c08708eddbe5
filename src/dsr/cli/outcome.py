"""The exit-code policy of every ``dsr`` command, in one place (README, "Exit codes").

* ``0`` — everything asked for was done;
* ``1`` — some items failed: the command printed a one-line summary (how many, why) and kept the rest;
* ``2`` — a user error (bad flag, bad file), or nothing succeeded.

Batch commands count what succeeded and what failed and call :func:`finish`; user errors raise
:class:`dsr.errors.DsrError`, which :func:`dsr.cli.main` turns into one line and code 2.
"""

from __future__ import annotations

import typer

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_FAILED = 2


def exit_code(ok: int, failed: int) -> int:
    """The policy: 0 if nothing failed, 1 if some items failed and some succeeded, 2 if none succeeded."""
    if failed < 0 or ok < 0:
        raise ValueError(f"counts must be >= 0, got ok={ok}, failed={failed}")
    if failed == 0:
        return EXIT_OK
    return EXIT_PARTIAL if ok > 0 else EXIT_FAILED


def failure_line(ok: int, failed: int, what: str = "items", detail: str = "") -> str:
    """'3 of 10 items failed (missing_video: 2, timeout: 1)'; 'nothing succeeded: ...' when all failed."""
    text = f"{failed} of {ok + failed} {what} failed" + (f" ({detail})" if detail else "")
    return text if ok else f"nothing succeeded: {text}"


def finish(ok: int, failed: int, *, what: str = "items", detail: str = "", line: str | None = None,
           summary: bool = True) -> None:
    """Exit by the policy. When something failed, first print one summary line on stderr (``line``, or
    :func:`failure_line` of the counts; ``summary=False`` when the one item's own error line already said
    it all); when nothing failed, return and let the command end normally."""
    code = exit_code(ok, failed)
    if code == EXIT_OK:
        return
    if summary:
        typer.echo(f"error: {line or failure_line(ok, failed, what, detail)}", err=True)
    raise typer.Exit(code=code)
