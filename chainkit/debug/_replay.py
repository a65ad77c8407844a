"""``ReplayChatModel``: a chat model that replays the recorded chunks of model runs.

A failure captured once (a stream cut part-way, a 500, a rate limit) becomes
an offline test: the replayed run yields the same chunks, with the recorded
gaps when ``timing=True``, and then raises the recorded error, rebuilt as the
same exception class when chainkit can (the ``openai`` errors, builtins, the
``langchain_openai`` wrappers) so that retry and error-handling code takes the
same branch it took live.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import importlib
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from chainkit.debug._common import TraceLike, as_trace, select_run
from chainkit.errors import RecordedError, ReplayExhaustedError, UserError
from chainkit.trace import ErrorInfo, Run, Trace, message_text

__all__ = ["RecordedError", "Recording", "ReplayChatModel", "ReplayExhaustedError", "rebuild_error"]

_REPLAY_URL = "http://replay.invalid/v1/chat/completions"
_STATUS_IN_MESSAGE = re.compile(r"\b(?:Error code|status(?: code)?)[:= ]+([45]\d\d)\b", re.I)
_DEFAULT_STATUS = {
    "BadRequestError": 400,
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "NotFoundError": 404,
    "ConflictError": 409,
    "UnprocessableEntityError": 422,
    "RateLimitError": 429,
    "InternalServerError": 500,
}
_ERROR_MODULES = (
    "builtins",
    "openai",
    "langchain_openai.chat_models.base",
    "langchain_core.exceptions",
    "chainkit.errors",
)


@functools.lru_cache(maxsize=256)
def _find_class(name: str) -> type[Exception] | None:
    for module_name in _ERROR_MODULES:
        try:
            module = builtins if module_name == "builtins" else importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls
    return None


def _http_module() -> Any:
    """The HTTP library the openai SDK builds its errors from (httpx2 in openai 3)."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None  # pragma: no cover - openai depends on one of them


def _openai_error(cls: type[Exception], message: str) -> Exception | None:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        return None
    if not issubclass(cls, openai.OpenAIError):
        return None
    http = _http_module()
    request = http.Request("POST", _REPLAY_URL)
    if issubclass(cls, openai.APIStatusError):
        found = _STATUS_IN_MESSAGE.search(message)
        status = int(found.group(1)) if found else None
        if status is None:
            status = next(
                (code for base in cls.__mro__ if (code := _DEFAULT_STATUS.get(base.__name__))),
                500,
            )
        response = http.Response(status, request=request)
        return cls(message, response=response, body=None)
    if issubclass(cls, openai.APITimeoutError):
        return cls(request=request)
    if issubclass(cls, openai.APIConnectionError):
        return cls(message=message or "Connection error.", request=request)
    if issubclass(cls, openai.APIError):
        return cls(message, request, body=None)
    return cls(message)


def rebuild_error(error: ErrorInfo) -> Exception:
    """An exception like the one recorded: its class when chainkit finds it, its message.

    Falls back to a :class:`RecordedError` subclass named like the recorded type.
    Cancellations (``GeneratorExit``, ``CancelledError``) come back as that fallback
    too: replay never fakes a cancellation.
    """
    cls = _find_class(error.type)
    exc: Exception | None = None
    if cls is not None:
        try:
            exc = _openai_error(cls, error.message)
            if exc is None:
                exc = cls(error.message) if error.message else cls()
        except Exception:  # noqa: BLE001 - a constructor with other arguments: fall back
            exc = None
    if exc is None:
        exc = RecordedError.named(error.type)(error.message or error.type)
    exc.add_note("replayed by chainkit.debug.ReplayChatModel from a recorded trace")
    return exc


# ----------------------------------------------------------------- recordings


def _prompt_key(value: Any) -> tuple[tuple[str, str], ...]:
    """(role, text) pairs of a recorded or live prompt: messages, message dicts, strings."""
    if isinstance(value, Mapping):
        for key in ("messages", "prompts"):
            if key in value:
                return _prompt_key(value[key])
        if "content" in value:
            return ((str(value.get("type", "human")), message_text(value["content"])),)
        return ()
    if isinstance(value, str):
        return (("human", value),)
    if isinstance(value, BaseMessage):
        return ((value.type, message_text(value)),)
    if isinstance(value, Sequence):
        items = list(value)
        if len(items) == 1 and isinstance(items[0], Sequence) and not isinstance(items[0], str):
            return _prompt_key(items[0])  # callbacks get a batch of one prompt
        pairs: list[tuple[str, str]] = []
        for item in items:
            pairs.extend(_prompt_key(item))
        return tuple(pairs)
    return ()


@dataclass(frozen=True, slots=True)
class Recording:
    """What one recorded model run did: chunks with the gap before each, the end or error."""

    run_id: str
    name: str
    prompt: tuple[tuple[str, str], ...]
    chunks: tuple[tuple[float, str], ...]
    text: str
    tail: float
    usage: dict[str, int] | None
    response_metadata: dict[str, Any]
    error: ErrorInfo | None

    @classmethod
    def of(cls, run: Run) -> Recording:
        """The recording of a model run (chat model or LLM) of a trace."""
        previous = run.start if run.start is not None else (run.chunks[0][0] if run.chunks else 0)
        chunks: list[tuple[float, str]] = []
        for t, text in run.chunks:
            chunks.append((max(0.0, t - previous), text))
            previous = t
        tail = max(0.0, run.end - previous) if run.end is not None else 0.0
        usage = None
        if run.usage:
            usage = {
                key: int(run.usage[key])
                for key in ("input_tokens", "output_tokens", "total_tokens")
                if isinstance(run.usage.get(key), int)
            }
        metadata: dict[str, Any] = {}
        if isinstance(run.outputs, Mapping) and isinstance(
            run.outputs.get("response_metadata"), Mapping
        ):
            metadata = dict(run.outputs["response_metadata"])
        return cls(
            run_id=run.run_id,
            name=run.name,
            prompt=_prompt_key(run.inputs),
            chunks=tuple(chunks),
            text=run.final_text or "",
            tail=tail,
            usage=usage or None,
            response_metadata=metadata,
            error=run.error,
        )

    @property
    def gaps(self) -> list[float]:
        """Seconds before each chunk (the first: from the run's start)."""
        return [gap for gap, _ in self.chunks]

    def pieces(self) -> list[tuple[float, str]]:
        """``(gap, text)`` to yield: the chunks, or the final text as one piece."""
        if self.chunks:
            return list(self.chunks)
        if self.error is not None:
            return [(0.0, self.text)] if self.text else []
        return [(self.tail, self.text)]


def _model_runs(trace: Trace) -> list[Run]:
    return [run for run in trace.runs if run.is_model]


# ---------------------------------------------------------------------- model


class ReplayChatModel(BaseChatModel):
    """A chat model that answers with recorded model runs, offline.

    >>> model = ReplayChatModel.from_trace("failure.jsonl", timing=True)
    >>> chain = prompt | model | StrOutputParser()   # the chain that failed
    >>> chain.invoke({"topic": "goldfish"})          # same chunks, then the same error

    With one recording every call replays it. With several (``run=None`` on a
    trace of a multi-step chain) each call is answered by the recording whose
    prompt matches the call's messages (unused ones first), else by the next
    unused recording in start order; when none is left,
    :class:`ReplayExhaustedError`. ``timing=True`` sleeps the recorded gaps
    (divided by ``speed``) before each chunk and before the end or the error.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    recordings: list[Recording] = Field(default_factory=list)
    timing: bool = False
    speed: float = 1.0
    model_name: str = "chainkit-replay"

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _used: list[int] = PrivateAttr(default_factory=list)

    @classmethod
    def from_trace(
        cls,
        trace_or_path: TraceLike,
        run: str | Run | None = None,
        timing: bool = False,
        **kwargs: Any,
    ) -> ReplayChatModel:
        """A model replaying ``run`` of the trace, or (``run=None``) all its model runs.

        ``run`` is a :class:`~chainkit.trace.Run`, a run id, a unique id prefix or
        a unique run name; a chain run stands for the model runs below it.
        """
        trace = as_trace(trace_or_path)
        if run is None:
            runs = _model_runs(trace)
        else:
            picked = run if isinstance(run, Run) else select_run(trace, run)
            runs = [r for _, r in picked.walk() if r.is_model]
            runs.sort(key=lambda r: r.start if r.start is not None else float("inf"))
        if not runs:
            where = f"run {run!r}" if run is not None else "the trace"
            raise UserError(
                f"{where} has no model run to replay (no chat_model or llm run); record the "
                f"chain with StreamCapture or EventCapture attached"
            )
        recordings = [Recording.of(r) for r in runs]
        for rec in recordings:  # find the error classes now, not in the middle of a replay
            if rec.error is not None:
                _find_class(rec.error.type)
        return cls(recordings=recordings, timing=timing, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "chainkit-replay"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "recordings": len(self.recordings)}

    def reset(self) -> None:
        """Forget which recordings were used: the next calls start over."""
        with self._lock:
            self._used.clear()

    # --------------------------------------------------------------- picking

    def _pick(self, messages: list[BaseMessage]) -> Recording:
        if not self.recordings:
            raise ReplayExhaustedError("this ReplayChatModel has no recordings; use from_trace()")
        if len(self.recordings) == 1:
            return self.recordings[0]
        key = _prompt_key(messages)
        with self._lock:
            unused = [i for i in range(len(self.recordings)) if i not in self._used]
            matching = [i for i, rec in enumerate(self.recordings) if rec.prompt == key]
            choice = next((i for i in matching if i in unused), None)
            if choice is None and matching:
                choice = matching[0]
            if choice is None and unused:
                choice = unused[0]
            if choice is None:
                raise ReplayExhaustedError(
                    f"ReplayChatModel was called {len(self._used) + 1} times but the trace has "
                    f"{len(self.recordings)} model runs and none matches this prompt; call "
                    f"reset() between replays or record the call"
                )
            self._used.append(choice)
            return self.recordings[choice]

    def _chunk(self, rec: Recording, text: str, *, last: bool) -> ChatGenerationChunk:
        if not last:
            return ChatGenerationChunk(message=AIMessageChunk(content=text))
        usage = (
            UsageMetadata(
                input_tokens=rec.usage.get("input_tokens", 0),
                output_tokens=rec.usage.get("output_tokens", 0),
                total_tokens=rec.usage.get("total_tokens", 0),
            )
            if rec.usage and rec.error is None
            else None
        )
        message = AIMessageChunk(
            content=text,
            chunk_position="last" if rec.error is None else None,
            usage_metadata=usage,
            response_metadata=dict(rec.response_metadata) if rec.error is None else {},
        )
        return ChatGenerationChunk(message=message)

    def _delay(self, seconds: float) -> float:
        return seconds / self.speed if self.timing and self.speed > 0 else 0.0

    # ------------------------------------------------------------ generation

    def _replay(self, rec: Recording) -> Iterator[ChatGenerationChunk]:
        pieces = rec.pieces()
        for index, (gap, text) in enumerate(pieces):
            if (wait := self._delay(gap)) > 0:
                time.sleep(wait)
            yield self._chunk(rec, text, last=index == len(pieces) - 1)
        if rec.error is not None:
            if (wait := self._delay(rec.tail)) > 0:
                time.sleep(wait)
            raise rebuild_error(rec.error)

    async def _areplay(self, rec: Recording) -> AsyncIterator[ChatGenerationChunk]:
        pieces = rec.pieces()
        for index, (gap, text) in enumerate(pieces):
            if (wait := self._delay(gap)) > 0:
                await asyncio.sleep(wait)
            yield self._chunk(rec, text, last=index == len(pieces) - 1)
        if rec.error is not None:
            if (wait := self._delay(rec.tail)) > 0:
                await asyncio.sleep(wait)
            raise rebuild_error(rec.error)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        return self._replay(self._pick(messages))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._areplay(self._pick(messages)):
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # A run recorded with chunks reports them as tokens here too, so the replay's
        # trace has the recorded chunks whether it is called with invoke or stream.
        rec = self._pick(messages)
        chunks: list[ChatGenerationChunk] = []
        for chunk in self._replay(rec):
            if run_manager is not None and rec.chunks:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            chunks.append(chunk)
        return generate_from_stream(iter(chunks))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        rec = self._pick(messages)
        chunks: list[ChatGenerationChunk] = []
        async for chunk in self._areplay(rec):
            if run_manager is not None and rec.chunks:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            chunks.append(chunk)
        return await agenerate_from_stream(_aiter(chunks))


async def _aiter(chunks: list[ChatGenerationChunk]) -> AsyncIterator[ChatGenerationChunk]:
    for chunk in chunks:
        yield chunk
