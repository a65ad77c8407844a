"""chainkit.errors: the hierarchy, data-carrying exceptions, pickling, and secret redaction."""

from __future__ import annotations

import pickle

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
    assert str(exc) == "chain 'story' needs input variable 'topic' (got: subject)"
    assert (exc.chain, exc.missing, exc.given, exc.line) == ("story", ["topic"], ["subject"], None)
    at_line = MissingVariableError("story", ["topic", "a"], given=[], line=3)
    assert str(at_line) == "line 3: chain 'story' needs input variables 'a', 'topic' (got: none)"


# One instance of every exception chainkit exports, with its fields set.
SAMPLES: dict[str, errors.ChainkitError] = {
    "ChainkitError": errors.ChainkitError("something went wrong"),
    "UserError": errors.UserError("bad call"),
    "ChainkitRunError": errors.ChainkitRunError("failed at run time"),
    "ConfigError": errors.ConfigError("timeout must be > 0, got -1"),
    "MissingAPIKeyError": errors.MissingAPIKeyError("openai", "OPENAI_API_KEY"),
    "UnknownProviderError": errors.UnknownProviderError("opnai:gpt", ["local", "openai"]),
    "MissingPackageError": errors.MissingPackageError("anthropic:x", "langchain-anthropic"),
    "UnknownChainError": errors.UnknownChainError("stroy", ["story", "song"]),
    "MissingVariableError": errors.MissingVariableError("story", ["topic"], ["x"], line=2),
    "UnknownRunError": errors.UnknownRunError("sotry", ["story", "ChatOpenAI"]),
    "UnprotectedBindError": errors.UnprotectedBindError(
        "service", "192.0.2.1", token_env="CHAINKIT_API_TOKEN"
    ),
    "SpecError": errors.SpecError("chains/bad.toml", "not valid TOML"),
    "InputError": errors.InputError("line 4: not JSON"),
    "OutputExistsError": errors.OutputExistsError("facts.jsonl"),
    "ResumeMismatchError": errors.ResumeMismatchError("made by chain 'fact'"),
    "ChainNotPortableError": errors.ChainNotPortableError("a lambda does not pickle"),
    "ModelUnavailableError": errors.ModelUnavailableError("http://127.0.0.1:9/v1", "refused"),
    "LocalServerError": errors.LocalServerError("did not start"),
    "TraceError": errors.TraceError("trace.jsonl: line 3 is not JSON"),
    "TraceNotFoundError": errors.TraceNotFoundError("trace.jsonl", "does not exist"),
    "RecordedError": errors.RecordedError("recorded"),
    "ReplayExhaustedError": errors.ReplayExhaustedError("no recording left"),
}


def test_every_exported_exception_has_a_sample() -> None:
    exported = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), BaseException)
    }
    assert exported == set(SAMPLES)
    for name, exc in SAMPLES.items():
        assert type(exc) is getattr(errors, name)


def _round_trip(exc: BaseException) -> BaseException:
    back: BaseException = pickle.loads(pickle.dumps(exc))  # noqa: S301 - bytes made just above
    return back


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_exception_pickles_with_its_fields(name: str) -> None:
    exc = SAMPLES[name]
    back = _round_trip(exc)
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert back.args == exc.args
    assert vars(back) == vars(exc)


def test_a_recorded_error_of_any_name_pickles() -> None:
    exc = errors.RecordedError.named("SomeProviderError")("the provider said no")
    back = _round_trip(exc)
    assert type(back) is type(exc)
    assert type(back).__name__ == "SomeProviderError"
    assert isinstance(back, errors.RecordedError)
    assert str(back) == "the provider said no"
    odd = _round_trip(errors.RecordedError.named("not an identifier")("x"))
    assert isinstance(odd, errors.RecordedError)
    assert odd.error_type == "not an identifier"


def test_fields_survive_pickling_by_name() -> None:
    back = _round_trip(SAMPLES["UnknownChainError"])
    assert isinstance(back, errors.UnknownChainError)
    assert back.suggestions == ["story"]
    assert back.known == ["song", "story"]
    missing = _round_trip(SAMPLES["MissingVariableError"])
    assert isinstance(missing, errors.MissingVariableError)
    assert (missing.missing, missing.given, missing.line) == (["topic"], ["x"], 2)
    key = _round_trip(SAMPLES["MissingAPIKeyError"])
    assert isinstance(key, errors.MissingAPIKeyError)
    assert (key.provider, key.env_var) == ("openai", "OPENAI_API_KEY")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_messages_carry_no_interface_advice(name: str) -> None:
    text = str(SAMPLES[name])
    for advice in ("--model", "-i ", "chainkit chains", "GET /", "pip install"):
        assert advice not in text, (name, text)
    assert "\n" not in text


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


# The boundaries phrase the fix from the fields, each for its own user.
@pytest.mark.parametrize(
    ("name", "cli", "service"),
    [
        ("MissingVariableError", "; pass it, e.g. -i topic=...", '; add it to "input"'),
        ("UnknownChainError", "; `chainkit chains` lists them", "; GET /chains lists them"),
        (
            "MissingAPIKeyError",
            "; set OPENAI_API_KEY in the environment, or use --model local to run offline",
            "; set it in the service's environment",
        ),
        ("MissingPackageError", "; pip install langchain-anthropic", ""),
        ("UnknownRunError", "; `chainkit trace show FILE` lists the runs", ""),
    ],
)
def test_the_cli_and_the_service_each_phrase_the_fix(name: str, cli: str, service: str) -> None:
    from chainkit.cli._app import EXIT_USAGE, describe_exception
    from chainkit.server._errors import error_body

    exc = SAMPLES[name]
    line, code = describe_exception(exc)
    assert code == EXIT_USAGE
    assert line.endswith(cli)
    message = error_body(exc).message
    assert message.endswith(service)
    assert "-i " not in message
    assert "chainkit chains" not in message
    assert "--model" not in message


@pytest.mark.parametrize(
    ("server", "token_env", "fix"),
    [
        (
            "service",
            "CHAINKIT_API_TOKEN",
            "set CHAINKIT_API_TOKEN, bind 127.0.0.1, or pass --insecure",
        ),
        ("local model", None, "pass --api-key KEY (clients send it as their OPENAI_API_KEY), bind"),
    ],
)
def test_the_cli_says_how_to_serve_off_loopback(
    server: str, token_env: str | None, fix: str
) -> None:
    from chainkit.cli._app import EXIT_USAGE, describe_exception

    exc = errors.UnprotectedBindError(server, "192.0.2.1", token_env=token_env)
    assert str(exc) == (
        f"refusing to serve the {server} on '192.0.2.1' without an API key, as anyone who can "
        "reach it could use it"
    )
    line, code = describe_exception(exc)
    assert code == EXIT_USAGE
    assert fix in line


def test_the_cli_says_how_to_reach_an_unavailable_model() -> None:
    from chainkit.cli._app import EXIT_FAILED, describe_exception

    line, code = describe_exception(SAMPLES["ModelUnavailableError"])
    assert code == EXIT_FAILED
    assert line == (
        "cannot reach the model server at http://127.0.0.1:9/v1: refused; check that it is "
        "running and OPENAI_BASE_URL is right, or use --model local to run offline"
    )
