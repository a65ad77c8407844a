"""What every request of one app shares (:class:`ServiceState`) and the chains it serves.

Its own module so that the routers and ``create_app`` both use it without
importing each other.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from langchain_core.runnables import Runnable

from chainkit.models import HttpPool
from chainkit.server._limits import StreamSlots
from chainkit.server._metrics import Metrics
from chainkit.server._settings import ServerSettings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel

    from chainkit.chains import ChainInfo

__all__ = ["ServedChain", "ServiceState", "service_state"]


@dataclass(frozen=True)
class ServedChain:
    """A chain as the service runs it: the runnable and the variables an input must give."""

    name: str
    runnable: Runnable[Any, Any]
    required: tuple[str, ...]

    def missing(self, data: dict[str, Any]) -> list[str]:
        return [v for v in self.required if v not in data]


class ServiceState:
    """What every request of one app shares: settings, the model, built chains, metrics."""

    def __init__(
        self,
        *,
        model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None,
        chains_dir: str | os.PathLike[str] | None,
        settings: ServerSettings,
    ) -> None:
        self.settings = settings
        self.chains_dir = chains_dir
        self.metrics = Metrics()
        self.streams = StreamSlots(settings.max_streams)
        self.started = time.monotonic()
        self._model_arg = model
        self._model: Runnable[Any, Any] | None = model if isinstance(model, Runnable) else None
        self._chains: dict[str, ServedChain] = {}
        self._lock = threading.Lock()
        self._http_pool: HttpPool | None = None

    def model(self) -> Runnable[Any, Any]:
        """The service's model (``load_model`` of the spec given, once).

        An OpenAI-compatible model (``local``, ``openai:...``) gets an HTTP pool of
        this app's own (:class:`~chainkit.models.HttpPool`), closed at shutdown.
        """
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from chainkit.models import load_model, parse_spec

                    spec = self._model_arg if isinstance(self._model_arg, str) else None
                    kwargs: dict[str, Any] = {}
                    if parse_spec(spec)[0] in ("local", "openai"):
                        self._http_pool = kwargs["http_pool"] = HttpPool()
                    self._model = load_model(spec, **kwargs)
        return self._model

    async def aclose(self) -> None:
        """Close what the app opened (its model's HTTP pool)."""
        pool, self._http_pool = self._http_pool, None
        if pool is not None:  # the model and its chains go with it; rebuilt if started again
            self._model = None
            self._chains.clear()
            await pool.aclose()

    def chain(self, name: str) -> ServedChain:
        """The chain called ``name``, built once on the service's model.

        A spec file's chain that names its own model keeps it, unless the service
        was given a model explicitly. Raises ``UnknownChainError`` (404).
        """
        served = self._chains.get(name)
        if served is not None:
            return served
        from chainkit.chains import get_chain, get_chain_info

        info = get_chain_info(name, chains_dir=self.chains_dir)
        if info.model is not None and self._model_arg is None:
            runnable = get_chain(name, chains_dir=self.chains_dir)
        else:
            runnable = get_chain(name, model=self.model(), chains_dir=self.chains_dir)
        schema = runnable.get_input_jsonschema()
        served = ServedChain(name, runnable, tuple(schema.get("required", ())))
        self._chains[name] = served
        return served

    def chain_infos(self) -> list[ChainInfo]:
        from chainkit.chains import list_chains

        return list_chains(self.chains_dir)

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started


def service_state(request: Request) -> ServiceState:
    """The :class:`ServiceState` of the app serving ``request``."""
    state: ServiceState = request.app.state.chainkit
    return state
