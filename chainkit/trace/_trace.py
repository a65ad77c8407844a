"""The :class:`Trace`: an ordered list of records, in memory and optionally on disk."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from chainkit.errors import TraceError, TraceNotFoundError, redact
from chainkit.trace._records import (
    SCHEMA_VERSION,
    Chunk,
    CustomEvent,
    Event,
    Record,
    RecordAdapter,
    Retry,
    RunEnded,
    RunFailed,
    RunStarted,
    TraceHeader,
)
from chainkit.trace._run import ErrorInfo, Percentiles, Run, TraceSummary
from chainkit.trace._serialize import DEFAULT_MAX_CHARS, to_jsonable, truncate

__all__ = ["Trace", "TraceSummary"]

log = logging.getLogger(__name__)

_EVENT_KEYS = ("event", "name", "run_id", "parent_ids", "tags", "metadata", "data")


class Trace:
    """An ordered list of trace records, with the runs and events they describe.

    ``Trace()`` keeps records in memory. ``Trace(path)`` also appends each record
    to a JSON Lines file as it happens, one ``write`` of one whole line, so a
    crash loses at most the line being written; a header line with the schema
    version starts each writing session. :meth:`load` reads such a file back.

    Handlers write through :meth:`run_started`, :meth:`chunk`, :meth:`run_ended`,
    :meth:`run_failed`, :meth:`retry`, :meth:`custom_event` and :meth:`event`;
    readers use :attr:`runs`, :attr:`roots`, :attr:`events`, :attr:`records`,
    :meth:`get` and :meth:`summary`. All methods are thread-safe.

    Inputs, outputs and event data are stored as plain JSON, strings cut to
    ``max_chars`` (0 keeps everything) and secrets masked. Chunk texts are never
    cut. In memory, :attr:`events` keeps the event dicts as they were produced
    (LangChain objects in ``data``); the file and :attr:`records` hold their JSON form.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self.max_chars = max_chars
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        # Entries are Records, or ("c", run_id, t, text) chunks and ("e", event) events
        # kept raw and turned into records only when someone reads `records` (a
        # chunk tuple holds only strings and a float: the cyclic GC stops tracking it).
        self._log: list[Any] = []
        self._runs: dict[str, Run] = {}
        self._live: dict[UUID, Run] = {}
        self._run_list: list[Run] = []
        self._waiting: dict[str, list[Run]] = {}  # parent id -> children seen before it
        self._events: list[dict[str, Any]] = []
        self.headers: list[TraceHeader] = []
        self._fd: int | None = None
        header = TraceHeader(
            created=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            clock_origin=time.perf_counter(),
            wall_origin=time.time(),
            chainkit_version=_version(),
        )
        self._log.append(header)
        self.headers.append(header)
        if self.path is not None:
            self._open(self.path)
            self._write(header.model_dump())

    # ------------------------------------------------------------------ file

    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise TraceError(
                f"cannot write trace file {path}: {exc.strerror}; check the path"
            ) from exc
        self._fd = fd
        # A raw descriptor: closed when the Trace is collected, nothing buffered to lose.
        self._finalizer = weakref.finalize(self, os.close, fd)

    def _write(self, data: Mapping[str, Any]) -> None:
        if self._fd is None:
            return
        line = redact(orjson.dumps(data, default=_json_default).decode()) + "\n"
        os.write(self._fd, line.encode())

    def close(self) -> None:
        """Stop writing to the file (records already written stay); idempotent."""
        with self._lock:
            if self._fd is not None:
                self._finalizer()
                self._fd = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    def run_started(
        self,
        run_id: UUID | str,
        *,
        name: str,
        kind: str,
        parent_run_id: UUID | str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        inputs: Any = None,
        t: float | None = None,
    ) -> Run:
        """Record that a run started; returns its :class:`Run`."""
        record = RunStarted(
            t=time.perf_counter() if t is None else t,
            run_id=str(run_id),
            parent_run_id=str(parent_run_id) if parent_run_id is not None else None,
            name=name,
            kind=kind,
            tags=list(tags or ()),
            metadata=to_jsonable(dict(metadata or {}), self.max_chars),
            inputs=to_jsonable(inputs, self.max_chars),
        )
        with self._lock:
            run = self._apply_start(record)
            if isinstance(run_id, UUID):
                self._live[run_id] = run
            self._log.append(record)
            self._write(record.model_dump())
        return run

    def chunk(self, run_id: UUID | str, t: float, text: str) -> None:
        """Record a chunk of a model run (the hot path: no validation, no copies)."""
        with self._lock:
            run = self._live.get(run_id) if isinstance(run_id, UUID) else None
            if run is None:
                run = self._run_for(run_id, "llm")
            run.chunks.append((t, text))
            self._log.append(("c", run.run_id, t, text))
            if self._fd is not None:
                self._write({"type": "chunk", "t": t, "run_id": run.run_id, "text": text})

    def run_ended(
        self,
        run_id: UUID | str,
        *,
        outputs: Any = None,
        inputs: Any = None,
        usage: Mapping[str, Any] | None = None,
        text: str | None = None,
        t: float | None = None,
    ) -> Run:
        """Record that a run finished.

        ``text``: the final text of a run that streamed nothing; ``inputs``: the
        inputs, when the start did not know them (streamed chains).
        """
        t = time.perf_counter() if t is None else t
        with self._lock:
            run = self._run_for(run_id, "chain")
            record = RunEnded(
                t=t,
                run_id=run.run_id,
                outputs=to_jsonable(outputs, self.max_chars),
                inputs=to_jsonable(inputs, self.max_chars) if inputs is not None else None,
                usage=to_jsonable(dict(usage), 0) if usage else None,
                latency=None if run.start is None else t - run.start,
                chunks=len(run.chunks),
                text=truncate(text, self.max_chars)
                if text is not None and not run.chunks
                else None,
            )
            self._apply(record)
            record.ttft = run.ttft
            self._log.append(record)
            self._write(record.model_dump())
        return run

    def run_failed(
        self,
        run_id: UUID | str,
        error: BaseException | ErrorInfo,
        *,
        partial_text: str | None = None,
        t: float | None = None,
    ) -> Run:
        """Record that a run raised; its chunks so far are kept as the partial text."""
        t = time.perf_counter() if t is None else t
        info = error if isinstance(error, ErrorInfo) else error_info(error)
        with self._lock:
            run = self._run_for(run_id, "chain")
            partial = run.text if run.chunks or partial_text is None else partial_text
            record = RunFailed(
                t=t,
                run_id=run.run_id,
                error_type=info.type,
                message=info.message,
                partial_text=truncate(partial, self.max_chars) if not run.chunks else "",
                latency=None if run.start is None else t - run.start,
                ttft=run.ttft,
                chunks=len(run.chunks),
            )
            self._apply(record)
            self._log.append(record)
            self._write(record.model_dump())
        return run

    def retry(
        self,
        run_id: UUID | str,
        *,
        attempt: int | None = None,
        error: BaseException | ErrorInfo | None = None,
        wait: float | None = None,
        t: float | None = None,
    ) -> None:
        """Record that a run is being retried (attempt ``attempt``) after ``error``."""
        info = error_info(error) if isinstance(error, BaseException) else error
        record = Retry(
            t=time.perf_counter() if t is None else t,
            run_id=str(run_id),
            attempt=attempt,
            error_type=info.type if info else None,
            message=info.message if info else None,
            wait=wait,
        )
        self.append(record)

    def custom_event(
        self,
        run_id: UUID | str,
        name: str,
        data: Any,
        *,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        t: float | None = None,
    ) -> None:
        """Record a custom event dispatched inside a run."""
        self.append(
            CustomEvent(
                t=time.perf_counter() if t is None else t,
                run_id=str(run_id),
                name=name,
                data=to_jsonable(data, self.max_chars),
                tags=list(tags or ()),
                metadata=to_jsonable(dict(metadata or {}), self.max_chars),
            )
        )

    def event(self, event: dict[str, Any]) -> None:
        """Record an astream_events-style event dict (it must carry its time as ``t``).

        The dict is kept as is in :attr:`events`; its JSON form goes to the file.
        """
        with self._lock:
            self._events.append(event)
            self._log.append(("e", event))
            if self._fd is not None:
                self._write(self._event_record(event))

    def append(self, record: Record) -> None:
        """Add a record made elsewhere (a reader merging traces, a custom handler)."""
        with self._lock:
            self._apply(record)
            if isinstance(record, Event):
                event = record.as_event()
                self._events.append(event)
                self._log.append(("e", event))
            elif isinstance(record, Chunk):
                run = self._runs[record.run_id]
                self._log.append(("c", run.run_id, record.t, record.text))
            else:
                self._log.append(record)
            self._write(record.model_dump())

    # ------------------------------------------------------------- folding

    def _run_for(self, run_id: UUID | str, kind: str) -> Run:
        """The run with this id; a placeholder if its start was never seen."""
        key = str(run_id)
        run = self._runs.get(key)
        if run is None:
            log.debug("trace: record for run %s whose start was not seen", key)
            run = Run(run_id=key, name="unknown", kind=kind)
            self._runs[key] = run
            self._run_list.append(run)
            if isinstance(run_id, UUID):
                self._live[run_id] = run
        return run

    def _apply_start(self, record: RunStarted) -> Run:
        run = self._runs.get(record.run_id)
        if run is None:
            run = Run(run_id=record.run_id, name=record.name, kind=record.kind)
            self._runs[record.run_id] = run
            self._run_list.append(run)
        else:  # a placeholder made by an early chunk or end
            run.name, run.kind = record.name, record.kind
        run.parent_run_id = record.parent_run_id
        run.tags = record.tags
        run.metadata = record.metadata
        run.inputs = record.inputs
        run.start = record.t
        if record.parent_run_id is not None:
            parent = self._runs.get(record.parent_run_id)
            if parent is not None:
                parent.children.append(run)
            else:
                self._waiting.setdefault(record.parent_run_id, []).append(run)
        run.children.extend(self._waiting.pop(record.run_id, ()))
        return run

    def _apply(self, record: Any) -> Run | None:
        """Fold a record into the run index (caller holds the lock)."""
        if isinstance(record, RunStarted):
            return self._apply_start(record)
        if isinstance(record, Chunk):
            run = self._run_for(record.run_id, "llm")
            run.chunks.append((record.t, record.text))
            return run
        if isinstance(record, RunEnded):
            run = self._run_for(record.run_id, "chain")
            run.end = record.t
            run.outputs = record.outputs
            if record.inputs is not None:
                run.inputs = record.inputs
            if record.usage:
                run.usage = record.usage
            if record.text is not None:
                run.final_text = record.text
            elif not run.chunks and isinstance(record.outputs, str):
                run.final_text = record.outputs
            return run
        if isinstance(record, RunFailed):
            run = self._run_for(record.run_id, "chain")
            run.end = record.t
            run.error = ErrorInfo(record.error_type, record.message)
            if record.partial_text and not run.chunks:
                run.final_text = record.partial_text
            return run
        if isinstance(record, Retry):
            run = self._run_for(record.run_id, "chain")
            run.retries += 1
            return run
        if isinstance(record, TraceHeader):
            self.headers.append(record)
        return None

    def _event_record(self, event: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "event", "t": event.get("t", 0.0)}
        for key in _EVENT_KEYS:
            value = event.get(key)
            if key in ("parent_ids", "tags"):
                out[key] = list(value or ())
            elif key == "metadata":
                out[key] = to_jsonable(dict(value or {}), self.max_chars)
            elif key == "data":
                out[key] = to_jsonable(value if value is not None else {}, self.max_chars)
            else:
                out[key] = str(value) if value is not None else ""
        return out

    # --------------------------------------------------------------- reading

    @property
    def records(self) -> list[Record]:
        """Every record in order (the header first), as pydantic models."""
        with self._lock:
            for i, entry in enumerate(self._log):
                if isinstance(entry, tuple):
                    if entry[0] == "c":
                        _, run_id, t, text = entry
                        self._log[i] = Chunk(t=t, run_id=run_id, text=text)
                    else:
                        self._log[i] = Event.model_validate(self._event_record(entry[1]))
            return list(self._log)

    @property
    def runs(self) -> list[Run]:
        """Every run in the order it started."""
        with self._lock:
            return list(self._run_list)

    @property
    def roots(self) -> list[Run]:
        """The top-level runs: those whose parent is not in this trace.

        A damaged file can hold runs whose parents loop (a -> b -> a): no run of the
        loop has a parent outside it, so none would be a root and the loop would not
        show at all. The earliest run of each such loop is a root too (see
        :attr:`damage`); every walk of the tree visits each run once.
        """
        with self._lock:
            roots, loops = self._roots_and_loops()
            return roots + loops

    def _roots_and_loops(self) -> tuple[list[Run], list[Run]]:
        roots = [
            r
            for r in self._run_list
            if r.parent_run_id is None or r.parent_run_id not in self._runs
        ]
        reached: set[int] = set()
        for root in roots:
            reached.update(id(run) for _, run in root.walk())
        loops: list[Run] = []
        if len(reached) < len(self._run_list):
            order = {id(run): i for i, run in enumerate(self._run_list)}
            for run in self._run_list:
                if id(run) in reached:
                    continue
                chain: dict[int, Run] = {}  # up the parents from an unreached run to its loop
                at: Run | None = run
                while at is not None and id(at) not in chain:
                    chain[id(at)] = at
                    at = self._runs.get(at.parent_run_id) if at.parent_run_id else None
                if at is None:  # pragma: no cover - such a run has a root and was reached
                    continue
                members = list(chain.values())
                loop = members[[id(m) for m in members].index(id(at)) :]
                entry = min(loop, key=lambda r: order[id(r)])  # the loop's earliest started run
                loops.append(entry)
                reached.update(id(r) for _, r in entry.walk())
        return roots, loops

    @property
    def damage(self) -> list[str]:
        """What is wrong with this trace's run tree, one line each (empty when whole):
        runs whose parent is not in the trace (shown as top-level runs) and loops of
        parents (shown from their earliest run)."""
        with self._lock:
            _, loops = self._roots_and_loops()
            problems = [
                f"run {run.run_id[:8]} ({run.name!r}) names a parent "
                f"{run.parent_run_id[:8]!r} that is not in the trace"
                for run in self._run_list
                if run.parent_run_id is not None and run.parent_run_id not in self._runs
            ]
            problems.extend(
                f"run {run.run_id[:8]} ({run.name!r}) is in a loop of parents "
                f"(each is its own ancestor)"
                for run in loops
            )
            return problems

    @property
    def events(self) -> list[dict[str, Any]]:
        """The recorded events: dicts in the astream_events schema, plus ``t``."""
        with self._lock:
            return list(self._events)

    def get(self, run_id: UUID | str) -> Run | None:
        """The run with this id (as passed in ``config={"run_id": ...}``), or None."""
        return self._runs.get(str(run_id))

    def __getitem__(self, run_id: UUID | str) -> Run:
        run = self.get(run_id)
        if run is None:
            raise KeyError(run_id)
        return run

    def __len__(self) -> int:
        return len(self._log)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def summary(self) -> TraceSummary:
        """Runs, chunks, errors, and latency / time-to-first-chunk percentiles."""
        runs = self.runs
        roots = self.roots
        by_kind: dict[str, int] = {}
        for run in runs:
            by_kind[run.kind] = by_kind.get(run.kind, 0) + 1
        usage: dict[str, int] = {}
        for run in runs:
            if run.is_model:
                for key, value in (run.usage or {}).items():
                    if key in ("input_tokens", "output_tokens", "total_tokens") and isinstance(
                        value, int
                    ):
                        usage[key] = usage.get(key, 0) + value
        return TraceSummary(
            runs=len(runs),
            calls=len(roots),
            by_kind=by_kind,
            chunks=sum(1 for run in runs for _, text in run.chunks if text),
            errors=sum(1 for run in roots if run.error is not None),
            failed_runs=sum(1 for run in runs if run.error is not None),
            retries=sum(run.retries for run in runs),
            events=len(self._events),
            latency=Percentiles.of([x for run in roots if (x := run.latency) is not None]),
            ttft=Percentiles.of([x for run in roots if (x := run.ttft) is not None]),
            model_ttft=Percentiles.of(
                [x for run in runs if run.is_model and (x := run.ttft) is not None]
            ),
            usage=usage,
        )

    def _repr_html_(self) -> str:
        from chainkit.trace._html import trace_html

        return trace_html(self.summary(), self.runs, self.roots, self.path)

    def __repr__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"<Trace{where}: {self.summary()}>"

    # ----------------------------------------------------------- files

    def lines(self) -> Iterator[bytes]:
        """The trace as JSON Lines (each line ends with a newline), secrets masked."""
        for record in self.records:
            line = orjson.dumps(record.model_dump(), default=_json_default).decode()
            yield (redact(line) + "\n").encode()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole trace to a new JSON Lines file; returns its path."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as fh:
                fh.writelines(self.lines())
        except OSError as exc:
            raise TraceError(
                f"cannot write trace file {target}: {exc.strerror}; check the path"
            ) from exc
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, max_chars: int = DEFAULT_MAX_CHARS) -> Trace:
        """Read a JSON Lines trace. A partial last line (a crash mid-write) is skipped."""
        source = Path(path)
        if source.is_dir() or not source.exists():
            where = "is a directory" if source.is_dir() else "does not exist"
            raise TraceNotFoundError(str(source), where)
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise TraceError(f"cannot read trace file {source}: {exc.strerror}") from exc
        trace = cls(max_chars=max_chars)
        trace._log.clear()
        trace.headers.clear()
        # Loading makes many small long-lived objects: the cyclic GC would walk
        # them again and again for nothing (it doubled the load time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            trace._load_lines(source, data)
        finally:
            if collecting:
                gc.enable()
        if not trace.headers:
            log.debug("trace %s has no header line", source)
        return trace

    def _load_lines(self, source: Path, data: bytes) -> None:
        trace = self
        lines = data.split(b"\n")
        complete = data.endswith(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            last = number == len(lines)
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if last and not complete:
                    log.warning(
                        "trace %s: skipped a partial last line (%d bytes)", source, len(raw)
                    )
                    break
                raise TraceError(f"trace file {source} line {number} is not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise TraceError(f"trace file {source} line {number} is not a JSON object")
            kind = obj.get("type")
            if trace._load_fast(kind, obj):
                continue
            if kind == "trace" and int(obj.get("schema_version", 0)) > SCHEMA_VERSION:
                raise TraceError(
                    f"trace file {source} has schema version {obj.get('schema_version')}, "
                    f"newer than this chainkit reads ({SCHEMA_VERSION}); upgrade chainkit"
                )
            try:
                record = RecordAdapter.validate_python(obj)
            except ValidationError as exc:
                if kind not in _KNOWN_TYPES:
                    log.debug(
                        "trace %s line %d: unknown record type %r skipped", source, number, kind
                    )
                    continue
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"][1:]) or "record"
                raise TraceError(
                    f"trace file {source} line {number}: {kind} record field {where}: "
                    f"{first['msg']}"
                ) from exc
            trace._append_loaded(record)

    def _load_fast(self, kind: Any, obj: dict[str, Any]) -> bool:
        """Chunks and events, the bulk of a file, without pydantic when well-formed."""
        t = obj.get("t")
        if t.__class__ not in (float, int) or not isinstance(obj.get("run_id"), str):
            return False
        if kind == "chunk" and len(obj) == 4 and isinstance(obj.get("text"), str):
            with self._lock:
                run = self._run_for(obj["run_id"], "llm")
                run.chunks.append((float(t), obj["text"]))
                self._log.append(("c", run.run_id, float(t), obj["text"]))
            return True
        if (
            kind == "event"
            and len(obj) == 9
            and isinstance(obj.get("event"), str)
            and isinstance(obj.get("name"), str)
            and isinstance(obj.get("parent_ids"), list)
            and isinstance(obj.get("tags"), list)
            and isinstance(obj.get("metadata"), dict)
            and "data" in obj
        ):
            event = {key: obj[key] for key in _EVENT_KEYS}
            event["t"] = float(t)
            with self._lock:
                self._events.append(event)
                self._log.append(("e", event))
            return True
        return False

    def _append_loaded(self, record: Record) -> None:
        with self._lock:
            self._apply(record)
            if isinstance(record, Event):
                self._events.append(record.as_event())
            self._log.append(record)


_KNOWN_TYPES = {"trace", "run_start", "chunk", "run_end", "run_error", "retry", "custom", "event"}


def error_info(error: BaseException) -> ErrorInfo:
    """The type name and redacted one-line message of an exception."""
    message = str(error).strip()
    first = message.splitlines()[0] if message else ""
    return ErrorInfo(type(error).__name__, redact(truncate(first, 2000)))


def _json_default(value: Any) -> Any:
    return to_jsonable(value)


def _version() -> str:
    from chainkit import __version__

    return __version__
