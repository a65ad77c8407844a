"""LangChain's standard chat-model suite through ``ChatOpenAI`` (Chat Completions) against a
real ``python -m chainkit.models.local`` process, as ``chainkit local serve`` runs it
(``tests.models._served``).

The feature flags say what the local model really does: tools (also forced), structured
output (all methods), JSON mode, image, PDF and audio inputs, images and PDFs in tool
messages, usage (also streamed), and the model name echoed. The suite downloads its
sample PNG and PDF from the internet; tests may only use loopback, so its module gets the
offline ``httpx.get`` of ``tests.models._standard`` (a small valid PNG, PDF or
WAV), with the flags both APIs share (``LocalModelChatFeatures``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.models._served import local_model_process
from tests.models._standard import ChainkitChatOpenAI, LocalModelChatFeatures

pytestmark = [
    # upstream: langchain-openai model_dump()s the SDK's parsed stream snapshots and pydantic
    # warns about the `parsed` field's type (it does against api.openai.com too)
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.filterwarnings("ignore:Received a Pydantic BaseModel V1 schema:UserWarning"),
    pytest.mark.filterwarnings("ignore:OpenAI may require a filename:UserWarning"),
]

_SERVER: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def _local_model_process() -> Iterator[str]:
    with local_model_process() as base_url:
        _SERVER["base_url"] = base_url
        yield base_url
    _SERVER.clear()


class TestChatCompletionsStandard(
    ChainkitChatOpenAI, LocalModelChatFeatures, ChatModelIntegrationTests
):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "base_url": _SERVER["base_url"], "api_key": "x"}

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "gpt-4.1-mini"
