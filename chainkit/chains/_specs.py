"""Chain spec files: a chain described in TOML, validated, never executed.

A spec file is data only. It is parsed with :mod:`tomllib` and validated with
pydantic (unknown fields are errors); it is never unpickled, never passed to
LangChain's ``load``, and it cannot name Python code to import. Its template is
an f-string (``{topic}``) or a mustache template (``{{topic}}``; LangChain's
mustache renderer only substitutes values and walks sections, it runs no
code). jinja2 is refused: a jinja2 template can run code.

Example (``examples/chains/limerick.toml``)::

    name = "limerick"
    description = "A limerick about {topic}."
    template = "Write a limerick about {topic} in a {mood} mood."
    system = "You are a witty poet."
    model = "local"                # optional: default $CHAINKIT_MODEL or local
    parser = "str"                 # "str", "json" or "structured" (with [output])

    [defaults]                     # optional values for some variables
    mood = "cheerful"

``name`` defaults to the file's stem. A spec cannot take the name of a
built-in or registered chain, nor one another's: that is a :class:`SpecError`,
not an override. Every ``*.toml`` file of the folder must be valid; a broken one
is reported wherever the folder is read (listing, ``get_chain``, the CLI).

A structured chain describes its output as a small JSON-Schema-like table,
turned into a pydantic model (``pydantic.create_model``)::

    parser = "structured"

    [output]
    name = "Recipe"
    description = "A recipe."

    [output.fields]
    dish = { type = "string", description = "The dish" }
    minutes = { type = "integer" }
    steps = { type = "array", items = "string" }
    course = { type = "string", enum = ["starter", "main", "dessert"] }
    note = { type = "string", required = false }
"""

from __future__ import annotations

import os
import re
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.prompts.string import get_template_variables
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from chainkit.errors import ConfigError, SpecError, close_matches

__all__ = [
    "CHAINS_DIR_ENV",
    "ChainSpec",
    "FieldSpec",
    "OutputSpec",
    "load_spec",
    "load_specs",
    "output_model",
    "resolve_chains_dir",
]

CHAINS_DIR_ENV = "CHAINKIT_CHAINS_DIR"
MAX_SPEC_BYTES = 256 * 1024
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
_JINJA2_REFUSED = (
    "jinja2 templates are refused because they can run code; "
    "use 'f-string' ({topic}) or 'mustache' ({{topic}})"
)
_SCALARS: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
MAX_FORMAT_NUMBER = 100
"""The largest width or precision a template's format spec may ask for (``{x:>20}``)."""
_PYDANTIC_NAMES = frozenset(name for name in dir(BaseModel) if not name.startswith("_"))
_OLD_PYDANTIC_NAMES = sorted(n for n in _PYDANTIC_NAMES if not n.startswith("model_"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """One field of a structured output."""

    type: Literal["string", "integer", "number", "boolean", "array"] = "string"
    description: str | None = None
    items: Literal["string", "integer", "number", "boolean"] | None = None
    enum: Annotated[list[str], Field(min_length=1)] | None = None
    required: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.items is not None and self.type != "array":
            raise ValueError("'items' is only for type = 'array'")
        if self.enum is not None and self.type != "string":
            raise ValueError("'enum' is only for type = 'string'")
        return self


class OutputSpec(_Strict):
    """The structured output of a chain: a pydantic model made from this table."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")] = "Output"
    description: str | None = None
    fields: Annotated[dict[str, FieldSpec], Field(min_length=1)]

    @field_validator("fields")
    @classmethod
    def _field_names(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for key in fields:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", key):
                raise ValueError(f"{key!r} is not a valid field name (letters, digits, _)")
            if key.startswith("model_") or key in _PYDANTIC_NAMES:
                raise ValueError(
                    f"{key!r} is a name pydantic reserves for its models (model_* and "
                    f"{', '.join(_OLD_PYDANTIC_NAMES)}); rename the field"
                )
        return fields


class ChainSpec(_Strict):
    """A chain spec file, validated. ``name`` defaults to the file's stem."""

    name: str
    description: str = ""
    template: Annotated[str, Field(min_length=1)]
    system: str | None = None
    model: str | None = None
    parser: Literal["str", "json", "structured"] = "str"
    template_format: Literal["f-string", "mustache"] = "f-string"
    defaults: dict[str, str | int | float | bool] = Field(default_factory=dict)
    output: OutputSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a valid chain name: use lowercase letters, digits, '-' "
                f"and '_', starting with a letter (at most 64 characters)"
            )
        return value

    @field_validator("template_format", mode="before")
    @classmethod
    def _no_jinja2(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("jinja2", "jinja"):
            raise ValueError(_JINJA2_REFUSED)
        return value

    @field_validator("defaults", mode="before")
    @classmethod
    def _scalar_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, (str, int, float, bool)):
                    raise ValueError(  # noqa: TRY004 - pydantic reports ValueError, not TypeError
                        f"{key!r} must be a string, a number or a boolean, "
                        f"got {type(item).__name__}"
                    )
        return value

    @field_validator("model")
    @classmethod
    def _model_spec(cls, value: str | None) -> str | None:
        if value is not None:
            from chainkit.models import parse_spec

            try:
                parse_spec(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ChainSpec:
        variables = self.variables_in_templates()
        unknown = sorted(set(self.defaults) - set(variables))
        if unknown:
            raise ValueError(
                f"field 'defaults': {', '.join(map(repr, unknown))} "
                f"{'is' if len(unknown) == 1 else 'are'} not a variable of the template "
                f"(variables: {', '.join(variables) or 'none'})"
            )
        if self.parser == "structured" and self.output is None:
            raise ValueError(
                "field 'parser': 'structured' needs an [output] table describing the fields"
            )
        if self.output is not None and self.parser != "structured":
            raise ValueError(
                f"field 'output': an [output] table needs parser = 'structured', "
                f"not {self.parser!r}"
            )
        return self

    def variables_in_templates(self) -> list[str]:
        """Every variable of the template and the system message, sorted."""
        found: set[str] = set()
        for text, where in ((self.template, "template"), (self.system, "system")):
            if text is None:
                continue
            try:
                found.update(get_template_variables(text, self.template_format))
                if self.template_format == "f-string":
                    _check_format_specs(text)
            except (ValueError, KeyError, IndexError) as exc:
                raise ValueError(
                    f"field {where!r}: not a valid {self.template_format} template: {exc}"
                ) from None
        return sorted(found)

    @property
    def inputs(self) -> list[str]:
        """The variables a caller must give (those without defaults)."""
        return [v for v in self.variables_in_templates() if v not in self.defaults]


def _check_format_specs(template: str) -> None:
    """Refuse format specs that could cost unbounded memory per call (``{x:>900000000}``):
    a width or precision over :data:`MAX_FORMAT_NUMBER` (LangChain refuses one taken
    from a variable, ``{x:>{w}}``)."""
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is None or not spec:
            continue
        too_big = [int(n) for n in re.findall(r"\d+", spec) if int(n) > MAX_FORMAT_NUMBER]
        if too_big:
            raise ValueError(
                f"{{{name}:{spec}}} asks for a width or precision of {too_big[0]}; "
                f"at most {MAX_FORMAT_NUMBER} is allowed"
            )


def output_model(spec: OutputSpec) -> type[BaseModel]:
    """The pydantic model an ``[output]`` table describes."""
    fields: dict[str, Any] = {}
    for key, field in spec.fields.items():
        annotation: Any
        if field.enum is not None:
            annotation = Literal[tuple(field.enum)]
        elif field.type == "array":
            item_type = _SCALARS[field.items] if field.items else str
            annotation = list[item_type]  # type: ignore[valid-type]
        else:
            annotation = _SCALARS[field.type]
        if field.required:
            fields[key] = (annotation, Field(description=field.description))
        else:
            fields[key] = (annotation | None, Field(default=None, description=field.description))
    model: type[BaseModel] = create_model(spec.name, __doc__=spec.description, **fields)
    return model


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """The field names allowed where an unknown field ``loc`` was found."""
    model: type[BaseModel] = ChainSpec
    if len(loc) == 2 and loc[0] == "output":
        model = OutputSpec
    elif len(loc) == 4 and loc[:2] == ("output", "fields"):
        model = FieldSpec
    return list(model.model_fields)


def _describe(error: Any) -> str:
    """One clause for one pydantic error: ``field X: what is wrong``."""
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "extra_forbidden":
        allowed = _allowed_fields(error["loc"])
        hint = close_matches(str(error["loc"][-1]), allowed)
        did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
        return f"field {loc!r}: unknown field ({did_you_mean}allowed: {', '.join(allowed)})"
    if kind == "missing":
        return f"field {loc!r}: required, but missing"
    if not loc:  # a whole-spec check: its message already names the field
        return message
    return f"field {loc!r}: {message}"


def load_spec(path: str | os.PathLike[str]) -> ChainSpec:
    """Read and validate one spec file; any problem raises :class:`SpecError`."""
    file = Path(path)
    where = str(file)
    try:
        size = file.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(where, f"file is {size} bytes; a spec file is at most {MAX_SPEC_BYTES}")
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(where, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(where, "not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(where, f"cannot read it: {exc.strerror or exc}") from None
    data.setdefault("name", file.stem)
    try:
        return ChainSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise SpecError(where, problems) from None


def resolve_chains_dir(chains_dir: str | os.PathLike[str] | None) -> Path | None:
    """``chains_dir``, else ``$CHAINKIT_CHAINS_DIR``, else ``None`` (no spec chains)."""
    if chains_dir is None:
        env = os.environ.get(CHAINS_DIR_ENV, "").strip()
        if not env:
            return None
        source, directory = f"${CHAINS_DIR_ENV}", Path(env)
    else:
        source, directory = "the chains folder", Path(chains_dir)
    if not directory.is_dir():
        raise ConfigError(
            f"{source} {str(directory)!r} is not a folder; create it or point "
            f"--chains-dir / {CHAINS_DIR_ENV} at the folder holding the *.toml chain specs"
        )
    return directory


def load_specs(
    chains_dir: str | os.PathLike[str] | None = None,
) -> dict[str, tuple[ChainSpec, Path]]:
    """Every ``*.toml`` spec in the chains folder, by chain name (empty without a folder).

    The folder is ``chains_dir``, else ``$CHAINKIT_CHAINS_DIR``. Any invalid file
    raises :class:`SpecError`; so do two files defining the same name.
    """
    directory = resolve_chains_dir(chains_dir)
    if directory is None:
        return {}
    specs: dict[str, tuple[ChainSpec, Path]] = {}
    for file in sorted(directory.glob("*.toml")):
        spec = load_spec(file)
        if spec.name in specs:
            raise SpecError(
                str(file),
                f"field 'name': chain {spec.name!r} is already defined by {specs[spec.name][1]}",
            )
        specs[spec.name] = (spec, file)
    return specs
