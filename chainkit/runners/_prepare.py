"""Look inside a chain before running it: one retry layer, its identity, its token estimate.

The runner never mutates the caller's chain. It walks the runnable graph
(sequences, bindings, parallel maps, fallbacks, branches: any runnable that is
a pydantic model with runnable fields) and builds a copy in which:

- every OpenAI model (``ChatOpenAI``, ``AzureChatOpenAI``, ``OpenAI``, anything
  derived from ``BaseChatOpenAI`` / ``BaseOpenAI``) has ``max_retries=0`` and
  the batch's own :class:`~chainkit.models.HttpPool` (``use_http_pool``);
- every ``with_retry`` (``RunnableRetry``) is unwrapped and *folded* into the
  runner's policy: the item gets ``max(retries + 1, stop_after_attempt)``
  attempts, and exception types the chain asked for explicitly are retried
  too. Left in place it would stack with the runner's retries, and under
  ``astream`` it would be silently skipped (``RunnableRetry`` only wraps
  ``invoke``/``batch``).

What cannot be seen (a model called inside a plain function) keeps its own
retries; the runner then counts one attempt per call of the function and logs
nothing it cannot know. Models of other providers are left as they are and
logged when their ``max_retries`` is above zero.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from langchain_core.language_models import BaseLanguageModel
from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.runnables.retry import RunnableRetry
from pydantic import BaseModel

from chainkit._compat import identifying_params
from chainkit.models import HttpPool, use_http_pool
from chainkit.runners._records import ChainIdentity

__all__ = ["PreparedChain", "prepare_chain"]

log = logging.getLogger(__name__)

# Settings that do not change what a chain answers: ignored by the fingerprint,
# so that resuming on a new local-server port or with another key still matches.
_VOLATILE_KEYS = frozenset(
    {
        "openai_api_base",
        "base_url",
        "openai_api_key",
        "api_key",
        "openai_organization",
        "organization",
        "max_retries",
        "request_timeout",
        "timeout",
        "http_client",
        "http_async_client",
        "client",
        "async_client",
        "root_client",
        "root_async_client",
        "callbacks",
        "callback_manager",
        "verbose",
        "streaming",
        "stream",
        "stream_usage",
        "default_headers",
        "default_query",
        "openai_proxy",
        "cache",
        "rate_limiter",
        "id",
        "name",
        "metadata",
        "tags",
    }
)
DEFAULT_COMPLETION_ESTIMATE = 256


@dataclass
class PreparedChain:
    """The chain to run (a copy when something had to change) and what was learnt about it."""

    runnable: Runnable[Any, Any]
    identity: ChainIdentity
    models: list[BaseLanguageModel[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folded_attempts: int = 0
    retry_types: tuple[type[BaseException], ...] = ()
    retry_if: Callable[[BaseException], bool] | None = None
    template_chars: int = 0
    max_tokens: int | None = None
    required_vars: frozenset[str] = frozenset()
    pool_size: int = 100
    copies: dict[int, Any] = field(default_factory=dict, repr=False)
    http_pool: HttpPool | None = field(default=None, repr=False)

    def batch_pool(self) -> HttpPool:
        """The batch's own HTTP pool (sized to it, closed at its end), made on first use."""
        if self.http_pool is None:
            self.http_pool = HttpPool(max_connections=max(self.pool_size, 1))
        return self.http_pool

    async def aclose(self) -> None:
        """Close the HTTP pool this batch opened."""
        pool, self.http_pool = self.http_pool, None
        if pool is not None:
            await pool.aclose()

    def estimate_tokens(self, value: Any) -> float:
        """Tokens one call is expected to use: (template + input characters) / 4 + max_tokens."""
        try:
            chars = len(orjson.dumps(value, default=str))
        except TypeError:
            chars = len(str(value))
        completion = self.max_tokens if self.max_tokens else DEFAULT_COMPLETION_ESTIMATE
        return (self.template_chars + chars) / 4.0 + completion


def prepare_chain(
    chain: Runnable[Any, Any], *, name: str | None = None, pool_size: int = 100
) -> PreparedChain:
    """Copy ``chain`` with client retries off and ``with_retry`` folded; fingerprint it."""
    if not isinstance(chain, Runnable):
        raise TypeError(
            f"run_batch needs a LangChain Runnable, got {type(chain).__name__}; "
            "wrap a function with RunnableLambda(fn)"
        )
    prepared = PreparedChain(
        runnable=chain, identity=identify(chain, name=name), pool_size=pool_size
    )
    prepared.runnable = _rebuild(chain, prepared)
    prepared.required_vars = _required_vars(chain)
    for note in prepared.notes:
        log.info("%s", note)
    return prepared


# ------------------------------------------------------------------ identity


def identify(chain: Runnable[Any, Any], *, name: str | None = None) -> ChainIdentity:
    """A name and a fingerprint of the chain's structure, prompts and model settings."""
    description = _describe(chain, depth=0)
    blob = orjson.dumps(description, default=str, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(blob).hexdigest()[:16]
    return ChainIdentity(
        name=name or _name_of(chain), fingerprint=digest, description=_summary(chain)
    )


def _name_of(chain: Runnable[Any, Any]) -> str:
    try:
        return chain.get_name()
    except Exception:  # a user's custom runnable may fail here  # noqa: BLE001
        return type(chain).__name__


def _summary(chain: Runnable[Any, Any]) -> str:
    try:
        nodes = chain.get_graph().nodes.values()
        names = [n.name for n in nodes if n.name not in ("__start__", "__end__")]
        names = [n for n in names if not n.endswith("Input") and not n.endswith("Output")]
        return " | ".join(names)[:300]
    except Exception:  # noqa: BLE001 - best effort, for people reading the header
        return _name_of(chain)


def _describe(value: Any, depth: int) -> Any:
    if depth > 40:
        return "..."
    if isinstance(value, RunnableRetry):
        return {"retry": _describe(value.bound, depth + 1), "kwargs": _clean(value.kwargs)}
    if isinstance(value, BaseLanguageModel):
        params = identifying_params(value)
        return {"model": type(value).__name__, "params": _clean(params)}
    if isinstance(value, BasePromptTemplate):
        text = _prompt_text(value)
        return {"prompt": type(value).__name__, "text": text}
    if isinstance(value, BaseModel) and isinstance(value, Runnable):
        fields: dict[str, Any] = {}
        for key in type(value).model_fields:
            if key in _VOLATILE_KEYS:
                continue
            fields[key] = _describe(getattr(value, key, None), depth + 1)
        return {"type": type(value).__name__, "fields": fields}
    if isinstance(value, Runnable):
        return {"type": type(value).__name__, "name": _name_of(value)}
    if isinstance(value, dict):
        return {
            str(k): _describe(v, depth + 1) for k, v in value.items() if k not in _VOLATILE_KEYS
        }
    if isinstance(value, list | tuple):
        return [_describe(v, depth + 1) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, type):
        return value.__qualname__
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    if isinstance(value, BaseModel):
        return _clean(value.model_dump(mode="json", exclude_none=True))
    return type(value).__name__


def _clean(params: Any) -> Any:
    if isinstance(params, dict):
        return {str(k): _clean(v) for k, v in params.items() if k not in _VOLATILE_KEYS}
    if isinstance(params, list | tuple):
        return [_clean(v) for v in params]
    if isinstance(params, str | int | float | bool) or params is None:
        return params
    return str(params)


# ------------------------------------------------------------------ rebuild


def _rebuild(value: Any, prepared: PreparedChain) -> Any:
    if isinstance(value, RunnableRetry):
        return _fold_retry(value, prepared)
    if isinstance(value, BaseLanguageModel):
        copy = prepared.copies.get(id(value))
        if copy is None:  # one model object used twice stays one object
            prepared.models.append(value)
            copy = prepared.copies[id(value)] = _without_client_retries(value, prepared)
        return copy
    if isinstance(value, BasePromptTemplate):
        prepared.template_chars += _template_chars(value)
        return value
    if isinstance(value, RunnableBinding):
        _note_bound_kwargs(value, prepared)
    if isinstance(value, BaseModel) and isinstance(value, Runnable):
        updates: dict[str, Any] = {}
        for key in type(value).model_fields:
            current = getattr(value, key, None)
            new = _rebuild_field(current, prepared)
            if new is not current:
                updates[key] = new
        if updates:
            return value.model_copy(update=updates)
    return value


def _rebuild_field(value: Any, prepared: PreparedChain) -> Any:
    if isinstance(value, Runnable):
        return _rebuild(value, prepared)
    if isinstance(value, list | tuple):
        items = [_rebuild_field(v, prepared) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return type(value)(items) if isinstance(value, list) else tuple(items)
        return value
    if isinstance(value, dict):
        mapped = {k: _rebuild_field(v, prepared) for k, v in value.items()}
        if any(mapped[k] is not v for k, v in value.items()):
            return mapped
        return value
    return value


def _fold_retry(value: RunnableRetry[Any, Any], prepared: PreparedChain) -> Any:
    attempts = int(value.max_attempt_number or 1)
    prepared.folded_attempts = max(prepared.folded_attempts, attempts)
    types = value.retry_exception_types
    if callable(types) and not isinstance(types, tuple):
        previous = prepared.retry_if
        check = types
        prepared.retry_if = check if previous is None else (lambda e: bool(check(e) or previous(e)))
        what = "a custom predicate"
    elif types and tuple(types) != (Exception,):
        prepared.retry_types = (*prepared.retry_types, *types)
        what = ", ".join(t.__name__ for t in types)
    else:
        what = "transient errors only (its default, retry on any Exception, would retry bugs too)"
    prepared.notes.append(
        f"with_retry(stop_after_attempt={attempts}) on {_name_of(value.bound)} is run by the "
        f"runner's retry layer instead (one layer, also under astream): up to {attempts} "
        f"attempts per item, retrying {what}"
    )
    inner = _rebuild(value.bound, prepared)
    if value.kwargs or value.config:
        return RunnableBinding(bound=inner, kwargs=value.kwargs, config=value.config)
    return inner


def _without_client_retries(model: BaseLanguageModel[Any], prepared: PreparedChain) -> Any:
    _note_max_tokens(getattr(model, "max_tokens", None), prepared)
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
        from langchain_openai.llms.base import BaseOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return _other_model(model, prepared)
    if not isinstance(model, BaseChatOpenAI | BaseOpenAI):
        return _other_model(model, prepared)
    sdk_retries = _sdk_retries(model)
    if sdk_retries:
        prepared.notes.append(
            f"{type(model).__name__}(max_retries={sdk_retries}) runs with max_retries=0 under "
            "the runner, so its retries do not stack with the runner's"
        )
    # A model on chainkit's own pool (or langchain's shared default) gets the
    # batch's pool, sized to it and closed at its end; a user's client is kept.
    return use_http_pool(model, prepared.batch_pool(), max_retries=0)


def _sdk_retries(model: Any) -> int:
    declared = getattr(model, "max_retries", None)
    if isinstance(declared, int):
        return declared
    client = getattr(getattr(model, "async_client", None), "_client", None)
    value = getattr(client, "max_retries", 2)
    return value if isinstance(value, int) else 2


def _other_model(model: BaseLanguageModel[Any], prepared: PreparedChain) -> Any:
    retries = getattr(model, "max_retries", None)
    if isinstance(retries, int) and retries > 0:
        prepared.notes.append(
            f"{type(model).__name__} has max_retries={retries} inside its own SDK client, which "
            "chainkit cannot turn off: each runner attempt may make that many more HTTP calls; "
            "create the model with max_retries=0 to keep one retry layer"
        )
    return model


def _note_bound_kwargs(binding: RunnableBinding[Any, Any], prepared: PreparedChain) -> None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        _note_max_tokens(binding.kwargs.get(key), prepared)


def _note_max_tokens(value: Any, prepared: PreparedChain) -> None:
    if isinstance(value, int) and value > 0:
        prepared.max_tokens = max(prepared.max_tokens or 0, value)


def _prompt_text(prompt: BasePromptTemplate[Any]) -> str:
    pretty = getattr(prompt, "pretty_repr", None)
    try:
        return str(pretty()) if callable(pretty) else repr(prompt)
    except Exception:  # noqa: BLE001 - a custom prompt class; identity and estimate only
        return repr(prompt)


def _template_chars(prompt: BasePromptTemplate[Any]) -> int:
    text = _prompt_text(prompt)
    # pretty_repr draws message headers; count what is not decoration
    return sum(len(line) for line in text.splitlines() if "=====" not in line)


def _required_vars(chain: Runnable[Any, Any]) -> frozenset[str]:
    try:
        schema = chain.get_input_jsonschema()
    except Exception:  # noqa: BLE001 - a custom runnable without a schema
        return frozenset()
    if schema.get("type") != "object":
        return frozenset()
    required = schema.get("required") or []
    return frozenset(str(r) for r in required)
