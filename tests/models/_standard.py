"""What LangChain's standard chat suites share when they run against the local model.

:class:`LocalModelChatFeatures` goes before ``ChatModelIntegrationTests`` in a suite's
bases: the feature flags the local model meets on both APIs (Chat Completions and
Responses), and the suite's sample downloads answered offline (tests use loopback only).
:class:`ChainkitChatOpenAI` makes the suite's model as chainkit makes it. Each suite
adds what differs: its settings, audio inputs, the model-override value.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import chat_models as chat_suite

from chainkit.models import load_model
from chainkit.models.local._chat_options import wav_bytes
from tests.models._served import offline_get


def offline_sample(url: str, **kwargs: Any) -> SimpleNamespace:
    """The suite's ``httpx.get(url)``: a WAV for ``*.wav``, else :func:`offline_get`."""
    if url.endswith(".wav"):
        return SimpleNamespace(content=wav_bytes("a bird calls in the morning"))
    return offline_get(url, **kwargs)


class ChainkitChatOpenAI:
    """The suite's ``ChatOpenAI`` made by ``load_model("openai:<model>", ...)``."""

    @pytest.fixture
    def model(self, request: Any) -> BaseChatModel:
        """ChatOpenAI made as chainkit makes it (an async client per event loop)."""
        extra = getattr(request, "param", None) or {}
        params = {**self.standard_chat_model_params, **self.chat_model_params, **extra}
        return load_model(f"openai:{params.pop('model')}", **params)

    @property
    def chat_model_class(self) -> type[ChatOpenAI]:
        return ChatOpenAI


class LocalModelChatFeatures:
    """The standard chat suite's flags the local model meets on every API, and offline samples."""

    @pytest.fixture(autouse=True)
    def _samples_offline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The suite downloads its sample image, PDF and audio: tests use loopback only."""
        monkeypatch.setattr(chat_suite, "httpx", SimpleNamespace(get=offline_sample))
        monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "chainkit-tests (offline)")

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

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
