"""From a chain to provider batch requests, and from their replies to the chain's outputs.

A batchable chain is a sequence with exactly one call to an OpenAI-compatible
chat model: ``before | model | after`` (``before`` is usually the prompt;
``model`` may carry bound tools, ``response_format`` or
``with_structured_output``'s bindings; ``after`` the parsers).
:func:`split_chain` finds that step or refuses the chain, naming the step.

:meth:`ModelStep.request_body` runs ``before`` on an input and builds the
``/v1/chat/completions`` body ChatOpenAI would send, with ChatOpenAI's own
``_get_request_payload`` (and the ``openai`` SDK's own conversion of a
``response_format`` class). :meth:`ModelStep.output` turns a reply body into
the message ChatOpenAI would return (its own ``_create_chat_result``, with
the SDK's ``parse`` step for structured output) and runs ``after`` on it: the
output equals what ``chain.invoke`` returns for the same reply.

The private LangChain/openai functions used here are seams of
:mod:`chainkit._compat` (``chat_payload``, ``chat_result``, ``sdk_parse``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableSequence

from chainkit._compat import (
    chat_payload,
    chat_result_message,
    sdk_parse,
    sdk_response_format,
    sdk_tools,
    uses_responses_api,
)
from chainkit.errors import UserError

if TYPE_CHECKING:
    from langchain_openai.chat_models.base import BaseChatOpenAI

__all__ = ["CHAT_ENDPOINT", "ModelStep", "UnbatchableChainError", "split_chain"]

CHAT_ENDPOINT = "/v1/chat/completions"
# keyword arguments the chat model consumes itself (never sent to the provider)
_LOCAL_KWARGS = ("ls_structured_output_format", "structured_output_format")
# the SDK's request options: not part of the JSON body
_CLIENT_OPTIONS = ("extra_headers", "extra_query", "timeout")


class UnbatchableChainError(UserError):
    """A chain the provider batch backend cannot run (before anything is uploaded)."""

    def __init__(self, chain: str, reason: str, step: str | None = None) -> None:
        self.chain = chain
        self.reason = reason
        self.step = step
        where = f" (step {step!r})" if step else ""
        super().__init__(
            f"chain {chain!r} cannot run on a provider batch backend{where}: {reason}; "
            f"run it with the local backend instead"
        )


def _chat_result_message(model: BaseChatOpenAI, response: Any) -> AIMessage:
    message = chat_result_message(model, response)
    if not isinstance(message, AIMessage):  # pragma: no cover - ChatOpenAI returns AIMessages
        raise TypeError(f"expected an AIMessage, got {type(message).__name__}")
    return message


# -- the split
@dataclass(frozen=True)
class ModelStep:
    """A batchable chain taken apart: ``before | model(**kwargs) | after``."""

    chain_name: str
    step_name: str
    model: BaseChatOpenAI
    kwargs: dict[str, Any]
    before: Runnable[Any, Any] | None
    after: Runnable[Any, Any] | None
    response_format: Any = None  # what the SDK's parse() gets (a class or a dict), if any
    tools: Any = None

    @property
    def model_name(self) -> str:
        return str(self.model.model_name)

    def request_body(self, value: Any) -> dict[str, Any]:
        """The ``/v1/chat/completions`` body ChatOpenAI would send for the chain input ``value``."""
        prompt = self.before.invoke(value) if self.before is not None else value
        kwargs = dict(self.kwargs)
        stop = kwargs.pop("stop", None)
        payload = chat_payload(self.model, prompt, stop, kwargs)
        return _to_body(payload, self.response_format is not None)

    def output(self, body: dict[str, Any]) -> Any:
        """The chain's output for a ``/v1/chat/completions`` reply ``body``."""
        from openai.types.chat import ChatCompletion

        completion = ChatCompletion.model_validate(body)
        response: Any = completion
        if self.response_format is not None:
            response = sdk_parse(completion, self.response_format, self.tools)
        message = _chat_result_message(self.model, response)
        return self.after.invoke(message) if self.after is not None else message


def _to_body(payload: dict[str, Any], parse: bool) -> dict[str, Any]:
    """What the SDK puts on the wire for ``create(**payload)`` (or ``parse``), unstreamed."""
    body = {k: v for k, v in payload.items() if k not in _CLIENT_OPTIONS and k != "extra_body"}
    extra = payload.get("extra_body")
    if isinstance(extra, dict):
        body.update(extra)
    body.pop("stream", None)  # a batch request is never streamed
    body.pop("stream_options", None)
    if parse:
        body["response_format"] = sdk_response_format(body["response_format"])
        if "tools" in body:
            body["tools"] = sdk_tools(body["tools"])
    return body


def _flatten(runnable: Runnable[Any, Any]) -> list[Runnable[Any, Any]]:
    if isinstance(runnable, RunnableSequence):
        return [s for step in runnable.steps for s in _flatten(step)]
    if isinstance(runnable, RunnableBinding) and not runnable.kwargs:
        inner = runnable.bound
        if isinstance(inner, RunnableSequence | RunnableBinding):  # config/types only
            return _flatten(inner)
    return [runnable]


def _unbind(step: Runnable[Any, Any]) -> tuple[Runnable[Any, Any], dict[str, Any]]:
    """The runnable under any bindings (bind, with_config, with_retry) and their kwargs."""
    kwargs: dict[str, Any] = {}
    while isinstance(step, RunnableBinding):
        kwargs = {**step.kwargs, **kwargs}  # an outer binding's kwargs win
        step = step.bound
    return step, kwargs


def _models_inside(step: Runnable[Any, Any]) -> list[str]:
    """Names of language models anywhere inside a step that is not itself a model."""
    try:
        graph = step.get_graph()
    except Exception:  # noqa: BLE001 - a runnable that cannot draw itself hides nothing we see
        return []
    return [
        node.data.get_name()
        for node in graph.nodes.values()
        if isinstance(node.data, BaseLanguageModel)
    ]


def _step_name(step: Runnable[Any, Any]) -> str:
    name = step.get_name()
    return name or type(step).__name__


def split_chain(chain: Runnable[Any, Any], *, name: str | None = None) -> ModelStep:
    """Take ``chain`` apart around its one model call, or raise :class:`UnbatchableChainError`."""
    from langchain_openai.chat_models.base import BaseChatOpenAI

    chain_name = name or chain.get_name()
    steps = _flatten(chain)
    found: list[tuple[int, Runnable[Any, Any], dict[str, Any]]] = []
    for index, step in enumerate(steps):
        inner, kwargs = _unbind(step)
        if isinstance(inner, BaseLanguageModel):
            found.append((index, inner, kwargs))
            continue
        nested = _models_inside(inner)
        if nested:
            raise UnbatchableChainError(
                chain_name,
                f"it calls a model inside {_step_name(step)!r} ({', '.join(nested)}), "
                f"so each input needs more than one model round",
                _step_name(step),
            )
    if not found:
        raise UnbatchableChainError(chain_name, "it calls no model")
    if len(found) > 1:
        names = ", ".join(repr(_step_name(steps[i])) for i, _, _ in found)
        raise UnbatchableChainError(
            chain_name,
            f"it calls a model {len(found)} times ({names})",
            _step_name(steps[found[1][0]]),
        )
    index, model, kwargs = found[0]
    step_name = _step_name(steps[index])
    if not isinstance(model, BaseChatOpenAI):
        raise UnbatchableChainError(
            chain_name,
            f"its model {type(model).__name__} is not an OpenAI-compatible chat model "
            f"(langchain_openai.ChatOpenAI)",
            step_name,
        )
    kwargs = {k: v for k, v in kwargs.items() if k not in _LOCAL_KWARGS}
    probe = chat_payload(
        model, [], kwargs.get("stop"), {k: v for k, v in kwargs.items() if k != "stop"}
    )
    if uses_responses_api(model, probe):
        raise UnbatchableChainError(
            chain_name,
            "its model uses OpenAI's Responses API; batches here run Chat Completions "
            "(set use_responses_api=False)",
            step_name,
        )
    if probe.get("n", 1) not in (None, 1):
        raise UnbatchableChainError(chain_name, "its model asks for n > 1 choices", step_name)
    response_format = probe.get("response_format")
    tools: Any = None
    if response_format is not None:
        from openai import omit

        try:
            tools = sdk_tools(probe.get("tools", omit))
        except ValueError as exc:
            raise UnbatchableChainError(chain_name, str(exc), step_name) from None
    return ModelStep(
        chain_name=chain_name,
        step_name=step_name,
        model=model,
        kwargs=kwargs,
        before=_sequence(steps[:index]),
        after=_sequence(steps[index + 1 :]),
        response_format=response_format,
        tools=tools,
    )


def _sequence(steps: list[Runnable[Any, Any]]) -> Runnable[Any, Any] | None:
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    return RunnableSequence(*steps)
