"""The ``chainkit`` command: thin wrappers that parse options and call the library.

Each command group lives in its own module here and registers itself on
:data:`app`. Errors from :mod:`chainkit.errors` become one line on stderr and an
exit code (2 for a misuse, 1 for a failure of the work); a traceback is shown
only with ``--verbose``.
"""

from __future__ import annotations

import sys

from chainkit.cli._app import app, run

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chainkit`` console script; returns the exit code."""
    from chainkit.cli import (  # noqa: F401  (importing registers the commands)
        demo,
        local,
    )

    return run(argv if argv is not None else sys.argv[1:])
