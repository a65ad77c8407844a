"""Request and response bodies of every endpoint (they are the OpenAPI document's models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from chainkit._unicode import lone_surrogate_at
from chainkit.trace import Usage

__all__ = [
    "BatchItem",
    "BatchRequest",
    "BatchResponse",
    "ChainDescription",
    "ChainList",
    "ErrorBody",
    "ErrorResponse",
    "GenerationRequest",
    "GenerationResponse",
    "HealthResponse",
    "InvokeRequest",
    "InvokeResponse",
    "JsonTextRequest",
    "RunConfig",
    "StreamChunkEvent",
    "StreamEndEvent",
    "StreamErrorEvent",
    "StreamEventsEndEvent",
    "StreamEventsRequest",
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
    """The part of a LangChain ``RunnableConfig`` a caller may set."""

    model_config = _STRICT

    tags: list[str] = Field(default_factory=list, description="Tags for the run (traces, events).")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Metadata for the run (traces, events)."
    )
    run_name: str | None = Field(default=None, description="The name of the run.")


class InvokeRequest(JsonTextRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"input": {"topic": "sparkling water"}, "config": {"tags": ["demo"]}}]
        },
    )

    input: dict[str, Any] = Field(description="The chain's input variables.")
    config: RunConfig = Field(default_factory=RunConfig)


class InvokeResponse(BaseModel):
    output: Any = Field(description="The chain's output as JSON (text, object, ...).")
    usage: Usage
    latency_ms: float


class BatchRequest(JsonTextRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": [{"topic": "the sea"}, {"topic": "the moon"}]}]},
    )

    inputs: list[dict[str, Any]] = Field(description="One input per item; results keep this order.")
    max_concurrency: int = Field(
        default=4, ge=1, description="Items in flight at once (lowered to the server's cap)."
    )
    config: RunConfig = Field(default_factory=RunConfig)


class BatchError(BaseModel):
    type: str = Field(description="The exception's class, e.g. MissingVariableError.")
    message: str
    status: int | None = Field(default=None, description="The upstream HTTP status, if any.")


class BatchItem(BaseModel):
    index: int
    output: Any = None
    error: BatchError | None = None
    attempts: int = 0
    latency_ms: float | None = None
    usage: Usage | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem] = Field(description="One per input, in input order.")
    succeeded: int
    failed: int
    max_concurrency: int = Field(description="The concurrency used (after the server's cap).")
    usage: Usage
    latency_ms: float


class StreamRequest(InvokeRequest):
    pass


class StreamEventsRequest(InvokeRequest):
    """``astream_events`` (v2) filters: an event is kept when it matches an include
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
    limit: int | None = Field(default=None, description="The limit that was exceeded (413/429).")
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


class StreamChunkEvent(BaseModel):
    """``event: chunk``: a piece of output as it arrives.

    ``text`` for text chains; ``data`` (the chunk as JSON) for other outputs."""

    index: int
    text: str | None = None
    data: Any = None


class StreamEndEvent(BaseModel):
    """``event: end``: the stream finished; the whole output, usage and timings."""

    output: Any
    usage: Usage
    timings: Timings
    request_id: str


class StreamErrorEvent(ErrorBody):
    """``event: error``: the run failed after the stream started (same fields as an error)."""


class StreamEventsEndEvent(BaseModel):
    """``event: end`` of ``/stream_events``: event count, usage and timings."""

    events: int
    usage: Usage
    timings: Timings
    request_id: str
