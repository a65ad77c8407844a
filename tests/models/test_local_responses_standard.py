"""LangChain's standard suites against the local model's Responses API and embeddings.

``ChatModelIntegrationTests`` runs through ``ChatOpenAI(use_responses_api=True)`` and
``EmbeddingsIntegrationTests`` through ``OpenAIEmbeddings``, both against a real
``python -m chainkit.models.local`` process (what ``chainkit local serve`` runs) on
loopback. The feature flags say what the local model really does.

Two adjustments, both outside the model under test:

- The suite downloads its sample PNG and PDF from the internet (``httpx.get``); tests
  may only use loopback, so the suite's module gets an ``httpx.get`` that returns a
  small valid PNG or PDF (``tests.models._standard``). The model still receives them.
- Two notices LangChain itself gives about the suite's own inputs are allowed (with
  warnings as errors the notice alone would fail the test): a pydantic v1 schema
  falls back to function calling, and a PDF block without a filename gets a
  placeholder name.

Audio inputs stay off: ``ChatOpenAI`` drops audio blocks from Responses API input
(OpenAI's Responses API takes no audio), so the suite's audio test would send none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_openai import OpenAIEmbeddings
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
)

from chainkit.models import HttpPool
from tests.models._served import local_model_process
from tests.models._standard import ChainkitChatOpenAI, LocalModelChatFeatures

pytestmark = [
    pytest.mark.filterwarnings("ignore:Received a Pydantic BaseModel V1 schema:UserWarning"),
    pytest.mark.filterwarnings("ignore:OpenAI may require a filename:UserWarning"),
]

_SERVER: dict[str, str] = {}
_POOL = HttpPool()  # async clients per event loop, closed with each test's loop


@pytest.fixture(autouse=True, scope="module")
def _local_model_process() -> Iterator[str]:
    with local_model_process() as base_url:
        _SERVER["base_url"] = base_url
        yield base_url
    _SERVER.clear()


class TestResponsesAPIStandard(
    ChainkitChatOpenAI, LocalModelChatFeatures, ChatModelIntegrationTests
):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "gpt-4o-mini",
            "base_url": _SERVER["base_url"],
            "api_key": "chainkit-local",
            "use_responses_api": True,
        }

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
