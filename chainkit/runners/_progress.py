"""Progress of a batch: a Rich bar on a terminal, plain lines in logs, HTML in Jupyter.

All of it goes to stderr (or to the notebook's output area), never to stdout,
so ``chainkit batch ... --json > report.json`` stays clean.

- terminal (stderr is a TTY): a Rich progress bar with done/total (when the
  total is known), rate, ETA, items in flight, retries and errors;
- anything else (CI logs, pipes): one plain line every ``interval`` seconds
  and a last one at the end;
- Jupyter: an HTML ``<progress>`` bar updated in place through
  ``IPython.display`` (no widgets needed);
- ``progress=False``: nothing.
"""

from __future__ import annotations

import html
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

__all__ = [
    "NotebookProgress",
    "PlainProgress",
    "ProgressSink",
    "RichProgress",
    "Snapshot",
    "make_progress",
]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The numbers a progress display shows, taken at one moment."""

    done: int
    total: int | None
    succeeded: int
    failed: int
    skipped: int
    retries: int
    in_flight: int
    elapsed: float
    detail: str = ""  # what the executor adds (openai-batch: its batches' states and counts)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.skipped - self.done)

    @property
    def eta(self) -> float | None:
        remaining = self.remaining
        if remaining is None or self.rate <= 0:
            return None
        return remaining / self.rate

    def line(self) -> str:
        total = f"/{self.total - self.skipped}" if self.total is not None else ""
        eta = self.eta
        eta_text = f", ETA {_duration(eta)}" if eta is not None and self.remaining else ""
        skipped = f", {self.skipped} resumed" if self.skipped else ""
        detail = f"; {self.detail}" if self.detail else ""
        return (
            f"{self.done}{total} done ({self.failed} failed{skipped}), "
            f"{self.rate:.1f}/s{eta_text}, {self.in_flight} in flight, {self.retries} retries"
            f"{detail}"
        )


class ProgressSink(Protocol):
    """What the runner calls; implement it to show progress your own way."""

    def start(self, total: int | None, description: str) -> None: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def close(self, snapshot: Snapshot) -> None: ...


class NullProgress:
    def start(self, total: int | None, description: str) -> None:
        pass

    def update(self, snapshot: Snapshot) -> None:
        pass

    def close(self, snapshot: Snapshot) -> None:
        pass


class PlainProgress:
    """One line every ``interval`` seconds on ``stream`` (stderr), and one at the end."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval
        self._description = "batch"
        self._next = 0.0

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def start(self, total: int | None, description: str) -> None:
        self._description = description
        self._next = time.monotonic() + self.interval
        of = f" of {total} inputs" if total is not None else ""
        self._write(f"{description}: started{of}")

    def update(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self._write(f"{self._description}: {snapshot.line()}")

    def close(self, snapshot: Snapshot) -> None:
        self._write(f"{self._description}: {snapshot.line()} in {_duration(snapshot.elapsed)}")


class RichProgress:
    """A Rich progress bar on stderr."""

    def __init__(self, console: Any | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress: Any = None
        self._task: Any = None

    def start(self, total: int | None, description: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn(
                "in flight {task.fields[in_flight]} · retries {task.fields[retries]} · "
                "[red]errors {task.fields[errors]}[/red]"
            ),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
            refresh_per_second=8,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total, rate="", in_flight=0, retries=0, errors=0, detail=""
        )

    def update(self, snapshot: Snapshot) -> None:
        if self._progress is None:
            return
        total = None if snapshot.total is None else snapshot.total - snapshot.skipped
        self._progress.update(
            self._task,
            completed=snapshot.done,
            total=total,
            rate=f"{snapshot.rate:.1f}/s",
            in_flight=snapshot.in_flight,
            retries=snapshot.retries,
            errors=snapshot.failed,
            detail=snapshot.detail,
        )

    def close(self, snapshot: Snapshot) -> None:
        if self._progress is None:
            return
        self.update(snapshot)
        self._progress.stop()
        self._progress = None


class NotebookProgress:
    """An HTML progress bar in a Jupyter output cell, updated in place (about 4 times a second)."""

    def __init__(self, display: Callable[..., Any] | None = None, html_type: Any = None) -> None:
        if display is None or html_type is None:
            ipython_display = importlib.import_module("IPython.display")
            display, html_type = ipython_display.display, ipython_display.HTML
        self._display = display
        self._html = html_type
        self._handle: Any = None
        self._description = "batch"
        self._last = 0.0

    def _render(self, snapshot: Snapshot | None, final: bool = False) -> Any:
        if snapshot is None:
            body = "starting"
            bar = "<progress style='width:24em'></progress>"
        else:
            total = None if snapshot.total is None else snapshot.total - snapshot.skipped
            bar = (
                f"<progress style='width:24em' value='{snapshot.done}' max='{total}'></progress>"
                if total
                else "<progress style='width:24em'></progress>"
            )
            body = html.escape(snapshot.line())
            if final:
                body += f" in {_duration(snapshot.elapsed)}"
        return self._html(
            f"<div><b>{html.escape(self._description)}</b> {bar} <code>{body}</code></div>"
        )

    def start(self, total: int | None, description: str) -> None:
        self._description = description
        self._handle = self._display(self._render(None), display_id=True)

    def update(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if self._handle is not None and now - self._last >= 0.25:
            self._last = now
            self._handle.update(self._render(snapshot))

    def close(self, snapshot: Snapshot) -> None:
        if self._handle is not None:
            self._handle.update(self._render(snapshot, final=True))


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_progress(progress: bool | str | ProgressSink | None) -> ProgressSink:
    """``True``: pick by environment; ``"rich"``, ``"plain"``, ``"notebook"``; a sink; or off."""
    if progress is None or progress is False:
        return NullProgress()
    if not isinstance(progress, bool | str):
        return progress
    kind = progress if isinstance(progress, str) else "auto"
    if kind == "auto":
        if in_notebook():
            kind = "notebook"
        elif sys.stderr is not None and sys.stderr.isatty():
            kind = "rich"
        else:
            kind = "plain"
    if kind == "notebook":
        return NotebookProgress()
    if kind == "rich":
        return RichProgress()
    if kind == "plain":
        return PlainProgress()
    raise ValueError(
        f"progress must be True, False, 'rich', 'plain' or 'notebook', got {progress!r}"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
