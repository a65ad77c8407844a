"""Put an OpenAI model (``ChatOpenAI``, ``AzureChatOpenAI``, ``OpenAI``) on an :class:`HttpPool`.

:func:`use_http_pool` is how every caller gives a model its HTTP clients:
``load_model`` / ``load_llm`` (the process-wide pool), the runner (a pool per
batch, sized to ``max_concurrency``, closed at its end), the service and the
CLI (a pool of their own, closed at shutdown), Ray workers (a pool per worker).

The model keeps its class and fields; its async client becomes a
:class:`~chainkit.models._lean.LeanAsyncOpenAI` over the pool when it is a plain
OpenAI client (API key, no custom HTTP client), else the SDK's client on the
pool's ``httpx_client``. A model made with an ``http_async_client`` of the
user's keeps that client: only ``max_retries`` changes. A lean ``ChatOpenAI``
has ``stream_chunk_timeout=None``: its stream bounds each socket read by that
value instead (an ``APITimeoutError`` past it).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import openai

from chainkit.models._http import HttpPool
from chainkit.models._lean import LeanAsyncOpenAI, LeanEndpoint
from chainkit.models._lean_sync import LeanOpenAI

__all__ = ["is_lean", "stock_async_root", "stock_sync_root", "use_http_pool"]

M = TypeVar("M")


def _stock_root(
    model: Any, root_field: str, resource_field: str, lean: type[LeanAsyncOpenAI | LeanOpenAI]
) -> Any:
    from chainkit._compat import sdk_root  # lazily: chainkit.models.local loads no LangChain

    root = getattr(model, root_field, None)
    if root is None:  # BaseOpenAI (completions) keeps only the resource
        root = sdk_root(getattr(model, resource_field, None))
    return root.stock if isinstance(root, lean) else root


def stock_async_root(model: Any) -> Any:
    """The model's ``openai.AsyncOpenAI`` (under the lean wrapper, if any)."""
    return _stock_root(model, "root_async_client", "async_client", LeanAsyncOpenAI)


def stock_sync_root(model: Any) -> Any:
    """The model's ``openai.OpenAI`` (under the lean wrapper, if any)."""
    return _stock_root(model, "root_client", "client", LeanOpenAI)


def is_lean(model: Any) -> bool:
    """Whether ``model``'s async calls take the lean path."""
    root = getattr(model, "root_async_client", None)
    if root is None:
        return isinstance(getattr(model, "async_client", None), LeanEndpoint)
    return isinstance(root, LeanAsyncOpenAI)


def _plain_openai(root: Any) -> bool:
    """A client the lean path can stand in for: OpenAI itself, an API key as a string."""
    return (
        type(root) is openai.AsyncOpenAI
        and getattr(root, "_api_key_provider", None) is None
        and getattr(root, "workload_identity", None) is None
        and isinstance(getattr(root, "api_key", None), str)
    )


def use_http_pool(model: M, pool: HttpPool, *, max_retries: int | None = None) -> M:
    """A copy of the OpenAI ``model`` whose async calls go through ``pool``.

    ``max_retries`` (when given) replaces the SDK clients' retry count, sync and
    async (the runner passes 0: one retry layer). Other models come back as they are.
    """
    from langchain_openai.chat_models.base import BaseChatOpenAI
    from langchain_openai.llms.base import BaseOpenAI

    if not isinstance(model, BaseChatOpenAI | BaseOpenAI):
        return model
    chat = isinstance(model, BaseChatOpenAI)
    updates: dict[str, Any] = {}
    if max_retries is not None:
        updates["max_retries"] = max_retries
    lean: LeanAsyncOpenAI | None = None
    root = stock_async_root(model)
    if root is not None:
        users_client = getattr(model, "http_async_client", None) is not None
        options: dict[str, Any] = {}
        if max_retries is not None:
            options["max_retries"] = max_retries
        if not users_client:
            options["http_client"] = pool.httpx_client
        new_root: Any = root.with_options(**options) if options else root
        if not users_client and _plain_openai(new_root):
            # langchain-openai bounds the wait between chunks by wrapping each one in
            # asyncio.wait_for (a task per chunk; on Python 3.11 it can swallow a
            # cancellation): the lean stream bounds its socket reads by it instead.
            chunk_timeout = getattr(model, "stream_chunk_timeout", None)
            current = getattr(model, "root_async_client", None)
            if isinstance(current, LeanAsyncOpenAI):
                chunk_timeout = current.chunk_timeout
            new_root = lean = LeanAsyncOpenAI(new_root, pool, chunk_timeout=chunk_timeout)
            if chunk_timeout is not None:
                updates["stream_chunk_timeout"] = None
        updates["async_client"] = new_root.chat.completions if chat else new_root.completions
        if chat:
            updates["root_async_client"] = new_root
    sync_root = stock_sync_root(model)
    if sync_root is not None and (lean is not None or max_retries is not None):
        new_sync: Any = sync_root
        if max_retries is not None and hasattr(sync_root, "with_options"):
            new_sync = sync_root.with_options(max_retries=max_retries)
        if lean is not None and getattr(model, "http_client", None) is None:
            new_sync = LeanOpenAI(new_sync, lean)
        updates["client"] = new_sync.chat.completions if chat else new_sync.completions
        if chat:
            updates["root_client"] = new_sync
    copy: Any = model.model_copy(update=updates)
    return cast("M", copy)
