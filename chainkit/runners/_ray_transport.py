"""How a chain travels to Ray workers: a recipe they build by name, or pickled.

- :class:`ChainRecipe`: a chain name, a model spec and the folder of spec
  files; each worker calls ``get_chain`` itself. The model spec and endpoint
  are resolved once, on the driver, so every worker uses the same ones.
- :func:`pickle_chain`: any Runnable, through cloudpickle. OpenAI models
  (``ChatOpenAI``, ``OpenAI``, their subclasses) hold HTTP clients with locks
  that do not pickle: they travel as their settings and are rebuilt with fresh
  clients. API keys never travel (a worker reads its own from its
  environment); only the local model's dummy key does. A chain that still
  does not pickle is refused with :class:`~chainkit.errors.ChainNotPortableError`
  naming the part at fault.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable
from pydantic import BaseModel, SecretStr

from chainkit.errors import ChainNotPortableError, ConfigError

__all__ = [
    "ChainRecipe",
    "Transport",
    "is_openai_model",
    "load_chain",
    "model_settings",
    "pickle_chain",
    "transport_for",
]

Transport = tuple[str, Any]  # ("recipe", ChainRecipe) or ("pickle", bytes)


@dataclass(frozen=True)
class ChainRecipe:
    """A chain that Ray workers build themselves: ``get_chain(name, model=..., chains_dir=...)``.

    ``model`` is a model spec (``"openai:gpt-4o-mini"``, ``"local"``; default: a
    spec file's own model, else ``$CHAINKIT_MODEL``, else ``local``), resolved
    once on the driver so that every worker uses the same one. ``base_url``
    overrides the OpenAI-compatible endpoint (default: ``$OPENAI_BASE_URL`` as
    the driver sees it). ``local`` is the driver's embedded model, reached over
    its loopback URL: fine for a local Ray instance; on a cluster, serve a
    model the workers can reach (``chainkit local serve --host 0.0.0.0``) and
    give its URL. API keys are not part of a recipe: workers read theirs from
    their environment. Spec files must be readable at ``chains_dir`` on every
    worker (a shared folder, or Ray's ``runtime_env={"working_dir": ...}``).
    """

    name: str
    model: str | None = None
    chains_dir: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # set only for the local dummy key

    def resolved(self) -> ChainRecipe:
        """The same recipe with the model spec and the endpoint fixed, as the driver sees them."""
        from chainkit.models import DEFAULT_LOCAL_MODEL, default_spec, parse_spec

        spec = self.model
        if spec is None:
            spec = self._spec_file_model() or default_spec()
        provider, name = parse_spec(spec)
        base_url, api_key = self.base_url, self.api_key
        if provider == "local":
            from chainkit.models.local import DUMMY_API_KEY, ensure_server

            spec = f"openai:{name or DEFAULT_LOCAL_MODEL}"
            base_url = base_url or ensure_server().base_url
            api_key = DUMMY_API_KEY
        elif provider == "openai":
            base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        chains_dir = self.chains_dir
        if chains_dir is None and os.environ.get("CHAINKIT_CHAINS_DIR"):
            chains_dir = os.environ["CHAINKIT_CHAINS_DIR"]
        if chains_dir is not None:
            chains_dir = str(Path(chains_dir).resolve())
        return ChainRecipe(self.name, spec, chains_dir, base_url, api_key)

    def _spec_file_model(self) -> str | None:
        from chainkit.chains import load_specs

        found = load_specs(self.chains_dir).get(self.name)
        return found[0].model if found is not None else None

    def build(self) -> Runnable[Any, Any]:
        """The chain itself (on the driver to identify it, on each worker to run it)."""
        from chainkit.chains import get_chain
        from chainkit.models import load_model, parse_spec

        kwargs: dict[str, Any] = {}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.api_key:
            kwargs["api_key"] = self.api_key
        model: Any = self.model
        if kwargs:
            if parse_spec(self.model)[0] != "openai":
                raise ConfigError(
                    f"ChainRecipe({self.name!r}): base_url works only with 'openai:<model>' or "
                    f"'local' specs, not {self.model!r}"
                )
            model = load_model(self.model, **kwargs)
        return get_chain(self.name, model=model, chains_dir=self.chains_dir)


_CLIENT_FIELDS = frozenset(
    {
        "client",
        "async_client",
        "root_client",
        "root_async_client",
        "http_client",
        "http_async_client",
    }
)


def is_openai_model(value: Any) -> bool:
    """Whether ``value`` is a langchain-openai model (chat or completion)."""
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
        from langchain_openai.llms.base import BaseOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return False
    return isinstance(value, BaseChatOpenAI | BaseOpenAI)


def model_settings(model: Any, *, secrets: bool) -> dict[str, Any]:
    """The settings ``model`` was made with, without its clients (and secrets unless asked)."""
    fields = type(model).model_fields
    settings: dict[str, Any] = {}
    for name in model.model_fields_set:
        if name not in fields or name in _CLIENT_FIELDS:
            continue
        value = getattr(model, name)
        if isinstance(value, SecretStr) and not secrets:
            continue
        settings[name] = value
    return settings


def _rebuild_openai_model(cls: type[Any], settings: dict[str, Any], api_key: str | None) -> Any:
    """Unpickle an OpenAI model: the same settings, fresh clients, the worker's own key."""
    if api_key is not None:
        settings = {**settings, "openai_api_key": SecretStr(api_key)}
    return cls(**settings)


def _openai_reduction(obj: Any) -> Any:
    if not is_openai_model(obj):
        return NotImplemented
    from chainkit.models.local import DUMMY_API_KEY

    key = getattr(obj, "openai_api_key", None)
    # real keys stay here (the worker reads its own from its environment); the local
    # model's dummy key is no secret
    dummy = isinstance(key, SecretStr) and key.get_secret_value() == DUMMY_API_KEY
    settings = model_settings(obj, secrets=False)
    return (_rebuild_openai_model, (type(obj), settings, DUMMY_API_KEY if dummy else None))


@functools.cache
def _pickler_class() -> type[Any]:
    from ray import cloudpickle

    base: Any = cloudpickle.Pickler

    class ChainPickler(base):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            reduced = _openai_reduction(obj)
            if reduced is not NotImplemented:
                return reduced
            return super().reducer_override(obj)

    return ChainPickler


def pickle_chain(chain: Runnable[Any, Any]) -> bytes:
    """``chain`` as bytes for the workers; :class:`ChainNotPortableError` when it cannot be."""
    pickler = _pickler_class()
    try:
        return _dumps(pickler, chain)
    except Exception as exc:  # noqa: BLE001 - any pickling failure is reported the same way
        where = _unpicklable_part(pickler, chain, "chain", 0)
        name = _chain_name(chain)
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        raise ChainNotPortableError(
            f"chain {name!r} cannot be sent to the Ray workers: {where} does not pickle "
            f"({reason[:200]}); pass ChainRecipe('<chain name>', model='<spec>') so each "
            "worker builds it by name, or build the part that fails inside the workers"
        ) from None


def _dumps(pickler: type[Any], value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()


def _unpicklable_part(pickler: type[Any], value: Any, path: str, depth: int) -> str:
    """The deepest attribute path under ``value`` that fails to pickle (best effort)."""
    children: list[tuple[str, Any]] = []
    if isinstance(value, BaseModel):
        children = [(f"{path}.{k}", getattr(value, k, None)) for k in type(value).model_fields]
    elif isinstance(value, list | tuple):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = [(f"{path}.{k}", v) for k, v in vars(value).items()]
    if depth < 12:
        for child_path, child in children:
            try:
                _dumps(pickler, child)
            except Exception:  # noqa: BLE001 - looking for the part that fails
                return _unpicklable_part(pickler, child, child_path, depth + 1)
    return f"{path} ({type(value).__name__})"


def _chain_name(chain: Runnable[Any, Any]) -> str:
    try:
        return chain.get_name()
    except Exception:  # noqa: BLE001 - a custom runnable may fail here
        return type(chain).__name__


def transport_for(chain: Runnable[Any, Any] | ChainRecipe) -> tuple[Runnable[Any, Any], Transport]:
    """The chain the driver runs its checks on, and what the workers get to rebuild it."""
    if isinstance(chain, ChainRecipe):
        recipe = chain.resolved()
        return recipe.build(), ("recipe", recipe)
    if isinstance(chain, Runnable):
        return chain, ("pickle", pickle_chain(chain))
    raise ConfigError(
        f"run_batch(backend='ray') needs a Runnable or a ChainRecipe, got {type(chain).__name__}"
    )


def load_chain(transport: Transport) -> Runnable[Any, Any]:
    """On a worker: the chain a :func:`transport_for` result describes."""
    kind, payload = transport
    if kind == "recipe":
        recipe: ChainRecipe = payload
        return recipe.build()
    from ray import cloudpickle

    chain: Runnable[Any, Any] = cloudpickle.loads(payload)
    return chain
