"""A provider's batch API behind one small protocol; OpenAI's (and compatible servers') first.

:class:`BatchProvider` is what the provider batch executor needs: upload a
file of requests, create a batch on it, look at it, cancel it, download its
result files, and read a result line. :class:`OpenAIBatches` implements it
with the ``openai`` SDK (``/v1/files`` + ``/v1/batches``), which OpenAI,
Azure OpenAI, several OpenAI-compatible providers and chainkit's local model
serve. Anthropic's Message Batches would be one more class: its requests are
``{"custom_id", "params"}`` and its results ``{"custom_id", "result"}``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from chainkit.errors import ChainkitRunError, ConfigError
from chainkit.runners._prices import Price

__all__ = [
    "FINAL_STATUSES",
    "TRANSIENT_STATUSES",
    "BatchProvider",
    "BatchRequestError",
    "BatchState",
    "OpenAIBatches",
    "ProviderBatchSettings",
    "ReplyLine",
    "request_error",
]

TRANSIENT_STATUSES = frozenset({408, 409, 429})  # and every 5xx: worth another batch
_SPOOL_BYTES = 1024 * 1024  # result files above 1 MB go to disk while they are read
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True, slots=True)
class BatchState:
    """What a provider says about one batch."""

    id: str
    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: tuple[str, ...] = ()
    input_file_id: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """One line of a result file: a reply body (status 200) or why there is none."""

    custom_id: str
    status: int | None
    body: dict[str, Any] | None
    code: str | None = None
    message: str | None = None


class BatchRequestError(ChainkitRunError):
    """One request of a provider batch did not produce an answer.

    ``status`` is the HTTP status the provider answered the request with (None when
    it never ran: the batch expired, was cancelled, or failed); ``code`` the
    provider's error code (``batch_expired``, ``rate_limit_exceeded``, ...).
    """

    def __init__(
        self,
        batch_id: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        transient: bool = False,
    ) -> None:
        self.batch_id = batch_id
        self.status = status
        self.status_code = status  # read by the runner's error classification
        self.code = code
        self.transient = transient
        detail = f" ({code})" if code else ""
        super().__init__(f"batch {batch_id}: {message}{detail}")


@dataclass(frozen=True, kw_only=True)
class ProviderBatchSettings:
    """How a provider batch is split, polled and priced.

    ``max_requests`` / ``max_bytes``: the most per batch file (OpenAI: 50,000 and
    200 MB). ``poll_interval``: seconds before the first look at a batch, growing
    by half each time up to ``poll_max``. ``patience``: seconds the provider may be
    unreachable before the run stops (the batches keep running; resume later).
    ``prices``: extra or overriding entries of the price table.
    """

    max_requests: int = 50_000
    max_bytes: int = 200 * 1024 * 1024
    poll_interval: float = 5.0
    poll_max: float = 60.0
    patience: float = 600.0
    prices: Mapping[str, Price] | None = None

    def __post_init__(self) -> None:
        if self.max_requests < 1:
            raise ConfigError(f"max_requests must be >= 1, got {self.max_requests!r}")
        if self.max_bytes < 1024:
            raise ConfigError(f"max_bytes must be >= 1024, got {self.max_bytes!r}")
        for name in ("poll_interval", "poll_max", "patience"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {getattr(self, name)!r}")


class BatchProvider(Protocol):
    """A provider's batch API, as the executor uses it (all calls may raise SDK errors)."""

    name: str
    endpoint: str

    @property
    def base_url(self) -> str:
        """Where the provider is (no secrets): recorded so ``status``/``cancel`` find it."""
        ...

    def request_line(self, custom_id: str, body: dict[str, Any]) -> bytes:
        """One line of a batch input file (with its newline)."""
        ...

    def read_line(self, line: bytes) -> ReplyLine:
        """One line of a result file."""
        ...

    async def upload(self, data: bytes, filename: str) -> str:
        """Upload a batch input file; its id."""
        ...

    async def create(self, file_id: str, metadata: dict[str, str]) -> BatchState: ...

    async def retrieve(self, batch_id: str) -> BatchState: ...

    async def cancel(self, batch_id: str) -> BatchState: ...

    async def find(self, file_id: str) -> BatchState | None:
        """A batch created on ``file_id`` (after a crash between upload and journal)."""
        ...

    async def download(self, file_id: str) -> IO[bytes]:
        """A result file, streamed into a temporary file (memory stays small), at its start."""
        ...

    async def aclose(self) -> None: ...


class OpenAIBatches:
    """OpenAI's Batch API through the ``openai`` SDK's async client."""

    name = "openai-batch"

    def __init__(self, client: Any, endpoint: str = "/v1/chat/completions") -> None:
        self.client = client
        self.endpoint = endpoint

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    def request_line(self, custom_id: str, body: dict[str, Any]) -> bytes:
        line = {"custom_id": custom_id, "method": "POST", "url": self.endpoint, "body": body}
        return orjson.dumps(line) + b"\n"

    def read_line(self, line: bytes) -> ReplyLine:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
            # its request is settled as having no result (and tried again)
            return ReplyLine("", None, None, "invalid_result_line", "unreadable result line")
        custom_id = str(data["custom_id"])
        response = data.get("response")
        error = data.get("error")
        if isinstance(response, dict):
            status = response.get("status_code")
            body = response.get("body")
            body = body if isinstance(body, dict) else None
            if status == 200 and body is not None:
                return ReplyLine(custom_id, 200, body)
            detail = (body or {}).get("error")
            detail = detail if isinstance(detail, dict) else {}
            return ReplyLine(
                custom_id,
                int(status) if isinstance(status, int) else None,
                None,
                detail.get("code") or detail.get("type"),
                detail.get("message") or f"HTTP {status}",
            )
        error = error if isinstance(error, dict) else {}
        return ReplyLine(
            custom_id, None, None, error.get("code"), error.get("message") or "no response"
        )

    async def upload(self, data: bytes, filename: str) -> str:
        uploaded = await self.client.files.create(file=(filename, data), purpose="batch")
        return str(uploaded.id)

    async def create(self, file_id: str, metadata: dict[str, str]) -> BatchState:
        batch = await self.client.batches.create(
            input_file_id=file_id,
            endpoint=self.endpoint,
            completion_window="24h",
            metadata=metadata,
        )
        return _state(batch)

    async def retrieve(self, batch_id: str) -> BatchState:
        return _state(await self.client.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> BatchState:
        return _state(await self.client.batches.cancel(batch_id))

    async def find(self, file_id: str) -> BatchState | None:
        async for batch in self.client.batches.list(limit=100):
            if batch.input_file_id == file_id:
                return _state(batch)
        return None

    async def download(self, file_id: str) -> IO[bytes]:
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
        try:
            async with self.client.files.with_streaming_response.content(file_id) as response:
                async for chunk in response.iter_bytes():
                    spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    async def aclose(self) -> None:
        """Nothing to release: the client (and its connections) belong to the chat model."""


def _state(batch: Any) -> BatchState:
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
    return BatchState(
        id=batch.id,
        status=batch.status,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        errors=tuple(
            f"line {e.line}: {e.message} ({e.code})" if e.line else f"{e.message} ({e.code})"
            for e in errors
        ),
        input_file_id=batch.input_file_id,
    )


def request_error(state: BatchState, reply: ReplyLine | None) -> BatchRequestError:
    """Why a request has no answer, and whether it is worth another batch."""
    if reply is not None and reply.status is not None:
        transient = reply.status in TRANSIENT_STATUSES or reply.status >= 500
        return BatchRequestError(
            state.id,
            f"the request failed with HTTP {reply.status}: {reply.message}",
            status=reply.status,
            code=reply.code,
            transient=transient,
        )
    if reply is not None:
        transient = reply.code != "batch_cancelled"
        return BatchRequestError(state.id, str(reply.message), code=reply.code, transient=transient)
    if state.status == "failed":
        detail = "; ".join(state.errors[:3]) or "no reason given"
        return BatchRequestError(
            state.id, f"the batch failed validation: {detail}", code="batch_failed"
        )
    if state.status == "lost":
        return BatchRequestError(
            state.id,
            "the provider no longer knows this batch (it answered 404)",
            code="batch_not_found",
            transient=True,
        )
    if state.status == "cancelled":
        return BatchRequestError(state.id, "the batch was cancelled", code="batch_cancelled")
    return BatchRequestError(
        state.id,
        f"the batch ended {state.status} without a result for this request",
        code=f"batch_{state.status}",
        transient=True,
    )
