"""Where text comes from: model specs turned into LangChain models.

A *model spec* is a short string:

- ``local`` (the default) or ``local:<name>``: the embedded offline model,
  started on a free loopback port the first time it is needed, reached through
  the real ``langchain_openai`` classes;
- ``openai:<model>``: OpenAI, or any OpenAI-compatible server named by
  ``OPENAI_BASE_URL`` (vLLM, Ollama, a llama.cpp server, a proxy);
- ``<provider>:<model>``: any provider LangChain's ``init_chat_model`` knows,
  when its integration package is installed.

The default spec comes from ``CHAINKIT_MODEL``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from chainkit.errors import (
    ConfigError,
    MissingAPIKeyError,
    MissingPackageError,
    UnknownProviderError,
    register_secret,
)

if TYPE_CHECKING:  # LangChain is imported lazily: chainkit.models.local must not load it
    from langchain_core.language_models import BaseChatModel, BaseLLM

    from chainkit.models._bind import use_http_pool
    from chainkit.models._http import HttpPool
    from chainkit.models._lean import fallbacks as lean_fallbacks

# the HTTP seam (aiohttp, openai, the lean path) is imported on first use, too
_LAZY = {
    "HttpPool": ("chainkit.models._http", "HttpPool"),
    "use_http_pool": ("chainkit.models._bind", "use_http_pool"),
    "lean_fallbacks": ("chainkit.models._lean", "fallbacks"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'chainkit.models' has no attribute {name!r}")
    return getattr(importlib.import_module(target[0]), target[1])


__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "HttpPool",
    "default_spec",
    "lean_fallbacks",
    "load_llm",
    "load_model",
    "parse_spec",
    "use_http_pool",
]

DEFAULT_LOCAL_MODEL = "chainkit-local"
MODEL_ENV = "CHAINKIT_MODEL"

# provider -> (integration package on PyPI, module, chat class). The same table
# LangChain's init_chat_model uses; kept here so a missing package is named
# even when the `langchain` meta-package itself is not installed.
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "anthropic": ("langchain-anthropic", "langchain_anthropic", "ChatAnthropic"),
    "azure_openai": ("langchain-openai", "langchain_openai", "AzureChatOpenAI"),
    "bedrock": ("langchain-aws", "langchain_aws", "ChatBedrock"),
    "bedrock_converse": ("langchain-aws", "langchain_aws", "ChatBedrockConverse"),
    "cohere": ("langchain-cohere", "langchain_cohere", "ChatCohere"),
    "deepseek": ("langchain-deepseek", "langchain_deepseek", "ChatDeepSeek"),
    "fireworks": ("langchain-fireworks", "langchain_fireworks", "ChatFireworks"),
    "google_genai": ("langchain-google-genai", "langchain_google_genai", "ChatGoogleGenerativeAI"),
    "google_vertexai": ("langchain-google-vertexai", "langchain_google_vertexai", "ChatVertexAI"),
    "groq": ("langchain-groq", "langchain_groq", "ChatGroq"),
    "huggingface": ("langchain-huggingface", "langchain_huggingface", "ChatHuggingFace"),
    "mistralai": ("langchain-mistralai", "langchain_mistralai", "ChatMistralAI"),
    "nvidia": ("langchain-nvidia-ai-endpoints", "langchain_nvidia_ai_endpoints", "ChatNVIDIA"),
    "ollama": ("langchain-ollama", "langchain_ollama", "ChatOllama"),
    "perplexity": ("langchain-perplexity", "langchain_perplexity", "ChatPerplexity"),
    "together": ("langchain-together", "langchain_together", "ChatTogether"),
    "xai": ("langchain-xai", "langchain_xai", "ChatXAI"),
}
KNOWN_PROVIDERS = ("local", "openai", *PROVIDERS)


def default_spec() -> str:
    """The spec used when none is given: ``$CHAINKIT_MODEL``, else ``local``."""
    return os.environ.get(MODEL_ENV, "").strip() or "local"


def parse_spec(spec: str | None) -> tuple[str, str]:
    """Split a spec into ``(provider, model)``; ``model`` may be empty."""
    spec = (spec or default_spec()).strip()
    if not spec:
        raise ConfigError("empty model spec; use 'local', 'openai:<model>' or 'provider:model'")
    provider, _, model = spec.partition(":")
    provider = provider.strip().lower()
    if provider not in KNOWN_PROVIDERS:
        raise UnknownProviderError(spec, KNOWN_PROVIDERS)
    return provider, model.strip()


def _openai_kwargs(provider: str, model: str, spec: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Client settings shared by ChatOpenAI and OpenAI for the local and openai specs."""
    if provider == "local":
        from chainkit.models.local import ensure_server

        server = ensure_server()
        settings: dict[str, Any] = {
            "model": model or DEFAULT_LOCAL_MODEL,
            "base_url": server.base_url,
            "api_key": SecretStr("chainkit-local"),
        }
    else:
        if not model:
            raise ConfigError(
                f"model spec {spec!r} names no model; write e.g. 'openai:gpt-4o-mini'"
            )
        key = kwargs.pop("api_key", None) or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise MissingAPIKeyError("openai", "OPENAI_API_KEY")
        secret = key if isinstance(key, SecretStr) else SecretStr(str(key))
        register_secret(secret.get_secret_value())
        settings = {"model": model, "api_key": secret}
        base_url = kwargs.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL")
        if base_url:
            settings["base_url"] = base_url
    settings.update(kwargs)
    return settings


_CLIENT_KWARGS = ("http_async_client", "async_client", "root_async_client")


def _on_pool(model: Any, settings: dict[str, Any], pool: HttpPool | None) -> Any:
    """``model`` on ``pool`` (else the process-wide one), unless the caller gave a client."""
    if any(settings.get(key) is not None for key in _CLIENT_KWARGS):
        return model  # a client the user passed in: the SDK's path, as given
    from chainkit.models._bind import use_http_pool
    from chainkit.models._http import default_pool

    return use_http_pool(model, pool or default_pool())


def load_model(
    spec: str | None = None, *, http_pool: HttpPool | None = None, **kwargs: Any
) -> BaseChatModel:
    """A chat model for ``spec`` (default ``$CHAINKIT_MODEL`` or ``local``).

    Keyword arguments go to the model class (``temperature``, ``max_tokens``,
    ``max_retries``, ...). ``local`` and ``openai:`` give a ``ChatOpenAI`` whose
    async calls take the lean path over ``http_pool`` (default: one pool per
    event loop for the whole process, see :class:`HttpPool`).

    >>> model = load_model()                       # the embedded offline model
    >>> model = load_model("openai:gpt-4o-mini")   # needs OPENAI_API_KEY
    """
    spec = spec or default_spec()
    provider, model = parse_spec(spec)
    if provider in ("local", "openai"):
        from langchain_openai import ChatOpenAI

        settings = _openai_kwargs(provider, model, spec, dict(kwargs))
        settings.setdefault("stream_usage", True)
        chat: BaseChatModel = _on_pool(ChatOpenAI(**settings), settings, http_pool)
        return chat
    return _load_other(spec, provider, model, kwargs)


def load_llm(
    spec: str | None = None, *, http_pool: HttpPool | None = None, **kwargs: Any
) -> BaseLLM:
    """A completion-style LLM (``langchain_openai.OpenAI``) for ``local`` or ``openai:`` specs.

    This is the first seed's ``OpenAI(model="gpt-3.5-turbo-instruct", ...)``; its
    async calls take the lean path over ``http_pool``, as :func:`load_model`'s.
    """
    spec = spec or default_spec()
    provider, model = parse_spec(spec)
    if provider not in ("local", "openai"):
        raise ConfigError(
            f"load_llm supports only 'local' and 'openai:<model>' specs, got {spec!r}; "
            f"use load_model() for chat models of other providers"
        )
    from langchain_openai import OpenAI

    settings = _openai_kwargs(provider, model, spec, dict(kwargs))
    llm: BaseLLM = _on_pool(OpenAI(**settings), settings, http_pool)
    return llm


def _load_other(spec: str, provider: str, model: str, kwargs: dict[str, Any]) -> BaseChatModel:
    package, module_name, class_name = PROVIDERS[provider]
    if not model:
        raise ConfigError(f"model spec {spec!r} names no model; write '{provider}:<model>'")
    if importlib.util.find_spec(module_name) is None:
        raise MissingPackageError(spec, package)
    try:  # prefer LangChain's own factory when the `langchain` package is present
        from langchain.chat_models import (  # type: ignore[import-not-found,unused-ignore]
            init_chat_model,
        )
    except ImportError:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
        chat: BaseChatModel = cls(model=model, **kwargs)
        return chat
    result: BaseChatModel = init_chat_model(model, model_provider=provider, **kwargs)
    return result
