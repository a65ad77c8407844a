"""``python -m chainkit.cli``: the same as the ``chainkit`` command."""

from chainkit.cli import console_main

console_main()
