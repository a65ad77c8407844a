"""chainkit._compat: one test per private-API seam, named after it.

Each asserts the LangChain/openai behaviour the seam relies on, so an upgrade
that changes it fails here with the seam's name, not somewhere downstream.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import warnings
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any, TypeVar
from uuid import UUID

import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.output_parsers.transform import BaseTransformOutputParser
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.log_stream import RunLogPatch
from langchain_openai import ChatOpenAI, OpenAI
from pydantic import BaseModel, SecretStr

from chainkit import _compat
from chainkit._compat import (
    SEAMS,
    SeamError,
    StreamingCallbackHandler,
    chat_payload,
    chat_result_message,
    child_config,
    identifying_params,
    parser_diff,
    private_override,
    register_context_handler,
    sdk_parse,
    sdk_response_format,
    sdk_root,
    sdk_tools,
    uses_responses_api,
)
from chainkit.errors import MissingVariableError

T = TypeVar("T")
OFFLINE = "http://127.0.0.1:9/v1"  # never called: the tests only build clients


def _model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content="one two three")]))


def test_every_seam_is_documented_and_tested() -> None:
    doc = _compat.__doc__ or ""
    tests = {name for name in globals() if name.startswith("test_seam_")}
    for seam in SEAMS:
        assert f"``{seam}``" in doc, f"seam {seam!r} has no paragraph in chainkit/_compat.py"
        assert any(seam in test for test in tests), f"seam {seam!r} has no test_seam_* test"


class _Tapper(BaseCallbackHandler):
    """A handler implementing LangChain's output-tap protocol, recording what it sees."""

    def __init__(self) -> None:
        self.tapped: list[Any] = []
        self.children_of_run: list[bool] = []

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return self._atap(run_id, output)

    async def _atap(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        config = child_config()
        callbacks = config.get("callbacks") if config else None
        self.children_of_run.append(
            isinstance(callbacks, BaseCallbackManager) and callbacks.parent_run_id == run_id
        )
        async for chunk in output:
            self.tapped.append(chunk)
            yield chunk

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        for chunk in output:
            self.tapped.append(chunk)
            yield chunk


def test_seam_tap_langchain_taps_a_streaming_handler_inside_its_child_config() -> None:
    tapper = _Tapper()
    assert isinstance(tapper, StreamingCallbackHandler), "seam 'tap': protocol changed"
    chain = _model() | StrOutputParser()

    async def main() -> list[str]:
        return [c async for c in chain.astream("hi", {"callbacks": [tapper]})]

    chunks = asyncio.run(main())
    assert "".join(chunks) == "one two three"
    assert tapper.tapped, "seam 'tap': LangChain no longer calls tap_output_aiter"
    assert any(tapper.children_of_run), (
        "seam 'tap': the child config around a tap no longer carries the run's callbacks"
    )


def test_seam_parser_atransform_drives_astream() -> None:
    seen: list[str] = []

    class Recording(StrOutputParser):
        @private_override(BaseTransformOutputParser, "_atransform", "parser_atransform")
        async def _atransform(self, input: AsyncIterator[Any]) -> AsyncIterator[str]:  # noqa: A002
            async for chunk in input:
                seen.append("x")
                yield str(chunk.content)

    async def main() -> str:
        return "".join([c async for c in (_model() | Recording()).astream("hi")])

    assert asyncio.run(main()) == "one two three"
    assert seen, "seam 'parser_atransform': astream no longer goes through _atransform"


def test_seam_parser_diff_gives_json_patches() -> None:
    parser = JsonOutputParser(diff=True)
    assert parser_diff(parser, {"a": 1}, {"a": 1, "b": 2}) == [
        {"op": "add", "path": "/b", "value": 2}
    ], "seam 'parser_diff': JsonOutputParser._diff changed"


def test_seam_prompt_validate_input_sees_the_input_first() -> None:
    class Naming(ChatPromptTemplate):
        @private_override(BasePromptTemplate, "_validate_input", "prompt_validate_input")
        def _validate_input(self, inner_input: Any) -> dict[str, Any]:
            missing = [v for v in self.input_variables if v not in inner_input]
            if missing:
                raise MissingVariableError("t", missing, inner_input)
            validated: dict[str, Any] = super()._validate_input(inner_input)
            return validated

    prompt = Naming.from_messages([("human", "about {topic}")])
    with pytest.raises(MissingVariableError, match="'topic'"):
        prompt.invoke({"subject": "x"})  # seam 'prompt_validate_input'
    assert prompt.invoke({"topic": "x"}).to_messages()[0].content == "about x"


def test_seam_identifying_params_names_the_model() -> None:
    model = ChatOpenAI(api_key=SecretStr("x"), base_url=OFFLINE, model="gpt-4o-mini")
    params = identifying_params(model)
    assert params.get("model_name") == "gpt-4o-mini", f"seam 'identifying_params': {params}"
    assert identifying_params(RunnableLambda(lambda x: x)) == {}


def test_seam_sdk_root_finds_the_client_of_a_resource() -> None:
    llm = OpenAI(api_key=SecretStr("x"), base_url=OFFLINE)
    root = sdk_root(llm.async_client)
    assert isinstance(root, openai.AsyncOpenAI), "seam 'sdk_root': resource._client is gone"
    assert str(root.base_url).rstrip("/") == OFFLINE
    assert sdk_root(object()) is None


_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"name": "Ada", "age": 36}'},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
}


class _Person(BaseModel):
    name: str
    age: int


def test_seam_chat_payload_is_chatopenai_s_request() -> None:
    model = ChatOpenAI(api_key=SecretStr("x"), base_url=OFFLINE, model="gpt-4o-mini", seed=5)
    payload = chat_payload(model, [HumanMessage("hi")], ["END"], {"temperature": 0.5})
    assert payload["messages"] == [{"role": "user", "content": "hi"}], "seam 'chat_payload'"
    assert (payload["model"], payload["seed"], payload["stop"]) == ("gpt-4o-mini", 5, ["END"])
    assert payload["temperature"] == 0.5
    assert not uses_responses_api(model, payload)
    responses = ChatOpenAI(api_key=SecretStr("x"), model="gpt-4o-mini", use_responses_api=True)
    assert uses_responses_api(responses, payload)


def test_seam_chat_result_is_the_message_invoke_returns() -> None:
    model = ChatOpenAI(api_key=SecretStr("x"), base_url=OFFLINE, model="gpt-4o-mini")
    completion = openai.types.chat.ChatCompletion.model_validate(_REPLY)
    message = chat_result_message(model, completion)
    assert isinstance(message, AIMessage), "seam 'chat_result'"
    assert message.content == '{"name": "Ada", "age": 36}'
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] == 12
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["model_name"] == "gpt-4o-mini"
    assert message.id


def test_seam_sdk_parse_turns_a_class_into_a_json_schema_and_back() -> None:
    wire = sdk_response_format(_Person)
    assert wire["type"] == "json_schema", "seam 'sdk_parse'"
    assert wire["json_schema"]["name"] == "_Person"
    assert sdk_tools(openai.omit) is openai.omit
    loose = {"type": "function", "function": {"name": "f", "parameters": {}}}
    with pytest.raises(ValueError, match="not strict"):
        sdk_tools([loose])
    completion = openai.types.chat.ChatCompletion.model_validate(_REPLY)
    parsed = sdk_parse(completion, _Person, openai.omit)
    assert parsed.choices[0].message.parsed == _Person(name="Ada", age=36)


_HOOKED: ContextVar[BaseCallbackHandler | None] = ContextVar("_hooked", default=None)
register_context_handler(_HOOKED)


class _Counting(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self.starts += 1


def test_seam_configure_hook_attaches_the_handler_in_context() -> None:
    handler = _Counting()
    token = _HOOKED.set(handler)
    try:
        RunnableLambda(lambda x: x).invoke(1)
    finally:
        _HOOKED.reset(token)
    assert handler.starts == 1, "seam 'configure_hook': the registered variable was not used"
    RunnableLambda(lambda x: x).invoke(1)
    assert handler.starts == 1  # not attached outside the block


def test_a_lost_private_name_fails_at_import_naming_the_seam() -> None:
    with pytest.raises(SeamError, match=r"seam 'parser_atransform'.*_no_such_method"):
        private_override(BaseTransformOutputParser, "_no_such_method", "parser_atransform")


_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class _DictStream:
    def __init__(self) -> None:
        self._chunks = iter(
            [_chunk({"role": "assistant", "content": "hel"}), _chunk({"content": "lo"}, "stop")]
        )

    async def __aenter__(self) -> _DictStream:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def __aiter__(self) -> _DictStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


class _Raw:
    def __init__(self, parsed: Any) -> None:
        self._parsed = parsed
        self.headers = {"x-request-id": "req-1"}

    def parse(self) -> Any:
        return self._parsed


class _DictEndpoint:
    """What the lean path (chainkit/models/_lean.py) puts where the SDK resource was:
    ``create`` and ``with_raw_response.create`` answering plain dicts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.with_raw_response = SimpleNamespace(create=self._raw_create)

    def _answer(self, params: dict[str, Any]) -> Any:
        return _DictStream() if params.get("stream") else _ANSWER

    async def create(self, **params: Any) -> Any:
        self.calls.append(("create", params))
        return self._answer(params)

    async def _raw_create(self, **params: Any) -> Any:
        self.calls.append(("with_raw_response.create", params))
        return _Raw(self._answer(params))


def test_seam_lean_client_langchain_openai_calls_create_and_takes_dicts() -> None:
    endpoint = _DictEndpoint()
    model = ChatOpenAI(api_key=SecretStr("x"), base_url=OFFLINE, model="m")
    model = model.model_copy(update={"async_client": endpoint})

    async def main() -> tuple[Any, str]:
        answer = await model.ainvoke("hi")
        chunks = [c async for c in model.astream("hi")]
        return answer, "".join(str(c.content) for c in chunks)

    answer, streamed = asyncio.run(main())
    assert answer.content == "hello", "seam 'lean_client': a dict answer is not accepted"
    assert answer.usage_metadata["total_tokens"] == 2
    assert streamed == "hello", "seam 'lean_client': dict chunks are not accepted"
    assert [params.get("stream", False) for _, params in endpoint.calls] == [False, True], (
        "seam 'lean_client': ChatOpenAI no longer calls async_client's create(**payload)"
    )
    assert endpoint.calls[0][1]["messages"] == [{"role": "user", "content": "hi"}]


def test_seam_astream_log_gives_patches_without_a_deprecation_warning() -> None:
    chain = RunnableLambda(lambda text: text.upper()).with_config(run_name="shout")

    async def main() -> list[Any]:
        return [patch async for patch in _compat.astream_log(chain, "hi", {})]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a LangChainDeprecationWarning would raise here
        patches = asyncio.run(main())
    assert all(isinstance(p, RunLogPatch) for p in patches), "seam 'astream_log': not patches"
    log = functools.reduce(operator.add, patches)
    assert log.state["final_output"] == "HI", "seam 'astream_log': the run log lost its output"
