"""The local model's embeddings (``POST /v1/embeddings``): hashed n-gram unit vectors.

A text's vector is the sum of its features, each hashed (CRC-32) to a signed
coordinate: its words (function words count less), pairs of neighbouring words and
the character trigrams of each word, so texts that share words or word stems point
the same way and unrelated texts are near orthogonal. The vector is scaled to length
1. Token arrays (what ``OpenAIEmbeddings`` sends after tiktoken) are hashed as token
ids and id pairs. Deterministic: the same input always gives the same vector, in
every process.

OpenAI's limits apply, each a 400 in OpenAI's words: at most 2,048 inputs, 8,192
tokens an input, 300,000 tokens a request; ``dimensions`` from 1 to the model's size.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import sys
import zlib
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, cast

import orjson
from aiohttp import web

from chainkit.models.local._analysis import STOP_WORDS
from chainkit.models.local._chat import model_request
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._fields import invalid_type, missing_param, read_model
from chainkit.models.local._requests import Answer
from chainkit.models.local._responses import Events
from chainkit.models.local._serving import LocalModel
from chainkit.models.local._tokens import count_tokens

__all__ = [
    "EMBEDDINGS_PATH",
    "MAX_INPUTS",
    "MAX_REQUEST_TOKENS",
    "MAX_TOKENS_PER_INPUT",
    "EmbeddingsReply",
    "add_routes",
    "create_embeddings",
    "embed_text",
    "embed_tokens",
]

MAX_INPUTS = 2048
MAX_TOKENS_PER_INPUT = 8192
MAX_REQUEST_TOKENS = 300_000
MAX_TOKEN_ID = 1 << 20  # above any tokenizer's vocabulary
_FIELDS = frozenset(("input", "model", "dimensions", "encoding_format", "user"))
_WORD_RE = re.compile(r"\w+")
_WORD, _STOP_WORD, _PAIR, _TRIGRAM = 1.0, 0.25, 0.5, 0.3
_INLINE_INPUTS, _INLINE_CHARS = 64, 20_000  # beyond either, vectors are made off the loop


def model_dimensions(model: str) -> int:
    """The full size of ``model``'s vectors, as OpenAI's models of that name."""
    return 3072 if "large" in model else 1536


@dataclass(slots=True)
class EmbeddingsReply:
    """Created embeddings: the response JSON, and what the server's counters learn."""

    data: bytes
    answer: Answer  # the prompt tokens and text; no choices
    stream: bool = False

    def body(self) -> bytes:
        return self.data

    def events(self) -> Events:
        raise TypeError("embeddings are never streamed")


def create_embeddings(body: dict[str, Any]) -> EmbeddingsReply:
    """The embeddings for a request body (or :class:`BadRequest`)."""
    for key in body:
        if key not in _FIELDS:
            raise BadRequest(f"Unrecognized request argument supplied: {key}")
    model = read_model(body)
    inputs = _inputs(body.get("input"))
    size = model_dimensions(model)
    dims = body.get("dimensions")
    if dims is None:
        dims = size
    elif isinstance(dims, bool) or not isinstance(dims, int):
        raise invalid_type("dimensions", "an integer", dims)
    elif model == "text-embedding-ada-002":
        raise BadRequest("This model does not support specifying dimensions.", param="dimensions")
    elif not 1 <= dims <= size:
        raise BadRequest(
            f"Invalid 'dimensions': {dims}. Expected a value from 1 to {size} for {model}.",
            param="dimensions",
            code="invalid_value",
        )
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest(
            f"Invalid value for 'encoding_format': {fmt!r}. Supported values are: 'float' "
            "and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    tokens = 0
    for i, item in enumerate(inputs):
        n = len(item) if isinstance(item, list) else count_tokens(item)
        if n > MAX_TOKENS_PER_INPUT:
            raise BadRequest(
                f"This model's maximum context length is {MAX_TOKENS_PER_INPUT} tokens, "
                f"however you requested {n} tokens ({n} in your prompt; 0 for the "
                f"completion) in input[{i}]. Please reduce your prompt.",
                param="input",
                code="context_length_exceeded",
            )
        tokens += n
    if tokens > MAX_REQUEST_TOKENS:
        raise BadRequest(
            f"Requested {tokens} tokens, max {MAX_REQUEST_TOKENS} tokens per request; "
            "send fewer or shorter inputs per request.",
            param="input",
            code="max_tokens_per_request",
        )
    data = []
    for i, item in enumerate(inputs):
        vector = embed_text(item, dims) if isinstance(item, str) else embed_tokens(item, dims)
        if fmt == "base64":
            if sys.byteorder == "big":  # pragma: no cover - OpenAI sends little-endian
                vector.byteswap()
            encoded: Any = base64.b64encode(vector.tobytes()).decode()
        else:
            encoded = vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    body_out = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    text = "\n".join(i if isinstance(i, str) else orjson.dumps(i).decode() for i in inputs)
    answer = Answer([], tokens, text, stream=False, include_usage=False, model=model)
    return EmbeddingsReply(orjson.dumps(body_out), answer)


def _inputs(value: Any) -> list[str | list[int]]:
    """The inputs as texts or token arrays (one kind per request, as OpenAI's)."""
    if value is None:
        raise missing_param("input")
    if isinstance(value, str) or (
        isinstance(value, list) and value and all(_is_token(t) for t in value)
    ):
        value = [value]
    if not isinstance(value, list) or not value:
        raise BadRequest(
            "Invalid 'input': expected a non-empty string, an array of strings, an array of "
            f"token ids or an array of token arrays, but got {_describe(value)}.",
            param="input",
            code="invalid_type",
        )
    if len(value) > MAX_INPUTS:
        raise BadRequest(
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_INPUTS}, but got an array with length {len(value)} instead; "
            "split the inputs over several requests.",
            param="input",
            code="array_above_max_length",
        )
    texts = isinstance(value[0], str)
    for i, item in enumerate(value):
        if texts and isinstance(item, str) and item:
            continue
        if not texts and isinstance(item, list) and item and all(map(_is_token, item)):
            continue
        expected = (
            "a non-empty string, as input[0]"
            if texts
            else f"a non-empty array of token ids (integers from 0 to {MAX_TOKEN_ID - 1}), "
            "as input[0]"
        )
        raise BadRequest(
            f"Invalid 'input[{i}]': expected {expected}, but got {_describe(item)}.",
            param=f"input[{i}]",
            code="invalid_value" if item == "" else "invalid_type",
        )
    return cast("list[str | list[int]]", value)  # checked item by item above


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKEN_ID


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "an empty array" if not value else "an array with other values"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return f"a value of type {type(value).__name__}"


# ------------------------------------------------------------------ vectors


@lru_cache(maxsize=65536)
def _word_features(word: str, dims: int) -> tuple[tuple[int, float], ...]:
    """(coordinate, signed weight) of a word and its character trigrams."""
    weight = _STOP_WORD if word in STOP_WORDS else _WORD
    features = [_hashed(b"w\x1f" + word.encode(), weight, dims)]
    marked = f"<{word}>"
    if len(marked) > 3:
        features += [
            _hashed(b"c\x1f" + marked[i : i + 3].encode(), _TRIGRAM, dims)
            for i in range(len(marked) - 2)
        ]
    return tuple(features)


def _hashed(feature: bytes, weight: float, dims: int) -> tuple[int, float]:
    h = zlib.crc32(feature)
    return (h >> 1) % dims, (weight if h & 1 else -weight)


def _unit(vector: dict[int, float], dims: int, fallback: bytes) -> array[float]:
    """The dense float32 unit vector of sparse ``vector``."""
    dense = array("f", bytes(4 * dims))
    norm = math.sqrt(sum(x * x for x in vector.values()))
    if norm == 0.0:  # no features (only punctuation): a fixed direction for this input
        index, _ = _hashed(b"z\x1f" + fallback, 1.0, dims)
        dense[index] = 1.0
        return dense
    for index, value in vector.items():
        dense[index] = value / norm
    return dense


def embed_text(text: str, dims: int) -> array[float]:
    """The unit vector of ``text`` in ``dims`` dimensions (float32)."""
    vector: defaultdict[int, float] = defaultdict(float)
    words = _WORD_RE.findall(text.lower())
    for word, count in Counter(words).items():
        scale = 1.0 + math.log(count)
        for index, weight in _word_features(word, dims):
            vector[index] += weight * scale
    content = [w for w in words if w not in STOP_WORDS]
    for pair, count in Counter(pairwise(content)).items():
        index, weight = _hashed(f"b\x1f{pair[0]}\x1f{pair[1]}".encode(), _PAIR, dims)
        vector[index] += weight * (1.0 + math.log(count))
    return _unit(vector, dims, text.encode())


def embed_tokens(tokens: list[int], dims: int) -> array[float]:
    """The unit vector of a token array: its token ids and neighbouring id pairs."""
    vector: defaultdict[int, float] = defaultdict(float)
    for token, count in Counter(tokens).items():
        index, weight = _hashed(b"t\x1f%d" % token, _WORD, dims)
        vector[index] += weight * (1.0 + math.log(count))
    for pair, count in Counter(pairwise(tokens)).items():
        index, weight = _hashed(b"p\x1f%d\x1f%d" % pair, _PAIR, dims)
        vector[index] += weight * (1.0 + math.log(count))
    return _unit(vector, dims, orjson.dumps(tokens))


EMBEDDINGS_PATH = "/v1/embeddings"


def add_routes(app: web.Application) -> None:
    """Serve ``POST /v1/embeddings`` (also without the ``/v1`` prefix), with the server's
    faults and delays (``ttft``) and counted in its stats, as chat completions are."""
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/embeddings", _embeddings)


async def _make(payload: dict[str, Any], seed: int, model: LocalModel) -> EmbeddingsReply:
    """Small requests at once; large ones in a worker thread, so the server's event loop
    keeps serving others meanwhile (the work itself is bounded by the input limits)."""
    inputs = payload.get("input")
    many = isinstance(inputs, list) and len(inputs) > _INLINE_INPUTS
    if many or _text_size(inputs) > _INLINE_CHARS:
        return await asyncio.to_thread(create_embeddings, payload)
    return create_embeddings(payload)


def _text_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(v) if isinstance(v, str | list) else 1 for v in value)
    return 0


async def _embeddings(request: web.Request) -> web.StreamResponse:
    return await model_request(request, EMBEDDINGS_PATH, _make)
