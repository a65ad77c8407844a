"""The LangServe wire format: how outputs are written and which config a client may send.

Outputs are written as LangServe's ``WellKnownLCSerializer`` writes them
(``orjson`` with ``model_dump()`` for every pydantic model), so that
``langserve.RemoteRunnable`` and LangChain.js's ``RemoteRunnable`` turn them back
into the same objects: a string stays a string, a message (or message chunk) is
its fields with ``type`` (``"ai"``, ``"AIMessageChunk"``, ...), a pydantic output
is a dict. An object neither orjson nor pydantic can write is written as
chainkit's traces write it, rather than failing the response.

A client's ``config`` is filtered as LangServe filters it: only
:data:`CONFIG_KEYS` pass (``configurable`` only for the fields the chain declares
configurable); ``callbacks`` are refused; anything else a client sends along
(``recursion_limit``, ``run_id``, ``max_concurrency``, ...) is dropped. The server
adds its own ``request_id`` to ``metadata`` and a fresh ``run_id``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel

from chainkit.server._schemas import RunConfig
from chainkit.trace import to_jsonable

__all__ = ["CONFIG_KEYS", "dumps", "jsonable", "run_config", "strip_internal"]

CONFIG_KEYS = ("configurable", "tags", "metadata", "run_name")
"""The ``RunnableConfig`` keys a client may set; the rest of a client's config is dropped."""

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    return to_jsonable(value, 0)


def dumps(value: Any) -> bytes:
    """``value`` as LangServe writes it: JSON bytes, pydantic models as their fields."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except TypeError:  # an integer over 64 bits: the standard library writes it
        return json.dumps(to_jsonable(value, 0), default=str).encode()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data, written as :func:`dumps` writes it."""
    return orjson.loads(dumps(value))


def strip_internal(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata without LangChain's and LangServe's internal ``__`` keys (as LangServe sends it)."""
    return {k: v for k, v in metadata.items() if not str(k).startswith("__")}


def run_config(
    runnable: Runnable[Any, Any],
    client: RunConfig,
    request_id: str,
    callbacks: list[Any] | None = None,
) -> RunnableConfig:
    """The config a chain runs with: the client's allowed keys, the request id, a run id."""
    config: RunnableConfig = {
        "tags": list(client.tags),
        "metadata": {**client.metadata, "request_id": request_id},
        "run_id": uuid.uuid4(),
    }
    if client.configurable:
        declared = {spec.id for spec in runnable.config_specs}
        configurable = {k: v for k, v in client.configurable.items() if k in declared}
        if configurable:
            config["configurable"] = configurable
    if client.run_name:
        config["run_name"] = client.run_name
    if callbacks:
        config["callbacks"] = callbacks
    return config
