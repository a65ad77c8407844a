"""A callback handler attached to each attempt: rate budget per model call, usage after it.

The runner takes one request and an estimated number of tokens from the rate
buckets before each attempt (outside the attempt's timeout). This handler then
sees the model calls the chain really makes: the first call's estimate is
corrected with the exact prompt it sends; any further model call of the same
attempt (a chain with two models) takes its own share from the buckets before
it goes out; and when a call ends, its real usage replaces the estimate.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage, get_buffer_string
from langchain_core.outputs import LLMResult

from chainkit.runners._limits import RateLimits
from chainkit.trace import Usage, usage_of

__all__ = ["AttemptHandler"]

DEFAULT_COMPLETION_ESTIMATE = 256


class AttemptHandler(AsyncCallbackHandler):
    """Per-attempt bookkeeping of model calls: rate limits and token usage."""

    run_inline = True  # awaited in order, before the model's HTTP request goes out

    def __init__(
        self,
        limits: RateLimits,
        *,
        prepaid_tokens: float,
        completion_estimate: int | None,
        prepaid: bool = True,
    ) -> None:
        super().__init__()
        self.limits = limits
        self.prepaid_tokens = prepaid_tokens
        self.completion_estimate = completion_estimate or DEFAULT_COMPLETION_ESTIMATE
        self._prepaid_left = prepaid
        self._charged: dict[UUID, float] = {}
        self.calls = 0
        self.usage: Usage | None = None
        self.waited = 0.0

    def _estimate(self, prompt_chars: int, params: dict[str, Any] | None) -> float:
        completion = self.completion_estimate
        if params:
            for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
                value = params.get(key)
                if isinstance(value, int) and value > 0:
                    completion = value
                    break
        return prompt_chars / 4.0 + completion

    async def _start(self, run_id: UUID, prompt_chars: int, kwargs: dict[str, Any]) -> None:
        self.calls += 1
        estimate = self._estimate(prompt_chars, kwargs.get("invocation_params"))
        if self._prepaid_left:
            self._prepaid_left = False
            self.limits.adjust_tokens(estimate - self.prepaid_tokens)
        elif self.limits.active:
            self.waited += await self.limits.acquire(estimate)
        self._charged[run_id] = estimate

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        chars = sum(len(get_buffer_string(batch)) for batch in messages)
        await self._start(run_id, chars, kwargs)

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        await self._start(run_id, sum(len(p) for p in prompts), kwargs)

    async def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        usage = usage_of(response)
        charged = self._charged.pop(run_id, None)
        if usage is None:
            return
        self.usage = usage if self.usage is None else self.usage + usage
        if charged is not None and usage.total_tokens:
            self.limits.adjust_tokens(usage.total_tokens - charged)
