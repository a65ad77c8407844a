"""Helpers for testing code built on chainkit, offline.

- :func:`local_model_server`: a fresh local model (an OpenAI-compatible server
  on a free loopback port) with the faults you ask for, for one block.
- scripted replies: ``server.enqueue("Hi!", tool_call("get_weather", city="Paris"),
  fail(429))`` says exactly what the model answers next (then it writes again);
  ``server.reply_with(fn)`` answers each request with ``fn(request_json)``; one
  request can carry its own in the ``X-Chainkit-Reply`` header (:func:`reply_header`).
- :func:`blank_ids`: event sequences with run ids replaced by stable
  placeholders, so two runs can be compared with ``==``.

>>> with local_model_server(error_rate=0.3, seed=7) as server:
...     model = ChatOpenAI(base_url=server.base_url, api_key="x", max_retries=3)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chainkit.models.local import IDLE_TIMEOUT, LocalModelServer, LocalModelSettings
from chainkit.models.local._scripted import REPLY_HEADER, Scripted, fail, tool_call

__all__ = [
    "Scripted",
    "blank_ids",
    "fail",
    "local_model_server",
    "reply_header",
    "tool_call",
]


@contextlib.contextmanager
def local_model_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    request_log: bool = False,
    idle_timeout: float = IDLE_TIMEOUT,
    replies: Iterable[str | Scripted] = (),
    **settings: Any,
) -> Iterator[LocalModelServer]:
    """A fresh local model server with ``settings`` (see ``LocalModelSettings``).

    Started on entry (a free port unless ``port`` is given), stopped on exit
    with its port freed. ``api_key``, ``request_log`` and ``idle_timeout`` are
    :class:`LocalModelServer`'s; ``replies`` are enqueued (see ``enqueue``).
    """
    server = LocalModelServer(
        LocalModelSettings(**settings),
        host=host,
        port=port,
        api_key=api_key,
        request_log=request_log,
        idle_timeout=idle_timeout,
    )
    server.enqueue(*replies)
    with server:
        yield server


def reply_header(reply: str | Scripted) -> dict[str, str]:
    """Headers that script the answer of one request, e.g.
    ``ChatOpenAI(default_headers=reply_header("Hi!"))`` or ``extra_headers=``."""
    if isinstance(reply, str):
        reply = Scripted(content=reply)
    if reply.error is not None:
        data: dict[str, Any] = {"error": {"status": reply.error[0], "message": reply.error[1]}}
    elif reply.tool_calls:
        data = {"tool_calls": [{"name": n, "arguments": a} for n, a in reply.tool_calls]}
    else:
        data = {"content": reply.content or ""}
    return {REPLY_HEADER: json.dumps(data)}  # ASCII: header values must be


def blank_ids(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``events`` with ``run_id``/``parent_ids``/``parent_run_id`` made stable.

    Each distinct run id becomes ``"run-0"``, ``"run-1"``, ... in order of first
    appearance, so sequences from two runs compare equal when they match.
    """
    names: dict[str, str] = {}

    def name(run_id: Any) -> Any:
        if run_id is None:
            return None
        key = str(run_id)
        if key not in names:
            names[key] = f"run-{len(names)}"
        return names[key]

    blanked = []
    for event in events:
        copy = dict(event)
        if "run_id" in copy:
            copy["run_id"] = name(copy["run_id"])
        if "parent_run_id" in copy:
            copy["parent_run_id"] = name(copy["parent_run_id"])
        if "parent_ids" in copy and copy["parent_ids"] is not None:
            copy["parent_ids"] = [name(p) for p in copy["parent_ids"]]
        blanked.append(copy)
    return blanked
