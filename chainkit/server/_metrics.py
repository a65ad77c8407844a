"""Prometheus metrics of one app, in a registry of its own (two apps never share counters).

==========================================  =========  ===========================
metric                                      type       labels
==========================================  =========  ===========================
chainkit_http_requests_total                counter    endpoint, chain, status
chainkit_http_request_duration_seconds      histogram  endpoint, chain
chainkit_tokens_total                       counter    chain, kind (input/output)
chainkit_streams_in_flight                  gauge      endpoint
chainkit_streams_total                      counter    endpoint, chain, outcome
chainkit_stream_ttft_seconds                histogram  chain
chainkit_errors_total                       counter    endpoint, type
==========================================  =========  ===========================

``endpoint`` is the route's template (``/chains/{name}/stream``), ``chain`` a
known chain's name (empty otherwise), so label values stay few.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The app's collectors, registered on :attr:`registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "chainkit_http_requests",
            "HTTP requests answered, by endpoint, chain and status.",
            ("endpoint", "chain", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "chainkit_http_request_duration_seconds",
            "Time from request to the end of the response (streams included).",
            ("endpoint", "chain"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "chainkit_tokens",
            "Tokens the model reported, by chain and kind (input, output).",
            ("chain", "kind"),
            registry=r,
        )
        self.streams_in_flight = Gauge(
            "chainkit_streams_in_flight",
            "SSE responses open now.",
            ("endpoint",),
            registry=r,
        )
        self.streams = Counter(
            "chainkit_streams",
            "SSE responses finished, by outcome (completed, error, disconnected).",
            ("endpoint", "chain", "outcome"),
            registry=r,
        )
        self.ttft = Histogram(
            "chainkit_stream_ttft_seconds",
            "Time from a stream request to its first chunk.",
            ("chain",),
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "chainkit_errors",
            "Errors answered (responses and SSE error events), by endpoint and error type.",
            ("endpoint", "type"),
            registry=r,
        )

    def add_tokens(self, chain: str, input_tokens: int, output_tokens: int) -> None:
        if input_tokens:
            self.tokens.labels(chain, "input").inc(input_tokens)
        if output_tokens:
            self.tokens.labels(chain, "output").inc(output_tokens)

    def render(self) -> bytes:
        """The Prometheus text exposition of every collector."""
        return generate_latest(self.registry)
