"""Property-based: any spec file is a SpecError (one line naming the file) or a spec whose
chain builds, prompt formats and output model validates; any `-i` values are a dict or an
InputError, one line."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chainkit.chains import ChainSpec, load_spec
from chainkit.chains._registry import spec_chain
from chainkit.cli import main
from chainkit.cli.stream import parse_inputs
from chainkit.errors import InputError, SpecError
from tests.chains.conftest import fake_model

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)

TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from("{}:>.9\\\x00"), max_size=12)
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True) | st.sampled_from(
    ["model_config", "model_fields", "copy", "json", "schema", "validate", "dict"]
)
TEMPLATE = st.one_of(
    TEXT,
    st.builds(
        lambda a, spec, b: f"{a}{{topic{spec}}}{b}",
        TEXT,
        st.sampled_from(["", ":>8", ":>900000000", ":.2f", ":.5000", ":{w}", "!r", "[0]", ".x"]),
        TEXT,
    ),
)
FIELD = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["string", "integer", "number", "boolean", "array", "object"]),
        "items": st.sampled_from(["string", "integer"]),
        "enum": st.lists(TEXT, max_size=2),
        "required": st.booleans(),
        "description": TEXT,
    },
)
SPEC = st.fixed_dictionaries(
    {"template": TEMPLATE},
    optional={
        "system": TEMPLATE,
        "parser": st.sampled_from(["str", "json", "structured", "xml"]),
        "template_format": st.sampled_from(["f-string", "mustache", "jinja2"]),
        "defaults": st.dictionaries(NAME, TEXT | st.integers(), max_size=2),
        "output": st.fixed_dictionaries(
            {"fields": st.dictionaries(NAME, FIELD, max_size=3)}, optional={"name": NAME}
        ),
    },
)


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a TOML basic string reads JSON's escapes


@SETTINGS
@given(spec=SPEC)
@example(
    spec={
        "template": "Hi {topic}",
        "parser": "structured",
        "output": {"fields": {"model_config": {}}},
    }
)
@example(spec={"template": "{topic:>900000000}"})
def test_any_spec_file_loads_and_builds_or_is_refused_clearly(spec: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "made.toml"
        path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in spec.items()))
        try:
            loaded: ChainSpec | SpecError = load_spec(path)
        except SpecError as exc:
            loaded = exc
    if isinstance(loaded, SpecError):
        assert str(path) in str(loaded)
        assert "\n" not in str(loaded)
        return
    chain = spec_chain(loaded, model=fake_model())
    prompt = chain.first  # type: ignore[attr-defined]
    values = dict.fromkeys(loaded.inputs, "x")
    formatted = prompt.invoke(values).to_string()
    assert len(formatted) < 10_000  # no format spec asks for megabytes


@SETTINGS
@given(pairs=st.lists(st.text(st.characters(codec=None) | st.just("="), max_size=10), max_size=4))
@example(pairs=["topic=\udcff"]).via("argv bytes that are not UTF-8")
def test_any_input_options_are_a_dict_or_one_clear_error(pairs: list[str]) -> None:
    try:
        values: dict[str, str] | InputError = parse_inputs(pairs)
    except InputError as exc:
        values = exc
    if isinstance(values, InputError):
        assert "\n" not in str(values)
        return
    for name, value in values.items():
        assert name.isidentifier()
        value.encode("utf-8")  # every value is text a model client can send


@pytest.fixture
def _cli_logging() -> Iterator[None]:
    logger = logging.getLogger("chainkit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.mark.usefixtures("_cli_logging")
def test_a_value_that_is_not_utf8_is_refused_at_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "haiku", "-i", "topic=caf\udce9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainkit: error: -i topic: the value 'caf\\udce9' is not UTF-8 text")
    assert err.count("\n") == 1
