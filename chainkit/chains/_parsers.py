"""Output parsers that parse on the event loop instead of hopping to a thread.

LangChain's transform parsers (``StrOutputParser``, ``JsonOutputParser``,
``PydanticOutputParser``) run ``parse_result`` through ``run_in_executor`` for
every chunk of an async stream (``langchain_core/output_parsers/transform.py``)
and for every ``ainvoke``. Parsing a chunk of text costs microseconds; the hop
to the thread pool and back costs far more, and on a busy event loop it
dominates the client's CPU per chunk. The parsers here override only the async
paths so that they parse inline; everything else, including the run type
(``parser``), the callbacks and the ``on_parser_*`` events of
``astream_events``, is inherited unchanged.

They report the stock class names (``StrOutputParser``, ...) as their run
names, so traces and ``astream_events(include_names=[...])`` filters written
for plain LCEL chains keep working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_core.output_parsers import (
    JsonOutputParser,
    PydanticOutputParser,
    StrOutputParser,
)
from langchain_core.output_parsers.transform import BaseTransformOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from chainkit._compat import parser_diff, private_override

__all__ = ["InlineJsonOutputParser", "InlinePydanticOutputParser", "InlineStrOutputParser"]

_overrides_atransform = private_override(
    BaseTransformOutputParser, "_atransform", "parser_atransform"
)


class InlineStrOutputParser(StrOutputParser):
    """``StrOutputParser`` without the per-chunk thread hop in async streaming."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False  # a LangChain `load` of this id would not find the class

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return super().get_name(suffix, name=name or self.name or "StrOutputParser")

    async def aparse_result(self, result: list[Generation], *, partial: bool = False) -> str:
        return self.parse_result(result, partial=partial)

    @_overrides_atransform
    async def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[str]:  # noqa: A002 - LangChain's signature
        async for chunk in input:
            if isinstance(chunk, BaseMessage):
                content = chunk.content
                if isinstance(content, str):  # the common case, without building a Generation
                    yield content
                else:  # content blocks: exactly what the stock parser extracts
                    yield self.parse_result([ChatGeneration(message=chunk)])
            else:
                yield chunk


async def _cumulative(
    parser: JsonOutputParser,
    input: AsyncIterator[str | BaseMessage],  # noqa: A002
) -> AsyncIterator[Any]:
    """``BaseCumulativeTransformOutputParser._atransform``, parsing inline."""
    prev_parsed: Any = None
    acc: GenerationChunk | ChatGenerationChunk | None = None
    async for chunk in input:
        gen: GenerationChunk | ChatGenerationChunk
        if isinstance(chunk, BaseMessageChunk):
            gen = ChatGenerationChunk(message=chunk)
        elif isinstance(chunk, BaseMessage):
            gen = ChatGenerationChunk(message=BaseMessageChunk(**chunk.model_dump()))
        else:
            gen = GenerationChunk(text=chunk)
        acc = gen if acc is None else acc + gen  # type: ignore[operator]
        parsed = parser.parse_result([acc], partial=True)
        if parsed is not None and parsed != prev_parsed:
            yield parser_diff(parser, prev_parsed, parsed) if parser.diff else parsed
            prev_parsed = parsed


class InlineJsonOutputParser(JsonOutputParser):
    """``JsonOutputParser`` without the per-chunk thread hop in async streaming.

    Streams partial JSON objects (all keys seen so far), as the stock parser does.
    """

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return super().get_name(suffix, name=name or self.name or "JsonOutputParser")

    async def aparse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        return self.parse_result(result, partial=partial)

    @_overrides_atransform
    async def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[Any]:  # noqa: A002
        async for parsed in _cumulative(self, input):
            yield parsed


class InlinePydanticOutputParser(PydanticOutputParser):  # type: ignore[type-arg]
    """``PydanticOutputParser`` (the fallback for models without structured output), inline."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return super().get_name(suffix, name=name or self.name or "PydanticOutputParser")

    async def aparse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        return self.parse_result(result, partial=partial)

    @_overrides_atransform
    async def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[Any]:  # noqa: A002
        async for parsed in _cumulative(self, input):
            yield parsed
