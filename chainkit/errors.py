"""Exceptions raised by chainkit.

Two roots: a *misuse* (the caller asked for something that cannot work: a bad
spec, an unknown name, a missing variable) and a *runtime failure* (the work
was well-formed but could not be done: a server unreachable, a model error).
The CLI turns the first into exit code 2 and the second into exit code 1,
each as one line on stderr; the service into a 4xx and a 5xx.

    ChainkitError
    ├── UserError                     misuse: fix the call, the spec or the input
    │   ├── ConfigError               a setting or environment variable is wrong
    │   │   ├── MissingAPIKeyError    a provider needs a key that is not set
    │   │   ├── UnknownProviderError  "foo:bar" names no provider chainkit knows
    │   │   ├── MissingPackageError   the provider's integration package is absent
    │   │   └── UnprotectedBindError  a server asked to listen off loopback without a key
    │   ├── UnknownChainError         no chain by that name (with close names)
    │   ├── UnknownRunError           no run by that id or name in a trace
    │   ├── MissingVariableError      an input lacks a template variable
    │   ├── SpecError                 a chain spec file is invalid
    │   ├── InputError                an input line or value is malformed
    │   ├── ResumeMismatchError       resuming a result file made by another chain
    │   └── ChainNotPortableError     a chain cannot be sent to Ray workers
    └── ChainkitRunError              the work failed at run time
        ├── ModelUnavailableError     the model server cannot be reached
        ├── LocalServerError          the embedded local model failed to start
        ├── TraceError                a trace file cannot be read
        ├── RecordedError             an error replayed from a trace (ReplayChatModel)
        └── ReplayExhaustedError      a replay model has no recording left for a call

Exceptions carry data, not advice for one interface: each holds its fields
(the missing variables, the known names, the provider, the environment
variable, ...) and a one-line message that names the value and where it came
from. The boundaries phrase the fix for their own user from those fields: the
CLI (``chainkit.cli._app.describe_exception``: "pass it, e.g. -i topic=...")
and the service (``chainkit.server._errors.error_body``: 'add it to "input"').
Every message passes through :func:`redact` so a secret never leaks into one,
and every exception pickles with its fields.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ChainNotPortableError",
    "ChainkitError",
    "ChainkitRunError",
    "ConfigError",
    "InputError",
    "LocalServerError",
    "MissingAPIKeyError",
    "MissingPackageError",
    "MissingVariableError",
    "ModelUnavailableError",
    "OutputExistsError",
    "RecordedError",
    "ReplayExhaustedError",
    "ResumeMismatchError",
    "SpecError",
    "TraceError",
    "TraceNotFoundError",
    "UnknownChainError",
    "UnknownProviderError",
    "UnknownRunError",
    "UnprotectedBindError",
    "UserError",
    "close_matches",
    "redact",
    "register_secret",
]

# API keys of the common providers, bearer tokens, and key=value pairs whose key
# says it is a secret. Kept deliberately broad: a false positive costs a few
# characters of a log line, a false negative leaks a credential.
_SECRET_PATTERNS = [
    re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\b(xox[abpr]|ghp|gho|ghs|glpat|hf)[-_][A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-~+/=]{8,}"),
    re.compile(
        r"(?i)\b(api[_-]?key|token|secret|password|authorization)(\"?\s*[:=]\s*\"?)"
        r"[^\s\"',;&]{6,}"
    ),
]
_extra_secrets: set[str] = set()
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so :func:`redact` masks it wherever it appears."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    """Mask API keys, bearer tokens and registered secrets in ``text``."""
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) >= 2 and groups[1] is not None:  # key=value form: keep the key
        return f"{groups[0]}{groups[1]}{REDACTED}"
    if groups and groups[0] and groups[0].lower() == "bearer":
        return f"{groups[0]} {REDACTED}"
    return REDACTED


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Names in ``candidates`` that look like ``name`` (for "did you mean")."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)


class ChainkitError(Exception):
    """Base of every exception chainkit raises on purpose.

    Pickling keeps the message and every field (``__reduce__`` below), so an error
    raised in a Ray worker or a subprocess arrives whole.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls cls(*args): wrong for a class whose constructor
        # takes fields, not the message. Rebuild from the message and the fields instead.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[ChainkitError], args: tuple[Any, ...], fields: dict[str, Any]
) -> ChainkitError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(fields)
    return error


class UserError(ChainkitError, ValueError):
    """The caller asked for something that cannot work; the message says what is wrong."""


class ConfigError(UserError):
    """A setting, option or environment variable has a value that cannot be used."""


class MissingAPIKeyError(ConfigError):
    """``provider`` needs an API key in the environment variable ``env_var``."""

    def __init__(self, provider: str, env_var: str) -> None:
        self.provider = provider
        self.env_var = env_var
        super().__init__(f"{provider} needs an API key: {env_var} is not set")


class UnknownProviderError(ConfigError):
    """The model spec ``spec`` names a ``provider`` that is not one of ``known``."""

    def __init__(self, spec: str, known: Iterable[str]) -> None:
        self.spec = spec
        self.provider = spec.partition(":")[0]
        self.known = sorted(known)
        self.suggestions = close_matches(self.provider, self.known)
        did_you_mean = f" (did you mean {', '.join(self.suggestions)}?)" if self.suggestions else ""
        super().__init__(
            f"unknown model provider {self.provider!r} in model spec {spec!r}{did_you_mean}; "
            f"known providers: {', '.join(self.known)}"
        )


class MissingPackageError(ConfigError):
    """The model spec ``spec`` needs the integration ``package``, which is not installed."""

    def __init__(self, spec: str, package: str) -> None:
        self.spec = spec
        self.package = package
        super().__init__(
            f"model spec {spec!r} needs the package {package!r}, which is not installed"
        )


class UnknownChainError(UserError, KeyError):
    """No chain is called ``name``; ``known`` lists those there are, ``suggestions`` close ones."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        self.suggestions = close_matches(name, self.known)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        ChainkitError.__init__(
            self,
            f"unknown chain {name!r}{hint} (known chains: {', '.join(self.known) or 'none'})",
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownRunError(UserError, KeyError):
    """No run of a trace is ``key`` (a run id, an id prefix or a run name); ``names`` are
    the run names there are, ``suggestions`` the close ones."""

    def __init__(self, key: str, names: Iterable[str]) -> None:
        self.key = key
        self.names = sorted(set(names))
        self.suggestions = close_matches(key, self.names)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        ChainkitError.__init__(
            self, f"no run {key!r} in the trace (not a run id, id prefix or run name){hint}"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingVariableError(UserError, KeyError):
    """The input of chain ``chain`` lacks the template variables ``missing``.

    ``given`` are the names the input had; ``line`` is the input's line in its
    file, when it came from one.
    """

    def __init__(
        self,
        chain: str,
        missing: Iterable[str],
        given: Iterable[str] = (),
        *,
        line: int | None = None,
    ) -> None:
        self.chain = chain
        self.missing = sorted(missing)
        self.given = sorted(map(str, given))
        self.line = line
        names = ", ".join(repr(m) for m in self.missing)
        plural = "s" if len(self.missing) > 1 else ""
        where = f"line {line}: " if line is not None else ""
        ChainkitError.__init__(
            self,
            f"{where}chain {chain!r} needs input variable{plural} {names} "
            f"(got: {', '.join(self.given) or 'none'})",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class UnprotectedBindError(ConfigError):
    """A server (``server``: "service" or "local model") was asked to listen on the
    non-loopback ``host`` without a credential; ``token_env`` names the environment
    variable that would hold the service's token, when there is one."""

    def __init__(self, server: str, host: str, *, token_env: str | None = None) -> None:
        self.server = server
        self.host = host
        self.token_env = token_env
        super().__init__(
            f"refusing to serve the {server} on {host!r} without an API key, as anyone who "
            f"can reach it could use it"
        )


class SpecError(UserError):
    """The chain spec at ``path`` is invalid: ``problem`` says how."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"invalid chain spec {path}: {problem}")


class OutputExistsError(ConfigError):
    """A batch's result file ``path`` exists and neither resume nor overwrite was asked.

    The message gives the Python fix; the CLI phrases it with ``--resume`` / ``--overwrite``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"output file {path} already exists; pass resume=True to continue it, "
            "overwrite=True to start over, or choose another file"
        )

    @property
    def problem(self) -> str:
        return f"output file {self.path} already exists"


class InputError(UserError):
    """An input (a JSONL line, a -i option, a request body) is malformed."""


class ResumeMismatchError(UserError):
    """Resuming a result file that another chain or other settings produced."""


class ChainNotPortableError(UserError):
    """A chain cannot travel to Ray workers (it does not pickle); rebuild it by name instead."""


class ChainkitRunError(ChainkitError, RuntimeError):
    """The request was well-formed, but the work failed at run time."""


class ModelUnavailableError(ChainkitRunError):
    """The model server at ``base_url`` cannot be reached, for ``reason``."""

    def __init__(self, base_url: str, reason: str) -> None:
        self.base_url = base_url
        self.reason = reason
        super().__init__(f"cannot reach the model server at {base_url}: {reason}")


class LocalServerError(ChainkitRunError):
    """The embedded local model server could not start or stopped unexpectedly."""


class TraceError(ChainkitRunError):
    """A trace or result file cannot be read."""


class RecordedError(ChainkitRunError):
    """An error replayed from a trace whose exception class cannot be rebuilt.

    ``chainkit.debug.ReplayChatModel`` raises a subclass named like the recorded
    type, so ``type(exc).__name__`` is the recorded ``error_type``.
    """

    error_type: str = "RecordedError"

    @classmethod
    def named(cls, error_type: str) -> type[RecordedError]:
        """The subclass called like ``error_type`` (made once, so it pickles by name)."""
        if error_type == RecordedError.error_type:
            return RecordedError
        found = _recorded_classes.get(error_type)
        if found is None:
            name = error_type if error_type.isidentifier() else "RecordedError"
            found = type(name, (RecordedError,), {"error_type": error_type})
            _recorded_classes[error_type] = found
        return found

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_recorded, (self.error_type, self.args, dict(self.__dict__)))


_recorded_classes: dict[str, type[RecordedError]] = {}


def _rebuild_recorded(
    error_type: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> ChainkitError:
    return _rebuild(RecordedError.named(error_type), args, fields)


class ReplayExhaustedError(ChainkitRunError):
    """A replay model was called more often than its trace has model runs for."""


class TraceNotFoundError(UserError):
    """No trace file at ``path`` (or a directory there): a misuse, exit code 2 at the CLI."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"trace file {path} {problem}; pass the file a --trace option wrote")
