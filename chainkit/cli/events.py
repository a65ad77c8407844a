"""``chainkit events``: a chain's astream_events stream, made readable (or raw JSON Lines)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import warnings
from collections.abc import Mapping
from contextlib import aclosing
from enum import StrEnum
from typing import Annotated, Any

import typer

from chainkit._bridge import run_sync
from chainkit.cli._app import app
from chainkit.cli._otlp import OtlpOpt, otlp_handler
from chainkit.cli.stream import (
    ChainsDirOpt,
    InputsOpt,
    ModelOpt,
    TraceOpt,
    _ignore,
    _stdout_closed,
    chain_session,
    parse_inputs,
)

__all__ = ["EventFormatter", "events"]

PREVIEW = 60


class Version(StrEnum):
    v1 = "v1"
    v2 = "v2"


def _names(values: list[str] | None) -> list[str] | None:
    """Repeated and comma-separated option values as one list (None if not given)."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _filter_opt(what: str, verb: str) -> Any:
    return typer.Option(
        f"--{verb}-{what}",
        help=f"{verb.capitalize()} events of runs with these {what} (repeat or comma-separate).",
        show_default=False,
    )


class EventFormatter:
    """One readable line per event: time offset, indent by depth, event, name, chunk text."""

    def __init__(self) -> None:
        self.start: float | None = None
        self._depth: dict[str, int] = {}
        self._open_chains: list[str] = []

    def depth(self, event: Mapping[str, Any]) -> int:
        run_id = str(event.get("run_id", ""))
        parent_ids = event.get("parent_ids") or []
        kind = str(event.get("event", ""))
        if run_id not in self._depth:
            if parent_ids:
                self._depth[run_id] = len(parent_ids)
            else:  # v1 has no parent_ids: nest under the innermost open chain
                open_chains = [r for r in self._open_chains if r != run_id]
                self._depth[run_id] = self._depth[open_chains[-1]] + 1 if open_chains else 0
        if kind == "on_chain_start":
            self._open_chains.append(run_id)
        elif kind.endswith(("_end", "_error")) and run_id in self._open_chains:
            self._open_chains.remove(run_id)
        return self._depth[run_id]

    def __call__(self, event: Mapping[str, Any], now: float) -> str:
        if self.start is None:
            self.start = now
        indent = "  " * self.depth(event)
        kind = str(event.get("event", ""))
        width = max(1, 24 - len(indent))
        line = f"{now - self.start:8.3f}s {indent}{kind:<{width}} {event.get('name', '')}"
        detail = self._detail(kind, event.get("data") or {})
        return f"{line}  {detail}" if detail else line

    @staticmethod
    def _detail(kind: str, data: Mapping[str, Any]) -> str:
        from chainkit.trace import message_text, to_jsonable

        if kind.endswith("_stream") and "chunk" in data:
            chunk = data["chunk"]
            if isinstance(chunk, str):
                return repr(chunk)
            text = getattr(chunk, "content", None)
            if text is not None:
                return repr(message_text(chunk))
            return _preview(json.dumps(to_jsonable(chunk, PREVIEW), ensure_ascii=False))
        if kind.endswith("_error") and "error" in data:
            error = data["error"]
            return f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else ""
        if kind.endswith("_end") and "output" in data:
            output = data["output"]
            text = output if isinstance(output, str) else getattr(output, "content", None)
            if isinstance(text, str):
                return "-> " + _preview(repr(text))
            return "-> " + _preview(json.dumps(to_jsonable(output, PREVIEW), ensure_ascii=False))
        return ""


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


@app.command("events")
def events(
    chain: Annotated[str, typer.Argument(help="Chain name (`chainkit chains` lists them).")],
    inputs: InputsOpt = None,
    version: Annotated[
        Version,
        typer.Option("--version", help="The astream_events schema: v2, or the deprecated v1."),
    ] = Version.v2,
    include_types: Annotated[list[str] | None, _filter_opt("types", "include")] = None,
    include_names: Annotated[list[str] | None, _filter_opt("names", "include")] = None,
    include_tags: Annotated[list[str] | None, _filter_opt("tags", "include")] = None,
    exclude_types: Annotated[list[str] | None, _filter_opt("types", "exclude")] = None,
    exclude_names: Annotated[list[str] | None, _filter_opt("names", "exclude")] = None,
    exclude_tags: Annotated[list[str] | None, _filter_opt("tags", "exclude")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after N events.", show_default=False)
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Raw events as JSON Lines (plain JSON values).")
    ] = False,
    model: ModelOpt = None,
    chains_dir: ChainsDirOpt = None,
    trace: TraceOpt = None,
    otlp: OtlpOpt = False,
) -> None:
    """Run CHAIN once through astream_events and print each event as it happens.

    Readable lines (default): seconds since the first event, the event indented
    by its depth in the run tree, the run's name, and the chunk text of stream
    events (or a preview of an end event's output).
    """
    from chainkit.callbacks import record_events
    from chainkit.trace import Trace, to_jsonable

    values = parse_inputs(inputs)
    otel = otlp_handler(otlp)
    config: Any = {"callbacks": [otel]} if otel is not None else None
    try:
        recorder = Trace(trace) if trace is not None else None
    except BaseException:
        if otel is not None:
            otel.shutdown()
        raise
    fmt = EventFormatter()
    filters = {
        "include_types": _names(include_types),
        "include_names": _names(include_names),
        "include_tags": _names(include_tags),
        "exclude_types": _names(exclude_types),
        "exclude_names": _names(exclude_names),
        "exclude_tags": _names(exclude_tags),
    }

    async def run() -> None:
        async with chain_session(chain, values, model=model, chains_dir=chains_dir) as runnable:
            astream_events: Any = runnable.astream_events  # version is a str here, not a Literal
            stream: Any = astream_events(values, config, version=version.value, **filters)
            if recorder is not None:
                stream = record_events(stream, recorder)
            count = 0
            async with aclosing(stream) as events_:
                try:
                    async for event in events_:
                        if as_json:
                            line = json.dumps(to_jsonable(event, 0), ensure_ascii=False)
                        else:
                            line = fmt(event, time.perf_counter())
                        sys.stdout.write(line + "\n")
                        sys.stdout.flush()
                        count += 1
                        if limit is not None and count >= limit:
                            break
                except BrokenPipeError:
                    asyncio.get_running_loop().set_exception_handler(_ignore)
                    raise

    try:
        with warnings.catch_warnings():  # v1 is deprecated upstream, but asked for here
            warnings.filterwarnings("ignore", "astream_events version='v1'", DeprecationWarning)
            run_sync(run())
    except BrokenPipeError:
        _stdout_closed()
    finally:
        if recorder is not None:
            recorder.close()
        if otel is not None:
            otel.shutdown()
