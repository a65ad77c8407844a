"""The SSE events of a Responses API stream, in OpenAI's order.

``response.created``, ``response.in_progress``; then per output item its
``response.output_item.added``, its parts and deltas (``response.content_part.added``,
``response.output_text.delta``/``.done``, ``response.content_part.done``; or
``response.function_call_arguments.delta``/``.done``; or the
``response.reasoning_summary_*`` events), ``response.output_item.done``; and
``response.completed`` (or ``response.incomplete``). Every event carries its
``sequence_number``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson

from chainkit.models.local._responses import Events

__all__ = ["Output", "response_events"]


@dataclass(slots=True)
class Output:
    """One output item and the pieces its stream sends as deltas."""

    item: dict[str, Any]
    pieces: list[str]


def response_events(response: dict[str, Any], outputs: list[Output]) -> Events:
    """The SSE events of a finished response, each with its ``sequence_number``:
    ``events[:first]`` open the stream, each event up to ``tail`` is one paced step."""
    seq = itertools.count()
    dumps = orjson.dumps

    def event(kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        return b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n"

    opening = {
        **response,
        "status": "in_progress",
        "completed_at": None,
        "incomplete_details": None,
        "output": [],
        "usage": None,
    }
    events = [
        event("response.created", response=opening),
        event("response.in_progress", response=opening),
    ]
    first = len(events)
    for index, output in enumerate(outputs):
        item, pieces = output.item, output.pieces
        ids = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "reasoning":
            added = {k: v for k, v in item.items() if k != "encrypted_content"}
            added["summary"] = []
            events.append(event("response.output_item.added", output_index=index, item=added))
            for s, summary in enumerate(item["summary"]):
                part = {"type": "summary_text", "text": ""}
                events.append(
                    event(
                        "response.reasoning_summary_part.added", **ids, summary_index=s, part=part
                    )
                )
                events += [
                    event("response.reasoning_summary_text.delta", **ids, summary_index=s, delta=p)
                    for p in pieces
                ]
                text = summary["text"]
                events.append(
                    event("response.reasoning_summary_text.done", **ids, summary_index=s, text=text)
                )
                part = {"type": "summary_text", "text": text}
                events.append(
                    event("response.reasoning_summary_part.done", **ids, summary_index=s, part=part)
                )
        elif kind == "function_call":
            added = {**item, "arguments": "", "status": "in_progress"}
            events.append(event("response.output_item.added", output_index=index, item=added))
            events += [
                event("response.function_call_arguments.delta", **ids, delta=p) for p in pieces
            ]
            events.append(
                event("response.function_call_arguments.done", **ids, arguments=item["arguments"])
            )
        else:
            added = {**item, "status": "in_progress", "content": []}
            events.append(event("response.output_item.added", output_index=index, item=added))
            part = item["content"][0]
            empty = {**part, "text": ""}
            at = {**ids, "content_index": 0}
            events.append(event("response.content_part.added", **at, part=empty))
            logprobs = part["logprobs"]
            events += [
                event(
                    "response.output_text.delta",
                    **at,
                    delta=p,
                    logprobs=[logprobs[k]] if logprobs else [],
                )
                for k, p in enumerate(pieces)
            ]
            events.append(
                event("response.output_text.done", **at, text=part["text"], logprobs=logprobs)
            )
            events.append(event("response.content_part.done", **at, part=part))
        events.append(event("response.output_item.done", output_index=index, item=item))
    tail = len(events)
    done = "response.completed" if response["status"] == "completed" else "response.incomplete"
    events.append(event(done, response=response))
    return Events(events, first, tail)
