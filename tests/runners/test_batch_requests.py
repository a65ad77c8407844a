"""From a chain to batch request bodies and back: ChatOpenAI's own bodies, invoke's own outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputToolsParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from chainkit.chains import get_chain
from chainkit.models.local import LocalModelServer
from chainkit.runners._batch_requests import UnbatchableChainError, split_chain

PROMPT = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "About {topic}?")])


class Person(BaseModel):
    name: str
    age: int


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def batch_chains(model: ChatOpenAI) -> dict[str, Runnable[Any, Any]]:
    """A plain, a structured-output and two tool-calling chains on ``model``."""
    return {
        "plain": PROMPT | model | StrOutputParser(),
        "structured": PROMPT | model.with_structured_output(Person, method="function_calling"),
        "json_schema": PROMPT | model.with_structured_output(Person),
        "tools": PROMPT | model.bind_tools([add], tool_choice="add") | JsonOutputToolsParser(),
        "tool_message": PROMPT | model.bind_tools([add]),
    }


class Capture:
    """The JSON bodies ChatOpenAI's HTTP client sends."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.bodies.append(json.loads(request.content))


@pytest.fixture
def captured(calm: LocalModelServer) -> Iterator[tuple[ChatOpenAI, Capture]]:
    capture = Capture()
    with httpx.Client(event_hooks={"request": [capture]}) as http:
        model = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=calm.base_url,
            api_key="chainkit-local",  # type: ignore[arg-type]
            http_client=http,
            temperature=0.3,
            seed=7,
            max_tokens=40,
            stop=["~~"],
            max_retries=0,
        )
        yield model, capture


def _blank_ids(value: Any) -> Any:
    if isinstance(value, AIMessage):
        value = value.model_copy(deep=True)
        value.id = None
        value.response_metadata.pop("id", None)
    return value


@pytest.mark.parametrize("name", ["plain", "structured", "json_schema", "tools", "tool_message"])
def test_body_is_chatopenai_s_and_output_is_invoke_s(
    captured: tuple[ChatOpenAI, Capture], calm: LocalModelServer, name: str
) -> None:
    model, capture = captured
    chain = batch_chains(model)[name]
    value = {"topic": "the tides of the Bay of Fundy"}
    expected = chain.invoke(value)
    sent = dict(capture.bodies[-1])
    sent.pop("stream", None)
    step = split_chain(chain, name=name)
    body = step.request_body(value)
    assert body == sent  # the exact body ChatOpenAI sent (a batch is never streamed)
    assert body["seed"] == 7
    assert body["stop"] == ["~~"]
    reply = httpx.post(f"{calm.base_url}/chat/completions", json=body).json()
    output = step.output(reply)
    assert _blank_ids(output) == _blank_ids(expected)
    assert type(output) is type(expected)


def test_builtin_chains_split_and_refuse(calm: LocalModelServer) -> None:
    model = ChatOpenAI(model="chainkit-local", base_url=calm.base_url, api_key="x")  # type: ignore[arg-type]
    step = split_chain(get_chain("extract", model=model), name="extract")
    assert step.step_name == "ChatOpenAI"
    assert step.request_body({"text": "I love the sea."})["tool_choice"]["type"] == "function"
    with pytest.raises(UnbatchableChainError, match="outline") as info:
        split_chain(get_chain("outline_story", model=model), name="outline_story")
    assert info.value.chain == "outline_story"
    assert info.value.step is not None
    assert "outline" in info.value.step


def test_refusals_name_the_step() -> None:
    fake = FakeListChatModel(responses=["x"])
    with pytest.raises(UnbatchableChainError, match="not an OpenAI-compatible") as info:
        split_chain(PROMPT | fake | StrOutputParser(), name="mine")
    assert info.value.step == "FakeListChatModel"
    model = ChatOpenAI(model="gpt-4o-mini", api_key="x")  # type: ignore[arg-type]
    twice = PROMPT | model | StrOutputParser() | RunnableLambda(lambda s: {"topic": s}) | PROMPT
    with pytest.raises(UnbatchableChainError, match="2 times"):
        split_chain(twice | model.with_config(run_name="second"), name="twice")
    with pytest.raises(UnbatchableChainError, match="calls no model"):
        split_chain(PROMPT | RunnableLambda(str), name="nomodel")
    responses = ChatOpenAI(model="gpt-4o-mini", api_key="x", use_responses_api=True)  # type: ignore[arg-type]
    with pytest.raises(UnbatchableChainError, match="Responses API"):
        split_chain(PROMPT | responses, name="resp")
