"""Structured output on the lean path: ``parse`` and ``beta.chat.completions.stream``.

langchain-openai sends every call with a ``response_format`` (``json_schema``
structured output, JSON mode) to the SDK's helpers: ``chat.completions.parse``
(an answer whose message carries ``parsed``) and ``beta.chat.completions.stream``
(events, then ``get_final_completion()``). These stand-ins send the same request
over the lean path and let the SDK's own helpers do what is theirs to do:

- the request (the ``sdk_parse`` seam of ``chainkit._compat``): ``type_to_response_format_param``
  (a pydantic class as a strict JSON schema) and ``validate_input_tools`` (only
  strict function tools);
- the answer: ``parse_chat_completion`` (``parsed``, ``parsed_arguments``,
  the length and content-filter errors), and for a stream the SDK's
  ``ChatCompletionStreamState``, which decides the events and the final completion.

A stream's events reach langchain-openai as the dicts it reads: ``{"type":
"chunk", "chunk": <the chunk as sent>}`` for each chunk and ``{"type": ...}``
for the others, so the SDK's snapshot objects are never dumped (langchain-openai
dumping them is what makes pydantic warn about ``parsed``).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from openai.types.chat import ParsedChatCompletion

__all__ = ["StructuredStream", "parse_body", "parsed_answer"]


class _Stream(Protocol):
    """A lean stream of chunk dicts (``_lean.LeanStream``)."""

    def __aiter__(self) -> AsyncIterator[Any]: ...

    async def close(self) -> None: ...


class _Endpoint(Protocol):
    """Where a structured stream is opened (``_lean.LeanEndpoint``)."""

    async def open_stream(self, body: dict[str, Any]) -> _Stream: ...


def _given(value: Any) -> Any:
    from openai import omit

    return omit if value is None else value


def parse_body(params: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The body the SDK's ``parse``/``stream`` would send for ``params``."""
    from chainkit._compat import sdk_response_format, sdk_tools

    sdk_tools(_given(params.get("tools")))
    body = {**params, "stream": stream}
    if "response_format" in params:
        body["response_format"] = sdk_response_format(params["response_format"])
    return body


def parsed_answer(params: dict[str, Any], answer: Any) -> ParsedChatCompletion[Any]:
    """``answer`` (the dict received) as the SDK's ``parse`` returns it."""
    completion = ChatCompletion.model_validate(
        answer.model_dump() if hasattr(answer, "model_dump") else answer
    )
    from chainkit._compat import sdk_parse, sdk_tools

    parsed: ParsedChatCompletion[Any] = sdk_parse(
        completion,
        _given(params.get("response_format")),
        sdk_tools(_given(params.get("tools"))),
    )
    return parsed


class StructuredStream:
    """What ``beta.chat.completions.stream(...)`` gives, on the lean path."""

    def __init__(self, endpoint: _Endpoint, params: dict[str, Any]) -> None:
        self._endpoint = endpoint
        self._params = params
        self._stream: _Stream | None = None
        self._state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(
            input_tools=_given(params.get("tools")),
            response_format=_given(params.get("response_format")),
        )

    async def __aenter__(self) -> StructuredStream:
        self._stream = await self._endpoint.open_stream(parse_body(self._params, stream=True))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the stream (and its connection, when it is not at its end)."""
        if self._stream is not None:
            await self._stream.close()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._events()

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        if self._stream is None:
            raise RuntimeError("use the stream inside `async with`")
        async for raw in self._stream:
            for event in self._state.handle_chunk(ChatCompletionChunk.model_validate(raw)):
                if event.type == "chunk":
                    yield {"type": "chunk", "chunk": raw}
                elif event.type != "content.delta":  # langchain-openai skips these
                    yield {"type": event.type}

    async def get_final_completion(self) -> ParsedChatCompletion[Any]:
        return self._state.get_final_completion()
