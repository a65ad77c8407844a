"""Making the ``openai-batch`` executor: the chain split, the client, the journal."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from chainkit.errors import ConfigError, MissingAPIKeyError
from chainkit.runners._batch_journal import journal_path
from chainkit.runners._batch_requests import split_chain
from chainkit.runners._options import BatchOptions
from chainkit.runners._prepare import PreparedChain
from chainkit.runners._provider_batch import OpenAIBatches, ProviderBatchSettings
from chainkit.runners._provider_executor import ProviderBatchExecutor

__all__ = ["openai_batch_executor", "provider_batch_executor"]


def openai_batch_executor(
    chain: Any,
    *,
    name: str | None,
    output: Path | None,
    resume: bool,
    attempts: int,
    settings: ProviderBatchSettings | None = None,
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> ProviderBatchExecutor:
    """The ``openai-batch`` executor for ``chain``; refuses, before any upload, a chain it
    cannot run (:class:`~chainkit.runners._batch_requests.UnbatchableChainError`) or a
    model without an API key (:class:`~chainkit.errors.MissingAPIKeyError`)."""
    from chainkit.models._bind import stock_async_root

    step = split_chain(chain, name=name)
    key = step.model.openai_api_key
    secret = key.get_secret_value() if isinstance(key, SecretStr) else key
    if not secret:
        raise MissingAPIKeyError("openai", "OPENAI_API_KEY")
    # the model's own client settings (base URL, key, organization, headers); one
    # retry layer: ours (provider calls are tried again up to the patience)
    client = stock_async_root(step.model).with_options(max_retries=0)
    if output is not None:
        path = journal_path(output)
    else:  # no results file: nothing to resume, the journal is a temporary file
        handle, temp = tempfile.mkstemp(prefix="chainkit-batches-", suffix=".jsonl")
        os.close(handle)
        path = Path(temp)
    return ProviderBatchExecutor(
        step,
        OpenAIBatches(client),
        path,
        resume=resume and output is not None,
        settings=settings or ProviderBatchSettings(),
        attempts=attempts,
        run_id=os.urandom(4).hex(),
        on_close=on_close,
        temporary_journal=output is None,
    )


def provider_batch_executor(
    chain: Any, options: BatchOptions
) -> tuple[PreparedChain, ProviderBatchExecutor]:
    """The executor for ``backend="openai-batch"`` and the driver's look at the chain."""
    from chainkit.runners._prepare import prepare_chain
    from chainkit.runners._ray_transport import ChainRecipe

    unsupported = [
        label
        for label, used in (
            ("stream", options.stream),
            ("timeout", options.timeout is not None),
            ("rpm", options.limits.rpm is not None),
            ("tpm", options.limits.tpm is not None),
            ("strategy", options.strategy != "sliding"),
            ("callbacks", bool(options.callbacks or (options.config or {}).get("callbacks"))),
        )
        if used
    ]
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)} {'does' if len(unsupported) == 1 else 'do'} not apply "
            f"with backend='openai-batch' (the provider runs the requests); drop "
            f"{'it' if len(unsupported) == 1 else 'them'}, or use the local backend"
        )
    runnable, name = chain, options.name
    if isinstance(chain, ChainRecipe):  # built here: the requests are made in this process
        runnable, name = chain.build(), name or chain.name
    prepared = prepare_chain(runnable, name=name, pool_size=4)
    executor = openai_batch_executor(
        prepared.runnable,
        name=prepared.identity.name,
        output=options.output_path,
        resume=options.resume,
        attempts=options.retry.attempts,
        settings=options.provider,
        on_close=prepared.aclose,
    )
    return prepared, executor
