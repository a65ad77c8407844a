"""The outermost layer: request ids, the structured access log, request metrics, last-resort errors.

One access line per request, when its response ends (a stream when its last
event is sent), logged by ``chainkit.server.access`` at INFO as a JSON object::

    {"event": "access", "method": "POST", "path": "/chains/song/stream",
     "route": "/chains/{name}/stream", "status": 200, "latency_ms": 412.3,
     "chain": "song", "request_id": "9f0c...", "client": "127.0.0.1"}

plus ``error`` (the error's type) when one was answered and ``disconnected``
when the client left first. The same fields are on the record as
``record.access`` for structured handlers. Bodies are never logged unless
``ServerSettings.log_bodies`` is on (then redacted and cut).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.routing import compile_path

from chainkit.errors import redact
from chainkit.server._errors import error_body, error_json, one_line

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from chainkit.server._metrics import Metrics

__all__ = [
    "OTHER_ROUTE",
    "REQUEST_ID_HEADER",
    "AccessLogMiddleware",
    "RequestInfo",
    "RouteTemplates",
    "json_response",
    "request_info",
]

access_log = logging.getLogger("chainkit.server.access")
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_SCOPE_KEY = "chainkit.request"
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_MAX_BODY_LOG = 2000


@dataclass
class RequestInfo:
    """What the layers of one request tell the access log (kept in the ASGI scope)."""

    request_id: str
    method: str
    path: str
    started: float
    chain: str = ""
    error: str | None = None
    disconnected: bool = False
    body: bytes | None = None


def request_info(scope: Scope) -> RequestInfo:
    """The :class:`RequestInfo` of the request whose scope this is."""
    info: RequestInfo | None = scope.get(_SCOPE_KEY)
    if info is None:  # an app used without its middleware (tests, mounts)
        info = RequestInfo(
            _new_id(), scope.get("method", ""), scope.get("path", ""), time.perf_counter()
        )
        scope[_SCOPE_KEY] = info
    return info


def _new_id() -> str:
    return uuid.uuid4().hex


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _VALID_ID.fullmatch(text) else None
    return None


async def json_response(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Send a whole JSON response through raw ASGI."""
    payload = orjson.dumps(body)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    )
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


OTHER_ROUTE = "other"


class RouteTemplates:
    """The route template a request's path belongs to, for metric labels and the log.

    A label is never the raw path: a request routed has its route's template
    (``/chains/{name}/invoke``); one answered before routing (a 401, a 413) is
    matched against the templates of the app's OpenAPI document; any other path is
    ``other``. So label values stay as few as the routes, whatever clients send.
    """

    def __init__(self) -> None:
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def __call__(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str) and path:
            return path
        patterns = self._patterns
        if patterns is None:
            patterns = self._patterns = _openapi_patterns(scope.get("app"))
        requested = scope.get("path", "")
        for pattern, template in patterns:
            if pattern.match(requested):
                return template
        return OTHER_ROUTE


def _openapi_patterns(app: Any) -> list[tuple[re.Pattern[str], str]]:
    try:
        paths = app.openapi().get("paths", {})
    except Exception:  # noqa: BLE001 - without a document every unrouted path is `other`
        return []
    return [(compile_path(template)[0], template) for template in paths]


class AccessLogMiddleware:
    """Give each request an id (``X-Request-ID`` in, or a new one; echoed out), log one
    access line and count it in the metrics; turn an exception nothing else handled
    into a JSON 500 (logged as one line, without a traceback)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, log_bodies: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_bodies = log_bodies
        self.route_template = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = RequestInfo(
            request_id=_incoming_id(scope) or _new_id(),
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            started=time.perf_counter(),
        )
        scope[_SCOPE_KEY] = info
        status = 0
        finished = False
        id_header = (b"x-request-id", info.request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), id_header]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Logged and counted before the last byte leaves: a client that reads
                # /metrics right after a response sees it; background tasks run later.
                finished = True
                self._finish(scope, info, status)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: JSON, not a traceback
            body = error_body(exc, info.request_id)
            info.error = info.error or body.type
            log.error(  # noqa: TRY400 - one line on purpose: no traceback in any log line
                "unhandled %s in %s %s (request %s): %s",
                type(exc).__name__,
                info.method,
                redact(info.path),
                info.request_id,
                one_line(str(exc)),
            )
            if status == 0:
                try:
                    await json_response(send_with_id, body.status, error_json(body))
                except OSError:  # the client is gone
                    info.disconnected = True
        finally:
            if not finished:
                self._finish(scope, info, status)

    def _finish(self, scope: Scope, info: RequestInfo, status: int) -> None:
        elapsed = time.perf_counter() - info.started
        route = self.route_template(scope)
        if status >= 400:  # errors inside a stream (status 200) count themselves
            info.error = info.error or f"http_{status}"
            self.metrics.errors.labels(route, info.error).inc()
        self.metrics.requests.labels(route, info.chain, str(status)).inc()
        self.metrics.latency.labels(route, info.chain).observe(elapsed)
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "event": "access",
            "method": info.method,
            "path": redact(info.path),
            "route": route,
            "status": status,
            "latency_ms": round(elapsed * 1000, 2),
            "chain": info.chain or None,
            "request_id": info.request_id,
            "client": (scope.get("client") or (None,))[0],
        }
        if info.error is not None:
            fields["error"] = info.error
        if info.disconnected:
            fields["disconnected"] = True
        if self.log_bodies and info.body:
            text = info.body.decode("utf-8", errors="replace")
            fields["body"] = redact(text[:_MAX_BODY_LOG])
        access_log.info("%s", orjson.dumps(fields).decode(), extra={"access": fields})
