"""The provider chain: try each routed tier behind its breaker, with deadline-aware retry.

`run_chain` walks a `Route`. Each tier gets the request's deadline less a reserve kept
for the tiers after it (`reserve` of the remaining time, when a later tier's breaker
is closed), so a hanging primary still leaves time for the cheap and local models.
Within a tier, `Tier.attempt` (`tier.py`: the one retry-behind-breaker, also used for
embeddings) retries retryable failures and gives up at once when a wait would pass the
tier's deadline or the breaker opens. An auth or quota failure
skips later tiers on the same account (same endpoint, same key). Every skipped step is
written to the usage log (outcome "skipped") next to the client's per-attempt records.

The answer says which tier produced it and why earlier ones did not (`Completion.notice`);
when none can answer, `AllTiersFailed` carries a user-readable summary per tier.
`asyncio.CancelledError` is never caught: cancellation is neutral for every breaker.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lsp_server.llm.breaker import BreakerState, CircuitOpen
from lsp_server.llm.providers import TierSpec
from lsp_server.llm.retry import Deadline, RetryGaveUp, RetryPolicy
from lsp_server.llm.router import Route, RouteStep
from lsp_server.llm.tier import Tier
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.telemetry import metrics, tracing
from lsp_server.telemetry.usage import UsageLog, UsageRecord

logger = logging.getLogger(__name__)

_ACCOUNT_KINDS = frozenset({ErrorKind.AUTH_ERROR, ErrorKind.QUOTA_EXCEEDED})


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """Why one routed tier did not answer."""

    name: str
    role: str
    label: str
    reason: str
    kind: ErrorKind | None = None
    detail: str = ""
    skipped: bool = False

    def line(self) -> str:
        """ "gpt-4o unavailable: circuit open for 42 s"."""
        return f"{self.label} unavailable: {self.reason}"


class AllTiersFailed(ProviderFailure):
    """No tier could answer. `message` is a user-readable summary of every tier."""

    def __init__(self, outcomes: Sequence[StepOutcome], route_reason: str = "") -> None:
        self.outcomes = tuple(outcomes)
        self.route_reason = route_reason
        failed = [o for o in self.outcomes if o.kind is not None]
        kind = failed[0].kind if failed and failed[0].kind else ErrorKind.CONNECTION_ERROR
        parts = [
            f"{o.label}: {o.reason}" + (f" ({o.detail})" if o.detail else "") for o in self.outcomes
        ]
        summary = "; ".join(parts) if parts else "no provider configured"
        first = self.outcomes[0] if self.outcomes else None
        super().__init__(
            kind,
            summary,
            provider=first.name if first else "",
            model=first.label if first else "",
        )
        self.summary = summary


def _kind_label(failure: ProviderFailure) -> str:
    text = failure.kind.value.replace("_", " ")
    return text if failure.status is None else f"{text} {failure.status}"


def describe_gave_up(exc: RetryGaveUp) -> str:
    """Why a tier gave up, in a few words: "rate limited 429, retry after 60 s ..."."""
    label = _kind_label(exc)
    why = exc.gave_up_reason
    if why.startswith("not retryable"):
        return label
    if why.startswith("attempts exhausted"):
        return f"{label} after {exc.attempts} attempt" + ("s" if exc.attempts != 1 else "")
    if why.startswith("wait"):
        if exc.retry_after is not None:
            return f"{label}, retry after {math.ceil(exc.retry_after)} s is past the deadline"
        return f"{label}, no time left to retry"
    if why.startswith("deadline passed"):
        return f"{label}, deadline reached" if exc.attempts else "no time left before the deadline"
    return f"{label}, {why}"


def describe_open(exc: CircuitOpen) -> str:
    """ "circuit open for 42 s" or "circuit half-open, probing"."""
    if exc.state is BreakerState.OPEN:
        return f"circuit open for {math.ceil(exc.retry_in)} s"
    return "circuit half-open, probing"


def notice(outcomes: Sequence[StepOutcome], answered: RouteStep) -> str | None:
    """The one-line notice for an answer from a later tier; None from the first."""
    if not outcomes:
        return None
    lines = "; ".join(o.line() for o in outcomes)
    return f"{lines}; answered by {answered.spec.role} {answered.label}"


def _skip_record(
    usage_log: UsageLog,
    request: ChatRequest,
    request_id: str,
    step: RouteStep,
    route: str,
    cls: str,
) -> None:
    usage_log.write(
        UsageRecord(
            request_id=request_id,
            feature=request.feature,
            provider=step.spec.name,
            model=step.model,
            outcome="skipped",
            latency_ms=0.0,
            error_class=cls,
            tier=step.spec.role,
            route=route,
        )
    )


async def run_chain(
    tiers: Mapping[str, Tier],
    route: Route,
    request: ChatRequest,
    *,
    deadline: Deadline,
    request_id: str,
    policy: RetryPolicy,
    reserve: float,
    usage_log: UsageLog,
) -> Completion:
    """The first tier's answer along `route`, or `AllTiersFailed`."""
    outcomes: list[StepOutcome] = []
    dead_accounts: list[tuple[TierSpec, StepOutcome]] = []
    steps = [s for s in route.steps if s.spec.name in tiers]
    for i, step in enumerate(steps):
        tier = tiers[step.spec.name]
        label = step.model or tier.known_model or step.spec.name
        shared = next((o for spec, o in dead_accounts if spec.same_account(step.spec)), None)
        if shared is not None:
            reason = f"same account as {shared.label} ({shared.reason})"
            outcomes.append(
                StepOutcome(step.spec.name, step.spec.role, label, reason, skipped=True)
            )
            _skip_record(usage_log, request, request_id, step, route.reason, "same_account")
            continue
        if deadline.expired:
            outcomes.append(
                StepOutcome(
                    step.spec.name,
                    step.spec.role,
                    label,
                    "no time left before the deadline",
                    ErrorKind.TIMEOUT,
                    skipped=True,
                )
            )
            _skip_record(usage_log, request, request_id, step, route.reason, "deadline")
            continue
        later = any(tiers[s.spec.name].viable for s in steps[i + 1 :])
        tier_deadline = deadline
        if later and reserve > 0:
            budget = deadline.remaining() * (1.0 - reserve)
            tier_deadline = Deadline(deadline.clock() + budget, deadline.clock)
        try:
            completion = await tier.complete(
                request,
                step.model,
                request_id=request_id,
                deadline=tier_deadline,
                policy=policy,
                route=route.reason,
            )
        except CircuitOpen as exc:
            outcomes.append(
                StepOutcome(
                    step.spec.name,
                    step.spec.role,
                    label,
                    describe_open(exc),
                    detail=exc.reason,
                    skipped=True,
                )
            )
            _skip_record(usage_log, request, request_id, step, route.reason, "circuit_open")
            _traced_skip(step, "circuit_open", exc.state.value)
            logger.info("request %s: %s skipped: %s", request_id, step.spec.name, exc)
            continue
        except RetryGaveUp as exc:
            label = step.model or tier.known_model or step.spec.name
            outcome = StepOutcome(
                step.spec.name,
                step.spec.role,
                label,
                describe_gave_up(exc),
                exc.kind,
                exc.message,
            )
            outcomes.append(outcome)
            if exc.kind in _ACCOUNT_KINDS:
                dead_accounts.append((step.spec, outcome))
            _traced_skip(step, exc.kind.value, tier.breaker.state.value)
            logger.info("request %s: %s gave up: %s", request_id, step.spec.name, outcome.reason)
            continue
        answered = dataclasses.replace(step, model=completion.model)
        if outcomes:
            metrics.record_fallback(feature=request.feature, tier=step.spec.role)
        return dataclasses.replace(
            completion,
            tier=step.spec.role,
            notice=notice(outcomes, answered),
            route_reason=route.reason,
        )
    metrics.record_fallback(feature=request.feature, tier="none")
    raise AllTiersFailed(outcomes, route.reason)


def _traced_skip(step: RouteStep, why: str, breaker: str) -> None:
    """A tier that did not answer, as an event on the request's chain span."""
    attrs = {"gen_ai.provider.name": step.spec.name, "llm_lsp.tier": step.spec.role}
    tracing.current().event(
        "tier.failed", {**attrs, "error.type": why, "llm_lsp.breaker_state": breaker}
    )
