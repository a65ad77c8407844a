"""The provider batch executor: a batch run through a provider's batch API (``openai-batch``).

For each input it builds the request ChatOpenAI would send (see
:mod:`chainkit.runners._batch_requests`), packs requests into batch files
(``max_requests`` / ``max_bytes`` each, OpenAI's limits by default), uploads
them, creates a batch per file, polls with backoff, downloads the result
files and delivers one record per input, mapped by ``custom_id``
(``"<index>-<attempt>"``). Failed requests that are worth another try (429,
5xx, an expired batch, a batch the provider lost) go into a follow-up batch,
up to the retry policy's attempts; the others become error records.

Every upload and batch is in the journal (:mod:`chainkit.runners._batch_journal`)
before anything waits on it: a resumed run re-attaches to the batches it
finds there and submits only inputs that were never sent. Stopping (Ctrl-C,
a kill) never cancels batches at the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from chainkit.errors import ChainkitRunError, redact
from chainkit.runners._batch_journal import Journal, JournalEntry, read_journal
from chainkit.runners._batch_requests import ModelStep
from chainkit.runners._inputs import InputItem
from chainkit.runners._provider_batch import (
    TRANSIENT_STATUSES,
    BatchProvider,
    BatchRequestError,
    BatchState,
    ProviderBatchSettings,
    ReplyLine,
    request_error,
)
from chainkit.runners._provider_report import ProviderBatchReport
from chainkit.runners._records import ErrorInfo, ResultRecord, Usage, to_jsonable
from chainkit.runners._report import BatchReport

__all__ = ["ProviderBatchExecutor", "ProviderUnavailableError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Deliver = Callable[[ResultRecord], Awaitable[bool]]


class ProviderUnavailableError(ChainkitRunError):
    """The provider's batch API could not be reached for longer than the patience."""

    def __init__(self, provider: str, seconds: float, reason: str) -> None:
        self.provider = provider
        self.seconds = seconds
        self.reason = reason
        super().__init__(
            f"{provider}: the batch API was unreachable for {seconds:.0f} s ({reason}); "
            f"submitted batches keep running at the provider"
        )


@dataclass(slots=True)
class _Held:
    """An input sent (or about to be) and not yet recorded."""

    item: InputItem
    custom_id: str
    attempts: int
    started: datetime
    t0: float


@dataclass(slots=True)
class _Chunk:
    lines: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, int]] = field(default_factory=list)
    size: int = 0


def _transient_sdk_error(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status in TRANSIENT_STATUSES or status >= 500)


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "status_code", None) == 404


class ProviderBatchExecutor:
    """Runs items as requests of provider batches; one record per item (an
    :class:`~chainkit.runners._executor.Executor`)."""

    report_class = ProviderBatchReport

    def __init__(
        self,
        step: ModelStep,
        provider: BatchProvider,
        journal: Path,
        *,
        resume: bool,
        settings: ProviderBatchSettings,
        attempts: int,
        run_id: str,
        on_close: Callable[[], Awaitable[None]] | None = None,
        temporary_journal: bool = False,
    ) -> None:
        self.step = step
        self.provider = provider
        self.journal_path = journal
        self.resume = resume
        self.settings_ = settings
        self.attempts = attempts
        self.run_id = run_id
        self._on_close = on_close
        self._temporary_journal = temporary_journal
        self._journal: Journal | None = None
        self._attached: list[JournalEntry] = []
        self._attached_ids: dict[int, str] = {}  # index -> custom_id sent before a crash
        self._held: dict[int, _Held] = {}
        self._chunk = _Chunk()
        self._files = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._all_read = asyncio.Event()
        self._deliver: Deliver | None = None
        self._closed = False
        self.states: dict[str, BatchState] = {}
        self.batches_created = 0
        self.resubmitted = 0

    @property
    def journal(self) -> Journal:
        if self._journal is None:  # pragma: no cover - run() opens it first
            raise RuntimeError("the executor is not running")
        return self._journal

    # ------------------------------------------------------------ protocol
    @property
    def capacity(self) -> int | None:
        return None

    @property
    def in_flight(self) -> int:
        return len(self._held)

    @property
    def running_batches(self) -> list[str]:
        return [s.id for s in self.states.values() if not s.final]

    @property
    def progress_detail(self) -> str:
        """The batches' states and request counts, for the progress display."""
        if not self.states:
            return "preparing batch files"
        by_status: dict[str, list[BatchState]] = {}
        for state in self.states.values():
            by_status.setdefault(state.status, []).append(state)
        parts = []
        for status, states in sorted(by_status.items()):
            done = sum(s.completed + s.failed for s in states)
            total = sum(s.total for s in states)
            counts = f" {done}/{total}" if total and status != "completed" else ""
            parts.append(f"{len(states)} {status}{counts}")
        return "batches: " + ", ".join(parts)

    def settings(self) -> dict[str, Any]:
        return {
            "backend": self.provider.name,
            "max_requests": self.settings_.max_requests,
            "max_bytes": self.settings_.max_bytes,
        }

    async def run(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        self._deliver = deliver
        # opened only now: the recorder has accepted the results file (resume, overwrite)
        if self.resume:
            self._attached = [e for e in read_journal(self.journal_path) if not e.collected]
            self._attached_ids = {i: c for e in self._attached for c, i in e.requests}
        self._journal = Journal(
            self.journal_path, fresh=not self.resume, temporary=self._temporary_journal
        )
        for entry in self._attached:
            self._spawn(self._follow(entry))
        async for item in items:
            cid = self._attached_ids.get(item.index)
            if cid is not None:  # sent before a crash: wait for its batch
                self._held[item.index] = _Held(
                    item, cid, _attempt_of(cid), datetime.now(UTC), time.monotonic()
                )
                continue
            await self._add(item, 1)
            if item.index % 256 == 0:
                await asyncio.sleep(0)  # building requests is CPU work: let polls and progress run
        self._flush()
        self._all_read.set()
        while True:
            for task in self._tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            pending = [task for task in self._tasks if not task.done()]
            if not pending:
                return
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, grace: float) -> None:
        """Stop waiting (the batches keep running at the provider; a resumed run collects)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop waiting on batches (they keep running at the provider); close the journal."""
        await self.drain(0)
        if self._closed:
            return
        self._closed = True
        if self._journal is not None:
            self._journal.close()
        await self.provider.aclose()
        if self._on_close is not None:
            await self._on_close()

    async def finish(self, report: BatchReport, *, completed: bool) -> None:
        """Release the journal; fill the report (batches, statuses, cost)."""
        await self.aclose()
        if not isinstance(report, ProviderBatchReport):  # pragma: no cover - our report_class
            return
        report.backend = self.provider.name
        report.model = self.step.model_name
        report.batches = len(self.states)
        report.batch_statuses = Counter(s.status for s in self.states.values() if s.final)
        report.resubmitted = self.resubmitted
        report.reattached = len(self._attached)
        report.running = self.running_batches
        report.price(self.settings_.prices)
        if report.running and not completed:
            report.notes.append(
                f"{len(report.running)} batches are still running at {self.provider.name}; "
                f"rerun with --resume to collect them, or cancel them with "
                f"chainkit batch cancel --output FILE"
            )

    # ------------------------------------------------------------ submitting
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    async def _add(self, item: InputItem, attempt: int, started: _Held | None = None) -> None:
        t0 = started.t0 if started else time.monotonic()
        when = started.started if started else datetime.now(UTC)
        custom_id = f"{item.index}-{attempt}"
        held = _Held(item, custom_id, attempt, when, t0)
        try:
            body = self.step.request_body(item.value)
            line = self.provider.request_line(custom_id, body)
        except Exception as exc:  # noqa: BLE001 - the chain's steps before the model failed
            await self._record_error(held, exc)
            return
        if len(line) > self.settings_.max_bytes:
            error = BatchRequestError(
                "-",
                f"the request is {len(line)} bytes, above the batch file limit of "
                f"{self.settings_.max_bytes} bytes",
                code="request_too_large",
            )
            await self._record_error(held, error)
            return
        chunk = self._chunk
        if chunk.lines and (
            len(chunk.lines) >= self.settings_.max_requests
            or chunk.size + len(line) > self.settings_.max_bytes
        ):
            self._flush()
            chunk = self._chunk
        chunk.lines.append(line)
        chunk.requests.append((custom_id, item.index))
        chunk.size += len(line)
        self._held[item.index] = held

    def _flush(self) -> None:
        chunk, self._chunk = self._chunk, _Chunk()
        if chunk.lines:
            self._spawn(self._submit(chunk))

    async def _submit(self, chunk: _Chunk) -> None:
        self._files += 1
        name = f"chainkit-{self.run_id}-{self._files}.jsonl"
        data = b"".join(chunk.lines)
        chunk.lines.clear()

        def upload() -> Awaitable[str]:
            return self.provider.upload(data, name)

        file_id = await self._call("upload", upload)
        data = b""  # the file is at the provider: free it while the batch runs
        self.journal.uploaded(file_id, self.provider.name, chunk.requests, self.provider.base_url)
        entry = JournalEntry(file_id=file_id, requests=chunk.requests, provider=self.provider.name)
        await self._follow(entry)

    async def _create(self, entry: JournalEntry) -> BatchState:
        metadata = {"chainkit_run": self.run_id, "chain": self.step.chain_name[:500]}
        state = await self._call("create", lambda: self.provider.create(entry.file_id, metadata))
        self.journal.created(entry.file_id, state.id)
        self.batches_created += 1
        entry.batch_id = state.id
        self.states[state.id] = state
        return state

    # ------------------------------------------------------------ waiting
    async def _follow(self, entry: JournalEntry) -> None:
        """Wait for the batch of ``entry`` (creating it if the journal has none), then collect."""
        state: BatchState | None = None
        if entry.batch_id is None:  # uploaded, then the run died: was the batch created?
            state = await self._call("list", lambda: self.provider.find(entry.file_id))
            if state is not None:
                self.journal.created(entry.file_id, state.id)
                entry.batch_id = state.id
            else:
                state = await self._create(entry)
        batch_id = entry.batch_id
        assert batch_id is not None  # noqa: S101 - set just above
        if state is not None:
            self.states[batch_id] = state
        delay = self.settings_.poll_interval
        while state is None or not state.final:
            if state is not None:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.settings_.poll_max)
            try:
                state = await self._call("retrieve", lambda: self.provider.retrieve(batch_id))
            except Exception as exc:
                if not _not_found(exc):
                    raise
                state = BatchState(batch_id, "lost")
                break
            self.states[batch_id] = state
        self.states[batch_id] = state
        await self._all_read.wait()
        await self._collect(entry, state)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One provider call, tried again on connection errors, 429 and 5xx, up to the patience."""
        first_failure: float | None = None
        delay = min(1.0, self.settings_.poll_interval)
        while True:
            try:
                return await call()
            except Exception as exc:
                if not _transient_sdk_error(exc):
                    raise
                now = time.monotonic()
                first_failure = first_failure or now
                if now - first_failure > self.settings_.patience:
                    reason = redact(f"{what}: {type(exc).__name__}: {exc}")
                    raise ProviderUnavailableError(
                        self.provider.name, now - first_failure, reason
                    ) from None
                logger.info("%s: %s failed (%s); trying again", self.provider.name, what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings_.poll_max)

    # ------------------------------------------------------------ collecting
    async def _collect(self, entry: JournalEntry, state: BatchState) -> None:
        """Deliver a record (or a follow-up request) for each request of a finished batch.

        Result files are streamed to a spooled temporary file and settled line by line
        as they are read (memory stays small whatever their size); requests with no
        line are settled last.
        """
        index_of = dict(entry.requests)
        for file_id in (state.output_file_id, state.error_file_id):
            if not file_id:
                continue
            spool = await self._call("download", _bind(self.provider.download, file_id))
            with spool:
                for raw in spool:  # line by line
                    if raw.strip():
                        reply = self.provider.read_line(raw)
                        index = index_of.pop(reply.custom_id, None)
                        if index is not None:
                            await self._settle(index, reply.custom_id, state, reply)
        for custom_id, index in index_of.items():  # no result line for these
            await self._settle(index, custom_id, state, None)
        self._flush()  # the follow-up batch of what is tried again
        if entry.batch_id is not None:
            self.journal.collected(entry.batch_id)

    async def _settle(
        self, index: int, custom_id: str, state: BatchState, reply: ReplyLine | None
    ) -> None:
        held = self._held.get(index)
        if held is None or held.custom_id != custom_id:
            return  # recorded in an earlier run, or superseded by a retry
        del self._held[index]
        if reply is not None and reply.status == 200 and reply.body is not None:
            await self._record_reply(held, reply.body)
            return
        error = request_error(state, reply)
        if error.transient and held.attempts < self.attempts:
            self.resubmitted += 1
            await self._add(held.item, held.attempts + 1, held)
        else:
            await self._record_error(held, error)

    async def _record_reply(self, held: _Held, body: dict[str, Any]) -> None:
        try:
            output = self.step.output(body)
        except Exception as exc:  # noqa: BLE001 - the chain's steps after the model failed
            await self._record_error(held, exc)
            return
        usage = body.get("usage") or {}
        record = ResultRecord(
            index=held.item.index,
            id=held.item.id,
            line=held.item.line,
            input=held.item.value,
            output=to_jsonable(output),
            attempts=held.attempts,
            started=held.started,
            ended=datetime.now(UTC),
            latency=time.monotonic() - held.t0,
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                total_tokens=int(usage.get("total_tokens") or 0),
            ),
        )
        await self._emit(record)

    async def _record_error(self, held: _Held, exc: BaseException) -> None:
        status = getattr(exc, "status_code", None)
        record = ResultRecord(
            index=held.item.index,
            id=held.item.id,
            line=held.item.line,
            input=held.item.value,
            error=ErrorInfo(
                type=type(exc).__name__,
                message=redact(" ".join(str(exc).split()))[:1000],
                status=status if isinstance(status, int) else None,
                attempts=held.attempts,
            ),
            attempts=held.attempts,
            started=held.started,
            ended=datetime.now(UTC),
            latency=time.monotonic() - held.t0,
        )
        await self._emit(record)

    async def _emit(self, record: ResultRecord) -> None:
        if self._deliver is None:  # pragma: no cover - run() sets it first
            raise RuntimeError("the executor is not running")
        await self._deliver(record)


def _bind(call: Callable[[str], Awaitable[T]], value: str) -> Callable[[], Awaitable[T]]:
    def bound() -> Awaitable[T]:
        return call(value)

    return bound


def _attempt_of(custom_id: str) -> int:
    _, _, attempt = custom_id.rpartition("-")
    return int(attempt) if attempt.isdigit() else 1
