"""The report of a provider batch (its batches, what was sent again, what it cost),
and ``status`` / ``cancel`` for the batches behind a results file."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainkit.errors import ConfigError, MissingAPIKeyError
from chainkit.runners._batch_journal import JournalEntry, journal_path, read_journal
from chainkit.runners._prices import Cost, estimate_cost
from chainkit.runners._provider_batch import BatchState, OpenAIBatches
from chainkit.runners._report import BatchReport

__all__ = ["BatchJob", "ProviderBatchReport", "batch_jobs", "cancel_batch_jobs", "format_jobs"]


@dataclass
class ProviderBatchReport(BatchReport):
    """:class:`BatchReport` of a batch run through a provider's batch API."""

    backend: str = "openai-batch"
    model: str = ""
    batches: int = 0
    batch_statuses: Counter[str] = field(default_factory=Counter)
    resubmitted: int = 0
    reattached: int = 0
    running: list[str] = field(default_factory=list)
    cost: Cost = field(default_factory=lambda: Cost(None, None))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["provider_batch"] = {
            "backend": self.backend,
            "model": self.model,
            "batches": self.batches,
            "statuses": dict(self.batch_statuses),
            "resubmitted": self.resubmitted,
            "reattached": self.reattached,
            "running": list(self.running),
            "cost_batch": self.cost.batch,
            "cost_sync": self.cost.sync,
        }
        return data

    def _rows(self) -> list[tuple[str, str]]:
        rows = super()._rows()
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.batch_statuses.items()))
        text = f"{self.backend}: {self.batches} batches ({statuses or 'none finished'})"
        if self.reattached:
            text += f", {self.reattached} re-attached"
        if self.resubmitted:
            text += f"; {self.resubmitted} requests sent again"
        if self.running:
            text += f"; still running: {', '.join(self.running)}"
        rows.insert(2, ("batches", text))
        if self.cost.batch is None:
            cost = (
                f"unknown (no price for model {self.model!r}; "
                f"give one in ProviderBatchSettings(prices=...))"
            )
        else:
            cost = (
                f"{Cost.text(self.cost.batch)} at batch prices "
                f"({Cost.text(self.cost.sync)} synchronous), model {self.model}"
            )
        rows.insert(4, ("cost", cost))
        return rows

    def summary(self) -> str:
        lines = super().summary().split("\n")
        lines[0] = f"batch {self.chain} ({self.backend})"
        return "\n".join(lines)

    def price(self, prices: Any) -> None:
        """Fill :attr:`cost` from the tokens used and the price table."""
        self.cost = estimate_cost(
            self.model, self.usage.input_tokens, self.usage.output_tokens, prices
        )


# ---------------------------------------------------------------- status and cancel


@dataclass(frozen=True)
class BatchJob:
    """One batch behind a results file, as the journal has it and the provider sees it."""

    entry: JournalEntry
    state: BatchState | None
    problem: str | None = None


def _client(base_url: str | None, api_key: str | None) -> Any:
    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise MissingAPIKeyError("openai", "OPENAI_API_KEY")
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    return openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=2)


def _entries(output: Path) -> list[JournalEntry]:
    path = journal_path(output)
    if not path.exists():
        raise ConfigError(
            f"{output}: no provider batches are recorded for it ({path.name} does not exist); "
            f"was it written with --backend openai-batch?"
        )
    return read_journal(path)


async def batch_jobs(
    output: Path, *, base_url: str | None = None, api_key: str | None = None
) -> list[BatchJob]:
    """The batches behind ``output`` with their state at the provider."""
    return await _each_batch(output, base_url, api_key, cancel=False)


async def cancel_batch_jobs(
    output: Path, *, base_url: str | None = None, api_key: str | None = None
) -> list[BatchJob]:
    """Cancel every batch behind ``output`` that is still running; their new states."""
    return await _each_batch(output, base_url, api_key, cancel=True)


async def _each_batch(
    output: Path, base_url: str | None, api_key: str | None, *, cancel: bool
) -> list[BatchJob]:
    import openai

    entries = _entries(output)
    jobs: list[BatchJob] = []
    async with _client(base_url or _base_url(entries), api_key) as client:
        provider = OpenAIBatches(client)
        for entry in entries:
            if entry.batch_id is None:
                if not cancel:
                    jobs.append(BatchJob(entry, None, "uploaded, no batch created yet"))
                continue
            if cancel and entry.collected:
                continue
            try:
                state = await provider.retrieve(entry.batch_id)
                if cancel and not state.final and state.status != "cancelling":
                    state = await provider.cancel(entry.batch_id)
            except openai.APIError as exc:
                jobs.append(BatchJob(entry, None, f"{type(exc).__name__}: {exc}"))
            else:
                jobs.append(BatchJob(entry, state))
    return jobs


def _base_url(entries: list[JournalEntry]) -> str | None:
    for entry in entries:
        url = entry.extra.get("base_url")
        if isinstance(url, str) and url:
            return url
    return None


def format_jobs(jobs: list[BatchJob]) -> str:
    """One line per batch: id, status, request counts, whether its records are written."""
    if not jobs:
        return "no batches"
    lines = []
    for job in jobs:
        name = job.entry.batch_id or job.entry.file_id
        written = "records written" if job.entry.collected else "records not written yet"
        if job.state is None:
            lines.append(f"{name}  {job.problem}  ({len(job.entry.requests)} requests)")
            continue
        state = job.state
        lines.append(
            f"{name}  {state.status:<11} {state.completed}/{state.total} done, "
            f"{state.failed} failed  ({written})"
        )
    return "\n".join(lines)
