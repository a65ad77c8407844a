"""Pieces shared by the capture handlers: run names, kinds, texts, usage."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from langchain_core.outputs import LLMResult

from chainkit.trace import message_text, usage_of

__all__ = [
    "DEFERRED_INPUT",
    "clock",
    "llm_result_text",
    "llm_result_usage",
    "run_kind",
    "run_name",
    "token_text",
]

clock = time.perf_counter
"""The clock of every ``t`` and chunk time chainkit records."""

DEFERRED_INPUT = {"input": ""}
"""What LangChain passes as the inputs of a streamed run whose input is not known yet."""


def run_name(name: str | None, serialized: Mapping[str, Any] | None) -> str:
    """The run's name as astream_events derives it."""
    if name is not None:
        return name
    if serialized:
        if "name" in serialized:
            return str(serialized["name"])
        if serialized.get("id"):
            return str(serialized["id"][-1])
    return "Unnamed"


def run_kind(run_type: str | None, serialized: Mapping[str, Any] | None) -> str:
    """chain / prompt / parser / lambda from on_chain_start's ``run_type`` and ``serialized``.

    LangChain passes no ``serialized`` for most runs, so a lambda is recognised
    only when it does; otherwise it is a ``chain``, as in astream_events.
    """
    if run_type:
        return run_type
    if serialized and (ids := serialized.get("id")) and ids[-1] == "RunnableLambda":
        return "lambda"
    return "chain"


def token_text(token: Any, chunk: Any) -> str:
    """The text of an ``on_llm_new_token`` call (content may be a list of blocks)."""
    if isinstance(token, str):
        return token
    message = getattr(chunk, "message", None)
    if message is not None:
        return message_text(message)
    return message_text(token)


def llm_result_text(response: LLMResult) -> str:
    """The text of the first generation of a model result."""
    try:
        generation = response.generations[0][0]
    except (IndexError, TypeError):
        return ""
    message = getattr(generation, "message", None)
    if message is not None:
        return message_text(message)
    return generation.text or ""


def llm_result_usage(response: LLMResult) -> dict[str, Any] | None:
    """Token usage of a model result as a trace record holds it (see :func:`usage_of`)."""
    usage = usage_of(response)
    return usage.model_dump() if usage is not None else None


def llm_result_output(response: LLMResult, kind: str) -> Any:
    """What a model run produced: the message of a chat model, the generations of an LLM."""
    if kind == "chat_model":
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                if message is not None:
                    return message
    return {
        "generations": [
            [
                {"text": g.text, "generation_info": g.generation_info, "type": g.type}
                for g in generations
            ]
            for generations in response.generations
        ],
        "llm_output": response.llm_output,
    }
