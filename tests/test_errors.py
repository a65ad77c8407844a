"""chainkit.errors: the hierarchy, one-line messages, and secret redaction."""

from __future__ import annotations

import pytest

from chainkit import errors
from chainkit.errors import (
    ChainkitError,
    ChainkitRunError,
    MissingVariableError,
    UnknownChainError,
    UserError,
    redact,
    register_secret,
)


def test_every_exception_descends_from_one_of_two_roots() -> None:
    classes = [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), BaseException)
    ]
    assert len(classes) > 10
    for cls in classes:
        assert issubclass(cls, ChainkitError)
        if cls not in (ChainkitError, UserError, ChainkitRunError):
            assert issubclass(cls, UserError) != issubclass(cls, ChainkitRunError), cls


def test_all_is_sorted_and_complete() -> None:
    assert errors.__all__ == sorted(errors.__all__)
    for name in errors.__all__:
        assert hasattr(errors, name)


def test_unknown_chain_names_close_matches() -> None:
    exc = UnknownChainError("stroy", ["story", "song", "fact"])
    assert exc.suggestions == ["story"]
    assert str(exc).startswith("unknown chain 'stroy'; did you mean story?")
    assert isinstance(exc, KeyError)  # LangChain-style callers catching KeyError still work


def test_missing_variable_names_the_variable_and_the_chain() -> None:
    exc = MissingVariableError("story", ["topic"], given=["subject"])
    assert str(exc) == (
        "chain 'story' needs input variable 'topic' (got: subject); pass it, e.g. -i topic=..."
    )


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("key sk-proj-abcdefghijklmnop1234 failed", "sk-proj-abcdefghijklmnop1234"),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ('{"api_key": "zzzzzzzzzzzzzz"}', "zzzzzzzzzzzzzz"),
        ("token=hunter2hunter2", "hunter2hunter2"),
    ],
)
def test_redact_masks_secrets(text: str, leak: str) -> None:
    assert leak not in redact(text)
    assert "***" in redact(text)


def test_registered_secrets_are_masked_in_error_messages() -> None:
    register_secret("plainlookingvalue42")
    exc = ChainkitRunError("server said plainlookingvalue42 is invalid")
    assert "plainlookingvalue42" not in str(exc)
