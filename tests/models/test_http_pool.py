"""The HTTP seam: one pool per event loop, sized, closed with the loop or at aclose().

Warnings are errors in this suite, so an unclosed aiohttp session or socket
("Unclosed client session", ResourceWarning) fails these tests.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx
import openai
from langchain_openai import ChatOpenAI, OpenAI

from chainkit.models import HttpPool, load_llm, load_model, use_http_pool
from chainkit.models._bind import is_lean
from chainkit.models._lean import LeanAsyncOpenAI
from chainkit.models.local import LocalModelServer


def test_one_session_per_loop_closed_when_the_loop_ends() -> None:
    pool = HttpPool(max_connections=7)
    seen: list[Any] = []

    async def use() -> None:
        session = pool.session()
        assert pool.session() is session  # one per loop
        assert session.connector is not None
        assert session.connector.limit == 7  # sized
        seen.append(session)

    asyncio.run(use())
    asyncio.run(use())
    gc.collect()
    assert seen[0] is not seen[1]
    assert all(s.closed for s in seen)  # asyncio.run's shutdown closed each


async def test_aclose_closes_this_loops_clients_and_a_new_call_reopens() -> None:
    pool = HttpPool(max_connections=3)
    session = pool.session()
    await pool.aclose()
    assert session.closed
    assert pool.session() is not session
    await pool.aclose()


def test_the_sdk_client_on_the_pool_works_across_loops(server: LocalModelServer) -> None:
    pool = HttpPool(max_connections=4)

    async def ask() -> str:
        client = openai.AsyncOpenAI(
            base_url=server.base_url, api_key="x", http_client=pool.httpx_client
        )
        reply = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        return reply.choices[0].message.content or ""

    assert asyncio.run(ask()) == asyncio.run(ask())  # a stale pool: "Event loop is closed"


def test_load_model_and_load_llm_are_the_stock_classes_on_the_lean_path() -> None:
    chat = load_model("local")
    llm = load_llm("local")
    assert type(chat) is ChatOpenAI
    assert type(llm) is OpenAI
    assert is_lean(chat)
    assert is_lean(llm)
    assert chat.http_async_client is None  # no user client: the seam's


async def test_a_client_the_user_passed_in_is_kept() -> None:
    async with httpx.AsyncClient() as client:
        chat = load_model("local", http_async_client=client)
        assert not is_lean(chat)
        copy = use_http_pool(chat, HttpPool(), max_retries=0)
        assert not is_lean(copy)
        assert copy.root_async_client._client is client  # type: ignore[attr-defined]
        assert copy.max_retries == 0  # type: ignore[attr-defined]


async def test_use_http_pool_copies_the_model_onto_the_pool() -> None:
    pool = HttpPool(max_connections=2)
    chat = load_model("local", max_retries=3)
    copy = use_http_pool(chat, pool, max_retries=0)
    assert type(copy) is ChatOpenAI
    assert isinstance(copy.root_async_client, LeanAsyncOpenAI)  # type: ignore[attr-defined]
    assert copy.root_async_client.pool is pool  # type: ignore[attr-defined]
    assert copy.root_async_client.max_retries == 0  # type: ignore[attr-defined]
    assert copy.root_client.max_retries == 0  # type: ignore[attr-defined]
    assert chat.root_async_client.max_retries == 3  # type: ignore[attr-defined]
    reply = await copy.ainvoke("Tell me a fact about number 2")
    assert reply.content
    await pool.aclose()


async def test_aclose_also_closes_what_a_sync_call_opened(server: LocalModelServer) -> None:
    pool = HttpPool(max_connections=2)
    chat = use_http_pool(
        ChatOpenAI(base_url=server.base_url, api_key="x", model="m", max_tokens=4),  # type: ignore[arg-type]
        pool,
    )
    assert is_lean(chat)
    await asyncio.to_thread(chat.invoke, "hi")  # the lean path on the sync bridge's loop
    sessions = [entry.session for entry in pool._loops.values()]
    assert sessions
    assert all(s is not None and not s.closed for s in sessions)
    await pool.aclose()
    assert all(s is not None and s.closed for s in sessions)
