"""``StreamPrinter``: print model chunks as they arrive, one stream or many labelled."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from chainkit.callbacks._common import run_name, token_text

__all__ = ["LabelInfo", "StreamPrinter"]

# Tags LangChain adds itself; never used as a label.
_SYSTEM_TAG_PREFIXES = ("seq:", "map:", "graph:", "langsmith:", "branch:")


@dataclass(frozen=True, slots=True)
class LabelInfo:
    """What a label function gets for a model run."""

    run_id: UUID
    name: str
    tags: list[str]
    metadata: Mapping[str, Any]
    root_name: str
    root_index: int


class StreamPrinter(BaseCallbackHandler):
    """Print every model chunk as it arrives to a text stream (default ``sys.stdout``).

    ``StreamPrinter(sep="|")`` writes each chunk followed by ``|``, as the first
    seed's ``print(chunk, end="|", flush=True)`` loop does. ``end`` is written
    after each model run (default nothing).

    With ``labels=True`` chunks are buffered per model run and printed as whole
    lines, each prefixed by the run's label in brackets, so that several
    concurrent streams never interleave inside a line::

        [a magical forest] Once upon a time...
        [a futuristic city] In the year 3000...

    The label is ``label(info)`` if ``label`` is a function; else the run's
    metadata value under ``label`` (a key name, default ``"label"``; metadata
    passed in the call's config reaches the model run); else the call's first
    own tag; else the top-level run's name and its number (``song#2``).

    Hooks are plain methods run inline; writes are serialised by a lock.
    """

    run_inline = True

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        sep: str = "",
        end: str = "",
        labels: bool = False,
        label: str | Callable[[LabelInfo], str] = "label",
        skip_empty: bool = False,
        flush: bool = True,
    ) -> None:
        super().__init__()
        self._stream = stream
        self.sep = sep
        self.end = end
        self.labels = labels
        self.label = label
        self.skip_empty = skip_empty or labels
        self.flush = flush
        self._lock = threading.Lock()
        self._buffers: dict[UUID, list[str]] = {}
        self._labels: dict[UUID, str] = {}
        self._chains: dict[UUID, tuple[UUID | None, str]] = {}
        self._root_index: dict[UUID, int] = {}
        self._roots_seen = 0

    @property
    def stream(self) -> TextIO:
        # Resolved at write time so that a redirected sys.stdout (pytest capsys,
        # contextlib.redirect_stdout) is honoured.
        return self._stream if self._stream is not None else sys.stdout

    def __copy__(self) -> StreamPrinter:
        return self

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> StreamPrinter:
        return self

    def _write(self, text: str) -> None:
        stream = self.stream
        stream.write(text)
        if self.flush:
            stream.flush()

    # ---------------------------------------------------------------- labels

    def _root(self, parent_run_id: UUID | None) -> tuple[UUID | None, str]:
        root, name = None, ""
        current = parent_run_id
        seen: set[UUID] = set()
        while current is not None and current in self._chains and current not in seen:
            seen.add(current)
            root = current
            current, name = self._chains[current]
        return root, name

    def _label_for(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
    ) -> str:
        root, root_name = self._root(parent_run_id)
        root_name = root_name or name
        index = self._root_index.get(root, 0) if root is not None else 0
        if callable(self.label):
            info = LabelInfo(run_id, name, list(tags or ()), metadata or {}, root_name, index)
            return str(self.label(info))
        value = (metadata or {}).get(self.label)
        if value is not None:
            return str(value)
        own = [t for t in tags or () if not t.startswith(_SYSTEM_TAG_PREFIXES)]
        if own:
            return own[0]
        return f"{root_name}#{index}" if index else root_name

    # ----------------------------------------------------------------- hooks

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.labels:
            return
        with self._lock:
            self._chains[run_id] = (parent_run_id, run_name(name, serialized))
            if parent_run_id is None or parent_run_id not in self._chains:
                self._roots_seen += 1
                self._root_index[run_id] = self._roots_seen

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self.labels:
            with self._lock:
                self._chains.pop(run_id, None)
                self._root_index.pop(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.on_chain_end(None, run_id=run_id)

    def _model_start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        if not self.labels:
            return
        with self._lock:
            self._labels[run_id] = self._label_for(run_id, parent_run_id, name, tags, metadata)
            self._buffers[run_id] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, run_name(name, serialized), tags, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, run_name(name, serialized), tags, metadata)

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any
    ) -> None:
        text = token if token.__class__ is str else token_text(token, chunk)
        if not text and self.skip_empty:
            return
        with self._lock:
            if not self.labels:
                self._write(text + self.sep)
                return
            buffer = self._buffers.setdefault(run_id, [])
            if "\n" not in text:
                buffer.append(text)
                return
            head, *middle, tail = text.split("\n")
            label = self._labels.get(run_id, "?")
            lines = ["".join(buffer) + head, *middle]
            # blank lines (paragraph breaks) carry nothing once lines are labelled
            self._write("".join(f"[{label}] {line}\n" for line in lines if line.strip()))
            buffer[:] = [tail] if tail else []

    def _model_end(self, run_id: UUID) -> None:
        with self._lock:
            if self.labels:
                rest = "".join(self._buffers.pop(run_id, ()))
                label = self._labels.pop(run_id, "?")
                if rest.strip():
                    self._write(f"[{label}] {rest}\n")
            elif self.end:
                self._write(self.end)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._model_end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._model_end(run_id)
