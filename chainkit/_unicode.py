"""Text that cannot be encoded: find a lone surrogate in data read from outside.

JSON may spell a UTF-16 half on its own (``"\\ud800"``); Python's ``json`` reads it
into a ``str`` that no UTF-8 encoder accepts, so it fails far from where it came
in (a model call, a results file). Boundaries check their input with
:func:`lone_surrogate_at` and refuse it there, naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["lone_surrogate_at"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate_at(value: Any, root: str = "") -> str | None:
    """The path (``input.topic``, ``inputs[2]``) of the first string or key in ``value``
    holding a lone surrogate, or ``None`` when every string encodes.

    Walks dicts, lists and tuples iteratively, so any nesting depth is safe.
    """
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return path or "(value)"
        elif isinstance(item, Mapping):
            children = []
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    return f"{path}.<key {key.encode('utf-8', 'backslashreplace').decode()}>"
                children.append((name, child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None
