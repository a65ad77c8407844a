"""The Typer application, global options, and the error boundary."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import click
import typer

from chainkit import __version__
from chainkit._upstream import UpstreamFailure, upstream_failure
from chainkit.errors import (
    ChainkitError,
    MissingAPIKeyError,
    MissingPackageError,
    MissingVariableError,
    ModelUnavailableError,
    OutputExistsError,
    UnknownChainError,
    UnknownProviderError,
    UnknownRunError,
    UnprotectedBindError,
    UserError,
    redact,
)

log = logging.getLogger("chainkit")

EXIT_CODES = (
    "Exit codes: 0 done; 1 the work failed (a model error, failed items, a server that "
    "stopped); 2 misuse (a bad option or value, a missing or unreadable input, spec or "
    "trace file, a port in use); 130 interrupted."
)

app = typer.Typer(
    name="chainkit",
    help="Compose LangChain chains, capture their streams, run them over many inputs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_state = {"verbose": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chainkit {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Log debug details; show tracebacks.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Log only errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Compose LangChain chains, capture their streams, run them over many inputs."""
    _state["verbose"] = verbose
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    configure_logging(level)


def configure_logging(level: int) -> None:
    """Log records as one line each on stderr (progress and logs never go to stdout)."""
    handler = _StderrHandler()
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("chainkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # propagation stays on: a host that embeds the CLI (or pytest caplog) still sees records


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record is logged, not when set up.

    So a redirected stderr (pytest's capture, contextlib.redirect_stderr) is honoured,
    and a closed one from an earlier redirection is never written to.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``chainkit: error: <message>`` on stderr; return the Exit to raise."""
    typer.echo(f"chainkit: error: {redact(message)}", err=True)
    return typer.Exit(code)


def describe_exception(exc: BaseException) -> tuple[str, int]:
    """One line and an exit code for any exception that reaches the CLI.

    chainkit's exceptions carry data; this is where the fix is phrased for a
    command-line user (``-i NAME=VALUE``, ``--model local``, ``chainkit chains``).
    """
    if isinstance(exc, UserError):
        return _user_fix(exc), EXIT_USAGE
    if isinstance(exc, ModelUnavailableError):
        fix = f"check that it is running and OPENAI_BASE_URL is right{_OFFLINE}"
        return f"{exc}; {fix}", EXIT_FAILED
    if isinstance(exc, ChainkitError):
        return str(exc), EXIT_FAILED
    failure = upstream_failure(exc)
    if failure is not None:
        return _upstream_line(failure), EXIT_FAILED
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__, EXIT_FAILED


_OFFLINE = ", or use --model local to run offline"


def _user_fix(exc: UserError) -> str:
    if isinstance(exc, MissingVariableError):
        it = "them" if len(exc.missing) > 1 else "it"
        return f"{exc}; pass {it}, e.g. -i {exc.missing[0]}=..."
    if isinstance(exc, UnknownChainError):
        return f"{exc}; `chainkit chains` lists them"
    if isinstance(exc, UnknownRunError):
        return f"{exc}; `chainkit trace show FILE` lists the runs"
    if isinstance(exc, MissingAPIKeyError):
        return f"{exc}; set {exc.env_var} in the environment{_OFFLINE}"
    if isinstance(exc, UnknownProviderError):
        return f"{exc}; use --model local or --model PROVIDER:MODEL (e.g. openai:gpt-4o-mini)"
    if isinstance(exc, OutputExistsError):
        return (
            f"{exc.problem}; add --resume to continue it, --overwrite to start over, "
            "or choose another --output"
        )
    if isinstance(exc, MissingPackageError):
        return f"{exc}; pip install {exc.package}"
    if isinstance(exc, UnprotectedBindError):
        if exc.token_env is not None:
            credential = f"set {exc.token_env}"
        else:  # the local model: clients send the key as their OPENAI_API_KEY
            credential = "pass --api-key KEY (clients send it as their OPENAI_API_KEY)"
        return f"{exc}; {credential}, bind 127.0.0.1, or pass --insecure to accept that"
    return str(exc)


def _upstream_line(failure: UpstreamFailure) -> str:
    where = failure.url or "the model server"
    kind = failure.upstream_type
    if failure.kind == "timeout":
        return f"the model at {where} did not answer in time ({kind}); try again later"
    if failure.kind == "unreachable":
        return (
            f"cannot reach the model at {where} ({kind}); check that the server is running "
            f"and OPENAI_BASE_URL is right{_OFFLINE}"
        )
    if failure.kind == "bad_output":
        return f"the model's answer could not be parsed ({kind}): {failure.detail}"
    if failure.kind == "status":
        line = f"the model server answered {failure.status} ({kind}): {failure.detail}"
        if failure.status in (401, 403):
            line += "; check OPENAI_API_KEY"
        elif failure.retry_after is not None:
            line += f"; it asks to retry after {failure.retry_after:g} s"
        return line
    return f"the model call failed ({kind}): {failure.detail}"


def _plain_flags(command: object) -> None:
    """On/off flags show no value type in ``--help`` (typer prints ``<bool>``)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    make_help_option = getattr(command, "get_help_option", None)
    if callable(make_help_option):  # --help is made per context, not in params

        def plain_help_option(ctx: click.Context) -> object:
            option = make_help_option(ctx)
            if option is not None:
                option.metavar = ""
            return option

        setattr(command, "get_help_option", plain_help_option)  # noqa: B010
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


def run(argv: list[str]) -> int:
    """Run the CLI on ``argv`` and return the exit code (never raises)."""
    try:
        command = typer.main.get_command(app)
        _plain_flags(command)
        result = command.main(args=argv, prog_name="chainkit", standalone_mode=False)
    except click.exceptions.Abort:
        typer.echo("chainkit: interrupted", err=True)
        return 130
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # typer >= 0.29 vendors click: its errors are its own
        if isinstance(exc, typer.Abort):
            typer.echo("chainkit: interrupted", err=True)
            return 130
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        code = getattr(exc, "exit_code", EXIT_USAGE)
        return code if isinstance(code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        typer.echo("chainkit: interrupted", err=True)
        return 130
    except Exception as exc:
        message, code = describe_exception(exc)
        if _state["verbose"]:
            log.exception("traceback")
        typer.echo(f"chainkit: error: {redact(message)}", err=True)
        return code
    return result if isinstance(result, int) else EXIT_OK
