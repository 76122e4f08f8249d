"""What a request may cost before it is sent: counted prompt plus the longest answer.

The estimate is an upper bound for one call: the prompt's tokens as tiktoken counts
them (`context/tokens.py`, with the per-message overhead) and ``max_tokens`` of
answer, at the dearest of the models the request may reach (`llm/pricing.py`; an
unpriced model, e.g. a local one, costs nothing). Cached prompt tokens are not
assumed: a discount the provider may give is settled afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable

from lsp_server.llm.pricing import cost_usd


def estimate_usd(models: Iterable[str], prompt_tokens: int, max_tokens: int) -> float:
    """The highest cost of ``prompt_tokens`` in and ``max_tokens`` out over ``models``."""
    return max((cost_usd(m, prompt_tokens, max_tokens) for m in models), default=0.0)


def format_usd(usd: float) -> str:
    """A short price for a title: "$0.004", "$0.12", "< $0.001"."""
    if usd < 0.001:
        return "< $0.001"
    if usd < 0.1:
        return f"${usd:.3f}"
    return f"${usd:.2f}"
