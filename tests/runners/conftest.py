"""Fixtures for the runner tests: local model servers, chains on them, fake runnables."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_openai import ChatOpenAI

from chainkit.models.local import LocalModelServer
from chainkit.testing import local_model_server

FACT = "Tell me a fact about number {n}"


def fact_model(server: LocalModelServer, **kwargs: Any) -> ChatOpenAI:
    return fact_model_at(server.base_url, **kwargs)


def fact_chain_at(base_url: str, **kwargs: Any) -> Runnable[Any, str]:
    prompt = ChatPromptTemplate.from_template(FACT)
    return prompt | fact_model_at(base_url, **kwargs) | StrOutputParser()


def fact_model_at(base_url: str, **kwargs: Any) -> ChatOpenAI:
    settings: dict[str, Any] = {
        "base_url": base_url,
        "api_key": "chainkit-local",
        "model": "chainkit-local",
        "temperature": 0,
        "max_tokens": 16,
        "stream_usage": True,
    }
    settings.update(kwargs)
    return ChatOpenAI(**settings)


def fact_chain(server: LocalModelServer, **kwargs: Any) -> Runnable[Any, str]:
    """The second seed's prompt through the real ChatOpenAI client on ``server``."""
    return ChatPromptTemplate.from_template(FACT) | fact_model(server, **kwargs) | StrOutputParser()


def fact_inputs(n: int) -> list[dict[str, Any]]:
    return [{"n": i} for i in range(n)]


def fact_prompt(i: int) -> str:
    return FACT.format(n=i)


@pytest.fixture(scope="module")
def calm() -> Iterator[LocalModelServer]:
    """A calm local model for one test module."""
    with local_model_server() as server:
        yield server


class Transient(Exception):  # noqa: N818 - mimics an SDK's HTTP error
    """A fake 503, transient for the runner (it has a 5xx ``status_code``)."""

    status_code = 503


class Rejected(Exception):  # noqa: N818
    """A fake 400: not transient."""

    status_code = 400


def echo_chain(
    *,
    fail_first: set[int] | None = None,
    fail_always: set[int] | None = None,
    broken: set[int] | None = None,
    delay: float = 0.0,
    delays: dict[int, float] | None = None,
    calls: dict[int, int] | None = None,
) -> Runnable[Any, str]:
    """A fake chain: ``out-<n>``; transient failures on demand, a bug on ``broken`` items."""
    fail_first = fail_first or set()
    fail_always = fail_always or set()
    broken = broken or set()
    seen: dict[int, int] = calls if calls is not None else {}

    async def run(value: dict[str, Any]) -> str:
        n = int(value["n"])
        seen[n] = seen.get(n, 0) + 1
        wait = (delays or {}).get(n, delay)
        if wait:
            await asyncio.sleep(wait)
        else:
            await asyncio.sleep(0)
        if n in broken:
            raise Rejected(f"item {n} is rejected")
        if n in fail_always or (n in fail_first and seen[n] == 1):
            raise Transient(f"item {n}: service unavailable")
        return f"out-{n}"

    return RunnableLambda(run, name="echo")
