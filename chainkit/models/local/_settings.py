"""Settings of the local model server: realism (delays) and faults, validated once.

Every field can be overridden for one request with the ``X-Chainkit-Faults``
header (see :func:`parse_overrides`).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from chainkit.errors import ConfigError

__all__ = [
    "FAULTS_HEADER",
    "FIELD_NAMES",
    "MAX_DELAY",
    "LatencyDistribution",
    "LocalModelSettings",
    "coerce",
    "parse_overrides",
]

FAULTS_HEADER = "x-chainkit-faults"
_RATES = ("error_rate", "disconnect_rate", "hang_rate", "jitter")
_DELAYS = ("ttft", "token_delay", "retry_after")
_DURATIONS = ("batch_delay", "batch_window")
MAX_DELAY = 600.0  # seconds: the longest any one wait may be (ttft, token_delay, latency)
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


@dataclass(frozen=True, slots=True)
class LatencyDistribution:
    """A seeded per-request latency: ``kind`` with its parameters, in seconds.

    Written as ``"lognormal:median=0.3,p99=2.0"``, ``"uniform:min=0.1,max=0.5"``,
    ``"exponential:mean=0.3"`` or ``"fixed:0.2"``.
    """

    kind: str
    params: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> LatencyDistribution:
        kind, _, rest = text.strip().partition(":")
        kind = kind.strip().lower()
        params: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = part.partition("=")
            if not eq:  # "fixed:0.2"
                key, value = "value", key
            try:
                params[key.strip().lower()] = float(value)
            except ValueError:
                raise ConfigError(
                    f"LocalModelSettings.latency: {value.strip()!r} in {text!r} is not a number"
                ) from None
        needed = {
            "lognormal": ("median", "p99"),
            "uniform": ("min", "max"),
            "exponential": ("mean",),
            "fixed": ("value",),
        }.get(kind)
        if needed is None:
            raise ConfigError(
                f"LocalModelSettings.latency: unknown distribution {kind!r} in {text!r}; use "
                f"lognormal:median=S,p99=S, uniform:min=S,max=S, exponential:mean=S or fixed:S"
            )
        missing = [k for k in needed if k not in params]
        if missing or set(params) - set(needed):
            raise ConfigError(
                f"LocalModelSettings.latency: {text!r} needs exactly {', '.join(needed)} for {kind}"
            )
        if any(v < 0 for v in params.values()):
            raise ConfigError(f"LocalModelSettings.latency: {text!r} has a negative value")
        if kind == "lognormal" and not 0 < params["median"] <= params["p99"]:
            raise ConfigError(f"LocalModelSettings.latency: {text!r} needs 0 < median <= p99")
        if kind == "uniform" and params["min"] > params["max"]:
            raise ConfigError(f"LocalModelSettings.latency: {text!r} needs min <= max")
        return cls(kind, tuple(sorted(params.items())))

    def sample(self, rng: random.Random) -> float:
        p = dict(self.params)
        if self.kind == "lognormal":
            sigma = (math.log(p["p99"]) - math.log(p["median"])) / _Z99
            return rng.lognormvariate(math.log(p["median"]), sigma)
        if self.kind == "uniform":
            return rng.uniform(p["min"], p["max"])
        if self.kind == "exponential":
            return rng.expovariate(1 / p["mean"]) if p["mean"] > 0 else 0.0
        return p["value"]


@dataclass(frozen=True, slots=True)
class LocalModelSettings:
    """How the local model behaves: delays and seeded, reproducible faults.

    - ``ttft``: seconds before the first token; ``token_delay``: seconds between
      tokens; ``jitter``: relative spread of both (0..1, uniform).
    - ``latency``: an extra per-request delay drawn from a distribution, e.g.
      ``"lognormal:median=0.3,p99=2.0"`` (see :class:`LatencyDistribution`).
    - ``error_rate``: share of requests answered with one of ``error_statuses``;
      a 429 carries ``Retry-After: retry_after`` seconds.
    - ``disconnect_rate``: share of streams cut part-way (no ``[DONE]``).
    - ``hang_rate``: share of requests never answered (the client times out).
    - ``seed``: faults are drawn from a hash of (seed, request body, how many
      times that body was seen), so a rerun sees the same faults per request
      and a retried request can succeed.
    - ``max_body_bytes``: larger request bodies get a 413.
    - ``batch_delay``: seconds a batch (``/v1/batches``) takes from creation to
      completion; ``batch_window``: seconds before a batch expires (OpenAI's 24 h).

    Delays are capped: ``ttft``, ``token_delay`` and ``retry_after`` must be at
    most 600 s (``MAX_DELAY``), and a ``latency`` draw is cut to 600 s. Every wait
    ends as soon as the client disconnects.
    """

    ttft: float = 0.0
    token_delay: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 500, 503)
    retry_after: float = 1.0
    disconnect_rate: float = 0.0
    hang_rate: float = 0.0
    seed: int = 0
    latency: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    batch_delay: float = 0.0
    batch_window: float = 86400.0

    def __post_init__(self) -> None:
        for name in _RATES:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"LocalModelSettings.{name} must be in [0, 1], got {value!r}")
            object.__setattr__(self, name, value)
        for name in _DELAYS:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value <= MAX_DELAY:
                raise ConfigError(
                    f"LocalModelSettings.{name} must be between 0 and {MAX_DELAY:g} seconds, "
                    f"got {value!r}"
                )
            object.__setattr__(self, name, value)
        for name in _DURATIONS:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value < math.inf:
                raise ConfigError(f"LocalModelSettings.{name} must be >= 0 seconds, got {value!r}")
            object.__setattr__(self, name, value)
        statuses: Any = self.error_statuses
        if isinstance(statuses, int):
            statuses = (statuses,)
        try:
            statuses = tuple(int(s) for s in statuses)
        except (TypeError, ValueError):
            raise ConfigError(
                f"LocalModelSettings.error_statuses must be HTTP status codes, got {statuses!r}"
            ) from None
        if not statuses or any(not 400 <= s <= 599 for s in statuses):
            raise ConfigError(
                f"LocalModelSettings.error_statuses must be 4xx/5xx codes, got {statuses!r}"
            )
        object.__setattr__(self, "error_statuses", statuses)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"LocalModelSettings.seed must be an integer, got {self.seed!r}")
        if isinstance(self.max_body_bytes, bool) or not isinstance(self.max_body_bytes, int):
            raise ConfigError(
                f"LocalModelSettings.max_body_bytes must be an integer, got {self.max_body_bytes!r}"
            )
        if self.max_body_bytes < 1024:
            raise ConfigError(
                f"LocalModelSettings.max_body_bytes must be >= 1024, got {self.max_body_bytes}"
            )
        if self.latency is not None:
            if not isinstance(self.latency, str):
                raise ConfigError(
                    f"LocalModelSettings.latency must be a string like "
                    f"'lognormal:median=0.3,p99=2.0', got {self.latency!r}"
                )
            latency_distribution(self.latency)  # validates

    @property
    def latency_distribution(self) -> LatencyDistribution | None:
        return latency_distribution(self.latency) if self.latency else None

    @property
    def has_delays(self) -> bool:
        """Whether answers must be paced (else a stream is sent in one piece)."""
        return self.ttft > 0 or self.token_delay > 0 or bool(self.latency)

    @property
    def has_faults(self) -> bool:
        return self.error_rate > 0 or self.disconnect_rate > 0 or self.hang_rate > 0

    def replace(self, **changes: Any) -> LocalModelSettings:
        """A copy with ``changes`` applied (validated); unknown names are an error."""
        unknown = sorted(set(changes) - set(FIELD_NAMES))
        if unknown:
            raise ConfigError(
                f"unknown local model setting {unknown[0]!r}; known: {', '.join(FIELD_NAMES)}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELD_NAMES}


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(LocalModelSettings))


@lru_cache(maxsize=64)
def latency_distribution(text: str) -> LatencyDistribution:
    return LatencyDistribution.parse(text)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"LocalModelSettings.{name} must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number):
        raise ConfigError(f"LocalModelSettings.{name} must be a number, got nan")
    return number


def coerce(name: str, value: Any) -> Any:
    """Turn a header value (a string, or a JSON value) into the field's type."""
    if name == "error_statuses":
        if isinstance(value, str):
            parts = [p for p in value.replace("|", " ").replace(",", " ").split() if p]
            try:
                return tuple(int(p) for p in parts)
            except ValueError:
                raise ConfigError(
                    f"{FAULTS_HEADER}: error_statuses={value!r} is not a list of status codes"
                ) from None
        return tuple(value) if isinstance(value, list) else value
    if name == "latency":
        return None if value in ("", "none", "null", None) else str(value)
    if not isinstance(value, str):
        return value
    try:
        return int(value) if name in ("seed", "max_body_bytes") else float(value)
    except ValueError:
        raise ConfigError(f"{FAULTS_HEADER}: {name}={value!r} is not a number") from None


@lru_cache(maxsize=256)
def parse_overrides(header: str) -> Mapping[str, Any]:
    """Parse the ``X-Chainkit-Faults`` header into setting changes.

    Either JSON (``{"error_rate": 1, "error_statuses": [429]}``) or
    ``key=value`` pairs separated by ``,`` or ``;``; a bare value after a
    list-valued key continues it (``error_rate=1,error_statuses=429,503``).
    """
    header = header.strip()
    if not header:
        return {}
    raw: dict[str, Any] = {}
    if header.startswith("{"):
        try:
            loaded = orjson.loads(header)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{FAULTS_HEADER}: {header!r} is not valid JSON") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{FAULTS_HEADER}: {header!r} must be a JSON object")
        raw = loaded
    else:
        last: str | None = None
        for part in (p.strip() for p in header.replace(";", ",").split(",")):
            if not part:
                continue
            key, eq, value = part.partition("=")
            if last == "latency" and key.strip().replace("-", "_").lower() not in FIELD_NAMES:
                raw[last] = f"{raw[last]},{part}"  # "latency=lognormal:median=0.3,p99=2"
                continue
            if not eq:
                if last == "error_statuses":
                    raw[last] = f"{raw[last]} {part}"
                    continue
                raise ConfigError(f"{FAULTS_HEADER}: {part!r} is not key=value")
            last = key.strip().replace("-", "_").lower()
            raw[last] = value.strip()
    unknown = sorted(set(raw) - set(FIELD_NAMES))
    if unknown:
        raise ConfigError(
            f"{FAULTS_HEADER}: unknown setting {unknown[0]!r}; known: {', '.join(FIELD_NAMES)}"
        )
    return {name: coerce(name, value) for name, value in raw.items()}
