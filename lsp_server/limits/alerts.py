"""Budget alerts and limit records: once per budget, period and threshold, for everyone.

Crossing 50, 80 and 100 % of a budget raises an alert once per period, across
processes (the backend's `first`): a `LimitEvent` for the listener (the server shows
it with ``window/showMessage``; a metrics exporter can count it: subscribe through
`Engine.limit_listeners`) and a usage-log record (feature "budget", outcome "alert",
``error_class`` "budget_50"/"budget_80"/"budget_100", the message in ``route``).
Reservations keep spend below the limit, so 100 % is the first request a budget
refuses. A request degraded by a limit is recorded too (outcome "limited").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from lsp_server.limits.backend import Backend, Charge
from lsp_server.limits.window import NANO
from lsp_server.settings_limits import BudgetRule
from lsp_server.telemetry.usage import UsageLog, UsageRecord

logger = logging.getLogger(__name__)

THRESHOLDS = (50, 80, 100)
"""Percentages of a budget that raise an alert, once each per period."""


@dataclass(frozen=True, slots=True)
class LimitEvent:
    """Something the user (and a metrics exporter) should know about the limits.

    ``kind`` "alert": a budget crossed ``threshold`` % (``used`` of ``limit``, in USD
    or tokens per ``unit``); "backend": the shared store is unreachable."""

    kind: str
    message: str
    scope: str = ""
    period: str = ""
    unit: str = ""
    threshold: int = 0
    used: float = 0.0
    limit: float = 0.0


Listener = Callable[[LimitEvent], None]


def describe_budget(rule: BudgetRule, who: str) -> str:
    """ "daily USD budget of user alice"."""
    period = "daily" if rule.period == "day" else "monthly"
    unit = "USD" if rule.unit == "usd" else "token"
    return f"{period} {unit} budget of {rule.scope} {who}"


def amount_text(rule: BudgetRule, value: float) -> str:
    """A counter's value as a user reads it: "$0.0123" or "1200 tokens"."""
    return f"${value / NANO:.4f}" if rule.unit == "usd" else f"{int(value)} tokens"


class Alerts:
    """Raises budget alerts and writes limit records."""

    def __init__(self, backend: Backend, usage_log: UsageLog, notify: Listener | None) -> None:
        self.backend = backend
        self.usage_log = usage_log
        self.notify = notify

    async def budget(
        self, rule: BudgetRule, who: str, charge: Charge, value: int, *, refused: bool = False
    ) -> None:
        """The alerts due for a budget counter at ``value`` (``refused``: it said no)."""
        limit = charge.limit
        if limit <= 0:
            return
        percent = 100.0 * value / limit
        for threshold in THRESHOLDS:
            due = refused if threshold == 100 else (refused or percent >= threshold)
            if not due or not await self.backend.first(
                f"alert:{charge.key}:{threshold}", charge.ttl
            ):
                continue
            message = (
                f"llm-lsp: {describe_budget(rule, who)} at {threshold} % "
                f"({amount_text(rule, value)} of {amount_text(rule, limit)})"
            )
            if threshold == 100:
                message += ": paid models are off until the period ends"
            scale = NANO if rule.unit == "usd" else 1
            self.record("", "alert", message, f"budget_{threshold}")
            self.emit(
                LimitEvent(
                    "alert",
                    message,
                    rule.scope,
                    rule.period,
                    rule.unit,
                    threshold,
                    value / scale,
                    limit / scale,
                )
            )

    def emit(self, event: LimitEvent) -> None:
        """Hand ``event`` to the listener; a failing listener is logged, never raised."""
        logger.info("%s", event.message)
        if self.notify is None:
            return
        try:
            self.notify(event)
        except Exception:  # a listener's bug must not fail the request
            logger.exception("limits listener failed")

    def record(self, request_id: str, outcome: str, text: str, cls: str) -> None:
        """One usage-log line for a limits event (no provider, no tokens, no cost)."""
        self.usage_log.write(
            UsageRecord(
                request_id=request_id,
                feature="budget" if cls.startswith("budget") else "rate_limit",
                provider="llm-lsp",
                model="",
                outcome=outcome,
                latency_ms=0.0,
                error_class=cls,
                tier="",
                route=text,
                kind="limit",
            )
        )
