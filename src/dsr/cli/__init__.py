"""The ``dsr`` command. Each stage registers its commands from its own module in this package.

Command modules import heavy dependencies inside the command functions, so ``dsr --help`` is fast.
User errors (:class:`dsr.errors.DsrError`) print one line and exit with code 2, without a traceback.
"""

from __future__ import annotations

import sys

import typer

from dsr.errors import DsrError

app = typer.Typer(
    name="dsr",
    help="Dynamic spatial reasoning: 4D scene records, synthetic worlds, questions, evaluation, GSM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Dynamic spatial reasoning: 4D scene records, synthetic worlds, questions, evaluation, GSM."""


def _register() -> None:
    from dsr.cli import audit, demo, evaluate, extract, gsm, pipeline, qa, review, scene, world

    for module in (scene, world, extract, qa, pipeline, evaluate, audit, gsm, review, demo):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app; user errors become one line on stderr and exit code 2.

    Exit codes follow :mod:`dsr.cli.outcome`: 0 all went well, 1 some items failed, 2 a user error
    (a mistyped option included: typer's one-line usage message, never a traceback) or nothing succeeded.
    """
    try:
        code = app(args=argv, prog_name="dsr", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except DsrError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except _usage_errors() as exc:  # bad or unknown options: the usage line and the message, code 2
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Typer's own usage-error base (typer >= 0.17 ships its own click) and click's, whichever exist."""
    kinds: list[type[BaseException]] = []
    if isinstance(getattr(typer, "TyperException", None), type):
        kinds.append(typer.TyperException)
    try:
        import click

        kinds.append(click.ClickException)
    except ImportError:  # pragma: no cover - typer without click
        pass
    return tuple(kinds)


if __name__ == "__main__":
    main()
