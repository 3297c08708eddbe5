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
    """Console entry point: run the app, turning user errors into one line on stderr."""
    try:
        code = app(args=argv, standalone_mode=False)
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
    except Exception as exc:  # click usage errors carry their own message and exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
