"""Helpers for testing code built on chainkit, offline.

- :func:`local_model_server`: a fresh local model (an OpenAI-compatible server
  on a free loopback port) with the faults you ask for, for one block.
- :func:`blank_ids`: event sequences with run ids replaced by stable
  placeholders, so two runs can be compared with ``==``.

>>> with local_model_server(error_rate=0.3, seed=7) as server:
...     model = ChatOpenAI(base_url=server.base_url, api_key="x", max_retries=3)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chainkit.models.local import IDLE_TIMEOUT, LocalModelServer, LocalModelSettings

__all__ = ["blank_ids", "local_model_server"]


@contextlib.contextmanager
def local_model_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    request_log: bool = False,
    idle_timeout: float = IDLE_TIMEOUT,
    **settings: Any,
) -> Iterator[LocalModelServer]:
    """A fresh local model server with ``settings`` (see ``LocalModelSettings``).

    Started on entry (a free port unless ``port`` is given), stopped on exit
    with its port freed. ``api_key``, ``request_log`` and ``idle_timeout`` are
    :class:`LocalModelServer`'s.
    """
    server = LocalModelServer(
        LocalModelSettings(**settings),
        host=host,
        port=port,
        api_key=api_key,
        request_log=request_log,
        idle_timeout=idle_timeout,
    )
    with server:
        yield server


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
