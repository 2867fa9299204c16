"""The cost of an LLM call from its model and token counts (USD).

:data:`OPENAI_PRICES` holds OpenAI's public list prices per million tokens (input, output) for
common chat models, as published in 2025; they change, so an application passes its own
(``instrument_openai(client, prices={...})``) to override or extend them. A model matches its
longest listed name followed by nothing or a ``-`` suffix (``gpt-4o-2024-08-06`` is ``gpt-4o``,
``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``). An unknown model has no cost (``None``), never
a guessed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class ModelPrice(NamedTuple):
    input_per_million: float
    output_per_million: float


OPENAI_PRICES: Mapping[str, ModelPrice] = {
    "gpt-5": ModelPrice(1.25, 10.00),
    "gpt-5-mini": ModelPrice(0.25, 2.00),
    "gpt-5-nano": ModelPrice(0.05, 0.40),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4-turbo": ModelPrice(10.00, 30.00),
    "gpt-4": ModelPrice(30.00, 60.00),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "o1": ModelPrice(15.00, 60.00),
    "o1-mini": ModelPrice(1.10, 4.40),
    "o3": ModelPrice(2.00, 8.00),
    "o3-mini": ModelPrice(1.10, 4.40),
    "o4-mini": ModelPrice(1.10, 4.40),
}


def price_of(model: str | None, prices: Mapping[str, ModelPrice] = OPENAI_PRICES) -> ModelPrice | None:
    if not model:
        return None
    for name in sorted(prices, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return prices[name]
    return None


def cost_of(
    model: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    prices: Mapping[str, ModelPrice] = OPENAI_PRICES,
) -> float | None:
    """USD for the call, or ``None`` when the model's price or the token counts are unknown."""
    price = price_of(model, prices)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million) / 1_000_000
