"""Making the ``openai-batch`` executor: the chain split, the client, the journal."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from chainkit.errors import MissingAPIKeyError
from chainkit.runners._batch_journal import Journal, journal_path, read_journal
from chainkit.runners._batch_requests import split_chain
from chainkit.runners._provider_batch import OpenAIBatches
from chainkit.runners._provider_executor import ProviderBatchExecutor, ProviderBatchSettings

__all__ = ["openai_batch_executor"]


def openai_batch_executor(
    chain: Any,
    *,
    name: str | None,
    output: Path | None,
    resume: bool,
    attempts: int,
    settings: ProviderBatchSettings | None = None,
) -> ProviderBatchExecutor:
    """The ``openai-batch`` executor for ``chain``; refuses, before any upload, a chain it
    cannot run (:class:`~chainkit.runners._batch_requests.UnbatchableChainError`) or a
    model without an API key (:class:`~chainkit.errors.MissingAPIKeyError`)."""
    step = split_chain(chain, name=name)
    key = step.model.openai_api_key
    secret = key.get_secret_value() if isinstance(key, SecretStr) else key
    if not secret:
        raise MissingAPIKeyError("openai", "OPENAI_API_KEY")
    # the model's own client settings (base URL, key, organization, headers); one
    # retry layer: ours (provider calls are tried again up to the patience)
    from chainkit.models._bind import stock_async_root

    client = stock_async_root(step.model).with_options(max_retries=0)
    if output is not None:
        path = journal_path(output)
    else:
        handle, name_ = tempfile.mkstemp(prefix="chainkit-batches-", suffix=".jsonl")
        os.close(handle)
        path = Path(name_)
    attached = read_journal(path) if resume and output is not None else []
    journal = Journal(path, fresh=not (resume and output is not None))
    return ProviderBatchExecutor(
        step,
        OpenAIBatches(client),
        journal,
        attached=attached,
        settings=settings or ProviderBatchSettings(),
        attempts=attempts,
        run_id=os.urandom(4).hex(),
    )
