"""A synthetic trace with known shape and timings, for tests and benchmarks.

Each call is a ``pipeline`` chain with three children (a prompt, a chat model
that streams ``chunks`` chunks, a parser): four runs per call, so
``synthetic_trace(calls=2500)`` has 10,000 runs. Calls run ``concurrency`` at a
time; every ``fail_every``-th call's model fails part-way with a 500 (after
one retry record), and its parser and chain fail with it.
"""

from __future__ import annotations

import os
import random

from chainkit.trace import ErrorInfo, Trace

__all__ = ["FAILURE", "WORDS", "synthetic_trace"]

WORDS = ("Gold", "fish", " swim", " in", " circles", " under", " the", " moon", ".", " Bubbles")
FAILURE = ErrorInfo("InternalServerError", "Error code: 500 - the model server failed")


def synthetic_trace(
    calls: int = 3,
    *,
    chunks: int = 6,
    fail_every: int = 0,
    concurrency: int = 4,
    events: bool = False,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    t0: float = 1000.0,
) -> Trace:
    """A trace of ``calls`` pipeline calls (4 runs each), deterministic for a ``seed``."""
    rng = random.Random(seed)
    trace = Trace(path)
    slot_free = [t0] * max(1, concurrency)
    for i in range(calls):
        slot = min(range(len(slot_free)), key=slot_free.__getitem__)
        start = slot_free[slot] + 0.001
        end = _call(trace, i, start, rng, chunks=chunks, fail_every=fail_every, events=events)
        slot_free[slot] = end
    return trace


def _event(
    trace: Trace, t: float, kind: str, name: str, *, run_id: str, parents: list[str], data: object
) -> None:
    trace.event(
        {
            "event": kind,
            "name": name,
            "run_id": run_id,
            "parent_ids": parents,
            "tags": [],
            "metadata": {},
            "data": data,
            "t": t,
        }
    )


def _call(
    trace: Trace,
    i: int,
    start: float,
    rng: random.Random,
    *,
    chunks: int,
    fail_every: int,
    events: bool,
) -> float:
    fails = fail_every > 0 and i % fail_every == fail_every - 1
    root, prompt, model, parser = (
        f"{i:05d}-{part}" for part in ("call", "prompt", "model", "parser")
    )
    topic = f"topic {i}"
    message = {"type": "human", "content": f"Write about {topic}."}
    t = start
    trace.run_started(root, name="pipeline", kind="chain", inputs={"topic": topic}, t=t)
    if events:
        _event(
            trace,
            t,
            "on_chain_start",
            "pipeline",
            run_id=root,
            parents=[],
            data={"input": {"topic": topic}},
        )
    trace.run_started(
        prompt,
        name="ChatPromptTemplate",
        kind="prompt",
        parent_run_id=root,
        inputs={"topic": topic},
        t=t + 0.001,
    )
    trace.run_ended(prompt, outputs={"messages": [message]}, t=t + 0.002)
    t += 0.003
    trace.run_started(
        model,
        name="ChatOpenAI",
        kind="chat_model",
        parent_run_id=root,
        inputs={"messages": [message]},
        t=t,
    )
    trace.run_started(
        parser, name="StrOutputParser", kind="parser", parent_run_id=root, t=t + 0.0005
    )
    if events:
        _event(
            trace,
            t,
            "on_chat_model_start",
            "ChatOpenAI",
            run_id=model,
            parents=[root],
            data={"input": {"messages": [[message]]}},
        )
    n = max(1, chunks // 2) if fails else chunks
    t += rng.uniform(0.05, 0.15)  # time to first chunk
    texts = [""] + [WORDS[(i + k) % len(WORDS)] for k in range(n - 1)]
    for text in texts:
        trace.chunk(model, t, text)
        if events:
            _event(
                trace,
                t,
                "on_chat_model_stream",
                "ChatOpenAI",
                run_id=model,
                parents=[root],
                data={"chunk": {"type": "AIMessageChunk", "content": text}},
            )
        t += rng.uniform(0.005, 0.03)
    if fails:
        trace.retry(root, attempt=1, error=FAILURE, wait=0.1, t=t)
        trace.run_failed(model, FAILURE, t=t)
        trace.run_failed(parser, FAILURE, t=t + 0.0005)
        trace.run_failed(root, FAILURE, t=t + 0.001)
        if events:
            _event(
                trace,
                t,
                "on_chat_model_error",
                "ChatOpenAI",
                run_id=model,
                parents=[root],
                data={"error": str(FAILURE)},
            )
        return t + 0.001
    text = "".join(texts)
    usage = {"input_tokens": 6, "output_tokens": n - 1, "total_tokens": 5 + n}
    output = {
        "type": "ai",
        "content": text,
        "usage_metadata": usage,
        "response_metadata": {"finish_reason": "stop"},
    }
    trace.run_ended(model, outputs=output, usage=usage, t=t)
    trace.run_ended(parser, outputs=text, t=t + 0.0005)
    trace.run_ended(root, outputs=text, t=t + 0.001)
    if events:
        _event(
            trace,
            t,
            "on_chat_model_end",
            "ChatOpenAI",
            run_id=model,
            parents=[root],
            data={"output": output},
        )
        _event(
            trace,
            t + 0.001,
            "on_chain_end",
            "pipeline",
            run_id=root,
            parents=[],
            data={"output": text},
        )
    return t + 0.001
