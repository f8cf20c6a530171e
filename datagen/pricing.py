"""Estimated cost per call, from published per-million-token list prices (USD, checked 2025; prices change —
override with --price-in/--price-out). Batch APIs bill half. A model not listed has an unknown price: the
job shows "unknown" instead of guessing."""
from __future__ import annotations

# model prefix -> (input $/1M tokens, output $/1M tokens); the longest matching prefix wins.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    if override is not None:
        return override
    matches = [p for p in PRICES if model.startswith(p)]
    return PRICES[max(matches, key=len)] if matches else None


def estimate_cost(model: str, input_tokens: int, output_tokens: int, *, batch: bool = False,
                  override: tuple[float, float] | None = None) -> float | None:
    price = price_for(model, override)
    if price is None:
        return None
    cost = (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
    return cost / 2 if batch else cost
