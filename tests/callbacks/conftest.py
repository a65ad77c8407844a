"""Fixtures for the capture tests: the local model through the real ChatOpenAI, and chains."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from chainkit.models import load_model

MAX_TOKENS = 24  # short answers keep the 200-stream tests fast


@pytest.fixture
async def model() -> AsyncIterator[ChatOpenAI]:
    """The shared local model through ChatOpenAI, with an async client of this test's loop.

    (langchain-openai otherwise caches one httpx.AsyncClient across event loops.)
    """
    async with httpx.AsyncClient(timeout=30) as client:
        chat = load_model("local", temperature=0, max_tokens=MAX_TOKENS, http_async_client=client)
        assert isinstance(chat, ChatOpenAI)
        yield chat


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """An async HTTP client of this test's event loop, for models built in the test."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
def sync_model() -> ChatOpenAI:
    chat = load_model("local", temperature=0, max_tokens=MAX_TOKENS)
    assert isinstance(chat, ChatOpenAI)
    return chat


def song_chain(model: Any) -> Runnable[dict[str, Any], str]:
    """The first seed's chain: prompt | model | StrOutputParser()."""
    prompt = ChatPromptTemplate.from_template("Write me a 1 verse song about {topic}.")
    return prompt | model | StrOutputParser()


@pytest.fixture
def chain(model: ChatOpenAI) -> Runnable[dict[str, Any], str]:
    return song_chain(model)


@pytest.fixture
def sync_chain(sync_model: ChatOpenAI) -> Runnable[dict[str, Any], str]:
    return song_chain(sync_model)


def fake_model(text: str = "one two three\nfour five") -> GenericFakeChatModel:
    """A chat model answering ``text`` to every call, streamed word by word."""
    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(content=text)))
