"""The provider chain: try each routed tier behind its breaker, with deadline-aware retry.

`Tier` is one provider at run time: its `ProviderClient`, its `CircuitBreaker`, and its
probe (a one-token "ping", never a user's request). When the breaker opens, a timer
starts the probe as soon as the cooldown ends; user traffic in half-open is turned
away at once (`CircuitOpen`) and goes to the next tier without waiting.

`run_chain` walks a `Route`. Each tier gets the request's deadline less a reserve kept
for the tiers after it (`reserve` of the remaining time, when a later tier's breaker
is closed), so a hanging primary still leaves time for the cheap and local models.
Within a tier, `Tier.attempt` (the one retry-behind-breaker, used by `Tier.complete` and
`Tier.embed`) retries retryable failures and gives up at once when a wait would pass the
tier's deadline or the breaker opens. An auth or quota failure
skips later tiers on the same account (same endpoint, same key). Every skipped step is
written to the usage log (outcome "skipped") next to the client's per-attempt records.

The answer says which tier produced it and why earlier ones did not (`Completion.notice`);
when none can answer, `AllTiersFailed` carries a user-readable summary per tier.
`asyncio.CancelledError` is never caught: cancellation is neutral for every breaker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lsp_server.llm.breaker import BreakerConfig, BreakerState, CircuitBreaker, CircuitOpen
from lsp_server.llm.client import Embeddings, ProviderClient, ProviderConfig
from lsp_server.llm.providers import TierSpec, list_models
from lsp_server.llm.retry import Deadline, RetryGaveUp, RetryPolicy, call_with_retry
from lsp_server.llm.router import Route, RouteStep
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.telemetry.usage import UsageLog, UsageRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")

HARD_TIMEOUT_GRACE = 0.25
"""Seconds past an attempt's timeout before we stop waiting ourselves (slow streams)."""

PROBE_PROMPT = "ping"
_ACCOUNT_KINDS = frozenset({ErrorKind.AUTH_ERROR, ErrorKind.QUOTA_EXCEEDED})


def _is_empty_answer(failure: ProviderFailure) -> bool:
    """A well-formed completion without text (the client's words for it)."""
    return failure.kind is ErrorKind.MALFORMED_RESPONSE and failure.message in (
        "response has no content",
        "stream ended without content",
    )


class Tier:
    """One provider at run time: client, breaker, probe and discovered model."""

    def __init__(self, spec: TierSpec, usage_log: UsageLog, breaker_config: BreakerConfig) -> None:
        self.spec = spec
        self.client = ProviderClient(
            ProviderConfig(
                name=spec.name,
                base_url=spec.base_url,
                api_key=spec.api_key,
                timeout=spec.timeout,
                tier=spec.role,
            ),
            usage_log,
        )
        self.breaker = CircuitBreaker(
            spec.name, breaker_config, probe=self.probe, on_transition=self._on_transition
        )
        self._model = spec.default_model
        self._route = ""  # of the latest call: the probe's usage records carry it
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[bool]] = set()
        self._closed = False

    @property
    def known_model(self) -> str:
        """The configured or discovered model ("" before discovery)."""
        return self._model

    @property
    def viable(self) -> bool:
        """Whether a user request could be sent now (breaker closed)."""
        return self.breaker.state is BreakerState.CLOSED

    async def model(self, limit: float) -> str:
        """The configured model, else the first one `/v1/models` lists (asked once)."""
        if not self._model:
            models = await list_models(self.spec, limit)
            if not models:
                raise ProviderFailure(
                    ErrorKind.CLIENT_ERROR, "endpoint lists no models", provider=self.spec.name
                )
            self._model = models[0]
            logger.info("provider %s: using discovered model %s", self.spec.name, self._model)
        return self._model

    async def attempt(
        self,
        call: Callable[[float, int], Awaitable[T]],
        *,
        deadline: Deadline,
        policy: RetryPolicy,
        route: str,
        model: str = "",
    ) -> T:
        """``call(budget, attempt)`` retried within `deadline`, every attempt behind the
        breaker and cut at its budget: the one retry-behind-breaker for every kind of call.

        A half-open breaker starts its probe (user traffic is rejected meanwhile). Raises
        `CircuitOpen` (not admitted), `RetryGaveUp` (failed) or `CancelledError`.
        """
        self._route = route
        if self.breaker.state is BreakerState.HALF_OPEN:
            self.start_probe()  # rejected below; the probe decides when traffic returns
        attempts = 0

        async def once(budget: float) -> T:
            nonlocal attempts
            attempts += 1
            try:
                async with self.breaker.call(), asyncio.timeout(budget + HARD_TIMEOUT_GRACE):
                    return await call(budget, attempts)
            except TimeoutError:
                raise ProviderFailure(
                    ErrorKind.TIMEOUT,
                    f"no answer within {budget:.1f} s",
                    provider=self.spec.name,
                    model=model,
                ) from None

        return await call_with_retry(
            once,
            policy=policy,
            deadline=deadline,
            attempt_timeout=self.spec.timeout,
            give_up_when=self._breaker_not_closed,
        )

    async def complete(
        self,
        request: ChatRequest,
        model: str,
        *,
        request_id: str,
        deadline: Deadline,
        policy: RetryPolicy,
        route: str = "",
    ) -> Completion:
        """A completion from this tier (`attempt`); ``model`` "" means discover it."""

        async def call(budget: float, attempt: int) -> Completion:
            name = model or await self.model(budget)
            return await self.client.complete(
                request,
                name,
                request_id=request_id,
                attempt_timeout=budget,
                attempt=attempt,
                route=route,
            )

        return await self.attempt(call, deadline=deadline, policy=policy, route=route, model=model)

    async def embed(
        self,
        texts: list[str],
        model: str,
        *,
        request_id: str,
        deadline: Deadline,
        policy: RetryPolicy,
        dimensions: int | None = None,
        route: str = "",
    ) -> Embeddings:
        """Vectors for ``texts`` from this tier, in one request (`attempt`)."""

        async def call(budget: float, attempt: int) -> Embeddings:
            return await self.client.embed(
                texts,
                model,
                request_id=request_id,
                dimensions=dimensions,
                attempt_timeout=budget,
                attempt=attempt,
                route=route,
            )

        return await self.attempt(call, deadline=deadline, policy=policy, route=route)

    def _breaker_not_closed(self) -> str | None:
        if self.breaker.state is BreakerState.CLOSED:
            return None
        return f"circuit {self.breaker.describe()}"

    # -- probe -----------------------------------------------------------------------

    async def probe(self) -> None:
        """A one-token "ping" completion; raises if the provider is not healthy."""
        request = ChatRequest(
            messages=[{"role": "user", "content": PROBE_PROMPT}],
            feature="probe",
            max_tokens=1,
            temperature=0.0,
        )
        timeout = self.spec.timeout
        try:
            await self.client.complete(
                request,
                await self.model(timeout),
                request_id=f"probe-{uuid.uuid4().hex[:12]}",
                attempt_timeout=timeout,
                route=self._route,
            )
        except ProviderFailure as failure:
            if not _is_empty_answer(failure):
                raise
        logger.info("provider %s: probe succeeded", self.spec.name)

    def start_probe(self) -> None:
        """Start the probe as a tracked background task if one is due."""
        if self._closed:
            return
        task = self.breaker.schedule_probe()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_transition(self, old: BreakerState, new: BreakerState, reason: str) -> None:
        if new is BreakerState.OPEN and not self._closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # tripped outside the event loop (tests): no timer
                return
            self._schedule_probe_timer(loop)

    def _schedule_probe_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Probe once the cooldown ends (re-armed if the clocks disagree slightly)."""
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            if self._closed:
                return
            if self.breaker.state is BreakerState.OPEN:
                self._schedule_probe_timer(loop)
            else:
                self.start_probe()

        handle = loop.call_later(self.breaker.retry_in + 0.01, fire)
        self._timers.add(handle)

    async def aclose(self) -> None:
        """Stop timers and probes, close connections."""
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()


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
            logger.info("request %s: %s gave up: %s", request_id, step.spec.name, outcome.reason)
            continue
        answered = dataclasses.replace(step, model=completion.model)
        return dataclasses.replace(
            completion,
            tier=step.spec.role,
            notice=notice(outcomes, answered),
            route_reason=route.reason,
        )
    raise AllTiersFailed(outcomes, route.reason)
