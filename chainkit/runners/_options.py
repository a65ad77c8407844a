"""BatchOptions: every option of a batch, as one frozen, validated value.

>>> options = BatchOptions(limits=Limits(max_concurrency=16, rpm=600), output="out.jsonl")
>>> await run_batch(chain, inputs, options=options)
>>> await run_batch(chain, inputs, max_concurrency=16, rpm=600, output="out.jsonl")  # the same

Every entry point (:func:`run_batch`, :func:`run_batch_sync`,
:func:`iter_results`, ``chainkit batch``, every backend) takes ``options=``;
the keyword form is declared once, by :class:`BatchKwargs`, and
:meth:`BatchOptions.replace` turns it into a value. The limits
(``max_concurrency``, ``rpm``, ``tpm``) are a :class:`Limits` inside, the
retry settings (``retries``, ``backoff_base``, ``backoff_max``,
``max_retry_after``) a :class:`~chainkit.runners.RetryPolicy`.

Adding an option: a field of :class:`BatchOptions` (or of :class:`Limits` /
``RetryPolicy``) and the same key in :class:`BatchKwargs`
(``tests/runners/test_options.py`` checks that they agree).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig

from chainkit.errors import ConfigError
from chainkit.runners._progress import ProgressSink
from chainkit.runners._provider_batch import ProviderBatchSettings
from chainkit.runners._retry import RetryPolicy

__all__ = ["BACKENDS", "STRATEGIES", "BatchKwargs", "BatchOptions", "Limits", "Strategy"]

Strategy = Literal["sliding", "fixed-batches", "abatch", "gather"]
STRATEGIES: tuple[str, ...] = ("sliding", "fixed-batches", "abatch", "gather")
BACKENDS: tuple[str, ...] = ("local", "ray", "openai-batch")

Progress = bool | str | ProgressSink | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """How much a batch may ask of the model: items in flight, requests and tokens a minute.

    ``rpm``/``tpm`` are for the whole batch (smooth token buckets; None: no limit).
    """

    max_concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None

    def __post_init__(self) -> None:
        value = self.max_concurrency
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"max_concurrency must be an integer >= 1, got {value!r}")
        for label, limit in (("rpm", self.rpm), ("tpm", self.tpm)):
            if limit is not None and limit <= 0:
                raise ConfigError(f"{label} must be > 0, got {limit!r}; use None for no limit")


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """Every option of a batch, validated when made (a :class:`~chainkit.errors.ConfigError`
    names the bad value); ``strategy`` is normalized (``"fixed_batches"`` -> ``"fixed-batches"``).

    Attributes:
        limits: ``max_concurrency`` (items in flight at most, also put in each item's
            RunnableConfig), ``rpm``, ``tpm`` (requests / tokens per minute for the
            whole batch, smooth buckets).
        retry: the retry policy: ``attempts`` (``retries + 1``; extra attempts only for
            transient errors: 429, 408, 409, 5xx, timeouts, connection errors, cut
            streams), full-jitter backoff bounds ``backoff_base``/``backoff_max``
            (seconds), ``max_retry_after`` (cap on a server's Retry-After).
        timeout: seconds per attempt (a timed-out attempt is retried like a 5xx).
        output: a JSONL file to append records to (header line first); without one
            the records are kept in ``report.results``.
        resume: continue ``output``: inputs already recorded are not run again.
        retry_failed: with ``resume``, run the inputs recorded as failed again.
        overwrite: start ``output`` over when it exists (without it that is an error).
        ordered: write records in input order (through a bounded reorder buffer)
            instead of completion order.
        stream: run each item through ``astream`` (measures time to first token).
        callbacks: LangChain callback handlers attached to every item (StreamCapture...).
        config: a base RunnableConfig (tags, metadata, callbacks) for every item.
        progress: True (a bar on a terminal, lines in logs, HTML in Jupyter), False,
            "rich", "plain", "notebook", or your own ProgressSink.
        strategy: "sliding" (default), "fixed-batches", "abatch" or "gather" (see
            :mod:`chainkit.runners._local`).
        name: the chain's name in the header and report (default: its LangChain name).
        reorder_buffer: with ordered=True, completed records held back at most
            (default max(64, 4 * max_concurrency)); when full, no new input is read
            until the oldest item is done.
        grace: seconds in-flight items get to finish after a cancellation.
        backend: "local" (this process) or "ray" (a Ray cluster; ``pip install
            'chainkit[ray]'``; see :func:`chainkit.runners.run_batch_ray`).
        ray_address, workers: with backend="ray", the cluster to join (None starts a
            local Ray instance) and the number of worker actors.
        provider: with backend="openai-batch" (the provider's Batch API: half the price,
            results within 24 h), a :class:`ProviderBatchSettings`: requests and bytes per
            batch file, polling, extra prices for the cost estimate.
    """

    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    output: str | os.PathLike[str] | None = None
    resume: bool = False
    retry_failed: bool = False
    overwrite: bool = False
    ordered: bool = False
    stream: bool = False
    callbacks: Sequence[BaseCallbackHandler] | None = None
    config: RunnableConfig | None = None
    progress: Progress = True
    strategy: Strategy | str = "sliding"
    name: str | None = None
    reorder_buffer: int | None = None
    grace: float = 2.0
    backend: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    provider: ProviderBatchSettings | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(
                f"timeout must be > 0 seconds, got {self.timeout!r}; use None for none"
            )
        if self.retry_failed and not self.resume:
            raise ConfigError("retry_failed=True needs resume=True (it re-runs the failed records)")
        if self.grace < 0:
            raise ConfigError(f"grace must be >= 0 seconds, got {self.grace!r}")
        if self.reorder_buffer is not None and self.reorder_buffer < 1:
            raise ConfigError(f"reorder_buffer must be >= 1, got {self.reorder_buffer!r}")
        normalized = str(self.strategy).replace("_", "-").lower()
        if normalized not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.strategy!r}; use one of: {', '.join(STRATEGIES)}"
            )
        object.__setattr__(self, "strategy", normalized)
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend {self.backend!r}; use one of: {', '.join(map(repr, BACKENDS))}"
            )
        if self.workers is not None and (
            not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1
        ):
            raise ConfigError(f"workers must be an integer >= 1, got {self.workers!r}")
        if self.backend != "ray" and (self.ray_address is not None or self.workers is not None):
            raise ConfigError("ray_address and workers apply only with backend='ray'")
        if self.provider is not None and self.backend != "openai-batch":
            raise ConfigError("provider settings apply only with backend='openai-batch'")

    @property
    def output_path(self) -> Path | None:
        return Path(self.output) if self.output is not None else None

    @property
    def max_concurrency(self) -> int:
        return self.limits.max_concurrency

    def replace(self, **changes: Unpack[BatchKwargs]) -> BatchOptions:
        """A copy with ``changes`` (the keyword form: ``max_concurrency=``, ``retries=``, ...)."""
        if not changes:
            return self
        rest: dict[str, Any] = dict(changes)
        limits = {k: rest.pop(k) for k in _LIMIT_KEYS if k in rest}
        retry = {k: rest.pop(k) for k in _RETRY_KEYS if k in rest}
        if "retries" in retry:
            retries = retry.pop("retries")
            if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
                raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
            retry["attempts"] = retries + 1
        unknown = set(rest).difference(_OWN_KEYS)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(f"unknown batch option(s): {names}; see help(BatchOptions)")
        return dataclasses.replace(
            self,
            limits=dataclasses.replace(self.limits, **limits) if limits else self.limits,
            retry=dataclasses.replace(self.retry, **retry) if retry else self.retry,
            **rest,
        )

    def settings(self) -> dict[str, Any]:
        """What the header of a results file records about how the batch ran."""
        return {
            "strategy": self.strategy,
            "max_concurrency": self.limits.max_concurrency,
            "rpm": self.limits.rpm,
            "tpm": self.limits.tpm,
            "retries": self.retry.attempts - 1,
            "timeout": self.timeout,
            "stream": self.stream,
            "ordered": self.ordered,
        }


class BatchKwargs(TypedDict, total=False):
    """The keyword form of :class:`BatchOptions`, declared once for every entry point.

    ``run_batch(chain, inputs, max_concurrency=5)`` is
    ``run_batch(chain, inputs, options=BatchOptions(limits=Limits(max_concurrency=5)))``.
    """

    # Limits
    max_concurrency: int
    rpm: float | None
    tpm: float | None
    # RetryPolicy (``retries`` extra attempts: ``attempts = retries + 1``)
    retries: int
    backoff_base: float
    backoff_max: float
    max_retry_after: float
    # BatchOptions itself
    timeout: float | None
    output: str | os.PathLike[str] | None
    resume: bool
    retry_failed: bool
    overwrite: bool
    ordered: bool
    stream: bool
    callbacks: Sequence[BaseCallbackHandler] | None
    config: RunnableConfig | None
    progress: Progress
    strategy: Strategy | str
    name: str | None
    reorder_buffer: int | None
    grace: float
    backend: str
    ray_address: str | None
    workers: int | None
    provider: ProviderBatchSettings | None


_LIMIT_KEYS = frozenset(f.name for f in dataclasses.fields(Limits))
_RETRY_KEYS = frozenset({"retries", "backoff_base", "backoff_max", "max_retry_after"})
_OWN_KEYS = frozenset(f.name for f in dataclasses.fields(BatchOptions)) - {"limits", "retry"}


def resolve_options(options: BatchOptions | None, changes: BatchKwargs) -> BatchOptions:
    """``options`` (default: the defaults) with the keyword form's ``changes`` applied."""
    base = options if options is not None else BatchOptions()
    if not isinstance(base, BatchOptions):
        raise ConfigError(f"options must be a BatchOptions, got {type(base).__name__}")
    return base.replace(**changes)
