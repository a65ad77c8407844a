"""``StreamCapture``: every run, every chunk with its time, usage and errors, into a Trace."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from chainkit.callbacks._common import (
    DEFERRED_INPUT,
    clock,
    llm_result_output,
    llm_result_text,
    llm_result_usage,
    run_kind,
    run_name,
    token_text,
)
from chainkit.trace import DEFAULT_MAX_CHARS, Run, Trace, TraceSummary

__all__ = ["StreamCapture"]

RETRY_TAG = "retry:attempt:"


class StreamCapture(BaseCallbackHandler):
    """Record every run of a chain and every chunk its models stream, with times.

    Pass it in ``config={"callbacks": [capture]}`` to ``invoke``, ``ainvoke``,
    ``stream``, ``astream``, ``batch``, ``abatch`` or ``astream_events``; one
    handler may serve many concurrent calls. Each call's runs are told apart by
    ``run_id``: pass your own (``config={"run_id": uuid7()}``) and read
    ``capture[run_id]``.

    For each run it records start, end or error, parent, name, kind
    (chain/prompt/llm/chat_model/parser/tool/retriever/lambda), tags and
    metadata; for model runs every chunk as ``(time.perf_counter(), text)``,
    the usage, and derives time to first chunk, chunks per second, inter-chunk
    gap p50/p95 and latency (see :class:`chainkit.trace.Run`). Records go to
    :attr:`trace` (in memory, or a JSONL file when ``trace`` is a path).

    Models stream tokens to callbacks only when they stream: ``stream`` and
    ``astream`` always do; ``invoke`` does only if the model was built with
    ``streaming=True`` (or another attached handler asks for streaming, as
    astream_events and :class:`~chainkit.callbacks.EventCapture` do). A run that
    streamed nothing has no chunks, and its :attr:`~chainkit.trace.Run.text` is
    the final text.

    Retries: each new attempt of a ``with_retry`` runnable (LangChain tags its
    run ``retry:attempt:N``) and each ``on_retry`` (the legacy LLM retry
    decorator) is a retry record, counted on the retried run. Retries inside a
    provider SDK (openai's ``max_retries``) never reach callbacks; set
    ``max_retries=0`` and use ``with_retry`` (or chainkit's runner) to see them.

    An exception inside a run is recorded (type, message, the text streamed so
    far) and reaches the caller unchanged. A failure of the handler itself is
    logged by LangChain's callback manager and never breaks the chain, unless
    ``strict=True`` (LangChain's ``raise_error``), which tests use.

    The hooks are plain methods run inline (``run_inline = True``): LangChain's
    sync and async callback managers both call them directly on the caller's
    thread or event loop, with no thread hop and no task per event, so the
    handler costs a few microseconds per chunk on either path, also for a sync
    ``stream()`` inside a running event loop (Jupyter).
    """

    run_inline = True

    def __init__(
        self,
        trace: Trace | str | os.PathLike[str] | None = None,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.trace = trace if isinstance(trace, Trace) else Trace(trace, max_chars=max_chars)
        self.raise_error = strict
        self._kinds: dict[UUID, str] = {}

    # ---------------------------------------------------------------- reading

    @property
    def runs(self) -> list[Run]:
        """Every run seen, in start order."""
        return self.trace.runs

    @property
    def roots(self) -> list[Run]:
        """The top-level runs (one per call)."""
        return self.trace.roots

    def get(self, run_id: UUID | str) -> Run | None:
        """The run with this ``run_id`` (e.g. the one passed in the config), or None."""
        return self.trace.get(run_id)

    def __getitem__(self, run_id: UUID | str) -> Run:
        return self.trace[run_id]

    def summary(self) -> TraceSummary:
        return self.trace.summary()

    def _repr_html_(self) -> str:
        return self.trace._repr_html_()

    def __repr__(self) -> str:
        return f"<StreamCapture: {self.trace.summary()}>"

    # ------------------------------------------------------------------ hooks

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        *,
        name: str,
        kind: str,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        inputs: Any,
    ) -> None:
        self._kinds[run_id] = kind
        t = clock()
        self.trace.run_started(
            run_id,
            parent_run_id=parent_run_id,
            name=name,
            kind=kind,
            tags=tags,
            metadata=metadata,
            inputs=inputs,
            t=t,
        )
        if tags and parent_run_id is not None:
            for tag in tags:
                if tag.startswith(RETRY_TAG):
                    self._retry(parent_run_id, tag, t)

    def _retry(self, parent_run_id: UUID, tag: str, t: float) -> None:
        """``with_retry`` tags each new attempt's run ``retry:attempt:N``; record a retry."""
        parent = self.trace.get(parent_run_id)
        failed = [c for c in parent.children if c.error is not None] if parent else []
        attempt = tag.removeprefix(RETRY_TAG)
        self.trace.retry(
            parent_run_id,
            attempt=int(attempt) if attempt.isdigit() else None,
            error=failed[-1].error if failed else None,
            t=t,
        )

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_type: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            kind=run_kind(run_type, serialized),
            tags=tags,
            metadata=metadata,
            inputs=None if inputs == DEFERRED_INPUT else inputs,
        )

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, inputs: Any = None, **kwargs: Any
    ) -> None:
        run = self.trace.get(run_id)
        late_inputs = inputs if run is not None and run.inputs is None else None
        self.trace.run_ended(
            run_id,
            outputs=outputs,
            inputs=late_inputs,
            t=clock(),
        )

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.trace.run_failed(run_id, error, t=clock())

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        inputs = {"messages": messages[0] if len(messages) == 1 else messages}
        self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            kind="chat_model",
            tags=tags,
            metadata=metadata,
            inputs=inputs,
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            kind="llm",
            tags=tags,
            metadata=metadata,
            inputs={"prompts": prompts},
        )

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any
    ) -> None:
        t = clock()
        self.trace.chunk(run_id, t, token if token.__class__ is str else token_text(token, chunk))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        t = clock()
        kind = self._kinds.pop(run_id, "llm")
        self.trace.run_ended(
            run_id,
            outputs=llm_result_output(response, kind),
            usage=llm_result_usage(response),
            text=llm_result_text(response),
            t=t,
        )

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        response: LLMResult | None = None,
        **kwargs: Any,
    ) -> None:
        t = clock()
        self._kinds.pop(run_id, None)
        partial = llm_result_text(response) if response is not None else None
        self.trace.run_failed(run_id, error, partial_text=partial, t=t)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            kind="tool",
            tags=tags,
            metadata=metadata,
            inputs=inputs if inputs is not None else input_str,
        )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.trace.run_ended(run_id, outputs=output, t=clock())

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.trace.run_failed(run_id, error, t=clock())

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            kind="retriever",
            tags=tags,
            metadata=metadata,
            inputs={"query": query},
        )

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self.trace.run_ended(run_id, outputs=list(documents), t=clock())

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.trace.run_failed(run_id, error, t=clock())

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        # Fired by the legacy LLM retry decorator; `with_retry` is seen in `_start`.
        # Retries inside the provider's SDK (openai's max_retries) are invisible to
        # callbacks: set max_retries=0 and use with_retry to see them.
        outcome = getattr(retry_state, "outcome", None)
        error = outcome.exception() if outcome is not None and outcome.failed else None
        next_action = getattr(retry_state, "next_action", None)
        self.trace.retry(
            run_id,
            attempt=getattr(retry_state, "attempt_number", None),
            error=error,
            wait=getattr(next_action, "sleep", None),
            t=clock(),
        )

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.trace.custom_event(run_id, name, data, tags=tags, metadata=metadata, t=clock())
