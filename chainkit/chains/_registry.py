"""Chains by name: the built-ins, chains registered in code, and spec files."""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.runnables import Runnable

from chainkit.chains._builtin import BUILTIN_CHAINS, DESCRIPTIONS, PARSERS, TEMPLATES
from chainkit.chains._make import build_chain
from chainkit.chains._specs import NAME_PATTERN, ChainSpec, load_specs, output_model
from chainkit.errors import UnknownChainError, UserError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel

__all__ = [
    "ChainFactory",
    "ChainInfo",
    "get_chain",
    "get_chain_info",
    "list_chains",
    "register_chain",
    "spec_chain",
    "unregister_chain",
]

BUILTIN = "builtin"


class ChainFactory(Protocol):
    """A function that builds a chain on a model (spec string, model object or ``None``)."""

    def __call__(
        self, model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None
    ) -> Runnable[Any, Any]: ...


@dataclass(frozen=True)
class ChainInfo:
    """What ``chainkit chains`` shows about a chain, without running it."""

    name: str
    description: str
    variables: tuple[str, ...]
    """The inputs a caller must give."""
    parser: str
    """The output: ``str``, ``json``, ``pydantic:<Model>``, ``structured:<Model>``, ``dict``."""
    source: str
    """``builtin``, the spec file's path, or ``python:<module>.<function>``."""
    template: str | None = None
    system: str | None = None
    model: str | None = None
    """The chain's own model spec; ``None`` means ``load_model()``'s default."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Variables with default values (an input overrides them)."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["variables"] = list(self.variables)
        data["defaults"] = dict(self.defaults)
        return data


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: ChainFactory
    description: str
    source: str
    template: str | None
    parser: str | None
    system: str | None


_lock = threading.Lock()
_registry: dict[str, _Entry] = {}


def register_chain(
    name: str,
    factory: ChainFactory,
    *,
    description: str,
    template: str | None = None,
    parser: str | None = None,
    system: str | None = None,
    replace: bool = False,
) -> None:
    """Make ``factory`` available as ``get_chain(name)`` and in ``chainkit chains``.

    ``factory(model)`` must return a Runnable and be cheap to call (no I/O):
    listing chains builds each one on a placeholder model to read its input
    variables. ``template``/``parser``/``system`` are shown by ``chainkit chains
    show``. A name already taken (a built-in, or registered before) is an error
    unless ``replace=True``; spec files cannot take a registered name.
    """
    if not re.fullmatch(NAME_PATTERN, name):
        raise UserError(
            f"chain name {name!r} is not valid: use lowercase letters, digits, '-' and '_', "
            f"starting with a letter"
        )
    if not callable(factory):
        raise UserError(f"register_chain({name!r}): factory must be callable, got {factory!r}")
    module = getattr(factory, "__module__", None) or "?"
    qualname = getattr(factory, "__qualname__", None) or type(factory).__name__
    source = BUILTIN if module == _builtin_module() else f"python:{module}.{qualname}"
    entry = _Entry(name, factory, description, source, template, parser, system)
    with _lock:
        if name in _registry and not replace:
            kind = "a built-in" if _registry[name].source == BUILTIN else "an already registered"
            raise UserError(
                f"chain {name!r} is {kind} chain; pick another name or pass replace=True"
            )
        _registry[name] = entry


def unregister_chain(name: str) -> None:
    """Remove a chain registered with :func:`register_chain` (built-ins too, until restart)."""
    with _lock:
        if name not in _registry:
            raise UnknownChainError(name, _registry)
        del _registry[name]


def _builtin_module() -> str:
    return BUILTIN_CHAINS["song"].__module__


def _register_builtins() -> None:
    for name, factory in BUILTIN_CHAINS.items():
        register_chain(
            name,
            factory,
            description=DESCRIPTIONS[name],
            template=TEMPLATES[name],
            parser=PARSERS[name],
        )


_register_builtins()


def spec_chain(
    spec: ChainSpec,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None,
) -> Runnable[dict[str, Any], Any]:
    """The chain a spec describes, on ``model`` (default: the spec's own, else ``load_model()``)."""
    parser: Any = spec.parser
    if spec.output is not None:
        parser = output_model(spec.output)
    return build_chain(
        spec.template,
        model=model if model is not None else spec.model,
        parser=parser,
        name=spec.name,
        system=spec.system,
        description=spec.description or None,
        template_format=spec.template_format,
        partial=dict(spec.defaults),
    )


def _specs(
    chains_dir: str | os.PathLike[str] | None,
) -> dict[str, tuple[ChainSpec, Path]]:
    from chainkit.errors import SpecError

    specs = load_specs(chains_dir)
    with _lock:
        taken = {name: entry.source for name, entry in _registry.items()}
    for name, (_, path) in specs.items():
        if name in taken:
            kind = "a built-in" if taken[name] == BUILTIN else "a registered"
            raise SpecError(
                str(path),
                f"field 'name': {name!r} is {kind} chain; give the spec another name",
            )
    return specs


def get_chain(
    name: str,
    *,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None,
    chains_dir: str | os.PathLike[str] | None = None,
) -> Runnable[Any, Any]:
    """The chain called ``name``: a built-in, a registered chain, or a spec file's.

    ``model`` is a spec string or a model object; by default a spec chain uses its
    own ``model`` field and every other chain ``load_model()`` (which follows
    ``CHAINKIT_MODEL``). Spec files are read from ``chains_dir``, else
    ``$CHAINKIT_CHAINS_DIR``. An unknown name raises
    :class:`~chainkit.errors.UnknownChainError` with close names; an invalid spec
    file in the folder raises :class:`~chainkit.errors.SpecError`.
    """
    specs = _specs(chains_dir)
    with _lock:
        entry = _registry.get(name)
        known = [*_registry, *specs]
    if entry is not None:
        return entry.factory(model=model)
    if name in specs:
        return spec_chain(specs[name][0], model)
    raise UnknownChainError(name, known)


def list_chains(chains_dir: str | os.PathLike[str] | None = None) -> list[ChainInfo]:
    """Every chain by name: built-ins and registered chains first, then spec files."""
    specs = _specs(chains_dir)
    with _lock:
        entries = list(_registry.values())
    infos = [_entry_info(entry) for entry in entries]
    infos.extend(_spec_info(spec, path) for spec, path in specs.values())
    return infos


def get_chain_info(name: str, *, chains_dir: str | os.PathLike[str] | None = None) -> ChainInfo:
    """The :class:`ChainInfo` of one chain (raises :class:`UnknownChainError`)."""
    specs = _specs(chains_dir)
    with _lock:
        entry = _registry.get(name)
        known = [*_registry, *specs]
    if entry is not None:
        return _entry_info(entry)
    if name in specs:
        return _spec_info(*specs[name])
    raise UnknownChainError(name, known)


def _placeholder_model() -> Runnable[Any, Any]:
    """A model that is never called: chains are built on it only to be inspected."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    return GenericFakeChatModel(messages=iter(()))


def _entry_info(entry: _Entry) -> ChainInfo:
    chain = entry.factory(model=_placeholder_model())
    schema = chain.get_input_jsonschema()
    required = tuple(schema.get("required", ()))
    defaults = {
        key: prop["default"]
        for key, prop in schema.get("properties", {}).items()
        if key not in required and "default" in prop
    }
    return ChainInfo(
        name=entry.name,
        description=entry.description,
        variables=required,
        parser=entry.parser or _output_kind(chain),
        source=entry.source,
        template=entry.template,
        system=entry.system,
        defaults=defaults,
    )


def _output_kind(chain: Runnable[Any, Any]) -> str:
    schema = chain.get_output_jsonschema()
    kind = schema.get("type")
    if kind == "string":
        return "str"
    return str(schema.get("title") or kind or "any")


def _spec_info(spec: ChainSpec, path: Path) -> ChainInfo:
    parser: str = spec.parser
    if spec.output is not None:
        parser = f"structured:{spec.output.name}"
    return ChainInfo(
        name=spec.name,
        description=spec.description,
        variables=tuple(spec.inputs),
        parser=parser,
        source=str(path),
        template=spec.template,
        system=spec.system,
        model=spec.model,
        defaults=dict(spec.defaults),
    )
