"""The embedded local model: an offline, OpenAI-compatible HTTP server.

It writes its own deterministic, prompt-aware text, so the real
``langchain_openai.ChatOpenAI`` / ``OpenAI`` classes and the plain ``openai``
SDK work against it unchanged. It does not import LangChain.

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions``
(streaming via SSE as OpenAI sends it, or not), ``POST /v1/responses`` (the
Responses API, JSON or SSE; ``GET``/``DELETE /v1/responses/{id}``),
``POST /v1/embeddings``, ``GET /v1/models``,
``GET /health``, ``GET /stats`` (``?log=1`` adds the request log, when the
server was started with ``request_log=True`` / ``--request-log``) and
``POST /stats/reset``. It runs on aiohttp's server (``create_app`` gives the
``aiohttp.web.Application``), which bounds header sizes and counts, closes
idle connections and handles pipelining and upgrades.

A non-loopback host needs ``api_key`` (checked as a bearer token) or an
explicit ``insecure=True``.

Start it:

- in this process, shared, on a free loopback port: :func:`ensure_server`
  (or :func:`use_local_model`, which also sets ``OPENAI_BASE_URL`` and
  ``OPENAI_API_KEY`` so unchanged OpenAI code runs on it);
- a server of your own, e.g. with faults: ``with LocalModelServer(settings) as s:``
  (or ``chainkit.testing.local_model_server(error_rate=0.2)``);
- standalone: ``chainkit local serve --port 8000`` or
  ``python -m chainkit.models.local --port 8000``.

Text is deterministic: at ``temperature=0`` the same (messages, model,
max_tokens) give the same text; at ``temperature > 0`` the text depends on
``seed`` (the request's, else the server's). ``n`` choices differ from each
other. Faults never change the text of a successful answer.

**Faults and realism** (:class:`LocalModelSettings`): ``ttft``, ``token_delay``
with ``jitter``, a per-request ``latency`` distribution, ``error_rate`` over
``error_statuses`` (a 429 carries ``Retry-After``), ``disconnect_rate``
(streams cut part-way, no ``[DONE]``) and ``hang_rate`` (no answer until the
client gives up). Each request's faults come from a hash of (``seed``, the
request body, how many times that body was seen), so reruns see the same
faults and a retry of a failed request can succeed. Error rate, hang rate and
disconnect rate are independent draws.

**Per-request overrides**: the ``X-Chainkit-Faults`` header overrides any
setting for one request, as ``key=value`` pairs or JSON::

    X-Chainkit-Faults: error_rate=1,error_statuses=429,retry_after=0.1
    X-Chainkit-Faults: {"hang_rate": 1}
    X-Chainkit-Faults: token_delay=0.01; ttft=0.2

(``ChatOpenAI(default_headers={...})`` or ``extra_headers=`` in the openai SDK.)
An invalid header value is a 400.
"""

from __future__ import annotations

from chainkit.models.local._app import create_app
from chainkit.models.local._background import (
    DUMMY_API_KEY,
    IDLE_TIMEOUT,
    LocalModelServer,
    ensure_server,
    serve_forever,
    shutdown_shared_server,
    use_local_model,
)
from chainkit.models.local._settings import FAULTS_HEADER, LatencyDistribution, LocalModelSettings

__all__ = [
    "DUMMY_API_KEY",
    "FAULTS_HEADER",
    "IDLE_TIMEOUT",
    "LatencyDistribution",
    "LocalModelServer",
    "LocalModelSettings",
    "create_app",
    "ensure_server",
    "serve_forever",
    "shutdown_shared_server",
    "use_local_model",
]
