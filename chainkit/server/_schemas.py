"""Request and response bodies of every endpoint (they are the OpenAPI document's models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from chainkit._unicode import lone_surrogate_at
from chainkit.trace import Usage

__all__ = [
    "BatchError",
    "BatchMetadata",
    "BatchRequest",
    "BatchResponse",
    "ChainDescription",
    "ChainList",
    "ErrorBody",
    "ErrorResponse",
    "GenerationRequest",
    "GenerationResponse",
    "HealthResponse",
    "InvokeMetadata",
    "InvokeRequest",
    "InvokeResponse",
    "JsonTextRequest",
    "RunConfig",
    "RunMetadata",
    "StreamErrorEvent",
    "StreamEventsRequest",
    "StreamLogRequest",
    "StreamMetadataEvent",
    "StreamRequest",
    "Timings",
    "Usage",
]

_STRICT = ConfigDict(extra="forbid")


class JsonTextRequest(BaseModel):
    """A request body whose every string (and key) must be encodable text.

    JSON can spell half a UTF-16 pair (``"\\ud800"``); such a string fails far
    away (the model call, a log line) as a 500, so it is a 422 here, naming the
    field (``input.topic``).
    """

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        where = lone_surrogate_at(data)
        if where is not None:
            raise PydanticCustomError(
                "lone_surrogate",
                "{field} holds a lone surrogate (half of a UTF-16 pair), which is not text; "
                "send valid UTF-8 or a complete \\uXXXX\\uXXXX pair",
                {"field": where},
            )
        return data


# ---------------------------------------------------------------- the seed's endpoint


class GenerationRequest(JsonTextRequest):
    """The second seed's request: one prompt, sent as a user message to the model."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"prompt": "Tell me a joke."}]})

    prompt: str = Field(description="The text sent to the model as the user's message.")


class GenerationResponse(BaseModel):
    """The second seed's response: the model's text."""

    generated_text: str


# ---------------------------------------------------------------- chains


class RunConfig(BaseModel):
    """The part of a LangChain ``RunnableConfig`` a client may set (as LangServe allows it).

    Other keys a client sends along (``recursion_limit``, ``run_id``, ...) are
    dropped; ``callbacks`` are refused: they run in the client, never here."""

    model_config = ConfigDict(extra="ignore")

    tags: list[str] = Field(default_factory=list, description="Tags for the run (traces, events).")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Metadata for the run (traces, events)."
    )
    run_name: str | None = Field(default=None, description="The name of the run.")
    configurable: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for the chain's configurable fields (others are dropped).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_callbacks(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("callbacks") is not None:
            msg = "callbacks run in the client and cannot be sent to the server; remove them"
            raise ValueError(msg)
        return data


class InvokeRequest(JsonTextRequest):
    """LangServe's request: ``input``, ``config`` and ``kwargs`` (unused, as in LangServe)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"input": {"topic": "sparkling water"}, "config": {"tags": ["demo"]}}]
        },
    )

    input: dict[str, Any] = Field(description="The chain's input variables.")
    config: RunConfig = Field(default_factory=RunConfig)
    kwargs: Any = Field(default=None, description="Sent by RemoteRunnable clients; unused.")


class BatchError(BaseModel):
    type: str = Field(description="The exception's class, e.g. MissingVariableError.")
    message: str
    status: int | None = Field(default=None, description="The upstream HTTP status, if any.")


class RunMetadata(BaseModel):
    """LangServe's response metadata (``run_id``, ``feedback_tokens``) plus chainkit's extras."""

    run_id: str | None = Field(description="The root run's id (its traces, its events).")
    feedback_tokens: list[Any] = Field(
        default_factory=list, description="Always empty (LangSmith feedback is not served)."
    )
    usage: Usage | None = Field(default=None, description="Tokens the model(s) reported.")
    latency_ms: float | None = None
    attempts: int | None = Field(default=None, description="Attempts of a batch item.")
    error: BatchError | None = Field(
        default=None, description="Why a batch item failed (with `return_exceptions`)."
    )


class InvokeMetadata(RunMetadata):
    request_id: str


class InvokeResponse(BaseModel):
    """``output`` as LangServe writes it (messages as their fields with ``type``)."""

    output: Any = Field(description="The chain's output as JSON (text, object, message...).")
    metadata: InvokeMetadata


class BatchRequest(JsonTextRequest):
    """LangServe's batch request, plus chainkit's ``max_concurrency`` and
    ``return_exceptions``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": [{"topic": "the sea"}, {"topic": "the moon"}]}]},
    )

    inputs: list[dict[str, Any]] = Field(description="One input per item; results keep this order.")
    config: RunConfig | list[RunConfig] = Field(
        default_factory=RunConfig, description="One config for every input, or one per input."
    )
    kwargs: Any = Field(default=None, description="Sent by RemoteRunnable clients; unused.")
    max_concurrency: int = Field(
        default=4, ge=1, description="Items in flight at once (lowered to the server's cap)."
    )
    return_exceptions: bool = Field(
        default=False,
        description="Answer 200 with `null` outputs for failed items and their errors in "
        "`metadata.responses` (as LangChain's `return_exceptions`); else the first "
        "failure is the response's error.",
    )


class BatchMetadata(BaseModel):
    """LangServe's ``run_ids`` and ``responses``, plus chainkit's totals."""

    run_ids: list[str | None]
    responses: list[RunMetadata] = Field(description="One per input, in input order.")
    succeeded: int
    failed: int
    max_concurrency: int = Field(description="The concurrency used (after the server's cap).")
    usage: Usage
    latency_ms: float
    request_id: str


class BatchResponse(BaseModel):
    output: list[Any] = Field(description="One output per input, in input order.")
    metadata: BatchMetadata


class StreamRequest(InvokeRequest):
    pass


class StreamEventsRequest(InvokeRequest):
    """Filters (``include_*``/``exclude_*``): an event is kept when it matches an include
    filter (or none is given) and no exclude filter."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"input": {"topic": "goldfish"}, "include_types": ["chat_model"]}]
        },
    )

    include_names: list[str] | None = None
    include_types: list[str] | None = Field(
        default=None, description="Run types: chain, prompt, chat_model, llm, parser, tool, ..."
    )
    include_tags: list[str] | None = None
    exclude_names: list[str] | None = None
    exclude_types: list[str] | None = None
    exclude_tags: list[str] | None = None
    diff: bool | None = Field(default=None, description="Sent by LangChain.js clients; unused.")


class StreamLogRequest(StreamEventsRequest):
    """``astream_log`` filters; patches are always sent as diffs (as LangServe does)."""


class ChainDescription(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any] = Field(description="The input variables, as JSON Schema.")
    variables: list[str] = Field(description="The variables an input must give.")
    output: str = Field(description="Output kind: str, json, pydantic:<Model>, dict, ...")


class ChainList(BaseModel):
    chains: list[ChainDescription]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    uptime_s: float
    streams_in_flight: int


# ---------------------------------------------------------------- errors


class ErrorBody(BaseModel):
    code: str = Field(description="A stable machine-readable code, e.g. unknown_chain.")
    message: str = Field(description="One line: what happened and what to do.")
    type: str = Field(description="The error's class.")
    status: int
    request_id: str | None = None
    suggestions: list[str] | None = Field(default=None, description="Close chain names (404).")
    missing: list[str] | None = Field(default=None, description="Missing input variables (422).")
    upstream_type: str | None = Field(
        default=None, description="The model client's error class (502/504)."
    )
    upstream_status: int | None = Field(
        default=None, description="The model server's HTTP status (502)."
    )
    limit: int | None = Field(
        default=None, description="The limit that was exceeded (413/429/503)."
    )
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Validation problems (422): location, message, type."
    )


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorBody


# ---------------------------------------------------------------- SSE events


class Timings(BaseModel):
    ttft_ms: float | None = Field(description="Time to the first chunk, from the request.")
    total_ms: float
    chunks: int


class StreamMetadataEvent(BaseModel):
    """``event: metadata`` of ``/stream``: first the run's ids, then, before ``end``,
    usage and timings (RemoteRunnable clients skip metadata events)."""

    run_id: str
    request_id: str
    usage: Usage | None = None
    timings: Timings | None = None


class StreamErrorEvent(ErrorBody):
    """``event: error``: the run failed after the stream started (the error's fields, and
    ``status_code`` as LangServe's clients read it)."""

    status_code: int
