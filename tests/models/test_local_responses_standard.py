"""LangChain's standard suites against the local model's Responses API and embeddings.

``ChatModelIntegrationTests`` runs through ``ChatOpenAI(use_responses_api=True)`` and
``EmbeddingsIntegrationTests`` through ``OpenAIEmbeddings``, both against a real local
model server on loopback. The feature flags say what the local model really does.

Two adjustments, both outside the model under test:

- The suite downloads its sample PNG and PDF from the internet (``httpx.get``); tests
  may only use loopback, so the suite's module gets an ``httpx.get`` that returns a
  small valid PNG or PDF made here. The model still receives them as base64 parts.
- Two notices LangChain itself gives about the suite's own inputs are allowed (with
  warnings as errors the notice alone would fail the test): a pydantic v1 schema
  falls back to function calling, and a PDF block without a filename gets a
  placeholder name.

Audio inputs stay off: ``ChatOpenAI`` drops audio blocks from Responses API input
(OpenAI's Responses API takes no audio), so the suite's audio test would send none.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
)
from langchain_tests.integration_tests import chat_models as chat_suite

from chainkit.models import HttpPool, load_model
from chainkit.models.local import LocalModelServer
from chainkit.testing import local_model_server

pytestmark = [
    pytest.mark.filterwarnings("ignore:Received a Pydantic BaseModel V1 schema:UserWarning"),
    pytest.mark.filterwarnings("ignore:OpenAI may require a filename:UserWarning"),
]

_SERVER: dict[str, str] = {}
_POOL = HttpPool()  # async clients per event loop, closed with each test's loop


@pytest.fixture(autouse=True, scope="module")
def _local_model() -> Iterator[LocalModelServer]:
    with local_model_server() as server:
        _SERVER["base_url"] = server.base_url
        yield server
    _SERVER.clear()


def _png() -> bytes:
    """A valid 2x2 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


_PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _offline_get(url: str, **_: Any) -> SimpleNamespace:
    return SimpleNamespace(content=_PDF if url.endswith(".pdf") else _png())


class TestResponsesAPIStandard(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _samples_offline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(chat_suite, "httpx", SimpleNamespace(get=_offline_get))

    @pytest.fixture
    def model(self, request: Any) -> BaseChatModel:
        """ChatOpenAI made as chainkit makes it (an async client per event loop)."""
        extra = getattr(request, "param", None) or {}
        params = {**self.standard_chat_model_params, **self.chat_model_params, **extra}
        return load_model(f"openai:{params.pop('model')}", **params)

    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "gpt-4o-mini",
            "base_url": _SERVER["base_url"],
            "api_key": "chainkit-local",
            "use_responses_api": True,
        }

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "gpt-4.1-mini"


class TestEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[OpenAIEmbeddings]:
        return OpenAIEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            "model": "text-embedding-3-small",
            "base_url": _SERVER["base_url"],
            "api_key": "chainkit-local",
            "check_embedding_ctx_length": False,  # no tiktoken download (see README)
            "http_async_client": _POOL.httpx_client,
        }
