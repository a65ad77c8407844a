"""What OTelCapture costs per streamed chunk, beside StreamCapture and no handler, as ratios.

Two parts, one process, the same inputs for every mode (the pattern and helpers
of ``benchmarks/capture_overhead.py``):

1. End to end: ``--streams`` concurrent ``astream`` calls of a story on the local
   model (``max_tokens=400``, ~170 chunks a story; the model in a subprocess, so
   this process's CPU time is the client's), with no handler, with a
   StreamCapture per stream, and with one OTelCapture. Client CPU per 1,000
   chunks, minimum over ``--rounds`` interleaved rounds, and ratios to no
   handler. The OTelCapture exports for real, through the SDK: a
   ``BatchSpanProcessor`` whose exporter encodes every batch to OTLP protobuf
   bytes (what the OTLP/HTTP exporter sends; the network is left out) and a
   metric reader that collects the GenAI histograms. The processor's thread is
   flushed inside the measured time, so its CPU counts.
2. The handler path in isolation, repeated until stable (load moves the end to
   end figures by +-20%): one chat model run of ``--chunks`` chunks dispatched
   through LangChain's ``CallbackManager`` (start, every ``on_llm_new_token``,
   end, and for OTelCapture the mapping, the spans, one event per chunk, the
   metrics and the encoding), microseconds per chunk, best of 7.

Run::

    .venv/bin/python benchmarks/otel_overhead.py [--streams 20] [--rounds 5] [--chunks 170]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from chainkit.callbacks import OTelCapture, StreamCapture

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import TEMPLATE, Mode, inputs, run_rounds, start_server, story_model


def otel_handler() -> tuple[OTelCapture, Callable[[], None]]:
    """An OTelCapture on SDK providers that export to bytes; and its shutdown."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class EncodeOnly(SpanExporter):
        """The OTLP/HTTP exporter's work up to the bytes it would POST."""

        def __init__(self) -> None:
            self.sent = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.sent += len(encode_spans(spans).SerializeToString())
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(EncodeOnly()))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel = OTelCapture(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return otel, shutdown


# ------------------------------------------------------------------ end to end


def build_modes(chain: Any, n: int, otel: OTelCapture) -> list[Mode]:
    items = inputs(n)

    async def astream(handler: Callable[[], BaseCallbackHandler] | None, flush: bool) -> int:
        async def one(item: dict[str, str]) -> int:
            config: Any = {"callbacks": [handler()]} if handler else {}
            return sum([1 async for _ in chain.astream(item, config)])

        total = sum(await asyncio.gather(*(one(item) for item in items)))
        if flush:  # the export thread's work, inside the measured time
            otel.flush()
            otel._meter_provider.force_flush()  # collect the histograms
        return total

    return [
        Mode("no handler", lambda: astream(None, flush=False), True),
        Mode("StreamCapture", lambda: astream(StreamCapture, flush=False), True),
        Mode("OTelCapture", lambda: astream(lambda: otel, flush=True), True),
    ]


def end_to_end(args: argparse.Namespace) -> list[str]:
    proc, base_url = start_server()
    otel, shutdown = otel_handler()
    try:
        model = story_model(base_url)
        from chainkit.chains import make_chain

        chain = make_chain(TEMPLATE, model=model, name="story")
        modes = {mode.name: mode for mode in build_modes(chain, args.streams, otel)}
        loop = asyncio.new_event_loop()
        try:
            run_rounds(modes, loop, args.rounds)
        finally:
            loop.close()
    finally:
        shutdown()
        proc.terminate()
        proc.wait(10)
    base = modes["no handler"].best
    lines = [
        (
            f"End to end: {args.streams} concurrent streams x {args.rounds} rounds; "
            "client CPU s per 1,000 chunks (min over rounds)"
        ),
        f"{'mode':16} {'chunks':>7} {'CPU s/1k':>9} {'median':>8} {'vs none':>8}",
    ]
    lines.extend(
        f"{m.name:16} {m.chunks:>7} {m.best:>9.4f} {m.median:>8.4f} {m.best / base:>7.2f}x"
        for m in modes.values()
    )
    stream_added = modes["StreamCapture"].best - base
    otel_added = modes["OTelCapture"].best - base
    lines.append(
        f"OTelCapture / StreamCapture (CPU per chunk): "
        f"{modes['OTelCapture'].best / modes['StreamCapture'].best:.2f}x; "
        f"added over no handler: StreamCapture {stream_added / base:+.1%}, "
        f"OTelCapture {otel_added / base:+.1%}; spans emitted {otel.spans_emitted}"
    )
    return lines


# -------------------------------------------------------------------- isolated


def run_path_us(
    handler: BaseCallbackHandler | None,
    flush: Callable[[], None] | None,
    *,
    chunks: int,
    runs: int = 40,
) -> float:
    """Microseconds per chunk for ``runs`` chat model runs of ``chunks`` chunks (best of 7)."""
    from langchain_core.callbacks import CallbackManager
    from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

    metadata = {"ls_provider": "openai", "ls_model_name": "chainkit-local"}
    manager = CallbackManager(handlers=[handler] if handler is not None else [], metadata=metadata)
    chunk = ChatGenerationChunk(message=AIMessageChunk(content=" word"))
    message = AIMessage(
        " word" * chunks,
        usage_metadata={"input_tokens": 12, "output_tokens": chunks, "total_tokens": chunks + 12},
        response_metadata={"model_name": "chainkit-local", "finish_reason": "stop"},
    )
    result = LLMResult(generations=[[ChatGeneration(message=message)]])
    best = float("inf")
    for _ in range(7):
        gc.collect()
        c0 = time.process_time()
        for _ in range(runs):
            (run,) = manager.on_chat_model_start(
                {"name": "ChatOpenAI"},
                [[HumanMessage("Write a short story about a lighthouse keeper.")]],
                invocation_params={"model": "chainkit-local", "temperature": 0},
                name="ChatOpenAI",
            )
            for _ in range(chunks):
                run.on_llm_new_token(" word", chunk=chunk)
            run.on_llm_end(result)
        if flush is not None:
            flush()
        best = min(best, time.process_time() - c0)
        if isinstance(handler, StreamCapture) and not isinstance(handler, OTelCapture):
            handler.trace.runs.clear()  # keep memory flat between repeats
    return best / (runs * chunks) * 1e6


def isolated(args: argparse.Namespace) -> list[str]:
    otel, shutdown = otel_handler()

    def flush() -> None:
        otel.flush()
        otel._meter_provider.force_flush()  # collect the histograms

    try:
        none = run_path_us(None, None, chunks=args.chunks)
        stream = run_path_us(StreamCapture(), None, chunks=args.chunks)
        traced = run_path_us(otel, flush, chunks=args.chunks)
    finally:
        shutdown()
    return [
        "",
        (
            f"Handler path in isolation: 40 chat model runs of {args.chunks} chunks through "
            "CallbackManager, best of 7; us per chunk"
        ),
        f"{'mode':16} {'us/chunk':>9} {'vs none':>8}",
        f"{'no handler':16} {none:>9.2f} {1:>7.2f}x",
        f"{'StreamCapture':16} {stream:>9.2f} {stream / none:>7.2f}x",
        f"{'OTelCapture':16} {traced:>9.2f} {traced / none:>7.2f}x",
        (
            f"OTelCapture / StreamCapture: {traced / stream:.2f}x; added per chunk: "
            f"StreamCapture {stream - none:.2f} us, OTelCapture {traced - none:.2f} us "
            f"(of which spans, events, metrics, encoding {traced - stream:.2f} us)"
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=170)
    args = parser.parse_args()
    print("\n".join(end_to_end(args)))
    print("\n".join(isolated(args)))


if __name__ == "__main__":
    main()
