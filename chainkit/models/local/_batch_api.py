"""Routes of ``/v1/files`` and ``/v1/batches``, independent of the HTTP server.

The app hands over (method, path, query, content type, body, settings) and
gets back (status, content type, body); errors are :class:`BadRequest`, which
the app renders as OpenAI's error JSON like any other.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from chainkit.models.local._batches import BatchStore
from chainkit.models.local._files import MAX_FILE_BYTES, FileStore, parse_upload
from chainkit.models.local._requests import BadRequest, json_body
from chainkit.models.local._serving import MODEL, read_body, request_settings
from chainkit.models.local._settings import LocalModelSettings

__all__ = ["BatchApi", "Reply"]

JSON_TYPE = "application/json"
Reply = tuple[int, str, bytes]
_PREFIXES = ("/v1/files", "/v1/batches", "/files", "/batches")


class BatchApi:
    """The files and batches a local model server holds (in memory)."""

    def __init__(self) -> None:
        self.files = FileStore()
        self.batches = BatchStore(self.files)

    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith(_PREFIXES)

    @staticmethod
    def body_limit(method: str, path: str, settings: LocalModelSettings) -> int:
        """Uploads may be as large as a batch file; other bodies follow the settings."""
        if method == "POST" and path.rstrip("/") in ("/v1/files", "/files"):
            return MAX_FILE_BYTES
        return settings.max_body_bytes

    def respond(
        self,
        method: str,
        path: str,
        *,
        query: str,
        content_type: str,
        body: bytes,
        settings: LocalModelSettings,
    ) -> Reply:
        """Answer one request (on the server's event loop: batches start tasks on it)."""
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "v1":
            parts = parts[1:]
        params = dict(parse_qsl(query))
        kind, rest = parts[0], parts[1:]
        files, batches = self.files, self.batches
        if kind == "files":
            if not rest:
                if method == "POST":
                    filename, purpose, data = parse_upload(content_type, body)
                    return _json(files.upload(filename=filename, purpose=purpose, data=data))
                _allow(method, "GET", path)
                return _json(files.list_page(params))
            if len(rest) == 1:
                if method == "DELETE":
                    return _json(files.delete(rest[0]))
                _allow(method, "GET", path)
                return _json(files.retrieve(rest[0]))
            if len(rest) == 2 and rest[1] == "content":
                _allow(method, "GET", path)
                return 200, "application/octet-stream", files.content(rest[0])
        elif kind == "batches":
            if not rest:
                if method == "POST":
                    return _json(batches.create(json_body(body), settings))
                _allow(method, "GET", path)
                return _json(batches.list_page(params))
            if len(rest) == 1:
                _allow(method, "GET", path)
                return _json(batches.retrieve(rest[0]))
            if len(rest) == 2 and rest[1] == "cancel":
                _allow(method, "POST", path)
                return _json(batches.cancel(rest[0]))
        raise BadRequest(f"Invalid URL ({method} {path})", status=404)

    def close(self) -> None:
        self.batches.close()


def _json(value: Any) -> Reply:
    return 200, JSON_TYPE, orjson.dumps(value)


def _allow(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        raise BadRequest(
            f"Method not allowed: {method} {path} (use {allowed})",
            status=405,
            headers={"allow": allowed},
            code="method_not_allowed",
        )


BATCH_API = web.AppKey("chainkit_local_batch_api", BatchApi)


def add_routes(app: web.Application) -> None:
    """Serve ``/v1/files`` and ``/v1/batches`` (and without ``/v1``); close them at cleanup."""
    app[BATCH_API] = BatchApi()
    for prefix in ("/v1", ""):
        for kind in ("files", "batches"):
            app.router.add_route("*", f"{prefix}/{kind}", _respond)
            app.router.add_route("*", f"{prefix}/{kind}/{{rest:.*}}", _respond)
    app.on_cleanup.append(_close)


async def _respond(request: web.Request) -> web.Response:
    api = request.app[BATCH_API]
    settings = request_settings(request, request.app[MODEL])
    limit = api.body_limit(request.method, request.path, settings)
    body = await read_body(request, limit)
    status, kind, reply = api.respond(
        request.method,
        request.path,
        query=request.query_string,
        content_type=request.headers.get("content-type", ""),
        body=body,
        settings=settings,
    )
    return web.Response(body=reply, status=status, headers={"content-type": kind})


async def _close(app: web.Application) -> None:
    app[BATCH_API].close()
