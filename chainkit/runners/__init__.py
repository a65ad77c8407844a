"""Run a chain over many inputs: concurrently, within limits, with nothing lost.

>>> from chainkit.runners import run_batch
>>> report = await run_batch(chain, "inputs.jsonl", output="out.jsonl", max_concurrency=8)
>>> options = BatchOptions(limits=Limits(max_concurrency=8, rpm=600), output="out.jsonl")
>>> report = await run_batch(chain, "inputs.jsonl", options=options)  # the same, as one value
>>> print(report)

- :func:`run_batch` (async), :func:`run_batch_sync` (sync, also inside Jupyter),
  :func:`iter_results` (an async iterator of records as they are written);
- every option is a field of :class:`BatchOptions` (limits in :class:`Limits`,
  retries in :class:`RetryPolicy`); every entry point takes ``options=`` or the
  same options as keywords (:class:`BatchKwargs`);
- every input yields exactly one :class:`ResultRecord` (output or error);
- rate limits (``rpm``, ``tpm``), one retry layer (transient errors only,
  backoff with full jitter, ``Retry-After`` honoured), per-attempt timeout;
- a resumable JSONL output (``resume=True``), a progress bar, a :class:`BatchReport`;
- ``backend="ray"``: the same batch on a Ray cluster (:func:`run_batch_ray`;
  ``pip install 'chainkit[ray]'``);
- ``backend="openai-batch"``: the same batch through the provider's Batch API
  (half the price, results within 24 h; :class:`ProviderBatchSettings`,
  :class:`ProviderBatchReport` with the estimated cost, a :class:`Price` table).
"""

from __future__ import annotations

from chainkit.runners._options import STRATEGIES, BatchKwargs, BatchOptions, Limits
from chainkit.runners._output import read_header, read_results
from chainkit.runners._prices import PRICES, Price
from chainkit.runners._progress import ProgressSink, Snapshot
from chainkit.runners._provider_batch import ProviderBatchSettings
from chainkit.runners._provider_report import ProviderBatchReport
from chainkit.runners._ray import RayBatchReport, run_batch_ray
from chainkit.runners._ray_pool import release_ray_workers
from chainkit.runners._ray_transport import ChainRecipe
from chainkit.runners._records import ResultRecord, ResultsHeader
from chainkit.runners._report import BatchReport
from chainkit.runners._retry import RetryPolicy, classify_error
from chainkit.runners._runner import ResultStream, iter_results, run_batch, run_batch_sync
from chainkit.trace import ErrorInfo, Usage

__all__ = [
    "PRICES",
    "STRATEGIES",
    "BatchKwargs",
    "BatchOptions",
    "BatchReport",
    "ChainRecipe",
    "ErrorInfo",
    "Limits",
    "Price",
    "ProgressSink",
    "ProviderBatchReport",
    "ProviderBatchSettings",
    "RayBatchReport",
    "ResultRecord",
    "ResultStream",
    "ResultsHeader",
    "RetryPolicy",
    "Snapshot",
    "Usage",
    "classify_error",
    "iter_results",
    "read_header",
    "read_results",
    "release_ray_workers",
    "run_batch",
    "run_batch_ray",
    "run_batch_sync",
]
