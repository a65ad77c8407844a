"""The service's usage handler: LangChain's, called on the event loop."""

from __future__ import annotations

from langchain_core.callbacks import UsageMetadataCallbackHandler

__all__ = ["InlineUsageHandler"]


class InlineUsageHandler(UsageMetadataCallbackHandler):
    """``UsageMetadataCallbackHandler`` with ``run_inline``.

    LangChain calls a sync handler without ``run_inline`` through the thread pool
    for every callback event of an async run, each streamed chunk's
    ``on_llm_new_token`` included (about 28 thread hops per stream of ~16
    chunks). This one only sums usage under a lock at ``on_llm_end``, which is
    safe on the loop.
    """

    run_inline = True
