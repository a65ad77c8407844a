"""What tokens cost: a small table of well-known models' prices, overridable.

Prices are US dollars per million tokens at synchronous (regular API) rates;
a provider batch costs ``BATCH_DISCOUNT`` of that (OpenAI's Batch API: half).
A model not in the table has an unknown cost (shown as "unknown"), never a
guessed one. Override or extend it with ``prices={"my-model": Price(1.0, 2.0)}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chainkit.errors import ConfigError

__all__ = ["BATCH_DISCOUNT", "PRICES", "Cost", "Price", "estimate_cost", "find_price"]

BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million input and output tokens, at synchronous rates."""

    input: float
    output: float

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ConfigError(f"a price must be >= 0 dollars per million tokens, got {self!r}")


# OpenAI's published standard prices (USD per 1M tokens), as of 2025.
PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o3": Price(2.00, 8.00),
    "o4-mini": Price(1.10, 4.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
}


@dataclass(frozen=True, slots=True)
class Cost:
    """The estimated cost of some tokens, in dollars; None where the price is unknown."""

    sync: float | None
    batch: float | None

    @staticmethod
    def text(value: float | None) -> str:
        return "unknown" if value is None else f"${value:.4f}"


def find_price(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model``: exact name first, then a dated version (``gpt-4o-2024-08-06``)."""
    table = {**PRICES, **(prices or {})}
    if model in table:
        return table[model]
    for name in sorted(table, key=len, reverse=True):
        if model.startswith(name + "-") and model[len(name) + 1 : len(name) + 2].isdigit():
            return table[name]
    return None


def estimate_cost(
    model: str,
    input_tokens: int,
    output_tokens: int,
    prices: Mapping[str, Price] | None = None,
) -> Cost:
    price = find_price(model, prices)
    if price is None:
        return Cost(None, None)
    sync = (input_tokens * price.input + output_tokens * price.output) / 1_000_000
    return Cost(sync, sync * BATCH_DISCOUNT)
