"""Chain spec files: valid ones build chains; invalid ones raise SpecError naming file and field."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from chainkit.chains import get_chain, get_chain_info, list_chains, load_spec, load_specs
from chainkit.errors import ConfigError, SpecError, UnknownChainError
from tests.chains.conftest import fake_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "chains"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_spec_builds_a_chain(chains_dir: Path) -> None:
    write(
        chains_dir,
        "toast",
        'description = "A toast."\n'
        'template = "Write a toast for {person} in a {tone} tone."\n'
        'system = "Keep it to {lines} lines."\n'
        '[defaults]\ntone = "warm"\nlines = 2\n',
    )
    spec = load_spec(chains_dir / "toast.toml")
    assert spec.name == "toast"  # from the file name
    assert spec.inputs == ["person"]
    chain = get_chain("toast", model=fake_model(), chains_dir=chains_dir)
    assert chain.get_name() == "toast"
    schema = chain.get_input_jsonschema()
    assert schema["required"] == ["person"]
    assert schema["properties"]["lines"]["default"] == 2
    assert chain.invoke({"person": "Ann"}) == "one two three four"
    prompt = chain.bound.first  # type: ignore[attr-defined]
    messages = prompt.invoke({"person": "Ann"}).to_messages()
    assert [m.content for m in messages] == [
        "Keep it to 2 lines.",
        "Write a toast for Ann in a warm tone.",
    ]
    info = get_chain_info("toast", chains_dir=chains_dir)
    assert info.source == str(chains_dir / "toast.toml")
    assert info.variables == ("person",)
    assert info.defaults == {"tone": "warm", "lines": 2}


def test_examples_load_and_run(sync_model: ChatOpenAI) -> None:
    infos = {i.name: i for i in list_chains(EXAMPLES) if i.source != "builtin"}
    assert set(infos) == {"limerick", "recipe"}
    assert infos["recipe"].parser == "structured:Recipe"
    limerick = get_chain("limerick", model=sync_model, chains_dir=EXAMPLES)
    assert limerick.invoke({"topic": "a cat"}).strip()
    recipe = get_chain("recipe", model=sync_model, chains_dir=EXAMPLES)
    result = recipe.invoke({"dish": "pancakes"})
    assert isinstance(result, BaseModel)
    assert type(result).__name__ == "Recipe"
    assert result.course in ("starter", "main", "dessert")  # type: ignore[attr-defined]
    assert isinstance(result.ingredients, list)  # type: ignore[attr-defined]


def test_spec_model_is_used_unless_overridden(chains_dir: Path) -> None:
    write(chains_dir, "hi", 'template = "Say hi to {name}."\nmodel = "local:tiny"\n')
    chain = get_chain("hi", chains_dir=chains_dir)
    assert chain.bound.steps[1].model_name == "tiny"  # type: ignore[attr-defined]
    chain = get_chain("hi", model="local:other", chains_dir=chains_dir)
    assert chain.bound.steps[1].model_name == "other"  # type: ignore[attr-defined]


def test_json_and_mustache_specs(chains_dir: Path) -> None:
    write(
        chains_dir,
        "facts",
        'template = "List facts about {{thing}} as JSON."\n'
        'template_format = "mustache"\nparser = "json"\n',
    )
    chain = get_chain("facts", model=fake_model('{"a": 1}'), chains_dir=chains_dir)
    assert chain.get_input_jsonschema()["required"] == ["thing"]
    assert chain.invoke({"thing": "owls"}) == {"a": 1}


def test_env_var_names_the_folder(chains_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(chains_dir, "hi", 'template = "Say hi to {name}."\n')
    with pytest.raises(UnknownChainError):
        get_chain("hi", model=fake_model())
    monkeypatch.setenv("CHAINKIT_CHAINS_DIR", str(chains_dir))
    assert get_chain("hi", model=fake_model()).invoke({"name": "x"})


def test_missing_folder_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        load_specs(tmp_path / "nope")
    monkeypatch.setenv("CHAINKIT_CHAINS_DIR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="CHAINKIT_CHAINS_DIR"):
        list_chains()


INVALID = [
    pytest.param(
        'template = "Hi {x}"\ntemplate_format = "jinja2"\n',
        "field 'template_format': jinja2 templates are refused because they can run code",
        id="jinja2",
    ),
    pytest.param(
        'template = "Hi {x}"\ncolour = "red"\n',
        "field 'colour': unknown field (allowed: name, description, template",
        id="extra",
    ),
    pytest.param('template = "Hi {x}"\nparser = 5\n', "field 'parser'", id="wrong-type"),
    pytest.param('template = "Hi {x}"\nparser = "xml"\n', "field 'parser'", id="bad-parser"),
    pytest.param(
        "template = 'Hi {x}'\n[defaults]\nx = [1]\n",
        "field 'defaults': 'x' must be a string, a number or a boolean, got list",
        id="bad-default",
    ),
    pytest.param('template = "Hi {x}\n', "not valid TOML", id="bad-toml"),
    pytest.param('description = "no template"\n', "field 'template': required", id="no-template"),
    pytest.param(
        'template = "Hi {x}"\n[defaults]\ny = "1"\n',
        "field 'defaults': 'y' is not a variable of the template (variables: x)",
        id="default-not-a-variable",
    ),
    pytest.param(
        'template = "Hi {x.__class__}"\n',
        "field 'template': not a valid f-string template",
        id="attr",
    ),
    pytest.param(
        'template = "Hi {x"\n', "field 'template': not a valid f-string template", id="brace"
    ),
    pytest.param(
        'template = "Hi {x}"\nparser = "structured"\n',
        "field 'parser': 'structured' needs an [output] table",
        id="no-output",
    ),
    pytest.param(
        'template = "Hi {x}"\n[output.fields]\na = { type = "string" }\n',
        "field 'output': an [output] table needs parser = 'structured'",
        id="output-without-structured",
    ),
    pytest.param(
        'template = "Hi {x}"\nparser = "structured"\n[output.fields]\n'
        'a = { type = "integer", enum = ["1"] }\n',
        "field 'output.fields.a': 'enum' is only for type = 'string'",
        id="enum-on-int",
    ),
    pytest.param(
        'template = "Hi {x}"\nparser = "structured"\n[output.fields]\n"bad name" = {}\n',
        "field 'output.fields'",
        id="bad-field-name",
    ),
    pytest.param(
        'name = "Bad Name"\ntemplate = "Hi {x}"\n',
        "field 'name': 'Bad Name' is not a valid chain name",
        id="bad-name",
    ),
    pytest.param(
        'template = "Hi {x}"\ndefualts = {}\n',
        "field 'defualts': unknown field (did you mean 'defaults'?",
        id="typo",
    ),
    pytest.param(
        'template = "Hi {x}"\nparser = "structured"\n[output.fields]\na = { kind = "string" }\n',
        "field 'output.fields.a.kind': unknown field (allowed: type, description, items",
        id="nested-extra",
    ),
    pytest.param(
        'template = "Hi {x}"\nmodel = "nosuch:model"\n', "unknown model provider", id="model"
    ),
    *(
        pytest.param(
            f'template = "Hi {{x}}"\nparser = "structured"\n[output.fields]\n{name} = {{}}\n',
            f"field 'output.fields': '{name}' is a name pydantic reserves",
            id=f"reserved-{name}",
        )
        for name in ("model_config", "model_fields", "model_anything", "copy", "json", "schema")
    ),
    pytest.param(
        'template = "Hi {x:>900000000}"\n',
        "field 'template': not a valid f-string template: {x:>900000000} asks for a width",
        id="huge-width",
    ),
    pytest.param(
        'template = "Hi"\nsystem = "{x:.5000f}"\n',
        "field 'system': not a valid f-string template: {x:.5000f} asks for a width or precision",
        id="huge-precision",
    ),
    pytest.param(
        'template = "Hi {x:>{w}}"\n',
        "Nested replacement fields are not allowed",
        id="nested-format",
    ),
]


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_invalid_spec(chains_dir: Path, text: str, problem: str) -> None:
    path = write(chains_dir, "broken", text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.path == str(path)
    assert problem in info.value.problem
    message = str(info.value)
    assert message.startswith(f"invalid chain spec {path}: ")
    assert "\n" not in message  # one line
    # a broken file anywhere in the folder is reported wherever the folder is read
    with pytest.raises(SpecError):
        get_chain("song", model=fake_model(), chains_dir=chains_dir)


def test_small_format_specs_are_kept(chains_dir: Path) -> None:
    path = write(chains_dir, "fmt", 'template = "[{x:>8}] [{y:.2f}] [{z:^100}]"\n')
    assert load_spec(path).inputs == ["x", "y", "z"]


def test_name_clash_with_builtin_is_an_error(chains_dir: Path) -> None:
    path = write(chains_dir, "mine", 'name = "song"\ntemplate = "Sing {x}"\n')
    with pytest.raises(SpecError, match="'song' is a built-in chain") as info:
        list_chains(chains_dir)
    assert info.value.path == str(path)


def test_duplicate_names_are_an_error(chains_dir: Path) -> None:
    write(chains_dir, "a", 'name = "same"\ntemplate = "A {x}"\n')
    write(chains_dir, "b", 'name = "same"\ntemplate = "B {x}"\n')
    with pytest.raises(SpecError, match="already defined by"):
        load_specs(chains_dir)


def test_not_utf8_and_too_big(chains_dir: Path) -> None:
    (chains_dir / "bin.toml").write_bytes(b"template = '\xff\xfe'\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(chains_dir / "bin.toml")
    big = write(chains_dir, "big", 'template = "' + "x" * 300_000 + '"\n')
    with pytest.raises(SpecError, match="at most"):
        load_spec(big)


def test_specs_are_data_never_code(chains_dir: Path) -> None:
    """A pickle named .toml is not unpickled; a spec cannot name Python code."""
    (chains_dir / "evil.toml").write_bytes(pickle.dumps({"template": "x"}))
    with pytest.raises(SpecError):
        load_specs(chains_dir)
    (chains_dir / "evil.toml").unlink()
    write(chains_dir, "imp", 'template = "Hi {x}"\nparser = "pydantic:os:system"\n')
    with pytest.raises(SpecError, match="field 'parser'"):
        load_specs(chains_dir)
