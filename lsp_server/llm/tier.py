"""One provider at run time, and the one way a call to it is made: retried behind its breaker.

`Tier` holds a provider's `ProviderClient`, its `CircuitBreaker` and its probe (a
one-token "ping", never a user's request). `Tier.attempt` is the single
retry-behind-breaker: each attempt is admitted by the breaker and cut at its
budget, retryable failures are retried (`retry.call_with_retry`) and it gives up
at once when a wait would pass the deadline or the breaker opens. `Tier.complete`
and `Tier.embed` are its two uses. When the breaker opens, a timer starts the probe
as soon as the cooldown ends; user traffic in half-open is turned away at once
(`CircuitOpen`) so the chain (`chain.py`) goes to the next tier without waiting.
`asyncio.CancelledError` is never caught: cancellation is neutral for the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lsp_server.llm.breaker import BreakerConfig, BreakerState, CircuitBreaker
from lsp_server.llm.client import Embeddings, ProviderClient, ProviderConfig
from lsp_server.llm.providers import TierSpec, list_models
from lsp_server.llm.retry import Deadline, RetryPolicy, call_with_retry
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.telemetry import metrics, tracing
from lsp_server.telemetry.usage import UsageLog

logger = logging.getLogger(__name__)

T = TypeVar("T")

HARD_TIMEOUT_GRACE = 0.25
"""Seconds past an attempt's timeout before we stop waiting ourselves (slow streams)."""

PROBE_PROMPT = "ping"


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
                state = {"llm_lsp.breaker_state": self.breaker.state.value}
                async with self.breaker.call(), asyncio.timeout(budget + HARD_TIMEOUT_GRACE):
                    with tracing.tagged(state):
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
        metrics.record_breaker(self.spec.name, old.value, new.value)
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
