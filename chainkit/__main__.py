"""``python -m chainkit``: the same as the ``chainkit`` command."""

from chainkit.cli import console_main

console_main()
