"""The registry: built-ins by name, registering chains, unknown names, the public API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

import chainkit
import chainkit.chains
from chainkit.chains import (
    ChainInfo,
    get_chain,
    get_chain_info,
    list_chains,
    make_chain,
    register_chain,
    unregister_chain,
)
from chainkit.errors import UnknownChainError, UserError
from tests.chains.conftest import fake_model

BUILTINS = ["song", "story", "fact", "explain", "haiku", "summarize", "extract", "outline_story"]


def test_list_builtins() -> None:
    infos = list_chains()
    assert [i.name for i in infos][: len(BUILTINS)] == BUILTINS
    song = next(i for i in infos if i.name == "song")
    assert song == ChainInfo(
        name="song",
        description="A one-verse song about {topic}.",
        variables=("topic",),
        parser="str",
        source="builtin",
        template="Write me a 1 verse song about {topic}.",
    )
    assert song.to_dict()["variables"] == ["topic"]
    by_name = {i.name: i for i in infos}
    assert by_name["fact"].template == "Tell me a fact about number {n}"
    assert by_name["extract"].parser == "pydantic:Extraction"
    assert by_name["outline_story"].variables == ("topic",)
    assert all(i.description for i in infos)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownChainError) as info:
        get_chain("sogn")
    assert info.value.suggestions == ["song"]
    assert "did you mean song?" in str(info.value)
    with pytest.raises(UnknownChainError, match="did you mean summarize"):
        get_chain_info("sumarize")
    with pytest.raises(KeyError):  # UnknownChainError is a KeyError too
        get_chain("nothing-like-it")


def test_model_as_spec_string_or_object(sync_model: ChatOpenAI) -> None:
    by_object = get_chain("haiku", model=sync_model)
    assert by_object.bound.steps[1] is sync_model  # type: ignore[attr-defined]
    by_spec = get_chain("haiku", model="local:haiku-model")
    assert by_spec.bound.steps[1].model_name == "haiku-model"  # type: ignore[attr-defined]


def test_default_model_follows_chainkit_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINKIT_MODEL", "local:from-env")
    chain = get_chain("song")
    assert chain.bound.steps[1].model_name == "from-env"  # type: ignore[attr-defined]
    assert get_chain("outline_story").invoke  # multi-step chains take the default too


@pytest.fixture
def registered() -> Iterator[str]:
    def shout(model: Any = None) -> Runnable[Any, Any]:
        return make_chain("Shout {word} {times} times.", model=model, name="shout", times=3)

    register_chain("shout", shout, description="Shouts a word.", template="Shout {word}.")
    yield "shout"
    unregister_chain("shout")


def test_register_chain(registered: str) -> None:
    chain = get_chain(registered, model=fake_model())
    assert chain.invoke({"word": "hi"}) == "one two three four"
    info = get_chain_info(registered)
    assert info.source.startswith("python:tests.chains.test_registry.")
    assert info.variables == ("word",)
    assert info.defaults == {"times": 3}
    assert info.parser == "str"  # read from the chain's output schema
    assert registered in [i.name for i in list_chains()]


def test_register_name_rules(registered: str) -> None:
    def other(model: Any = None) -> Runnable[Any, Any]:
        return make_chain("x {y}", model=model)

    with pytest.raises(UserError, match="already registered"):
        register_chain(registered, other, description="x")
    with pytest.raises(UserError, match="built-in"):
        register_chain("song", other, description="x")
    with pytest.raises(UserError, match="not valid"):
        register_chain("Has Space", other, description="x")
    register_chain(registered, other, description="replaced", replace=True)
    assert get_chain_info(registered).description == "replaced"
    with pytest.raises(UnknownChainError):
        unregister_chain("never-registered")


def test_public_api() -> None:
    exported = chainkit.chains.__all__
    assert exported == sorted(exported)
    public = {
        name
        for name, value in vars(chainkit.chains).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("chainkit.chains")
    }
    assert public <= set(exported)
    assert chainkit.make_chain is make_chain
    assert chainkit.get_chain is get_chain
