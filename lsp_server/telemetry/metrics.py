"""Metrics: the GenAI client metrics plus cost, cache, fallbacks, breakers and queue waits.

Instruments (created by `install` from the meter `export.configure` builds; every
``record_*`` is a no-op until then):

- ``gen_ai.client.token.usage`` (histogram, ``{token}``): operation, provider, response
  model, tier, ``gen_ai.token.type`` (input/output).
- ``gen_ai.client.operation.duration`` (histogram, ``s``): operation, provider, request
  model, tier, ``error.type`` on failure.
- ``llm_lsp.cost`` (counter, ``USD``): provider, model, tier.
- ``llm_lsp.cache.lookups`` (counter): ``llm_lsp.cache`` (hit/miss/stale), feature.
- ``llm_lsp.fallbacks`` (counter): feature, ``llm_lsp.tier`` (the tier that answered after
  an earlier one failed, or ``none``).
- ``llm_lsp.breaker.transitions`` (counter): provider, from, to.
- ``llm_lsp.queue.wait`` (histogram, ``s``): feature, outcome.
- ``llm_lsp.budget.alerts`` (counter): scope, period, unit, threshold (50/80/100), raised
  once per budget and period when spend crosses a threshold: the metric to alert on.

The two GenAI metrics follow the semantic conventions' names and units.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Instruments:
    tokens: Histogram
    duration: Histogram
    cost: Counter
    cache: Counter
    fallbacks: Counter
    breaker: Counter
    queue_wait: Histogram
    budget_alerts: Counter


_instruments: _Instruments | None = None


def install(meter: Meter | None) -> None:
    """Record with ``meter`` from now on; None turns metrics off."""
    global _instruments
    if meter is None:
        _instruments = None
        return
    _instruments = _Instruments(
        tokens=meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per provider call"
        ),
        duration=meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of one provider call",
        ),
        cost=meter.create_counter("llm_lsp.cost", unit="USD", description="Money spent"),
        cache=meter.create_counter(
            "llm_lsp.cache.lookups", unit="{lookup}", description="Answer cache lookups"
        ),
        fallbacks=meter.create_counter(
            "llm_lsp.fallbacks",
            unit="{request}",
            description="Requests answered by a later tier, the cache or static analysis",
        ),
        breaker=meter.create_counter(
            "llm_lsp.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes",
        ),
        queue_wait=meter.create_histogram(
            "llm_lsp.queue.wait", unit="s", description="Time a request waited in the queue"
        ),
        budget_alerts=meter.create_counter(
            "llm_lsp.budget.alerts",
            unit="{alert}",
            description="Budget thresholds crossed (50, 80, 100 %), once per budget and period",
        ),
    )


def enabled() -> bool:
    """Whether metrics are recorded."""
    return _instruments is not None


def record_tokens(
    input_tokens: int, output_tokens: int, *, operation: str, provider: str, model: str, tier: str
) -> None:
    """One answered provider call's tokens (two points: input and output)."""
    inst = _instruments
    if inst is None:
        return
    base = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.response.model": model,
        "llm_lsp.tier": tier,
    }
    inst.tokens.record(input_tokens, {**base, "gen_ai.token.type": "input"})
    inst.tokens.record(output_tokens, {**base, "gen_ai.token.type": "output"})


def record_duration(
    seconds: float,
    *,
    operation: str,
    provider: str,
    model: str,
    tier: str,
    error_type: str | None,
) -> None:
    """One provider call's duration, failed ones with ``error.type``."""
    inst = _instruments
    if inst is None:
        return
    attrs = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "llm_lsp.tier": tier,
    }
    if error_type is not None:
        attrs["error.type"] = error_type
    inst.duration.record(seconds, attrs)


def record_cost(usd: float, *, provider: str, model: str, tier: str) -> None:
    """Money one provider call cost."""
    inst = _instruments
    if inst is not None and usd > 0:
        inst.cost.add(
            usd,
            {
                "gen_ai.provider.name": provider,
                "gen_ai.response.model": model,
                "llm_lsp.tier": tier,
            },
        )


def record_cache(outcome: str, *, feature: str) -> None:
    """One answer-cache lookup: ``hit``, ``miss`` or ``stale`` (for the cache's use)."""
    inst = _instruments
    if inst is not None:
        inst.cache.add(1, {"llm_lsp.cache": outcome, "llm_lsp.feature": feature})


def record_fallback(*, feature: str, tier: str) -> None:
    """A request answered by ``tier`` (or ``none``) after the first choice failed."""
    inst = _instruments
    if inst is not None:
        inst.fallbacks.add(1, {"llm_lsp.feature": feature, "llm_lsp.tier": tier})


def record_breaker(provider: str, old: str, new: str) -> None:
    """A circuit breaker changed state."""
    inst = _instruments
    if inst is not None:
        inst.breaker.add(1, {"gen_ai.provider.name": provider, "from": old, "to": new})


def record_queue_wait(seconds: float, *, feature: str, outcome: str) -> None:
    """How long a request waited in the request queue, and how the wait ended."""
    inst = _instruments
    if inst is not None:
        inst.queue_wait.record(seconds, {"llm_lsp.feature": feature, "outcome": outcome})


def record_budget_alert(*, scope: str, period: str, unit: str, threshold: int) -> None:
    """A budget crossed ``threshold`` % of its limit (said once per budget and period)."""
    inst = _instruments
    if inst is not None:
        attrs = {"llm_lsp.budget.scope": scope, "llm_lsp.budget.period": period}
        attrs |= {"llm_lsp.budget.unit": unit, "llm_lsp.budget.threshold": str(threshold)}
        inst.budget_alerts.add(1, attrs)
