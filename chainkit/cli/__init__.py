"""The ``chainkit`` command: thin wrappers that parse options and call the library.

Each public module in this package (``demo``, ``local``, ``chains``, ...) is a
command or command group that registers itself on :data:`app` when imported;
:func:`main` imports them all. Errors from :mod:`chainkit.errors` become one
line on stderr and an exit code (2 for a misuse, 1 for a failure of the work);
a traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from chainkit.cli._app import app, run

__all__ = ["app", "console_main", "load_commands", "main"]


def load_commands() -> None:
    """Import every command module so that each registers itself on :data:`app`."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chainkit`` console script; returns the exit code."""
    load_commands()
    return run(argv if argv is not None else sys.argv[1:])


def console_main() -> None:
    """The console script: exit with :func:`main`'s code."""
    sys.exit(main())
