"""Fixtures for the chain tests: the local model through ChatOpenAI, and fake models."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI

from chainkit.models import load_model


@pytest.fixture
async def model() -> AsyncIterator[ChatOpenAI]:
    """The shared local model (a real server on loopback) through the real ChatOpenAI.

    Its async HTTP client belongs to this test's event loop: langchain-openai
    otherwise shares one cached ``httpx.AsyncClient`` across event loops, and a
    pooled connection from a closed loop fails the next test with "Event loop is
    closed" (langchain-ai/langchain#35783).
    """
    async with httpx.AsyncClient(timeout=30) as client:
        chat = load_model("local", temperature=0, http_async_client=client)
        assert isinstance(chat, ChatOpenAI)
        yield chat


@pytest.fixture
def sync_model() -> ChatOpenAI:
    """The local model for tests that only call it synchronously."""
    chat = load_model("local", temperature=0)
    assert isinstance(chat, ChatOpenAI)
    return chat


def fake_model(text: str = "one two three four") -> GenericFakeChatModel:
    """A chat model that answers ``text`` to every call, streamed word by word."""
    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(content=text)))


@pytest.fixture
def chains_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty chains folder; CHAINKIT_CHAINS_DIR is unset so only arguments count."""
    monkeypatch.delenv("CHAINKIT_CHAINS_DIR", raising=False)
    folder = tmp_path / "chains"
    folder.mkdir()
    return folder
