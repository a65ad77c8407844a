"""LangChain's standard chat-model suite on the local model, with the lean path on.

``ChatModelIntegrationTests`` (langchain-tests) runs against ``load_model("local")``:
the real ``ChatOpenAI`` whose async calls take chainkit's lean aiohttp+orjson
path. The feature flags say what the local model does, no more.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from chainkit.models import lean_fallbacks, load_model
from chainkit.models._bind import is_lean
from chainkit.models.local import ensure_server
from tests.models._standard import LocalModelChatFeatures


# langchain-openai warns on purpose when given a pydantic v1 schema for json_schema
# (test_structured_output_pydantic_2_v1, then it falls back to function calling) and
# when a PDF has no filename. (No "Pydantic serializer warnings" filter: the lean path
# does not dump the SDK's stream snapshots, so it raises none.)
@pytest.mark.filterwarnings("ignore:Received a Pydantic BaseModel V1 schema:UserWarning")
@pytest.mark.filterwarnings("ignore:OpenAI may require a filename:UserWarning")
class TestLeanChatOpenAIStandard(LocalModelChatFeatures, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # the suite also builds a model from the class itself (test_stop_sequence)
        return {
            "model": "chainkit-local",
            "base_url": ensure_server().base_url,
            "api_key": "chainkit-local",
        }

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "chainkit-local-other"  # the local model answers as whatever model is asked

    @pytest.fixture
    def model(self, request: Any) -> BaseChatModel:
        """``load_model("local", ...)`` with the suite's settings: the lean path."""
        extra = getattr(request, "param", None) or {}
        params = {**self.standard_chat_model_params, **self.chat_model_params, **extra}
        for key in ("model", "base_url", "api_key"):  # what the "local" spec sets
            params.pop(key)
        chat = load_model("local", **params)
        assert is_lean(chat)
        return chat


async def test_the_suites_calls_take_the_lean_path() -> None:
    chat = load_model("local", temperature=0, max_tokens=16)
    before = lean_fallbacks()
    await chat.ainvoke("hi")
    assert [c async for c in chat.astream("hi")]
    chat.invoke("hi")
    assert list(chat.stream("hi"))
    assert lean_fallbacks() == before
