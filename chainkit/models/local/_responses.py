"""Writing OpenAI responses: JSON bodies and SSE events from byte templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from chainkit.models.local._requests import Answer

__all__ = [
    "FINGERPRINT",
    "Events",
    "chat_body",
    "chat_events",
    "completion_body",
    "completion_events",
]

FINGERPRINT = "fp_chainkit"
_DONE = b"data: [DONE]\n\n"


# ------------------------------------------------------------------ responses


def _usage(answer: Answer, chat: bool) -> dict[str, Any]:
    completion = answer.completion_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }
    if chat:
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def chat_body(answer: Answer, rid: str, created: int) -> bytes:
    choices = []
    for c in answer.choices:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if c.tool_calls is not None:
            message["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": "".join(frags)},
                }
                for cid, name, frags in c.tool_calls
            ]
        else:
            message["content"] = c.text
        message["annotations"] = []
        choices.append(
            {
                "index": c.index,
                "message": message,
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
        )
    return orjson.dumps(
        {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "choices": choices,
            "usage": _usage(answer, chat=True),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def completion_body(answer: Answer, rid: str, created: int) -> bytes:
    choices = []
    for c in answer.choices:
        text = c.text
        if answer.echo_prompts:
            text = answer.echo_prompts[c.index] + text
        choices.append(
            {"text": text, "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
        )
    return orjson.dumps(
        {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": answer.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
            "usage": _usage(answer, chat=False),
        }
    )


@dataclass(slots=True)
class Events:
    """SSE events of one stream: ``events[:first]`` open it, ``events[tail:]`` close it,
    each event in between is one paced token."""

    events: list[bytes]
    first: int
    tail: int


def chat_events(answer: Answer, rid: str, created: int) -> Events:
    head = (
        b'data: {"id":"' + rid.encode() + b'","object":"chat.completion.chunk","created":'
        + str(created).encode() + b',"model":' + orjson.dumps(answer.model)
        + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":['
    )  # fmt: skip
    end = b',"logprobs":null,"finish_reason":null}]}\n\n'
    dumps = orjson.dumps
    events: list[bytes] = []
    middle: list[bytes] = []
    for c in answer.choices:
        idx = b'{"index":' + str(c.index).encode()
        if c.tool_calls is None:
            events.append(
                idx.join((head, b',"delta":{"role":"assistant","content":"","refusal":null}' + end))
            )
            pre = head + idx + b',"delta":{"content":'
            suf = b"}" + end
            middle += [pre + dumps(piece) + suf for piece in c.pieces]
            continue
        for k, (cid, name, frags) in enumerate(c.tool_calls):
            call = dumps(
                {
                    "index": k,
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            )
            if k == 0:
                events.append(
                    head + idx + b',"delta":{"role":"assistant","content":null,"tool_calls":['
                    + call + b'],"refusal":null}' + end
                )  # fmt: skip
            else:
                middle.append(head + idx + b',"delta":{"tool_calls":[' + call + b"]}" + end)
            pre = head + idx + b',"delta":{"tool_calls":[{"index":' + str(k).encode()
            pre += b',"function":{"arguments":'
            suf = b"}}]}" + end
            middle += [pre + dumps(frag) + suf for frag in frags]
    first = len(events)
    events += middle
    tail = len(events)
    for c in answer.choices:
        events.append(
            head + b'{"index":' + str(c.index).encode() + b',"delta":{},"logprobs":null,'
            b'"finish_reason":"' + c.finish_reason.encode() + b'"}]}\n\n'
        )
    if answer.include_usage:
        events.append(head + b'],"usage":' + dumps(_usage(answer, chat=True)) + b"}\n\n")
    events.append(_DONE)
    return Events(events, first, tail)


def completion_events(answer: Answer, rid: str, created: int) -> Events:
    head = (
        b'data: {"id":"' + rid.encode() + b'","object":"text_completion","created":'
        + str(created).encode() + b',"model":' + orjson.dumps(answer.model)
        + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":['
    )  # fmt: skip
    dumps = orjson.dumps
    events: list[bytes] = []
    for c in answer.choices:
        suf = b',"index":' + str(c.index).encode() + b',"logprobs":null,"finish_reason":null}]}\n\n'
        pre = head + b'{"text":'
        if answer.echo_prompts:
            events.append(pre + dumps(answer.echo_prompts[c.index]) + suf)
        events += [pre + dumps(piece) + suf for piece in c.pieces]
    tail = len(events)
    for c in answer.choices:
        events.append(
            head + b'{"text":"","index":' + str(c.index).encode() + b',"logprobs":null,'
            b'"finish_reason":"' + c.finish_reason.encode() + b'"}]}\n\n'
        )
    if answer.include_usage:
        events.append(head + b'],"usage":' + dumps(_usage(answer, chat=False)) + b"}\n\n")
    events.append(_DONE)
    return Events(events, 0, tail)
