"""The result file: JSONL, a header line, one record a line, appended and flushed as it goes.

Every line is written with a single ``write`` on an unbuffered ``O_APPEND``
file, so a process killed at any moment (SIGKILL included) leaves at most one
partial last line; the records before it are in the kernel and survive.
Resuming detects that partial line (the file does not end with a newline)
and truncates it away before appending. A ``fsync`` happens on close, so a
clean end also survives a power cut.

Reading a file back (:func:`read_results`) skips header lines; when a
``retry_failed`` run re-ran failed items, the runner rewrites the file at the
end (atomically, through a temporary file and ``os.replace``) so that each
input keeps exactly one record.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from chainkit.errors import ChainkitRunError, TraceError
from chainkit.runners._guard import write_error
from chainkit.runners._records import ResultRecord, ResultsHeader

__all__ = [
    "ResultWriter",
    "ResumeState",
    "compact_results",
    "read_results",
    "repair_partial_line",
    "scan_results",
]

log = logging.getLogger(__name__)

UNSEEN, SUCCEEDED, FAILED = 0, 1, 2
_INDEX_SLACK = 1_000_000  # inputs unknown: an index may run ahead of the lines by this much


class ResultWriter:
    """Append lines to a result file, each with one unbuffered write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._failed: ChainkitRunError | None = None
        self.lines = 0

    def write(self, line: bytes) -> None:
        if self._fd is None:
            raise ValueError(f"result file {self.path} is closed")
        if self._failed is not None:  # after a failed write, none: no record after a torn one
            raise self._failed
        view = memoryview(line)
        try:
            while view:  # a regular file takes the whole line at once; loop just in case
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:  # e.g. the disk is full: the file, and how to go on
            self._failed = write_error(self.path, exc)
            raise self._failed from exc
        self.lines += 1

    def write_header(self, header: ResultsHeader) -> None:
        self.write(header.to_json_line())

    def write_record(self, record: ResultRecord) -> None:
        self.write(record.to_json_line())

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError:  # pragma: no cover - e.g. a pipe or /dev/stdout
            pass
        finally:
            os.close(self._fd)
            self._fd = None


def repair_partial_line(path: Path) -> int:
    """Truncate a last line that lacks its newline (left by a kill); return bytes dropped."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        position = size
        cut = 0
        block = 65536
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            found = chunk.rfind(b"\n")
            if found >= 0:
                cut = start + found + 1
                break
            position = start
        handle.truncate(cut)
    dropped = size - cut
    log.warning(
        "%s ended with a partial line (%d bytes, left by an interrupted run); removed it",
        path,
        dropped,
    )
    return dropped


@dataclass
class ResumeState:
    """What a result file already holds, compactly: a status byte per index, ids when not
    equal to the index."""

    header: ResultsHeader | None = None
    statuses: bytearray = field(default_factory=bytearray)
    ids: dict[int, Any] = field(default_factory=dict)
    records: int = 0
    corrupt: int = 0
    repaired: int = 0

    def status(self, index: int) -> int:
        return self.statuses[index] if index < len(self.statuses) else UNSEEN

    def recorded_id(self, index: int) -> Any:
        return self.ids.get(index, index)

    def mark(self, index: int, ok: bool, record_id: Any) -> None:
        if index >= len(self.statuses):
            self.statuses.extend(b"\0" * (index + 1 - len(self.statuses)))
        self.statuses[index] = SUCCEEDED if ok else FAILED
        if record_id != index:
            self.ids[index] = record_id
        else:
            self.ids.pop(index, None)

    @property
    def succeeded(self) -> int:
        return self.statuses.count(SUCCEEDED)

    @property
    def failed(self) -> int:
        return self.statuses.count(FAILED)


def scan_results(path: Path, total: int | None = None) -> ResumeState:
    """Read a result file for resuming: repair its tail, keep its first header and statuses.

    A record whose index is not one of the ``total`` inputs (or, with ``total``
    unknown, lies far beyond every line read so far) is a corrupt line, skipped with
    a warning: a forged ``"index": 4611686018427387904`` must not size the state.
    """
    state = ResumeState()
    if not path.exists():
        return state
    state.repaired = repair_partial_line(path)
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                state.corrupt += 1
                log.warning("%s line %d is not JSON; ignoring it", path, line_no)
                continue
            if not isinstance(data, dict):
                state.corrupt += 1
                continue
            if "header" in data:
                if state.header is None:
                    try:
                        state.header = ResultsHeader.model_validate(data["header"])
                    except ValueError as exc:
                        raise TraceError(
                            f"{path} line {line_no} is not a chainkit result header ({exc}); "
                            "choose another output file"
                        ) from None
                continue
            index = data.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                state.corrupt += 1
                continue
            bound = total if total is not None else line_no + _INDEX_SLACK
            if index >= bound:
                state.corrupt += 1
                log.warning(
                    "%s line %d: record index %d is beyond the %s; ignoring it",
                    path,
                    line_no,
                    index,
                    f"{total} inputs" if total is not None else "lines of the file",
                )
                continue
            state.records += 1
            state.mark(index, data.get("error") is None, data.get("id", index))
    return state


def read_results(path: str | os.PathLike[str], *, latest: bool = True) -> Iterator[ResultRecord]:
    """The records of a result file, in file order (header lines skipped).

    With ``latest=True`` (the default) an index recorded twice (possible only
    when a run was killed while compacting) yields only its last record.
    """
    file = Path(path)
    if not file.exists():
        raise TraceError(f"result file {file} does not exist")
    last: dict[int, int] = {}
    if latest:
        for line_no, data in _iter_json(file):
            if "header" not in data and isinstance(data.get("index"), int):
                last[data["index"]] = line_no
    for line_no, data in _iter_json(file):
        if "header" in data:
            continue
        index = data.get("index")
        if not isinstance(index, int):
            continue
        if latest and last.get(index) != line_no:
            continue
        yield ResultRecord.model_validate(data)


def read_header(path: str | os.PathLike[str]) -> ResultsHeader | None:
    """The first header of a result file, or None when it has none."""
    for _, data in _iter_json(Path(path)):
        if "header" in data:
            return ResultsHeader.model_validate(data["header"])
    return None


def _iter_json(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip() or not raw.endswith(b"\n"):
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                yield line_no, data


def compact_results(path: Path, indexes: set[int]) -> int:
    """Keep only the last record of each index in ``indexes``; return the lines dropped.

    The file is rewritten to a temporary file beside it and moved into place
    with ``os.replace``, so a kill during compaction leaves the original intact.
    """
    if not indexes:
        return 0
    last: dict[int, int] = {}
    for line_no, data in _iter_json(path):
        index = data.get("index")
        if "header" not in data and isinstance(index, int) and index in indexes:
            last[index] = line_no
    dropped = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            for line_no, raw in enumerate(src, start=1):
                if not raw.strip():
                    continue
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    dropped += 1
                    continue
                index = data.get("index") if isinstance(data, dict) else None
                if (
                    isinstance(data, dict)
                    and "header" not in data
                    and isinstance(index, int)
                    and index in last
                    and last[index] != line_no
                ):
                    dropped += 1
                    continue
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dropped
