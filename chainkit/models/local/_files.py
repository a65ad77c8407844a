"""The local model's ``/v1/files``: uploaded and generated files, kept in memory.

Plain logic, no HTTP: :class:`FileStore` holds the files (OpenAI's ``file``
objects and their bytes, bounded in total), :func:`parse_upload` reads the
``multipart/form-data`` body the ``openai`` SDK sends to ``POST /v1/files``
(with the standard library's MIME parser).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any

from chainkit.models.local._requests import BadRequest

__all__ = ["FILE_PURPOSES", "FileStore", "StoredFile", "parse_upload"]

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
OUTPUT_PURPOSE = "batch_output"
MAX_FILE_BYTES = 200 * 1024 * 1024  # OpenAI's limit for a batch input file
MAX_STORE_BYTES = 2 * 1024 * 1024 * 1024  # all files together: memory stays bounded


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


def _not_found(file_id: str) -> BadRequest:
    return BadRequest(f"No such File object: {file_id}", param="id", code="not_found", status=404)


class FileStore:
    """Files by id, newest last; at most ``max_total_bytes`` together."""

    def __init__(self, max_total_bytes: int = MAX_STORE_BYTES) -> None:
        self.max_total_bytes = max_total_bytes
        self._files: dict[str, StoredFile] = {}
        self._total = 0

    def add(self, *, filename: str, purpose: str, data: bytes) -> StoredFile:
        """Store ``data`` (an upload or a batch's output) and return it with its new id."""
        if self._total + len(data) > self.max_total_bytes:
            raise BadRequest(
                f"File storage is full: {self._total} of {self.max_total_bytes} bytes used; "
                f"delete files (DELETE /v1/files/ID) before uploading more.",
                code="storage_limit_exceeded",
            )
        stored = StoredFile(
            id=f"file-{os.urandom(12).hex()}",
            filename=filename,
            purpose=purpose,
            data=data,
            created_at=int(time.time()),
        )
        self._files[stored.id] = stored
        self._total += len(data)
        return stored

    def upload(self, *, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        """``POST /v1/files``: check what OpenAI checks, then store."""
        if purpose not in FILE_PURPOSES:
            raise BadRequest(
                f"Invalid value for 'purpose': {purpose!r}; expected one of "
                f"{', '.join(FILE_PURPOSES)}.",
                param="purpose",
                code="invalid_value",
            )
        if not data:
            raise BadRequest("The file is empty.", param="file", code="empty_file")
        if len(data) > MAX_FILE_BYTES:
            raise BadRequest(
                f"File is too large: {len(data)} bytes; the limit is {MAX_FILE_BYTES} bytes.",
                param="file",
                code="file_too_large",
                status=413,
            )
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise BadRequest(
                f"Invalid file format for Batch API: {filename!r}. Must be .jsonl",
                param="file",
                code="invalid_file_format",
            )
        return self.add(filename=filename, purpose=purpose, data=data).as_object()

    def get(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise _not_found(file_id)
        return stored

    def retrieve(self, file_id: str) -> dict[str, Any]:
        return self.get(file_id).as_object()

    def content(self, file_id: str) -> bytes:
        return self.get(file_id).data

    def delete(self, file_id: str) -> dict[str, Any]:
        stored = self._files.pop(file_id, None)
        if stored is None:
            raise _not_found(file_id)
        self._total -= len(stored.data)
        return {"id": file_id, "object": "file", "deleted": True}

    def list_page(self, query: dict[str, str]) -> dict[str, Any]:
        """``GET /v1/files``: ``purpose``, ``limit`` (1..10000), ``order``, ``after``."""
        purpose = query.get("purpose")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadRequest(
                f"Invalid value for 'order': {order!r}; expected 'asc' or 'desc'.", param="order"
            )
        limit = query_int(query, "limit", 10_000, 1, 10_000)
        files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        if order == "desc":
            files.reverse()
        return page(files, query.get("after"), limit)


def query_int(query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi], else a 400 naming it."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise BadRequest(
            f"Invalid value for '{name}': {raw!r}; expected an integer from {lo} to {hi}.",
            param=name,
            code="invalid_value",
        )
    return value


def page(items: list[Any], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page over objects with an ``id`` and ``as_object()``."""
    start = 0
    if after:
        ids = [item.id for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chosen = items[start : start + limit]
    data = [item.as_object() for item in chosen]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + limit < len(items),
    }


def parse_upload(content_type: str, body: bytes) -> tuple[str, str, bytes]:
    """``(filename, purpose, data)`` from a ``multipart/form-data`` upload body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(
            f"Invalid Content-Type {content_type!r}: upload files as multipart/form-data "
            f"with the fields 'file' and 'purpose'.",
            code="invalid_content_type",
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, Message] = {}
    if parsed.is_multipart():
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                fields[name] = part
    file_part, purpose_part = fields.get("file"), fields.get("purpose")
    if file_part is None:
        raise BadRequest("Missing required parameter: 'file'.", param="file", code="missing")
    if purpose_part is None:
        raise BadRequest("Missing required parameter: 'purpose'.", param="purpose", code="missing")
    data = file_part.get_payload(decode=True)
    purpose = purpose_part.get_payload(decode=True)
    filename = file_part.get_filename() or "upload"
    if not isinstance(data, bytes) or not isinstance(purpose, bytes):
        raise BadRequest("Malformed multipart body.", code="invalid_multipart")
    return filename, purpose.decode("utf-8", "replace").strip(), data
