"""Short text forms of trace values (event data, inputs, outputs) for the views."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
from rich.segment import Segment

from chainkit.trace import message_text, to_jsonable

__all__ = [
    "chunk_text",
    "event_phase",
    "event_preview",
    "json_preview",
    "printable",
    "printable_segments",
]

# Every character that could act on a terminal rather than show: C0 controls but the
# newline (ESC starts colour, title, link and screen-clearing sequences), DEL, the C1
# controls (U+009B is a one-byte CSI), and Unicode's bidirectional overrides (they
# reorder what a reader sees). Each shows as its Python escape, e.g. ``\x1b``.
_UNPRINTABLE = [*range(0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {code: f"\\x{code:02x}" for code in _UNPRINTABLE} | {
    code: f"\\u{code:04x}" for code in _BIDI
}


def printable(text: str) -> str:
    """``text`` with every control character, terminal escape and bidi override shown
    as its escape (``\\x1b``), so that printing it cannot drive the terminal."""
    return text.translate(_ESCAPES)


def printable_segments(segments: Iterable[Segment]) -> Iterator[Segment]:
    """Rich segments with their text made :func:`printable` (Rich's own control
    segments, e.g. cursor moves, are kept). Colours are styles, not text, so they stay."""
    for segment in segments:
        text = segment.text
        if segment.control is None and not text.isprintable() and text != "\n":
            yield Segment(printable(text), segment.style, None)
        else:
            yield segment


def json_preview(value: Any, limit: int = 80) -> str:
    """``value`` as compact one-line JSON, cut to ``limit`` characters."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(to_jsonable(value, max_chars=limit * 2), default=str).decode()
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def chunk_text(chunk: Any) -> str | None:
    """The text a stream event's chunk carries (a message chunk, a dict or a string)."""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, Mapping):
        if isinstance(chunk.get("text"), str):
            return str(chunk["text"])
        if "content" in chunk:
            return message_text(chunk["content"])
        return None
    if hasattr(chunk, "content"):
        return message_text(chunk)
    text = getattr(chunk, "text", None)
    return text if isinstance(text, str) else None


def event_phase(event: str) -> str:
    """``"start"``, ``"stream"``, ``"end"``, ``"error"`` or ``""`` for an ``on_*`` event name."""
    if not event.startswith("on_"):
        return ""
    phase = event.rpartition("_")[2]
    return phase if phase in ("start", "stream", "end", "error") else ""


def event_preview(event: Mapping[str, Any], limit: int = 80) -> str:
    """What an event says, on one line: the chunk text, the input, the output or the error."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        return json_preview(data, limit)
    phase = event_phase(str(event.get("event", "")))
    if phase == "stream":
        text = chunk_text(data.get("chunk"))
        if text is not None:
            return repr(text) if len(text) < limit else repr(text[: limit - 1] + "…")
        return json_preview(data.get("chunk"), limit)
    if phase == "start" and "input" in data:
        return "input " + json_preview(data.get("input"), limit)
    if phase == "end" and "output" in data:
        return "output " + json_preview(data.get("output"), limit)
    if phase == "error" and "error" in data:
        return json_preview(data.get("error"), limit)
    return json_preview(dict(data), limit) if data else ""
