"""Every place chainkit touches private LangChain or openai internals, in one module.

chainkit is built on LangChain's public interfaces. A few things it does
(capture an event stream beside ``astream_events``, parse chunks without a
thread hop, name a missing variable, describe a model, swap an SDK client,
attach handlers for a block) need a name that starts with an underscore, or a
module LangChain calls internal. Each such *seam* is here, with why it is
needed and what breaks when an upgrade changes it; ``tests/test_compat.py``
has one test per seam, named after it, that fails on the upgrade that breaks it
(and ``make test`` runs the chains and callbacks tests against the lowest
langchain-core and langchain-openai ``pyproject.toml`` allows).

Seams
-----
``tap``
    ``StreamingCallbackHandler`` (``langchain_core.tracers._streaming``) and
    ``child_config()`` (``var_child_runnable_config``). LangChain calls
    ``tap_output_aiter``/``tap_output_iter`` on the *first* handler of a
    streamed run that is a ``_StreamingCallbackHandler``; ``EventCapture``
    implements that protocol and, to coexist with other tapping handlers (the
    ``astream_events`` tracer, a second ``EventCapture``), finds them in the
    child config LangChain sets around the tap. Breaks: no ``on_*_stream``
    events in an ``EventCapture`` trace, or only one of two tapping handlers
    sees the chunks.
``parser_atransform`` and ``parser_diff``
    chainkit's inline parsers override ``_atransform`` (what
    ``BaseTransformOutputParser.atransform`` drives) to parse chunks on the
    event loop instead of hopping to a thread per chunk, and call the JSON
    parser's ``_diff`` for ``diff=True``. Breaks: streamed parsers go back to
    the stock (slower) path, or ``diff=True`` fails.
``prompt_validate_input``
    ``ChainPromptTemplate`` overrides ``BasePromptTemplate._validate_input``
    (called with the input before formatting) to raise ``MissingVariableError``
    naming the chain and the variable. Breaks: a missing variable raises
    LangChain's ``KeyError`` text instead of chainkit's typed error.
``identifying_params``
    ``BaseLanguageModel._identifying_params``: the model's parameters as
    LangChain reports them (model name, temperature, ...); the runner records
    them to tell whether a resumed file came from the same model. Breaks:
    resume cannot compare models (they look the same).
``sdk_root``
    ``resource._client``: the ``openai.AsyncOpenAI``/``OpenAI`` an SDK resource
    (``client.chat.completions``) belongs to; langchain-openai's completions
    models keep only the resource. Breaks: the HTTP seam cannot find the client
    to resize or rebind, and models keep their own pools.
``configure_hook``
    ``langchain_core.tracers.context.register_configure_hook``: LangChain adds
    the handler held by a registered context variable to every call's
    callbacks. ``capture()`` registers a fixed set once, at import (the
    function appends to a global list each call). Breaks: ``with capture()``
    records nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_core.tracers.context import register_configure_hook

__all__ = [
    "SEAMS",
    "SeamError",
    "StreamingCallbackHandler",
    "child_config",
    "identifying_params",
    "parser_diff",
    "private_override",
    "register_context_handler",
    "sdk_root",
]

F = TypeVar("F", bound=Callable[..., Any])

SEAMS = (
    "tap",
    "parser_atransform",
    "parser_diff",
    "prompt_validate_input",
    "identifying_params",
    "sdk_root",
    "configure_hook",
)
"""The names of the seams above (each has a test in ``tests/test_compat.py``)."""


class SeamError(ImportError):
    """An installed LangChain or openai no longer has what a seam needs."""

    def __init__(self, seam: str, what: str) -> None:
        self.seam = seam
        self.what = what
        super().__init__(
            f"chainkit's compat seam {seam!r} needs {what}, which the installed "
            f"LangChain/openai does not have (see chainkit/_compat.py)"
        )


# -- tap ---------------------------------------------------------------------

StreamingCallbackHandler = _StreamingCallbackHandler
"""The output-tap protocol LangChain drives (``tap_output_aiter``/``tap_output_iter``)."""


def child_config() -> RunnableConfig | None:
    """The config LangChain set for the children of the running step (tap seam)."""
    return var_child_runnable_config.get()


# -- parser_atransform, prompt_validate_input ---------------------------------


def private_override(base: type, name: str, seam: str) -> Callable[[F], F]:
    """Mark a method as overriding ``base``'s private ``name`` (the seam ``seam``).

    Checked when the class is defined: if ``base`` lost ``name``, importing
    chainkit fails with a :class:`SeamError` naming the seam, instead of the
    override silently never being called.
    """
    if not callable(getattr(base, name, None)):
        raise SeamError(seam, f"{base.__module__}.{base.__qualname__}.{name}")

    def mark(method: F) -> F:
        return method

    return mark


# -- parser_diff ---------------------------------------------------------------


def parser_diff(parser: Any, prev: Any, current: Any) -> Any:
    """The JSON parser's ``diff=True`` output between two partial parses."""
    return parser._diff(prev, current)


# -- identifying_params --------------------------------------------------------


def identifying_params(model: Any) -> dict[str, Any]:
    """The parameters LangChain reports for ``model`` (``{}`` when it cannot say)."""
    try:
        return dict(model._identifying_params)
    except Exception:  # noqa: BLE001 - a model that cannot describe itself is described by type
        return {}


# -- sdk_root ------------------------------------------------------------------


def sdk_root(resource: Any) -> Any:
    """The openai client an SDK resource (``client.chat.completions``) belongs to, or None."""
    return getattr(resource, "_client", None)


# -- configure_hook --------------------------------------------------------------


def register_context_handler(var: ContextVar[Any]) -> None:
    """Make LangChain add the handler held by ``var`` to every call's callbacks.

    Call once per variable (LangChain appends to a global list on every call).
    """
    register_configure_hook(var, inheritable=True)
