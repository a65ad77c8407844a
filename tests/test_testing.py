"""Scripted replies (``chainkit.testing``): a test says exactly what the model answers next."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from chainkit.testing import Scripted, fail, local_model_server, reply_header, tool_call

HI: list[Any] = [{"role": "user", "content": "Write a poem about tea."}]


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"sunny in {city}"


def test_queued_replies_come_in_order_then_the_model_writes_again() -> None:
    with (
        local_model_server(replies=["First.", "Second, streamed."]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client,
    ):
        first = client.chat.completions.create(model="m", messages=HI, n=2)
        assert [c.message.content for c in first.choices] == ["First.", "First."]
        stream = client.chat.completions.create(model="m", messages=HI, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "Second, streamed."
        assert server.pending_replies() == 0
        written = client.chat.completions.create(model="m", messages=HI)
        assert written.choices[0].message.content not in ("First.", "Second, streamed.")
        assert "tea" in (written.choices[0].message.content or "").lower()


def test_tool_calls_and_errors_through_chat_openai() -> None:
    with local_model_server() as server:
        server.enqueue(tool_call("get_weather", city="Paris"), fail(429, "slow down"), "Done.")
        model = ChatOpenAI(base_url=server.base_url, api_key="x", model="m", max_retries=0)
        message = model.bind_tools([get_weather]).invoke("What's up?")
        assert [(c["name"], c["args"]) for c in message.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        with pytest.raises(openai.RateLimitError, match="slow down"):
            model.invoke("again")
        assert model.invoke("and now").content == "Done."


def test_stop_and_max_tokens_apply_to_scripted_text() -> None:
    with (
        local_model_server(replies=["one two three. END four", "a b c d e f"]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client,
    ):
        stopped = client.chat.completions.create(model="m", messages=HI, stop=["END"])
        assert stopped.choices[0].message.content == "one two three. "
        cut = client.completions.create(model="m", prompt="x", max_tokens=3)
        assert cut.choices[0].text == "a b c"
        assert cut.choices[0].finish_reason == "length"


def test_reply_with_a_function_of_the_request() -> None:
    def echo(body: dict[str, Any]) -> str | Scripted | None:
        text = body["messages"][-1]["content"]
        return None if text == "write" else f"you said {text}"

    with local_model_server() as server:
        server.reply_with(echo)
        model = ChatOpenAI(base_url=server.base_url, api_key="x", model="m", max_retries=0)
        assert model.invoke("ping").content == "you said ping"
        assert not str(model.invoke("write").content).startswith("you said")


def test_one_request_scripted_by_its_header() -> None:
    with local_model_server(replies=["from the queue"]) as server:
        scripted = ChatOpenAI(
            base_url=server.base_url,
            api_key="x",
            model="m",
            default_headers=reply_header(tool_call("create_customer", name="你好")),
        )
        message = scripted.invoke("make a customer")
        assert message.tool_calls[0]["args"] == {"name": "你好"}
        plain = ChatOpenAI(base_url=server.base_url, api_key="x", model="m")
        assert plain.invoke("hi").content == "from the queue"  # the header took none
        with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError, match="x-chainkit-reply header"):
                client.chat.completions.create(
                    model="m", messages=HI, extra_headers={"X-Chainkit-Reply": "{nope"}
                )
            with pytest.raises(openai.InternalServerError, match="scripted error 503"):
                client.with_options(max_retries=0).chat.completions.create(
                    model="m", messages=HI, extra_headers=reply_header(fail(503))
                )
