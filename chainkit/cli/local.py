"""``chainkit local ...``: the embedded offline OpenAI-compatible model."""

from __future__ import annotations

from typing import Annotated

import typer

from chainkit.cli._app import app

local_app = typer.Typer(help="The embedded offline OpenAI-compatible model.", no_args_is_help=True)
app.add_typer(local_app, name="local")


@local_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8000,
    ttft: Annotated[float, typer.Option(help="Seconds before the first token.")] = 0.0,
    token_delay: Annotated[float, typer.Option(help="Seconds between tokens.")] = 0.0,
    jitter: Annotated[float, typer.Option(help="Relative jitter of the delays (0..1).")] = 0.0,
    error_rate: Annotated[
        float, typer.Option(help="Share of requests answered with 429/500/503 (0..1).")
    ] = 0.0,
    disconnect_rate: Annotated[
        float, typer.Option(help="Share of streams cut mid-way (0..1).")
    ] = 0.0,
    hang_rate: Annotated[
        float, typer.Option(help="Share of requests that never answer (0..1).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for faults and jitter.")] = 0,
    batch_delay: Annotated[
        float,
        typer.Option(help="Seconds a /v1/batches batch takes to complete (a provider's queue)."),
    ] = 0.0,
    batch_window: Annotated[
        float, typer.Option(help="Seconds before a batch expires (OpenAI's window: 24 h).")
    ] = 86400.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Require this key as 'Authorization: Bearer KEY' (clients' OPENAI_API_KEY); "
            "needed on a non-loopback --host.",
            envvar="CHAINKIT_LOCAL_API_KEY",
            show_envvar=True,
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Serve a non-loopback --host without --api-key.")
    ] = False,
    request_log: Annotated[
        bool, typer.Option(help="Serve GET /stats?log=1 (it shows every client's prompts).")
    ] = False,
    body_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a client has to send a request's whole body (else 408 and closed)."
        ),
    ] = 30.0,
) -> None:
    """Serve the local model over HTTP (point OPENAI_BASE_URL at http://HOST:PORT/v1)."""
    from chainkit.models.local import LocalModelSettings, serve_forever

    settings = LocalModelSettings(
        ttft=ttft,
        token_delay=token_delay,
        jitter=jitter,
        error_rate=error_rate,
        disconnect_rate=disconnect_rate,
        hang_rate=hang_rate,
        seed=seed,
        batch_delay=batch_delay,
        batch_window=batch_window,
    )
    serve_forever(
        host=host,
        port=port,
        settings=settings,
        api_key=api_key,
        insecure=insecure,
        request_log=request_log,
        body_timeout=body_timeout,
        on_ready=lambda line: typer.echo(line, err=True),
    )


@local_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_(
    ctx: typer.Context,
    error_rate: Annotated[
        float, typer.Option(help="Share of requests answered with 429/500/503 (0..1).")
    ] = 0.0,
    token_delay: Annotated[float, typer.Option(help="Seconds between tokens.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for faults and jitter.")] = 0,
) -> None:
    """Run a command with OPENAI_BASE_URL and OPENAI_API_KEY pointing at the local model.

    Any program written for the OpenAI API (the openai SDK, langchain_openai) runs
    offline unchanged: chainkit local exec -- python my_script.py. The command runs with
    the bin directory of the Python environment chainkit runs in first on PATH, so
    `python` there is the one that has chainkit, openai and langchain_openai installed.
    """
    import os
    import subprocess
    import sys

    from chainkit.errors import InputError
    from chainkit.models.local import LocalModelServer, LocalModelSettings

    command = list(ctx.args)
    if not command:
        raise InputError(
            "chainkit local exec needs a command, e.g. chainkit local exec -- python app.py"
        )
    settings = LocalModelSettings(error_rate=error_rate, token_delay=token_delay, seed=seed)
    with LocalModelServer(settings=settings) as server:
        env = dict(os.environ, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="chainkit-local")
        # not resolved: a venv's bin/python is a symlink out of the venv
        env_bin = os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join(p for p in (env_bin, env.get("PATH", "")) if p)
        try:
            code = subprocess.call(command, env=env)  # noqa: S603  (the user's own command)
        except FileNotFoundError:
            raise InputError(f"command not found: {command[0]!r}") from None
    raise typer.Exit(code)
