"""chainkit._upstream: one mapping of a model call's failure, phrased by the CLI and the service.

The failures are real: the openai SDK and langchain-openai's ChatOpenAI talk to
the local model (answering 429 with Retry-After, or 500) or to a closed port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import openai
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from chainkit._upstream import parse_retry_after, upstream_failure
from chainkit.cli._app import EXIT_FAILED, describe_exception
from chainkit.models.local import LocalModelServer
from chainkit.server._errors import error_body
from chainkit.testing import local_model_server


@pytest.fixture(scope="module")
def limited() -> Iterator[LocalModelServer]:
    """Every request is answered 429 with ``Retry-After: 0.25``."""
    with local_model_server(error_rate=1.0, error_statuses=(429,), retry_after=0.25) as server:
        yield server


@pytest.fixture(scope="module")
def broken() -> Iterator[LocalModelServer]:
    with local_model_server(error_rate=1.0, error_statuses=(500,)) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _sdk_error(base_url: str) -> BaseException:
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=10) as client:
        try:
            client.chat.completions.create(
                model="local", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.OpenAIError as exc:
            return exc
    raise AssertionError("the call did not fail")


def _langchain_error(base_url: str) -> BaseException:
    model = ChatOpenAI(base_url=base_url, api_key=SecretStr("x"), max_retries=0, timeout=10)
    try:
        model.invoke("hi")
    except Exception as exc:  # noqa: BLE001 - whatever langchain-openai raises is the subject
        return exc
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("call", [_sdk_error, _langchain_error], ids=["openai", "langchain"])
def test_a_rate_limit_carries_status_and_retry_after(
    limited: LocalModelServer, call: object
) -> None:
    assert callable(call)
    exc = call(limited.base_url)
    failure = upstream_failure(exc)
    assert failure is not None
    assert (failure.kind, failure.status, failure.retry_after) == ("status", 429, 0.25)
    assert failure.upstream_type == "RateLimitError"
    assert failure.url == f"{limited.base_url}/chat/completions"

    line, code = describe_exception(exc)
    assert code == EXIT_FAILED
    assert line.startswith("the model server answered 429 (RateLimitError): ")
    assert line.endswith("; it asks to retry after 0.25 s")

    body = error_body(exc)
    assert (body.status, body.code, body.upstream_status) == (502, "upstream_error", 429)
    assert body.upstream_type == "RateLimitError"
    assert "--" not in body.message  # no CLI advice in the service's answer


@pytest.mark.parametrize("call", [_sdk_error, _langchain_error], ids=["openai", "langchain"])
def test_a_closed_port_is_unreachable_for_both_boundaries(call: object) -> None:
    assert callable(call)
    base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    exc = call(base_url)
    failure = upstream_failure(exc)
    assert failure is not None
    assert failure.kind == "unreachable"
    assert failure.url == f"{base_url}/chat/completions"

    line, _ = describe_exception(exc)
    assert line.startswith(f"cannot reach the model at {base_url}/chat/completions")
    assert "or use --model local" in line

    body = error_body(exc)
    assert (body.status, body.code) == (502, "upstream_unavailable")
    assert "--model" not in body.message


def test_a_server_error_names_the_status(broken: LocalModelServer) -> None:
    exc = _langchain_error(broken.base_url)
    failure = upstream_failure(exc)
    assert failure is not None
    assert (failure.kind, failure.status, failure.upstream_type) == (
        "status",
        500,
        "InternalServerError",
    )
    assert failure.retry_after is None
    assert describe_exception(exc)[0].startswith("the model server answered 500")
    assert error_body(exc).upstream_status == 500


def test_a_parser_failure_is_bad_output() -> None:
    exc = OutputParserException("Invalid json output: {nope\nsecond line")
    failure = upstream_failure(exc)
    assert failure is not None
    assert failure.kind == "bad_output"
    assert failure.detail == "Invalid json output: {nope"
    assert describe_exception(exc)[0] == (
        "the model's answer could not be parsed (OutputParserException): Invalid json output: {nope"
    )
    assert error_body(exc).code == "upstream_bad_output"


def test_other_exceptions_are_not_upstream_failures() -> None:
    assert upstream_failure(ValueError("x")) is None
    assert upstream_failure(KeyError("x")) is None


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5", "retry-after-ms": "20"}) == 0.02
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412480) == 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-4"}) is None
    assert parse_retry_after({"retry-after": "inf"}) is None
    assert parse_retry_after(None) is None
