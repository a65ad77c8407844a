"""Writing OpenAI responses: JSON bodies and SSE events from byte templates."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from chainkit.models.local._chat_options import logprob_entry, prediction_tokens, wav_bytes
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
    options = answer.options
    reasoning = options.reasoning * len(answer.choices) if chat else 0
    audio = completion if chat and options.audio_format else 0
    accepted, rejected = (
        prediction_tokens(options.prediction, answer.choices[0].text) if chat else (0, 0)
    )
    completion += reasoning + audio + rejected
    usage: dict[str, Any] = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }
    if chat:
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": audio,
            "accepted_prediction_tokens": accepted,
            "rejected_prediction_tokens": rejected,
        }
    return usage


def _chat_logprobs(answer: Answer, pieces: list[str]) -> dict[str, Any] | None:
    top = answer.options.logprobs
    if top is None:
        return None
    return {"content": [logprob_entry(p, top) for p in pieces], "refusal": None}


def _completion_logprobs(answer: Answer, pieces: list[str], start: int) -> dict[str, Any] | None:
    top = answer.logprobs
    if top is None:
        return None
    entries = [logprob_entry(p, top) for p in pieces]
    offsets, at = [], start
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {
        "tokens": pieces,
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries]
        if top
        else None,
        "text_offset": offsets,
    }


def _audio(answer: Answer, rid: str, created: int, text: str) -> dict[str, Any]:
    return {
        "id": f"audio_{rid.rsplit('-', 1)[-1]}",
        "data": base64.b64encode(wav_bytes(text)).decode(),
        "expires_at": created + 3600,
        "transcript": text,
    }


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
        elif answer.options.audio_format:
            message["audio"] = _audio(answer, rid, created, c.text)
        else:
            message["content"] = c.text
        message["annotations"] = []
        logprobs = _chat_logprobs(answer, c.pieces) if c.tool_calls is None else None
        choices.append(
            {
                "index": c.index,
                "message": message,
                "logprobs": logprobs,
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
            "service_tier": answer.options.service_tier,
            "system_fingerprint": FINGERPRINT,
        }
    )


def completion_body(answer: Answer, rid: str, created: int) -> bytes:
    choices = []
    for c in answer.choices:
        text = c.text
        if answer.echo_prompts:
            text = answer.echo_prompts[c.index] + text
        start = len(text) - len(c.text)
        logprobs = _completion_logprobs(answer, c.pieces, start)
        choices.append(
            {"text": text, "index": c.index, "logprobs": logprobs, "finish_reason": c.finish_reason}
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
        + b',"service_tier":' + orjson.dumps(answer.options.service_tier)
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
            if answer.options.audio_format:  # the transcript streams, then the audio
                pre = head + idx + b',"delta":{"audio":{"transcript":'
                middle += [pre + dumps(piece) + b"}}" + end for piece in c.pieces]
                audio = _audio(answer, rid, created, c.text)
                del audio["transcript"]
                middle.append(head + idx + b',"delta":{"audio":' + dumps(audio) + b"}" + end)
                continue
            pre = head + idx + b',"delta":{"content":'
            if answer.options.logprobs is None:
                middle += [pre + dumps(piece) + b"}" + end for piece in c.pieces]
                continue
            for piece in c.pieces:
                logprobs = dumps(_chat_logprobs(answer, [piece]))
                middle.append(
                    pre + dumps(piece) + b'},"logprobs":' + logprobs
                    + b',"finish_reason":null}]}\n\n'
                )  # fmt: skip
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
        if answer.logprobs is None:
            events += [pre + dumps(piece) + suf for piece in c.pieces]
            continue
        at = len(answer.echo_prompts[c.index]) if answer.echo_prompts else 0
        for piece in c.pieces:
            logprobs = dumps(_completion_logprobs(answer, [piece], at))
            at += len(piece)
            events.append(
                pre + dumps(piece) + b',"index":' + str(c.index).encode() + b',"logprobs":'
                + logprobs + b',"finish_reason":null}]}\n\n'
            )  # fmt: skip
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
