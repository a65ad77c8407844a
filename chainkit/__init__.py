"""chainkit: compose LangChain chains, capture their streams, run them over many inputs.

The public API is small and re-exported here lazily, so that importing a
light submodule (``chainkit.models.local``, the offline model server) does not
load LangChain.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from chainkit.chains import get_chain, make_chain
    from chainkit.models import load_llm, load_model

__all__ = ["__version__", "get_chain", "load_llm", "load_model", "make_chain"]

_LAZY = {
    "get_chain": "chainkit.chains",
    "make_chain": "chainkit.chains",
    "load_llm": "chainkit.models",
    "load_model": "chainkit.models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chainkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
