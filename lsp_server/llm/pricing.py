"""USD prices per million tokens, and the cost of one call.

Prices are list prices of the OpenAI API (standard tier) as published for
these models; cached prompt tokens are billed at the cached-input rate.
Embedding models bill input tokens only (their output and cached prices are
listed as the input price and zero). Local endpoints cost nothing per token. A
model missing from the table is reported as unpriced (cost 0.0) rather than
guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    """Per-million-token prices in USD."""

    input: float
    cached_input: float
    output: float


PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "o3": Price(2.00, 0.50, 8.00),
    "o3-mini": Price(1.10, 0.55, 4.40),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    # Embeddings: input tokens only.
    "text-embedding-3-small": Price(0.02, 0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.13, 0.0),
    "text-embedding-ada-002": Price(0.10, 0.10, 0.0),
}


def price_for(model: str) -> Price | None:
    """The price of `model`, matching dated snapshots (gpt-4o-2024-08-06) to their family."""
    if model in PRICES:
        return PRICES[model]
    best = ""
    for name in PRICES:
        if model.startswith(name + "-") and len(name) > len(best):
            best = name
    return PRICES.get(best) if best else None


def cost_usd(
    model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float:
    """Cost of one call; 0.0 for unpriced (e.g. local) models."""
    price = price_for(model)
    if price is None:
        return 0.0
    cached = min(max(cached_tokens, 0), prompt_tokens)
    total = (
        (prompt_tokens - cached) * price.input
        + cached * price.cached_input
        + completion_tokens * price.output
    )
    return round(total / 1_000_000, 8)


def describe_price(model: str, *, local: bool = False) -> str:
    """The price applied to ``model``, as the usage log and `llm-lsp cost` show it."""
    if local:
        return "local endpoint: free"
    price = price_for(model)
    if price is None:
        return f"{model}: unpriced (cost 0)"
    return (
        f"${price.input:g} in / ${price.cached_input:g} cached / ${price.output:g} out "
        "per million tokens"
    )
