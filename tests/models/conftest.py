"""Fixtures for the local model tests: a server per module and clients on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from chainkit.models.local import LocalModelServer
from chainkit.testing import local_model_server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    """A fresh, calm local model for one test module."""
    with local_model_server() as srv:
        yield srv


@pytest.fixture
def client(server: LocalModelServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(server: LocalModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c
