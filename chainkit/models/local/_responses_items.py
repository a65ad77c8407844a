"""A stored response's input items (``GET /v1/responses/{id}/input_items``).

A request's ``input`` (already validated) becomes the item objects OpenAI lists: each
with an id, messages with their typed content parts, function calls and their outputs.
Listing pages through them as OpenAI does: ``order`` (default ``desc``, newest first),
``after`` an item id, ``limit`` from 1 to 100 (default 20).
"""

from __future__ import annotations

from typing import Any

from chainkit.models.local._errors import BadRequest

__all__ = ["input_items", "page"]

_TEXTS = ("input_text", "output_text", "text", "summary_text")


def input_items(value: Any, suffix: str) -> list[dict[str, Any]]:
    """The item objects of a validated ``input`` (ids made from ``suffix``)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        return []
    items: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        kind = item.get("type", "message")
        own = item.get("id")
        if kind == "message":
            role = item["role"]
            items.append(
                {
                    "id": own or f"msg_{suffix}i{i:03d}",
                    "type": "message",
                    "role": role,
                    "status": "completed",
                    "content": _parts(item["content"], role),
                }
            )
        elif kind == "function_call":
            items.append(
                {
                    "id": own or f"fc_{suffix}i{i:03d}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        elif kind == "function_call_output":
            output = item["output"]
            items.append(
                {
                    "id": own or f"fco_{suffix}i{i:03d}",
                    "type": "function_call_output",
                    "status": "completed",
                    "call_id": item["call_id"],
                    "output": output if isinstance(output, str) else _parts(output, "user"),
                }
            )
    return items


def _parts(content: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        content = [{"type": "input_text", "text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part["type"]
        text = part.get("text", part.get("refusal", ""))
        if role == "assistant":
            if kind == "refusal":
                parts.append({"type": "refusal", "refusal": text})
            else:
                parts.append({"type": "output_text", "text": text, "annotations": []})
        elif kind in _TEXTS or kind == "refusal":
            parts.append({"type": "input_text", "text": text})
        elif kind == "input_image":
            keep = {k: part[k] for k in ("image_url", "file_id") if isinstance(part.get(k), str)}
            parts.append({"type": "input_image", "detail": part.get("detail") or "auto", **keep})
        elif kind == "input_file":
            keys = ("file_data", "file_id", "file_url", "filename")
            keep = {k: part[k] for k in keys if isinstance(part.get(k), str)}
            parts.append({"type": "input_file", **keep})
    return parts


def page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of ``items`` for the list query (``order``, ``after``, ``limit``)."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest(
            f"Invalid value for 'order': {order!r}. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise BadRequest(
            f"Invalid 'limit': {query.get('limit')!r}. Expected an integer from 1 to 100.",
            param="limit",
            code="invalid_value",
        )
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise BadRequest(
                f"Invalid 'after': no input item with id {after!r} in this response.",
                param="after",
                code="invalid_value",
            )
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else "",
        "last_id": data[-1]["id"] if data else "",
        "has_more": len(ordered) > limit,
    }
