"""Chat Completions options beyond the text, and the history checks OpenAI makes.

- ``service_tier`` is echoed (``auto`` answers ``default``), also in stream chunks;
- ``reasoning_effort`` on a reasoning model's name (o1, o3, o4-mini, gpt-5...) counts
  reasoning tokens in usage;
- ``prediction`` counts accepted and rejected prediction tokens;
- ``logprobs``/``top_logprobs`` give each token a deterministic log probability and
  alternatives;
- ``modalities: ["text", "audio"]`` with ``audio`` answers with a small valid WAV and
  its transcript in ``message.audio``;
- image, PDF (``file``) and audio (``input_audio``) parts are checked and acknowledged
  in the answer;
- an assistant ``tool_calls`` id with no tool message after it, or a tool message with
  no call before it, is a 400 as at OpenAI.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
from dataclasses import dataclass
from typing import Any

from chainkit.models.local._errors import BadRequest, type_name
from chainkit.models.local._tokens import count_tokens, stable_seed, tokenize

__all__ = [
    "ChatOptions",
    "check_history",
    "logprob_entry",
    "media_note",
    "prediction_tokens",
    "read_options",
    "wav_bytes",
]

_TIERS = {"auto": "default", "default": "default", "flex": "flex", "scale": "scale"}
_TIERS["priority"] = "priority"
_EFFORTS = {"none": 0, "minimal": 0, "low": 64, "medium": 192, "high": 512, "xhigh": 1024}
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-oss")
_AUDIO_FORMATS = ("wav", "mp3", "flac", "opus", "pcm16", "aac")
_SAMPLE_RATE = 8000


@dataclass(slots=True)
class ChatOptions:
    """What a chat request asks for besides its messages."""

    service_tier: str = "default"
    reasoning: int = 0  # reasoning tokens per choice
    prediction: str | None = None
    logprobs: int | None = None  # None: no logprobs; else how many alternatives per token
    audio_format: str | None = None  # audio output asked for
    media: str = ""  # the answer's acknowledgement of image, PDF and audio parts


def _invalid(param: str, message: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_value")


def read_options(body: dict[str, Any], model: str) -> ChatOptions:
    """The validated options of a chat request."""
    options = ChatOptions()
    tier = body.get("service_tier")
    if tier is not None:
        if tier not in _TIERS:
            raise _invalid(
                "service_tier",
                f"Invalid value: {tier!r}. Supported values are: 'auto', 'default', 'flex', "
                f"'scale' and 'priority'.",
            )
        options.service_tier = _TIERS[tier]
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise _invalid(
                "reasoning_effort",
                f"Invalid value: {effort!r}. Supported values are: "
                f"{', '.join(repr(e) for e in _EFFORTS)}.",
            )
        if not model.lower().startswith(_REASONING_PREFIXES):
            raise BadRequest(
                f"Unsupported parameter: 'reasoning_effort' is not supported with this model "
                f"({model!r}); reasoning models are o1, o3, o4-mini, gpt-5 and their kin.",
                param="reasoning_effort",
                code="unsupported_parameter",
            )
        options.reasoning = _EFFORTS[effort]
    elif model.lower().startswith(_REASONING_PREFIXES):
        options.reasoning = _EFFORTS["medium"]
    options.prediction = _prediction(body.get("prediction"))
    options.logprobs = _logprobs(body)
    options.audio_format = _audio(body)
    return options


def _prediction(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "content":
        raise _invalid("prediction", "Invalid 'prediction': expected {'type': 'content', ...}.")
    content = value.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise BadRequest(
        f"Invalid type for 'prediction.content': expected a string or an array of text "
        f"parts, but got {type_name(content)} instead.",
        param="prediction.content",
        code="invalid_type",
    )


def _logprobs(body: dict[str, Any]) -> int | None:
    on = body.get("logprobs")
    top = body.get("top_logprobs")
    if on is not None and not isinstance(on, bool):
        raise BadRequest(
            f"Invalid type for 'logprobs': expected a boolean, but got {type_name(on)} instead.",
            param="logprobs",
            code="invalid_type",
        )
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
            raise _invalid("top_logprobs", f"Invalid 'top_logprobs': {top!r}; expected 0 to 20.")
        if not on:
            raise _invalid("top_logprobs", "'logprobs' must be true when using 'top_logprobs'.")
    return (top or 0) if on else None


def _audio(body: dict[str, Any]) -> str | None:
    modalities = body.get("modalities")
    if modalities is None:
        return None
    if not isinstance(modalities, list) or not set(modalities) <= {"text", "audio"}:
        raise _invalid("modalities", f"Invalid 'modalities': {modalities!r}; use text, audio.")
    if "audio" not in modalities:
        return None
    audio = body.get("audio")
    if not isinstance(audio, dict):
        raise BadRequest(
            "Audio output requires the 'audio' parameter, e.g. "
            "{'voice': 'alloy', 'format': 'wav'}.",
            param="audio",
            code="missing_required_parameter",
        )
    fmt = audio.get("format", "wav")
    if fmt not in _AUDIO_FORMATS:
        raise _invalid("audio.format", f"Invalid 'audio.format': {fmt!r}.")
    if not isinstance(audio.get("voice"), str):
        raise BadRequest(
            "Missing required parameter: 'audio.voice'.",
            param="audio.voice",
            code="missing_required_parameter",
        )
    return str(fmt)


# ------------------------------------------------------------------ history


def check_history(messages: list[dict[str, Any]]) -> None:
    """OpenAI's 400s for tool calls without results and results without calls."""
    pending: dict[str, int] = {}  # call id -> index of the assistant message
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id not in pending:
                raise BadRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            del pending[call_id]
            continue
        if pending:
            first = min(pending.values())
            raise BadRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}",
                param=f"messages.[{first}].role",
            )
        if role == "assistant":
            for call in msg.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    pending[call["id"]] = i
    if pending:
        raise BadRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}",
            param=f"messages.[{min(pending.values())}].role",
        )


# ------------------------------------------------------------------ media parts


def media_note(content: Any, param: str) -> str:
    """A sentence acknowledging the image, PDF and audio parts of ``content`` (checked)."""
    if not isinstance(content, list):
        return ""
    images, pdfs, sounds = 0, [], []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise _missing_part(f"{param}[{i}].image_url.url")
            images += 1
        elif kind == "file":
            file = part.get("file")
            if not isinstance(file, dict) or not (file.get("file_data") or file.get("file_id")):
                raise _missing_part(f"{param}[{i}].file.file_data")
            pdfs.append(str(file.get("filename") or "the document"))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, dict) else None
            if not isinstance(data, str):
                raise _missing_part(f"{param}[{i}].input_audio.data")
            sounds.append(_audio_seconds(data))
    said = []
    if images:
        said.append(f"the {'image' if images == 1 else f'{images} images'} you sent")
    if pdfs:
        said.append(f"the PDF {', '.join(pdfs)}")
    if sounds:
        said.append(f"{sum(sounds):.1f} seconds of audio")
    return f"(I looked at {' and '.join(said)}.) " if said else ""


def _missing_part(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _audio_seconds(data: str) -> float:
    try:
        raw = base64.b64decode(data, validate=False)
        with wave.open(io.BytesIO(raw)) as wav:
            frames: int = wav.getnframes()
            rate: int = wav.getframerate() or 1
            return frames / rate
    except (ValueError, EOFError, wave.Error):
        return len(data) * 3 / 4 / 16000  # not a WAV: guess from the size (16 kB/s)


# ------------------------------------------------------------------ outputs


def prediction_tokens(prediction: str | None, text: str) -> tuple[int, int]:
    """(accepted, rejected) prediction tokens for an answer ``text``."""
    if not prediction:
        return 0, 0
    said: dict[str, int] = {}
    for token in tokenize(text):
        said[token] = said.get(token, 0) + 1
    accepted = 0
    for token in tokenize(prediction):
        if said.get(token, 0) > 0:
            said[token] -= 1
            accepted += 1
    return accepted, count_tokens(prediction) - accepted


def logprob_entry(token: str, top: int) -> dict[str, Any]:
    """A token's deterministic log probability, with ``top`` alternatives (itself first)."""
    seed = stable_seed("logprob", token)
    logprob = -round((seed % 1000) / 4000, 6)  # between -0.25 and 0
    entry: dict[str, Any] = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
    alternatives = [{"token": token, "logprob": logprob, "bytes": entry["bytes"]}]
    for k in range(1, top):
        other = f"{token.strip() or token}{'_' * k}" if k % 2 else token.upper() + str(k)
        alternatives.append(
            {"token": other, "logprob": round(logprob - 1.5 * k, 6), "bytes": list(other.encode())}
        )
    entry["top_logprobs"] = alternatives
    return entry


def wav_bytes(text: str) -> bytes:
    """A small valid mono 16-bit WAV whose length follows ``text`` (a soft hum)."""
    seconds = min(0.2 + 0.06 * count_tokens(text), 6.0)
    frames = int(_SAMPLE_RATE * seconds)
    pitch = 180 + stable_seed("voice", text) % 120
    samples = (int(3000 * math.sin(2 * math.pi * pitch * n / _SAMPLE_RATE)) for n in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_SAMPLE_RATE)
        wav.writeframes(struct.pack(f"<{frames}h", *samples))
    return out.getvalue()
