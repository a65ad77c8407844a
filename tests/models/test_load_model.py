"""Model specs: what load_model / load_llm build, and their one-line errors."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI, OpenAI

from chainkit.errors import (
    ConfigError,
    MissingAPIKeyError,
    MissingPackageError,
    UnknownProviderError,
    UserError,
)
from chainkit.models import DEFAULT_LOCAL_MODEL, load_llm, load_model, parse_spec
from tests.conftest import CANARY_KEY


def test_parse_spec_splits_provider_and_model() -> None:
    assert parse_spec("local") == ("local", "")
    assert parse_spec("local:tiny") == ("local", "tiny")
    assert parse_spec("OpenAI:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_spec("anthropic:claude-x") == ("anthropic", "claude-x")


def test_default_spec_follows_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINKIT_MODEL", "openai:gpt-4o-mini")
    assert parse_spec(None) == ("openai", "gpt-4o-mini")
    monkeypatch.delenv("CHAINKIT_MODEL")
    assert parse_spec(None) == ("local", "")


def test_local_spec_points_chatopenai_at_the_embedded_server() -> None:
    model = load_model("local", temperature=0)
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == DEFAULT_LOCAL_MODEL
    assert model.openai_api_base is not None
    assert model.openai_api_base.startswith("http://127.0.0.1:")
    assert load_model("local:tiny").model_name == "tiny"
    # the same server serves every local model
    assert load_model().openai_api_base == model.openai_api_base


def test_local_llm_is_the_completion_class() -> None:
    llm = load_llm("local", temperature=0, max_tokens=512)
    assert isinstance(llm, OpenAI)
    assert llm.max_tokens == 512


def test_openai_spec_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        load_model("openai:gpt-4o-mini")


def test_openai_spec_honours_base_url_and_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = load_model("openai:my-vllm-model")
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert CANARY_KEY not in repr(model)
    assert CANARY_KEY not in str(model.model_dump())


def test_openai_spec_without_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="names no model"):
        load_model("openai")


def test_unknown_provider_suggests_close_names() -> None:
    with pytest.raises(UnknownProviderError, match=r"'opnai'.*did you mean openai") as info:
        load_model("opnai:gpt-4o")
    assert isinstance(info.value, UserError)
    assert "\n" not in str(info.value)


def test_missing_integration_package_is_named() -> None:
    with pytest.raises(MissingPackageError, match="needs the package 'langchain-anthropic'"):
        load_model("anthropic:claude-3-5-haiku")


def test_load_llm_refuses_chat_only_providers() -> None:
    with pytest.raises(ConfigError, match="load_llm supports only"):
        load_llm("anthropic:claude")


def test_unreachable_server_error_is_one_line_at_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chainkit.cli import main

    # port 9 (discard) is closed on loopback: the connection is refused at once
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    code = main(["demo", "--model", "openai:gpt-4o-mini"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("chainkit: error: cannot reach the model")
    assert "127.0.0.1:9" in err
    assert len(err.strip().splitlines()) == 1
    assert CANARY_KEY not in err
