"""The provider batches behind a results file: a sidecar journal, written before any wait.

``out.jsonl`` gets ``out.jsonl.batches``: one JSON line per event, flushed
and synced as it happens, so a SIGKILL loses nothing that was sent:

- ``uploaded``: a batch input file is at the provider, with the
  ``[custom_id, index]`` of each request in it (written before the batch is
  created, so a crash in between is found again by the file's id);
- ``created``: the batch on that file;
- ``collected``: every record of that batch is in the results file.

:func:`read_journal` gives what a resumed run re-attaches to; ``chainkit batch
status`` and ``chainkit batch cancel`` read the same file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Journal", "JournalEntry", "journal_path", "read_journal"]

SUFFIX = ".batches"


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + SUFFIX)


@dataclass(slots=True)
class JournalEntry:
    """One uploaded file of requests and the batch made of it (once created)."""

    file_id: str
    requests: list[tuple[str, int]]
    provider: str = ""
    batch_id: str | None = None
    collected: bool = False
    uploaded_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def read_journal(path: Path) -> list[JournalEntry]:
    """The entries of a journal, in upload order (a torn last line is ignored)."""
    entries: dict[str, JournalEntry] = {}
    by_batch: dict[str, JournalEntry] = {}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    for raw in data.splitlines():
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a line cut by a kill: its event did not complete
        if not isinstance(event, dict):
            continue
        try:
            _apply(event, entries, by_batch)
        except (KeyError, TypeError, ValueError):
            continue  # not an event this module wrote: ignored, as a torn line is
    return list(entries.values())


def _apply(
    event: dict[str, Any], entries: dict[str, JournalEntry], by_batch: dict[str, JournalEntry]
) -> None:
    """Fold one journal event into the entries."""
    kind = event.get("event")
    if kind == "uploaded":
        entry = JournalEntry(
            file_id=str(event["file"]),
            requests=[(str(c), int(i)) for c, i in event.get("requests", [])],
            provider=str(event.get("provider", "")),
            uploaded_at=float(event.get("t", 0.0)),
            extra={"base_url": event.get("base_url")},
        )
        entries[entry.file_id] = entry
    elif kind == "created" and event.get("file") in entries:
        entry = entries[event["file"]]
        entry.batch_id = str(event["batch"])
        by_batch[entry.batch_id] = entry
    elif kind == "collected" and event.get("batch") in by_batch:
        by_batch[event["batch"]].collected = True


class Journal:
    """Appends events to the sidecar journal; each is on disk before the call returns."""

    def __init__(self, path: Path, *, fresh: bool, temporary: bool = False) -> None:
        self.path = path
        self.temporary = temporary  # removed at close (a run without a results file)
        if fresh:
            path.unlink(missing_ok=True)
        self._file = path.open("ab")

    def _write(self, event: dict[str, Any]) -> None:
        event["t"] = round(time.time(), 3)
        self._file.write(orjson.dumps(event) + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def uploaded(
        self, file_id: str, provider: str, requests: list[tuple[str, int]], base_url: str = ""
    ) -> None:
        self._write(
            {
                "event": "uploaded",
                "file": file_id,
                "provider": provider,
                "base_url": base_url,
                "requests": requests,
            }
        )

    def created(self, file_id: str, batch_id: str) -> None:
        self._write({"event": "created", "file": file_id, "batch": batch_id})

    def collected(self, batch_id: str) -> None:
        self._write({"event": "collected", "batch": batch_id})

    def close(self) -> None:
        self._file.close()
        if self.temporary:
            self.path.unlink(missing_ok=True)
