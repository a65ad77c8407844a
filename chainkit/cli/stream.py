"""``chainkit stream``: stream a chain's output to stdout, with a timing summary on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from chainkit._bridge import run_sync
from chainkit._unicode import lone_surrogate_at
from chainkit.cli._app import app
from chainkit.cli._otlp import OtlpOpt, otlp_handler
from chainkit.errors import InputError

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from chainkit.models import HttpPool
    from chainkit.trace import Run

__all__ = ["ChunkFormatter", "build_chain", "chain_session", "parse_inputs", "stream"]

InputsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        help='A template variable as NAME=VALUE (repeat for more): -i topic="sparkling water".',
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model spec (default: the chain's, or $CHAINKIT_MODEL, or local)."
    ),
]
ChainsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--chains-dir",
        help="Folder of *.toml chain spec files (default: $CHAINKIT_CHAINS_DIR).",
        show_default=False,
    ),
]
TraceOpt = Annotated[
    Path | None,
    typer.Option(
        "--trace", help="Also write a chainkit trace (JSON Lines) to FILE.", show_default=False
    ),
]


def parse_inputs(pairs: list[str] | None) -> dict[str, str]:
    """``["topic=sparkling water", ...]`` as a dict; a malformed pair is an InputError."""
    inputs: dict[str, str] = {}
    for pair in pairs or ():
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or not name or not name.isidentifier():
            raise InputError(
                f'-i {pair!r} is not NAME=VALUE; write e.g. -i topic="sparkling water"'
            )
        if lone_surrogate_at(value) is not None:  # bytes that are not UTF-8 in argv
            shown = value.encode("utf-8", "backslashreplace").decode()
            raise InputError(
                f"-i {name}: the value '{shown}' is not UTF-8 text; pass the text as UTF-8"
            )
        inputs[name] = value
    return inputs


def check_inputs(name: str, inputs: dict[str, str], chains_dir: Path | None) -> str | None:
    """Raise MissingVariableError if ``inputs`` lack a variable; returns the chain's own model."""
    from chainkit.chains import get_chain_info
    from chainkit.errors import MissingVariableError

    info = get_chain_info(name, chains_dir=chains_dir)
    missing = [v for v in info.variables if v not in inputs and v not in info.defaults]
    if missing:
        raise MissingVariableError(name, missing, inputs)
    return info.model


def build_chain(
    name: str,
    inputs: dict[str, str],
    *,
    model: str | None,
    chains_dir: Path | None,
    http_pool: HttpPool | None = None,
) -> Runnable[Any, Any]:
    """The chain called ``name`` on ``model``, after checking ``inputs`` against its variables.

    ``http_pool``: the HTTP pool for an OpenAI-compatible model, closed by the caller.
    """
    from chainkit.chains import get_chain

    own_model = check_inputs(name, inputs, chains_dir)
    spec = model or own_model
    model_arg: Any = spec
    if http_pool is not None:
        from chainkit.models import load_model, parse_spec

        if parse_spec(spec)[0] in ("local", "openai"):
            model_arg = load_model(spec, http_pool=http_pool)
    return get_chain(name, model=model_arg, chains_dir=chains_dir)


@contextlib.asynccontextmanager
async def chain_session(
    name: str, inputs: dict[str, str], *, model: str | None, chains_dir: Path | None
) -> AsyncIterator[Runnable[Any, Any]]:
    """The chain for async use in this event loop; its HTTP pool closed afterwards."""
    from chainkit.models import HttpPool

    pool = HttpPool()
    try:
        yield build_chain(name, inputs, model=model, chains_dir=chains_dir, http_pool=pool)
    finally:
        await pool.aclose()


@dataclass
class ChunkFormatter:
    """Turns streamed chunks into text for a terminal.

    Strings (and message chunks) are written as they come, each followed by
    ``sep``. Dicts (the chunks of ``RunnablePassthrough.assign`` / parallel steps)
    are buffered per key and written as whole lines prefixed ``[key]``, so that
    branches streaming at once do not mix within a line. Anything else is one
    JSON line.
    """

    sep: str = ""
    ends_with_newline: bool = True
    wrote: bool = False
    _buffers: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (last chunk, chunks)
    _count: int = 0

    def __call__(self, chunk: Any) -> str:
        return self._emit(self._text(chunk))

    def finish(self) -> str:
        """What is still buffered, then a newline if the output does not end with one."""
        text = "".join(f"[{key}] {rest}\n" for key, rest in self._buffers.items() if rest)
        self._buffers.clear()
        out = self._emit(text)
        if self.wrote and not self.ends_with_newline:
            out += self._emit("\n")
        return out

    def _flush_idle(self) -> list[str]:
        """When a new key starts: the partial lines of keys that look finished.

        A key is taken as finished when it came in one piece (an input passed
        through) or has had no chunk since the one before last (a step before a
        parallel pair); keys still streaming keep their partial line.
        """
        out = []
        for key, rest in self._buffers.items():
            last, count = self._seen.get(key, (0, 0))
            if rest and (count == 1 or self._count - last >= 2):
                out.append(f"[{key}] {rest}\n")
                self._buffers[key] = ""
        return out

    def _emit(self, text: str) -> str:
        if text:
            self.wrote = True
            self.ends_with_newline = text.endswith("\n")
        return text

    def _text(self, chunk: Any) -> str:
        if isinstance(chunk, str):
            return chunk + self.sep
        content = getattr(chunk, "content", None)
        if isinstance(content, str):
            return content + self.sep
        if isinstance(chunk, dict):
            lead = "" if self.ends_with_newline else "\n"
            out: list[str] = []
            for key, value in chunk.items():
                name = str(key)
                self._count += 1
                if name not in self._seen:
                    out.extend(self._flush_idle())
                count = self._seen.get(name, (0, 0))[1]
                self._seen[name] = (self._count, count + 1)
                if isinstance(value, str):
                    buffer = self._buffers.get(name, "") + value + self.sep
                    *lines, rest = buffer.split("\n")
                    out.extend(f"[{name}] {line}\n" for line in lines)
                    self._buffers[name] = rest
                else:
                    rest = self._buffers.pop(name, "")
                    if rest:
                        out.append(f"[{name}] {rest}\n")
                    out.append(f"[{name}] {_json(value)}\n")
            return lead + "".join(out) if out else ""
        return ("" if self.ends_with_newline else "\n") + _json(chunk) + "\n"


def _json(value: Any) -> str:
    from chainkit.trace import to_jsonable

    return json.dumps(to_jsonable(value, 0), ensure_ascii=False)


def summary_line(root: Run | None, wall: float) -> str:
    """``ttft 0.12s · 57 chunks · 12+45=57 tokens · 1.30s``."""
    if root is None:
        return f"{wall:.2f}s"
    chunks = sum(len(run.text_chunks) for _, run in root.walk() if run.is_model)
    usage = root.total_usage
    parts = [
        f"ttft {root.ttft:.3f}s" if root.ttft is not None else "ttft -",
        f"{chunks} chunks",
    ]
    if usage.get("total_tokens") is not None:
        parts.append(
            f"{usage.get('input_tokens', 0)}+{usage.get('output_tokens', 0)}="
            f"{usage['total_tokens']} tokens"
        )
    else:
        parts.append("tokens -")
    parts.append(f"{root.latency if root.latency is not None else wall:.2f}s")
    return " · ".join(parts)


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _ignore(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    return


def _stdout_closed() -> None:
    """The reader went away (``| head``): stop quietly, as a Unix tool does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@app.command("stream")
def stream(
    chain: Annotated[str, typer.Argument(help="Chain name (`chainkit chains` lists them).")],
    inputs: InputsOpt = None,
    use_async: Annotated[
        bool, typer.Option("--async", help="Use astream() instead of the sync stream().")
    ] = False,
    sep: Annotated[
        str,
        typer.Option(
            "--sep", help='Written after each chunk, e.g. --sep "|" as in the first seed.'
        ),
    ] = "",
    model: ModelOpt = None,
    chains_dir: ChainsDirOpt = None,
    trace: TraceOpt = None,
    otlp: OtlpOpt = False,
) -> None:
    """Stream CHAIN's output to stdout as it is produced; a summary line goes to stderr.

    The summary gives the time to the first chunk, the number of chunks, the
    tokens (input+output=total) and the total time.
    """
    from uuid import uuid4

    from chainkit.callbacks import StreamCapture
    from chainkit.trace import Trace

    values = parse_inputs(inputs)
    recorder = Trace(trace) if trace is not None else Trace()
    capture = StreamCapture(recorder)
    run_id = uuid4()
    try:
        otel = otlp_handler(otlp)
    except BaseException:
        recorder.close()
        raise
    config: Any = {"callbacks": [capture] if otel is None else [capture, otel], "run_id": run_id}
    fmt = ChunkFormatter(sep=sep)
    start = time.perf_counter()
    try:
        if use_async:

            async def run() -> None:
                async with (
                    chain_session(chain, values, model=model, chains_dir=chains_dir) as runnable,
                    aclosing(cast("Any", runnable.astream(values, config))) as chunks,
                ):
                    try:
                        async for chunk in chunks:
                            _write(fmt(chunk))
                    except BrokenPipeError:
                        # the model's HTTP stream is abandoned mid-way: its
                        # generators are closed at loop shutdown, noisily
                        asyncio.get_running_loop().set_exception_handler(_ignore)
                        raise

            run_sync(run())
        else:
            runnable = build_chain(chain, values, model=model, chains_dir=chains_dir)
            iterator: Iterator[Any] = runnable.stream(values, config)
            for chunk in iterator:
                _write(fmt(chunk))
        _write(fmt.finish())
    except BrokenPipeError:  # `| head`: stop quietly, as a Unix tool does
        _stdout_closed()
        return
    finally:
        recorder.close()
        if otel is not None:
            otel.shutdown()
    typer.echo(summary_line(capture.get(run_id), time.perf_counter() - start), err=True)
