"""LangServe's wire format: outputs written as its serializer writes them; config filtered."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import ConfigurableField
from langserve.serialization import WellKnownLCSerializer
from pydantic import BaseModel

from chainkit.server._schemas import RunConfig
from chainkit.server._wire import dumps, run_config, strip_internal


class Answer(BaseModel):
    title: str
    score: float


def test_outputs_read_back_as_langserve_s_client_reads_them() -> None:
    client = WellKnownLCSerializer()
    message = AIMessage(content="hi", id="run-1", tool_calls=[])
    chunk = AIMessageChunk(content="h")
    assert client.loads(dumps(message)) == message
    assert client.loads(dumps([chunk, chunk])) == [chunk, chunk]
    assert client.loads(dumps(Answer(title="t", score=0.5))) == {"title": "t", "score": 0.5}
    assert client.loads(dumps("text")) == "text"
    # the same bytes as LangServe's own server writes
    for value in (message, chunk, Answer(title="t", score=1.0), {"a": [1, "b"]}):
        assert orjson.loads(dumps(value)) == orjson.loads(client.dumps(value))


def test_what_orjson_cannot_write_is_written_as_traces_write_it() -> None:
    run = uuid.UUID(int=7)
    written = orjson.loads(dumps({"big": 2**70, 1: run, "set": {3}}))
    assert written == {"big": 2**70, "1": str(run), "set": [3]}


def test_only_the_allowed_config_reaches_the_run() -> None:
    chain = PromptTemplate.from_template("{x}").configurable_fields(
        template=ConfigurableField(id="label", name="Label")
    )
    client = RunConfig.model_validate(
        {
            "tags": ["t"],
            "metadata": {"user": "ada", "request_id": "forged"},
            "run_name": "named",
            "configurable": {"label": "x", "undeclared": "y"},
            "recursion_limit": 3,
            "run_id": "client-chosen",
        }
    )
    config: dict[str, Any] = dict(run_config(chain, client, "req-1"))
    assert config["tags"] == ["t"]
    assert config["metadata"] == {"user": "ada", "request_id": "req-1"}
    assert config["run_name"] == "named"
    assert config["configurable"] == {"label": "x"}
    assert "recursion_limit" not in config
    assert isinstance(config["run_id"], uuid.UUID)
    assert str(config["run_id"]) != "client-chosen"


def test_internal_metadata_is_not_sent() -> None:
    assert strip_internal({"__useragent": "x", "user": "ada"}) == {"user": "ada"}
