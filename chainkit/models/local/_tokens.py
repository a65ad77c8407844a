"""Tokens and seeds of the local model: what its usage counts and its choices rest on.

Tokens are word-ish: a word with its leading whitespace is one token, each
punctuation mark is one (:func:`tokenize`); usage counts use the same rule.
:class:`Rng` is seeded with :func:`stable_seed`, so the same request always
gives the same words in every process.
"""

from __future__ import annotations

import hashlib
import random
import re
from functools import lru_cache
from typing import Any

__all__ = ["Rng", "count_tokens", "stable_seed", "tokenize"]

_TOKEN_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens whose concatenation is ``text``."""
    return _TOKEN_RE.findall(text)


@lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


class Rng(random.Random):
    """A fast seeded generator (splitmix64) with :class:`random.Random`'s methods.

    Seeding the standard Mersenne Twister costs more than writing a short text,
    and the server seeds one per request.
    """

    _state: int

    def seed(self, a: Any = None, version: int = 2) -> None:
        self._state = (int(a) if a is not None else 0) & _MASK64

    def _next(self) -> int:
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self._next() >> 11) * 1.1102230246251565e-16

    def getrandbits(self, k: int) -> int:
        if k <= 64:
            return self._next() >> (64 - k) if k else 0
        return int.from_bytes(
            b"".join(self._next().to_bytes(8, "big") for _ in range((k + 63) // 64)), "big"
        ) >> (-k % 64)

    def getstate(self) -> Any:
        return self._state

    def setstate(self, state: Any) -> None:
        self._state = int(state)


_MASK64 = (1 << 64) - 1


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` that is the same in every process."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
