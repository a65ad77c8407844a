"""The local model's ``/v1/batches``: OpenAI's Batch API, offline.

Plain logic, no HTTP: :class:`BatchStore` creates, lists, retrieves and
cancels batches and runs each one as a task on the server's event loop,
through OpenAI's life cycle::

    validating -> in_progress -> finalizing -> completed
    validating -> failed                      (malformed lines: ``errors.data``)
    (any running state) -> expired            (the window ran out; the rest fail)
    validating | in_progress -> cancelling -> cancelled

Each request is answered by the same logic as ``POST /v1/chat/completions``
(or ``/v1/completions``); answers go to the output file, failures to the
error file, both in OpenAI's line format (``{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error"}``).

The server's settings shape batches (a batch created with an
``X-Chainkit-Faults`` header uses that request's settings):
``batch_delay`` is how long a batch takes from creation to completion,
``batch_window`` how long before it expires (OpenAI's ``24h``), and
``error_rate`` / ``error_statuses`` fail single requests, drawn from a hash
of (seed, request, times seen) so that a resubmitted request can succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chainkit.models.local._files import FileStore, page, query_int
from chainkit.models.local._requests import Answer, BadRequest, parse_chat, parse_completion
from chainkit.models.local._responses import chat_body, completion_body
from chainkit.models.local._settings import LocalModelSettings
from chainkit.models.local._tokens import Rng, stable_seed

__all__ = ["BATCH_ENDPOINTS", "MAX_BATCH_REQUESTS", "BatchStore"]

MAX_BATCH_REQUESTS = 50_000  # OpenAI's limit per batch file
_MAX_LINE_ERRORS = 100
_Respond = tuple[Callable[[dict[str, Any], int], Answer], Callable[[Answer, str, int], bytes], str]
BATCH_ENDPOINTS: dict[str, _Respond] = {
    "/v1/chat/completions": (parse_chat, chat_body, "chatcmpl"),
    "/v1/completions": (parse_completion, completion_body, "cmpl"),
}
_EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
_CANCELLED = {
    "code": "batch_cancelled",
    "message": "This request was not executed because the batch was cancelled.",
}
_ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


@dataclass(slots=True)
class _Request:
    custom_id: str
    body: dict[str, Any]
    key: bytes  # digest of the body: faults are drawn per request


@dataclass(slots=True)
class _Batch:
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    settings: LocalModelSettings
    created_at: int
    deadline: float  # monotonic time at which the batch expires
    status: str = "validating"
    stamps: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self, status: str) -> None:
        self.status = status
        self.stamps[f"{status}_at"] = int(time.time())

    def as_object(self) -> dict[str, Any]:
        stamp = self.stamps.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress_at"),
            "expires_at": self.created_at + round(self.settings.batch_window),
            "finalizing_at": stamp("finalizing_at"),
            "completed_at": stamp("completed_at"),
            "failed_at": stamp("failed_at"),
            "expired_at": stamp("expired_at"),
            "cancelling_at": stamp("cancelling_at"),
            "cancelled_at": stamp("cancelled_at"),
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


def _not_found(batch_id: str) -> BadRequest:
    return BadRequest(f"No such Batch object: {batch_id}", param="id", code="not_found", status=404)


def _line_error(line: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


class BatchStore:
    """Batches by id over a :class:`FileStore`; each runs as a task on the running loop."""

    def __init__(self, files: FileStore) -> None:
        self.files = files
        self._batches: dict[str, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: dict[bytes, int] = {}
        self._prefix = os.urandom(4).hex()
        self._ids = 0

    # ---------------------------------------------------------------- API
    def create(self, payload: dict[str, Any], settings: LocalModelSettings) -> dict[str, Any]:
        """``POST /v1/batches`` (call on the server's event loop)."""
        input_file_id = payload.get("input_file_id")
        endpoint = payload.get("endpoint")
        window = payload.get("completion_window")
        metadata = payload.get("metadata")
        for name, value in (("input_file_id", input_file_id), ("endpoint", endpoint)):
            if not isinstance(value, str) or not value:
                raise BadRequest(
                    f"Missing required parameter: '{name}'.", param=name, code="missing"
                )
        if window != "24h":
            raise BadRequest(
                f"Invalid value for 'completion_window': {window!r}; supported: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        if endpoint not in BATCH_ENDPOINTS:
            raise BadRequest(
                f"Invalid value for 'endpoint': {endpoint!r}; this server supports "
                f"{', '.join(BATCH_ENDPOINTS)}.",
                param="endpoint",
                code="invalid_value",
            )
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(isinstance(v, str) for v in metadata.values())
        ):
            raise BadRequest(
                "Invalid 'metadata': expected an object of at most 16 string values.",
                param="metadata",
                code="invalid_value",
            )
        stored = self.files.get(str(input_file_id))
        if stored.purpose != "batch":
            raise BadRequest(
                f"File {stored.id} has purpose {stored.purpose!r}; a batch's input file "
                f"must be uploaded with purpose 'batch'.",
                param="input_file_id",
                code="invalid_input_file",
            )
        self._ids += 1
        now = time.time()
        batch = _Batch(
            id=f"batch_{self._prefix}{self._ids:08x}{os.urandom(4).hex()}",
            endpoint=str(endpoint),
            input_file_id=stored.id,
            completion_window="24h",
            metadata=metadata,
            settings=settings,
            created_at=int(now),
            deadline=time.monotonic() + settings.batch_window,
        )
        self._batches[batch.id] = batch
        task = asyncio.get_running_loop().create_task(self._run(batch, stored.data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch.as_object()

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._get(batch_id).as_object()

    def list_page(self, query: dict[str, str]) -> dict[str, Any]:
        """``GET /v1/batches``: newest first, ``limit`` (1..100, default 20), ``after``."""
        limit = query_int(query, "limit", 20, 1, 100)
        return page(list(reversed(self._batches.values())), query.get("after"), limit)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """``POST /v1/batches/{id}/cancel``: ``cancelling`` now, ``cancelled`` soon after."""
        batch = self._get(batch_id)
        if batch.status in ("cancelling", "cancelled"):
            return batch.as_object()
        if batch.status not in ("validating", "in_progress"):
            raise BadRequest(
                f"Cannot cancel a batch with status '{batch.status}'.",
                code="batch_not_cancellable",
                status=409,
            )
        batch.enter("cancelling")
        batch.wake.set()
        return batch.as_object()

    def close(self) -> None:
        """Stop running batches (the server is shutting down)."""
        for task in list(self._tasks):
            task.cancel()

    def _get(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _not_found(batch_id)
        return batch

    # ---------------------------------------------------------------- running
    async def _run(self, batch: _Batch, data: bytes) -> None:
        delay = batch.settings.batch_delay
        requests, errors = _validate(data, batch.endpoint)
        batch.total = len(requests)
        batch.model = next((str(r.body.get("model")) for r in requests), None)
        running = await self._wait(batch, 0.1 * delay)
        if running and errors:
            batch.errors = errors
            batch.enter("failed")
            return
        if running:
            batch.enter("in_progress")
        outputs: list[bytes] = []
        failures: list[bytes] = []
        step = 0.8 * delay / max(1, len(requests))
        started = time.monotonic()
        for i, request in enumerate(requests):
            if running:
                running = await self._wait(batch, started + i * step - time.monotonic(), every=i)
            if not running:  # cancelled or expired: the rest are not run
                rest = _CANCELLED if batch.status == "cancelling" else _EXPIRED
                failures += (self._line(r.custom_id, None, rest) for r in requests[i:])
                batch.failed += len(requests) - i
                break
            status, body = self._answer(batch, request)
            (outputs if status == 200 else failures).append(
                self._line(request.custom_id, (status, body), None)
            )
            if status == 200:
                batch.completed += 1
            else:
                batch.failed += 1
        if running:
            batch.enter("finalizing")
            await self._wait(batch, 0.1 * delay)
        self._write_files(batch, outputs, failures)
        if batch.status == "cancelling":
            batch.enter("cancelled")
        else:
            batch.enter("completed" if running else "expired")

    async def _wait(self, batch: _Batch, seconds: float, every: int = 0) -> bool:
        """Wait ``seconds`` (or yield now and then); False when cancelled or expired."""
        if batch.status == "cancelling":
            return False
        left = batch.deadline - time.monotonic()
        if left <= 0:
            return False
        if seconds > 0.002:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.wake.wait(), min(seconds, left))
        elif every % 64 == 0:
            await asyncio.sleep(0)  # keep the server responsive during a large batch
        return batch.status != "cancelling" and time.monotonic() < batch.deadline

    def _answer(self, batch: _Batch, request: _Request) -> tuple[int, bytes]:
        settings = batch.settings
        status = self._fault(settings, request.key)
        if status:
            return status, BadRequest(
                f"Request failed with status {status} (injected by the chainkit local model's "
                f"fault settings).",
                status=status,
                type_="server_error" if status >= 500 else "requests",
            ).body()
        parse, render, prefix = BATCH_ENDPOINTS[batch.endpoint]
        try:
            answer = parse(request.body, settings.seed)
        except BadRequest as exc:
            return exc.status, exc.body()
        batch.input_tokens += answer.prompt_tokens
        batch.output_tokens += answer.completion_tokens
        self._ids += 1
        return 200, render(answer, f"{prefix}-{self._prefix}{self._ids:08x}", int(time.time()))

    def _fault(self, settings: LocalModelSettings, key: bytes) -> int:
        if settings.error_rate <= 0:
            return 0
        seen = self._seen.get(key, 0) + 1
        if len(self._seen) > 1_000_000:
            self._seen.clear()
        self._seen[key] = seen
        rng = Rng(stable_seed(settings.seed, "batch", key.hex(), seen))
        if rng.random() >= settings.error_rate:
            return 0
        return settings.error_statuses[rng.randrange(len(settings.error_statuses))]

    def _line(
        self,
        custom_id: str,
        response: tuple[int, bytes] | None,
        error: dict[str, str] | None,
    ) -> bytes:
        head = orjson.dumps({"id": f"batch_req_{os.urandom(12).hex()}", "custom_id": custom_id})
        if response is None:
            return head[:-1] + b',"response":null,"error":' + orjson.dumps(error) + b"}\n"
        status, body = response
        return (
            head[:-1]
            + b',"response":{"status_code":%d,"request_id":"%s","body":'
            % (status, os.urandom(16).hex().encode())
            + body
            + b'},"error":null}\n'
        )

    def _write_files(self, batch: _Batch, outputs: list[bytes], failures: list[bytes]) -> None:
        batch.output_file_id = self._result_file(f"{batch.id}_output.jsonl", outputs)
        batch.error_file_id = self._result_file(f"{batch.id}_error.jsonl", failures)

    def _result_file(self, name: str, lines: list[bytes]) -> str | None:
        if not lines:
            return None
        return self.files.add(filename=name, purpose="batch_output", data=b"".join(lines)).id


def _validate(data: bytes, endpoint: str) -> tuple[list[_Request], list[dict[str, Any]]]:
    """The requests of an input file, or the errors of its malformed lines."""
    requests: list[_Request] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if len(errors) >= _MAX_LINE_ERRORS:
            break
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            errors.append(
                _line_error(
                    number, "invalid_json_line", "This line is not parseable as valid JSON."
                )
            )
            continue
        if not isinstance(line, dict):
            errors.append(
                _line_error(number, "invalid_json_line", "This line is not a JSON object.")
            )
            continue
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in line]
        if missing:
            errors.append(
                _line_error(
                    number,
                    "missing_required_parameter",
                    f"Missing required parameter: '{missing[0]}'.",
                    missing[0],
                )
            )
            continue
        custom_id, body = line["custom_id"], line["body"]
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _line_error(
                    number, "invalid_value", "custom_id must be a non-empty string.", "custom_id"
                )
            )
        elif custom_id in seen:
            errors.append(
                _line_error(
                    number,
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} is a duplicate of another request's.",
                    "custom_id",
                )
            )
        elif line["method"] != "POST":
            errors.append(
                _line_error(
                    number, "invalid_method", "Only POST is supported in a batch.", "method"
                )
            )
        elif line["url"] != endpoint:
            errors.append(
                _line_error(
                    number,
                    "mismatched_endpoint",
                    f"The url {line['url']!r} does not match the batch's endpoint {endpoint!r}.",
                    "url",
                )
            )
        elif not isinstance(body, dict):
            errors.append(
                _line_error(number, "invalid_value", "body must be a JSON object.", "body")
            )
        elif body.get("stream"):
            errors.append(
                _line_error(
                    number, "invalid_value", "Streaming is not supported in a batch.", "body.stream"
                )
            )
        else:
            seen.add(custom_id)
            key = hashlib.blake2b(orjson.dumps(body), digest_size=12).digest()
            requests.append(_Request(custom_id, body, key))
    if not errors and not requests:
        errors.append(_line_error(1, "empty_file", "The input file has no requests."))
    if len(requests) > MAX_BATCH_REQUESTS:
        errors.append(
            _line_error(
                len(lines),
                "too_many_requests",
                f"The input file has {len(requests)} requests; a batch takes at most "
                f"{MAX_BATCH_REQUESTS}.",
            )
        )
    return requests, errors
