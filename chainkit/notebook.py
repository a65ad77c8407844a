"""Jupyter helpers: several concurrent streams updating in place in one output cell.

>>> from chainkit.notebook import live_stream
>>> trace = live_stream(get_chain("story"), [{"topic": "a magical forest"},
...                                          {"topic": "a futuristic city"}], max_concurrency=2)
>>> trace          # the captured trace renders as HTML (summary and run tree)

In a notebook the streams are one HTML table, updated in place through an
IPython display handle (no new output per chunk); elsewhere each stream is
printed as plain text when it finishes. Both return the
:class:`~chainkit.trace.Trace` of every run, so the chunks, timings and errors
can be looked at afterwards (``chainkit.debug`` views, ``Viewer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from langchain_core.runnables import Runnable, RunnableConfig

from chainkit._bridge import run_sync
from chainkit.callbacks import StreamCapture
from chainkit.errors import UserError
from chainkit.trace import Run, Trace

__all__ = ["alive_stream", "in_notebook", "live_stream"]

TEXT_TAIL = 600
"""Characters of each stream's text shown while it runs (its tail)."""


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _label(value: Any, limit: int = 48) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Item:
    index: int
    value: Any
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    status: str = "waiting"
    error: str = ""
    started: float | None = None
    ended: float | None = None

    @property
    def label(self) -> str:
        return _label(self.value)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class _Board:
    """The state of every stream, read from the trace as it fills."""

    def __init__(self, trace: Trace, values: list[Any]) -> None:
        self.trace = trace
        self.items = [_Item(i, v) for i, v in enumerate(values)]
        self.lock = threading.Lock()

    def root(self, item: _Item) -> Run | None:
        return self.trace.get(item.run_id)

    def text(self, item: _Item) -> str:
        root = self.root(item)
        if root is None:
            return ""
        models = sorted(
            (run for _, run in root.walk() if run.is_model),
            key=lambda r: r.start if r.start is not None else 0.0,
        )
        if not models:
            return root.text
        return "\n\n".join(run.text for run in models if run.text)

    def chunks(self, item: _Item) -> int:
        root = self.root(item)
        if root is None:
            return 0
        return sum(len(run.text_chunks) for _, run in root.walk() if run.is_model)

    def elapsed(self, item: _Item) -> float | None:
        if item.started is None:
            return None
        return (item.ended or time.perf_counter()) - item.started

    def counts(self) -> dict[str, int]:
        out = {"waiting": 0, "streaming": 0, "done": 0, "error": 0}
        for item in self.items:
            out[item.status] += 1
        return out

    # ----------------------------------------------------------- rendering

    def html(self) -> str:
        colours = {"waiting": "#888", "streaming": "#b45309", "done": "#15803d", "error": "#b91c1c"}
        rows = []
        for item in self.items:
            root = self.root(item)
            ttft = root.ttft if root is not None else None
            text = self.text(item)
            if len(text) > TEXT_TAIL:
                text = "…" + text[-TEXT_TAIL:]
            body = html.escape(text)
            if item.error:
                body += f"<div style='color:#b91c1c'>{html.escape(item.error)}</div>"
            rows.append(
                "<tr>"
                f"<td>{item.index}</td><td>{html.escape(item.label)}</td>"
                f"<td style='color:{colours[item.status]};font-weight:600'>{item.status}</td>"
                f"<td>{_ms(ttft)}</td><td>{self.chunks(item)}</td>"
                f"<td>{_ms(self.elapsed(item))}</td>"
                f"<td style='white-space:pre-wrap;max-width:640px'>{body}</td>"
                "</tr>"
            )
        counts = ", ".join(f"{n} {k}" for k, n in self.counts().items() if n)
        head = "".join(
            f"<th>{h}</th>" for h in ("#", "input", "status", "ttft", "chunks", "time", "text")
        )
        return (
            "<style>.ck-live td,.ck-live th{padding:2px 8px;vertical-align:top;text-align:left}"
            ".ck-live tbody tr{border-top:1px solid #ddd}</style>"
            "<div class='ck-live' style='font-family:ui-monospace,monospace;font-size:12px'>"
            f"<div><b>live_stream</b> · {len(self.items)} streams · {counts}</div>"
            "<table style='border-collapse:collapse'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )

    def finished_text(self, item: _Item) -> str:
        root = self.root(item)
        bits = [f"[{item.index}] {item.status}", item.label]
        timing = []
        if root is not None and root.ttft is not None:
            timing.append(f"ttft {_ms(root.ttft)}")
        if (elapsed := self.elapsed(item)) is not None:
            timing.append(_ms(elapsed))
        timing.append(f"{self.chunks(item)} chunks")
        head = "  ".join(bits) + f"  ({', '.join(timing)})"
        body = item.error if item.error else self.text(item)
        indented = "\n".join("    " + line for line in body.splitlines()) or "    "
        return f"{head}\n{indented}\n"


class _Output:
    """Where the board goes: a display handle in a notebook, else text lines."""

    def __init__(self, board: _Board, *, notebook: bool, file: TextIO | None) -> None:
        self.board = board
        self.notebook = notebook
        self.file = file
        self.handle: Any = None
        self.printed: set[int] = set()

    def start(self) -> None:
        if self.notebook:
            ipd = _ipython_display()
            self.handle = ipd.display(ipd.HTML(self.board.html()), display_id=True)

    def refresh(self) -> None:
        if self.notebook:
            if self.handle is not None:
                self.handle.update(_ipython_display().HTML(self.board.html()))
            return
        stream = self.file or sys.stdout
        with self.board.lock:
            finished = [
                item
                for item in self.board.items
                if item.status in ("done", "error") and item.index not in self.printed
            ]
            self.printed.update(item.index for item in finished)
        for item in finished:
            stream.write(self.board.finished_text(item))
        if finished:
            stream.flush()

    def finish(self) -> None:
        self.refresh()
        if not self.notebook:
            stream = self.file or sys.stdout
            stream.write(f"live_stream: {self.board.trace.summary()}\n")
            stream.flush()


def _ipython_display() -> Any:
    """``IPython.display`` (untyped; imported only in a notebook)."""
    return importlib.import_module("IPython.display")


def _config_for(config: RunnableConfig | None, capture: StreamCapture, item: _Item) -> Any:
    base: dict[str, Any] = dict(config or {})
    callbacks = base.get("callbacks") or []
    if not isinstance(callbacks, list):
        raise UserError(
            "live_stream(config=...) takes callbacks as a list of handlers, "
            f"got {type(callbacks).__name__}"
        )
    base["callbacks"] = [*callbacks, capture]
    base["run_id"] = item.run_id
    return base


async def _drive(
    chain: Runnable[Any, Any],
    board: _Board,
    capture: StreamCapture,
    *,
    max_concurrency: int,
    config: RunnableConfig | None,
) -> None:
    semaphore = asyncio.Semaphore(max_concurrency)

    async def one(item: _Item) -> None:
        async with semaphore:
            item.status, item.started = "streaming", time.perf_counter()
            try:
                async for _ in chain.astream(item.value, config=_config_for(config, capture, item)):
                    pass
            except Exception as exc:  # noqa: BLE001 - one failed stream must not stop the others
                item.status, item.error = "error", f"{type(exc).__name__}: {exc}"
            else:
                item.status = "done"
            finally:
                item.ended = time.perf_counter()

    await asyncio.gather(*(one(item) for item in board.items))


def _prepare(
    chain: Runnable[Any, Any] | str,
    inputs: Iterable[Any],
    max_concurrency: int,
    trace: Trace | None,
) -> tuple[Runnable[Any, Any], _Board, StreamCapture]:
    if isinstance(chain, str):
        from chainkit.chains import get_chain

        chain = get_chain(chain)
    if not isinstance(chain, Runnable):
        raise UserError(
            f"live_stream needs a LangChain Runnable or a chain name, got {type(chain).__name__}"
        )
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise UserError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise UserError(f"max_concurrency must be >= 1, got {max_concurrency}")
    values = list(inputs)
    capture = StreamCapture(trace if trace is not None else Trace())
    return chain, _Board(capture.trace, values), capture


async def alive_stream(
    chain: Runnable[Any, Any] | str,
    inputs: Iterable[Any],
    *,
    max_concurrency: int = 4,
    config: RunnableConfig | None = None,
    trace: Trace | None = None,
    refresh: float = 0.1,
    notebook: bool | None = None,
    file: TextIO | None = None,
) -> Trace:
    """:func:`live_stream` for ``await`` (in a notebook cell or any async code)."""
    chain, board, capture = _prepare(chain, inputs, max_concurrency, trace)
    out = _Output(board, notebook=in_notebook() if notebook is None else notebook, file=file)
    out.start()
    done = asyncio.Event()

    async def refresher() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=refresh)
            out.refresh()

    task = asyncio.create_task(refresher())
    try:
        await _drive(
            chain,
            board,
            capture,
            max_concurrency=max_concurrency,
            config=config,
        )
    finally:
        done.set()
        await task
        out.finish()
    return capture.trace


def live_stream(
    chain: Runnable[Any, Any] | str,
    inputs: Iterable[Any],
    *,
    max_concurrency: int = 4,
    config: RunnableConfig | None = None,
    trace: Trace | None = None,
    refresh: float = 0.1,
    notebook: bool | None = None,
    file: TextIO | None = None,
) -> Trace:
    """Stream ``chain`` over ``inputs``, ``max_concurrency`` at a time, shown live; the trace.

    Each input goes through ``chain.astream`` with a
    :class:`~chainkit.callbacks.StreamCapture` attached (and the ``config``'s own
    callbacks); a failed stream shows its error and does not stop the others.
    In a notebook one output table is updated in place every ``refresh`` seconds
    (``notebook=False`` forces plain text, printed to ``file`` as each stream
    ends). Works with or without a running event loop (a Jupyter cell has one:
    the streams then run on their own loop in a worker thread while this thread
    updates the output). Returns the :class:`~chainkit.trace.Trace`; ``trace=``
    records into a Trace of yours (a file, say).
    """
    chain, board, capture = _prepare(chain, inputs, max_concurrency, trace)
    out = _Output(board, notebook=in_notebook() if notebook is None else notebook, file=file)
    out.start()

    # The streams run on their own loop in a worker thread; this thread updates
    # the output (a display handle belongs to the cell that runs this call).
    # Ctrl-C / "interrupt kernel" cancels the streams, then re-raises.
    try:
        run_sync(
            _drive(chain, board, capture, max_concurrency=max_concurrency, config=config),
            tick=out.refresh,
            interval=refresh,
            name="chainkit-live-stream",
        )
    finally:
        out.finish()
    return capture.trace
