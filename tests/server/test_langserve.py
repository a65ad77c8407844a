"""LangServe's clients against a real service: ``langserve.RemoteRunnable`` 0.3 (Python)
and LangChain.js's ``RemoteRunnable`` (``@langchain/core`` 0.3, on Node).

Each call's result equals the same chain run in process on the same (deterministic)
local model: a text chain, a structured-output chain and a chain returning messages.
``tests/js/remote_runnable.mjs`` is the JavaScript side; ``npm ci`` installs
``tests/js``'s locked packages on the first run (a fresh clone needs the npm
registry once).
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.tracers.log_stream import RunLog, RunLogPatch
from langserve import RemoteRunnable
from pydantic import BaseModel

from chainkit.chains import get_chain, make_chain, register_chain, unregister_chain
from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, ServiceThread
from chainkit.testing import local_model_server
from tests.server.conftest import TOKEN, chat_model, running

REPLY = "langserve_reply"
CASES = [
    ("song", {"topic": "green tea"}),
    ("extract", {"text": "I love sunny days at the beach."}),
    (REPLY, {"text": "hello there"}),
]
IDS = ["text", "structured", "messages"]

Remote = Callable[[str], RemoteRunnable[Any, Any]]


def _reply(model: BaseChatModel) -> Runnable[Any, Any]:
    return make_chain("Reply to: {text}", model=model, parser=RunnablePassthrough(), name=REPLY)


@pytest.fixture(scope="module")
def reply_chain() -> Iterator[None]:
    """A chain whose output is the model's message itself."""
    register_chain(REPLY, _reply, description="The model's reply, as a message.")
    try:
        yield
    finally:
        unregister_chain(REPLY)


@pytest.fixture(scope="module")
def served(model_server: LocalModelServer, reply_chain: None) -> Iterator[ServiceThread]:
    with running(model_server) as svc:
        yield svc


@pytest.fixture
def remote(served: ServiceThread) -> Iterator[Remote]:
    """``RemoteRunnable`` for a chain of the service (sync calls; its clients closed after)."""
    made: list[RemoteRunnable[Any, Any]] = []

    def make(name: str) -> RemoteRunnable[Any, Any]:
        made.append(RemoteRunnable(f"{served.url}/chains/{name}/", timeout=60))
        return made[-1]

    yield make
    for runnable in made:
        runnable.sync_client.close()


@pytest.fixture
async def aremote(served: ServiceThread) -> AsyncIterator[Remote]:
    """``RemoteRunnable`` for async calls (both its clients closed on this test's loop)."""
    made: list[RemoteRunnable[Any, Any]] = []

    def make(name: str) -> RemoteRunnable[Any, Any]:
        made.append(RemoteRunnable(f"{served.url}/chains/{name}/", timeout=60))
        return made[-1]

    yield make
    for runnable in made:
        runnable.sync_client.close()
        await runnable.async_client.aclose()


class InProcess:
    """The same chains, run in this process on the same local model."""

    def __init__(self, server: LocalModelServer) -> None:
        self.server = server

    async def run(self, name: str, data: dict[str, Any], how: str = "invoke") -> Any:
        model = chat_model(self.server)
        chain = _reply(model) if name == REPLY else get_chain(name, model=model)
        try:
            if how == "invoke":
                return await chain.ainvoke(data)
            if how == "stream":
                return [chunk async for chunk in chain.astream(data)]
            return [event async for event in chain.astream_events(data, version="v2")]
        finally:
            await model.http_async_client.aclose()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def in_process(model_server: LocalModelServer) -> InProcess:
    return InProcess(model_server)


def same(value: Any) -> Any:
    """A value as it crosses the wire: a pydantic output as its fields, a message without
    what differs from run to run (its id, the model server's response id)."""
    if isinstance(value, BaseMessage):
        return (type(value).__name__, value.content, getattr(value, "tool_calls", None))
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [same(v) for v in value]
    return value


# ---------------------------------------------------------------- invoke, batch, stream


@pytest.mark.parametrize(("name", "data"), CASES, ids=IDS)
def test_sync_invoke_batch_and_stream_equal_in_process(
    name: str, data: dict[str, Any], remote: Remote, in_process: InProcess
) -> None:
    chain = remote(name)
    expected = asyncio.run(in_process.run(name, data))
    chunks = asyncio.run(in_process.run(name, data, "stream"))
    output = chain.invoke(data)
    outputs = chain.batch([data, data])
    streamed = list(chain.stream(data))
    assert same(output) == same(expected)
    assert same(outputs) == [same(expected)] * 2
    assert same(streamed) == same(chunks)
    if name == REPLY:
        assert isinstance(output, AIMessage)
        assert all(isinstance(c, AIMessageChunk) for c in streamed)
    elif name == "extract":
        assert isinstance(output, dict)  # a pydantic output arrives as its fields
        assert set(output) == {"title", "keywords", "sentiment"}
    else:
        assert isinstance(output, str)
        assert "".join(streamed) == output


@pytest.mark.parametrize(("name", "data"), CASES, ids=IDS)
async def test_async_invoke_batch_and_stream_equal_in_process(
    name: str, data: dict[str, Any], aremote: Remote, in_process: InProcess
) -> None:
    chain = aremote(name)
    expected = await in_process.run(name, data)
    chunks = await in_process.run(name, data, "stream")
    assert same(await chain.ainvoke(data)) == same(expected)
    assert same(await chain.abatch([data, data])) == [same(expected)] * 2
    assert same([c async for c in chain.astream(data)]) == same(chunks)


async def test_batch_with_one_config_per_input(aremote: Remote, in_process: InProcess) -> None:
    inputs = [{"topic": "tea"}, {"topic": "coffee"}, {"topic": "water"}]
    configs: list[Any] = [{"tags": ["a"]}, {"tags": ["b"]}, {"tags": ["a"]}]
    outputs = await aremote("haiku").abatch(inputs, config=configs)
    assert outputs == [await in_process.run("haiku", data) for data in inputs]


# ---------------------------------------------------------------- stream_log, stream_events


@pytest.mark.parametrize(("name", "data"), CASES, ids=IDS)
async def test_astream_log_builds_the_same_final_output(
    name: str, data: dict[str, Any], aremote: Remote, in_process: InProcess
) -> None:
    patches = [p async for p in aremote(name).astream_log(data)]
    assert all(isinstance(p, RunLogPatch) for p in patches)
    log = functools.reduce(operator.add, patches)
    assert isinstance(log, RunLog)
    expected = await in_process.run(name, data)
    assert same(log.state["final_output"]) == same(
        AIMessageChunk(content=expected.content) if name == REPLY else expected
    )
    assert log.state["logs"]  # the inner runs: prompt, model, parser
    assert "ChatOpenAI" in log.state["logs"]


async def test_astream_log_filters(aremote: Remote) -> None:
    patches = [p async for p in aremote("haiku").astream_log({"topic": "x"}, include_types=["llm"])]
    log = functools.reduce(operator.add, patches)
    assert isinstance(log, RunLog)
    assert set(log.state["logs"]) == {"ChatOpenAI"}
    patches = [p async for p in aremote("haiku").astream_log({"topic": "x"}, exclude_types=["llm"])]
    log = functools.reduce(operator.add, patches)
    assert isinstance(log, RunLog)
    assert "ChatOpenAI" not in log.state["logs"]
    assert log.state["logs"]


@pytest.mark.parametrize(("name", "data"), CASES, ids=IDS)
async def test_astream_events_v2_equal_in_process(
    name: str, data: dict[str, Any], aremote: Remote, in_process: InProcess
) -> None:
    events = [e async for e in aremote(name).astream_events(data, version="v2")]
    expected = await in_process.run(name, data, "events")
    assert [(e["event"], e["name"]) for e in events] == [(e["event"], e["name"]) for e in expected]
    assert same(events[-1]["data"]["output"]) == same(expected[-1]["data"]["output"])
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert streamed
    assert all(isinstance(c, AIMessageChunk) for c in streamed)
    for event in events:
        assert "request_id" in event["metadata"]
        assert not any(k.startswith("__") for k in event["metadata"])


async def test_config_is_filtered_as_langserve_does(aremote: Remote, served: ServiceThread) -> None:
    config: Any = {
        "tags": ["from-client"],
        "metadata": {"user": "ada"},
        "run_name": "named-run",
        "recursion_limit": 5,  # dropped
        "configurable": {"nothing": "declared"},  # the chain declares no configurable field
    }
    events = [e async for e in aremote("haiku").astream_events({"topic": "x"}, config)]
    root = events[0]
    assert (root["event"], root["name"]) == ("on_chain_start", "named-run")
    assert "from-client" in root["tags"]
    assert root["metadata"]["user"] == "ada"
    async with httpx.AsyncClient(base_url=served.url) as client:
        body = {"input": {"topic": "x"}, "config": {"callbacks": ["anything"]}}
        response = await client.post("/chains/haiku/invoke", json=body)
    assert response.status_code == 422
    assert "callbacks" in response.json()["error"]["message"]


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", ["song", "extract", REPLY])
def test_schemas_are_the_chains_own(
    name: str, served: ServiceThread, model_server: LocalModelServer
) -> None:
    model = chat_model(model_server)  # never called: a chain's schemas are read, not run
    chain = _reply(model) if name == REPLY else get_chain(name, model=model)
    with httpx.Client(base_url=f"{served.url}/chains/") as client:
        input_schema = client.get(f"{name}/input_schema").json()
        output_schema = client.get(f"{name}/output_schema").json()
        config_schema = client.get(f"{name}/config_schema").json()
        unknown = client.get("nope/input_schema")
    asyncio.run(model.http_async_client.aclose())  # type: ignore[union-attr]
    assert input_schema == chain.get_input_jsonschema()
    assert output_schema == chain.get_output_jsonschema()
    assert set(config_schema["properties"]) == {"tags", "metadata", "run_name"}
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_chain"
    assert input_schema["required"] == (["text"] if name != "song" else ["topic"])


# ---------------------------------------------------------------- errors and auth


def test_missing_variable_and_unknown_chain_are_http_errors(remote: Remote) -> None:
    chain = remote("song")
    for call in (
        lambda: chain.invoke({"topc": "x"}),
        lambda: chain.batch([{"topic": "x"}, {"topc": "x"}]),
    ):
        with pytest.raises(httpx.HTTPStatusError) as caught:
            call()
        error = caught.value.response.json()["error"]
        assert caught.value.response.status_code == 422
        assert (error["code"], error["missing"]) == ("missing_variable", ["topic"])
    with pytest.raises(httpx.HTTPStatusError) as caught:
        list(chain.stream({"topc": "x"}))
    assert caught.value.response.status_code == 422
    with pytest.raises(httpx.HTTPStatusError) as caught:
        remote("sonng").invoke({"topic": "x"})
    error = caught.value.response.json()["error"]
    assert caught.value.response.status_code == 404
    assert (error["code"], error["suggestions"]) == ("unknown_chain", ["song"])


@pytest.fixture(scope="module")
def failing() -> Iterator[ServiceThread]:
    """A service with a token, on a model that answers every request 500."""
    with (
        local_model_server(error_rate=1.0, error_statuses=(500,)) as server,
        running(server, ServerSettings(api_token=TOKEN, batch_retries=0)) as svc,
    ):
        yield svc


async def test_token_and_model_failures_through_the_client(failing: ServiceThread) -> None:
    url = f"{failing.url}/chains/song/"
    anonymous: RemoteRunnable[Any, Any] = RemoteRunnable(url)
    allowed: RemoteRunnable[Any, Any] = RemoteRunnable(
        url, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await anonymous.ainvoke({"topic": "x"})
        assert caught.value.response.status_code == 401
        assert caught.value.response.json()["error"]["code"] == "unauthorized"
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await allowed.ainvoke({"topic": "x"})
        assert caught.value.response.status_code == 502
        assert caught.value.response.json()["error"]["code"] == "upstream_error"
        # in a stream, the `error` event becomes the same HTTP error in the client
        with pytest.raises(httpx.HTTPStatusError) as caught:
            [c async for c in allowed.astream({"topic": "x"})]
        assert caught.value.response.status_code == 502
        assert "model" in caught.value.response.text
    finally:
        for client in (anonymous, allowed):
            client.sync_client.close()
            await client.async_client.aclose()


# ---------------------------------------------------------------- JavaScript

JS = Path(__file__).resolve().parents[1] / "js"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: install Node.js 20 or newer to run {JS.name}/")
    return path


@pytest.fixture(scope="session")
def node_packages() -> Path:
    """``tests/js/node_modules``, installed from the committed lock file when missing."""
    installed = JS / "node_modules" / "@langchain" / "core" / "package.json"
    if not installed.exists():
        subprocess.run(  # noqa: S603 - npm, on our own package.json
            [_tool("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS,
            check=True,
            timeout=600,
            capture_output=True,
        )
    version = json.loads(installed.read_text())["version"]
    assert version.startswith("0.3."), version
    return JS


@pytest.fixture(scope="module")
def guarded(model_server: LocalModelServer, reply_chain: None) -> Iterator[ServiceThread]:
    """The service with a token: the JS client sends it as a header."""
    with running(model_server, ServerSettings(api_token=TOKEN)) as svc:
        yield svc


def _run_js(service: ServiceThread, node_packages: Path) -> dict[str, Any]:
    result = subprocess.run(  # noqa: S603 - our own script
        [_tool("node"), "remote_runnable.mjs", service.url, TOKEN],
        cwd=node_packages,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_javascript_remote_runnable(
    guarded: ServiceThread, node_packages: Path, model_server: LocalModelServer
) -> None:
    got = _run_js(guarded, node_packages)
    in_process = InProcess(model_server)

    def run(name: str, data: dict[str, Any], how: str = "invoke") -> Any:
        return asyncio.run(in_process.run(name, data, how))

    song = {"topic": "green tea"}
    assert got["song"]["invoke"] == run("song", song)
    assert got["song"]["batch"] == [run("song", song), run("song", {"topic": "coffee"})]
    assert got["song"]["stream"] == run("song", song, "stream")

    extract = {"text": "I love sunny days at the beach."}
    expected = run("extract", extract).model_dump()
    assert got["extract"]["invoke"] == expected
    assert got["extract"]["batch"] == [expected]
    assert got["extract"]["stream"] == [c.model_dump() for c in run("extract", extract, "stream")]

    reply = {"text": "hello there"}
    message = run(REPLY, reply)
    assert got["reply"]["invoke"] == {
        "type": "ai",
        "class": "AIMessage",
        "content": message.content,
    }
    assert got["reply"]["batch"] == [got["reply"]["invoke"]]
    chunks = got["reply"]["stream"]
    assert {c["class"] for c in chunks} == {"AIMessageChunk"}
    assert "".join(c["content"] for c in chunks) == message.content

    missing, unknown = got["errors"]["missing"], got["errors"]["unknown"]
    assert missing.startswith("422 Error")
    assert '"missing_variable"' in missing
    assert unknown.startswith("404 Error")
    assert '"unknown_chain"' in unknown


def test_a_batch_item_over_its_time_is_504_or_its_error() -> None:
    """The runner's per-item timeout fails the batch as a 504, or is the item's error."""
    settings = ServerSettings(api_token=None, batch_item_timeout=0.2, batch_retries=0)
    with (
        local_model_server(token_delay=0.05) as server,
        running(server, settings) as svc,
        httpx.Client(base_url=svc.url, timeout=60) as client,
    ):
        body: dict[str, Any] = {"inputs": [{"topic": "a slow song"}]}
        failed = client.post("/chains/song/batch", json=body)
        kept = client.post("/chains/song/batch", json={**body, "return_exceptions": True})
    assert failed.status_code == 504
    assert failed.json()["error"]["code"] == "upstream_timeout"
    assert kept.status_code == 200
    assert kept.json()["output"] == [None]
    assert "Timeout" in kept.json()["metadata"]["responses"][0]["error"]["type"]


def test_batch_configs_must_be_one_or_one_per_input(served: ServiceThread) -> None:
    body = {"inputs": [{"topic": "a"}, {"topic": "b"}], "config": [{"tags": ["only one"]}]}
    with httpx.Client(base_url=served.url) as client:
        response = client.post("/chains/haiku/batch", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "1 configs for 2 inputs" in error["message"]
