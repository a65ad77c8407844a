"""``python -m chainkit.models.local``: serve the local model without the CLI's imports.

Options: ``--host``, ``--port`` (0 picks a free one), ``--api-key`` (required
as a bearer token; needed on a non-loopback host unless ``--insecure``),
``--request-log`` (serve ``/stats?log=1``), ``--idle-timeout``, ``--body-timeout``
(seconds a request's whole body may take to arrive, else a 408), and any
``LocalModelSettings`` field as ``--name value`` (e.g. ``--token-delay 0.01``).
The listening line goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from chainkit.errors import ChainkitError
from chainkit.models.local import LocalModelSettings, serve_forever
from chainkit.models.local._background import IDLE_TIMEOUT
from chainkit.models.local._serving import BODY_TIMEOUT
from chainkit.models.local._settings import coerce


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chainkit.models.local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--request-log", action="store_true")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT)
    parser.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT)
    for field in dataclasses.fields(LocalModelSettings):
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(LocalModelSettings)}
    try:
        changes = {k: coerce(k, v) for k, v in given.items() if v is not None}
        settings = LocalModelSettings(**changes)
        serve_forever(
            host=args.host,
            port=args.port,
            settings=settings,
            api_key=args.api_key,
            insecure=args.insecure,
            request_log=args.request_log,
            idle_timeout=args.idle_timeout,
            body_timeout=args.body_timeout,
            on_ready=lambda line: print(line, file=sys.stderr, flush=True),  # noqa: T201
        )
    except ChainkitError as exc:
        # a command line, like `chainkit local serve`: the CLI phrases the fix
        from chainkit.cli._app import describe_exception

        message, code = describe_exception(exc)
        print(f"error: {message}", file=sys.stderr)  # noqa: T201
        return code
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
