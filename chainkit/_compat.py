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
``chat_payload``
    ``BaseChatOpenAI._get_request_payload`` and ``_use_responses_api``: the body
    ChatOpenAI sends for some messages and bound kwargs, and whether it would use
    the Responses API. The provider batch backend writes these bodies into batch
    files. Breaks: batch requests differ from what ``invoke`` sends.
``chat_result``
    ``BaseChatOpenAI._create_chat_result`` plus what ``BaseChatModel``
    ``_generate_with_cache`` does after it (``_gen_info_and_msg_metadata``,
    ``_update_message_content_to_blocks``, ``LC_ID_PREFIX`` ids): the message
    ``invoke`` returns for a reply body. Breaks: a batch output differs from
    ``invoke``'s for the same reply.
``sdk_parse``
    ``openai.lib._parsing`` (``type_to_response_format_param``,
    ``validate_input_tools``, ``parse_chat_completion``): what
    ``client.chat.completions.parse`` does to a request with a
    ``response_format`` and to its reply (ChatOpenAI uses ``parse`` for
    structured output). Breaks: structured-output chains on the batch backend.
``configure_hook``
    ``langchain_core.tracers.context.register_configure_hook``: LangChain adds
    the handler held by a registered context variable to every call's
    callbacks. ``capture()`` registers a fixed set once, at import (the
    function appends to a global list each call). Breaks: ``with capture()``
    records nothing.
``lean_client``
    What langchain-openai calls on a chat model's ``async_client`` (the SDK's
    ``chat.completions`` resource): ``create(**payload)`` or
    ``with_raw_response.create(**payload)`` (then ``.parse()``, ``.headers``),
    taking a plain dict answer and plain dict chunks as well as the SDK's
    objects. The lean path (``chainkit/models/_lean.py``) stands in for that
    resource; nothing here wraps it, the test pins the protocol. Breaks: the
    lean path's answers are refused, or ``load_model``'s models stop working.
``astream_log``
    ``Runnable.astream_log`` is deprecated (langchain-core 1.3.3, removal in 2.0)
    but LangServe's clients call ``POST stream_log``; the service runs it inside
    ``langchain_core._api.suppress_langchain_deprecation_warning()`` (a context
    variable: only that task is silenced). Breaks: the first ``stream_log`` after
    start-up emits a ``LangChainDeprecationWarning`` (an error under ``-W error``),
    or, from 2.0, ``stream_log`` answers an error event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable, RunnableConfig
    from langchain_core.tracers._streaming import (
        _StreamingCallbackHandler as StreamingCallbackHandler,
    )

# LangChain is imported by each seam when used, never at import: `chainkit.models`
# imports this module, and the local model under it runs without LangChain.

__all__ = [
    "SEAMS",
    "SeamError",
    "StreamingCallbackHandler",
    "astream_log",
    "chat_payload",
    "chat_result_message",
    "child_config",
    "identifying_params",
    "parser_diff",
    "private_override",
    "register_context_handler",
    "sdk_parse",
    "sdk_response_format",
    "sdk_root",
    "sdk_tools",
    "uses_responses_api",
]

F = TypeVar("F", bound=Callable[..., Any])

SEAMS = (
    "tap",
    "parser_atransform",
    "parser_diff",
    "prompt_validate_input",
    "identifying_params",
    "sdk_root",
    "chat_payload",
    "chat_result",
    "sdk_parse",
    "configure_hook",
    "lean_client",
    "astream_log",
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


def __getattr__(name: str) -> Any:
    if name == "StreamingCallbackHandler":
        # The output-tap protocol LangChain drives (tap_output_aiter/tap_output_iter).
        from langchain_core.tracers._streaming import _StreamingCallbackHandler

        return _StreamingCallbackHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def child_config() -> RunnableConfig | None:
    """The config LangChain set for the children of the running step (tap seam)."""
    from langchain_core.runnables.config import var_child_runnable_config

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


# -- chat_payload ----------------------------------------------------------------


def chat_payload(model: Any, value: Any, stop: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request ChatOpenAI builds for ``value`` (messages or a prompt) and bound kwargs."""
    payload: dict[str, Any] = model._get_request_payload(value, stop=stop, **kwargs)
    return payload


def uses_responses_api(model: Any, payload: dict[str, Any]) -> bool:
    """Whether ChatOpenAI would send ``payload`` to the Responses API."""
    return bool(model._use_responses_api(payload))


# -- chat_result ---------------------------------------------------------------------


def chat_result_message(model: Any, response: Any) -> Any:
    """The message ``invoke`` returns when ChatOpenAI's ``_generate`` got ``response``."""
    import uuid

    from langchain_core.language_models._utils import _update_message_content_to_blocks
    from langchain_core.language_models.chat_models import _gen_info_and_msg_metadata
    from langchain_core.utils.utils import LC_ID_PREFIX

    result = model._create_chat_result(response, {})
    generation = result.generations[0]
    if model.output_version == "v1":
        generation.message = _update_message_content_to_blocks(generation.message, "v1")
    if generation.message.id is None:
        generation.message.id = f"{LC_ID_PREFIX}-{uuid.uuid4()}-0"
    generation.message.response_metadata = _gen_info_and_msg_metadata(generation)
    if len(result.generations) == 1 and result.llm_output is not None:
        generation.message.response_metadata = {
            **result.llm_output,
            **generation.message.response_metadata,
        }
    return generation.message


# -- sdk_parse -------------------------------------------------------------------------


def sdk_response_format(response_format: Any) -> Any:
    """The wire form ``chat.completions.parse`` sends for a ``response_format`` (a class)."""
    from openai.lib._parsing import type_to_response_format_param

    return type_to_response_format_param(response_format)


def sdk_tools(tools: Any) -> Any:
    """The tools ``parse`` accepts (strict function tools), or a ValueError saying why not."""
    from openai.lib._parsing import validate_input_tools

    return validate_input_tools(tools)


def sdk_parse(completion: Any, response_format: Any, tools: Any) -> Any:
    """What ``parse`` returns for a ``ChatCompletion``: a ``ParsedChatCompletion``."""
    from openai.lib._parsing import parse_chat_completion

    return parse_chat_completion(
        response_format=response_format, chat_completion=completion, input_tools=tools
    )


# -- configure_hook --------------------------------------------------------------


def register_context_handler(var: ContextVar[Any]) -> None:
    """Make LangChain add the handler held by ``var`` to every call's callbacks.

    Call once per variable (LangChain appends to a global list on every call).
    """
    from langchain_core.tracers.context import register_configure_hook

    register_configure_hook(var, inheritable=True)


# -- astream_log -----------------------------------------------------------------


async def astream_log(
    runnable: Runnable[Any, Any], value: Any, config: RunnableConfig, **filters: Any
) -> AsyncIterator[Any]:
    """``runnable.astream_log(value, config, diff=True, **filters)``'s patches, without the
    deprecation warning (LangServe's ``stream_log`` needs them)."""
    from langchain_core._api import suppress_langchain_deprecation_warning

    with suppress_langchain_deprecation_warning():
        async for patch in runnable.astream_log(value, config, diff=True, **filters):
            yield patch
