"""The one door to the models: route a request, then walk the provider chain.

`LlmService` builds one `Tier` (client + circuit breaker + probe) per callable
provider in the settings' chain (see `providers.tier_specs`), a `Router` over them,
and the retry policy from settings. `complete` routes the request, walks the tiers
(`chain.run_chain`) and returns the first answer with `tier`, `notice` and
`route_reason` filled in, or raises `AllTiersFailed` (a `ProviderFailure`) with a
readable summary per tier, after which the engine answers from the cache or static
analysis. The router's decision is stamped on every usage record of the request.

Breakers live as long as the service: the engine builds a new service when the
settings change, which starts every provider afresh.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import time

from lsp_server.llm.breaker import BreakerConfig
from lsp_server.llm.chain import AllTiersFailed, Tier, run_chain
from lsp_server.llm.providers import TierSpec, tier_specs
from lsp_server.llm.retry import Deadline, RetryPolicy
from lsp_server.llm.router import Router
from lsp_server.llm.types import ChatRequest, Completion
from lsp_server.settings import Settings
from lsp_server.telemetry.usage import UsageLog, UsageRecord

logger = logging.getLogger(__name__)

__all__ = ["AllTiersFailed", "LlmService"]

_ROUTE: contextvars.ContextVar[str] = contextvars.ContextVar("llm_route", default="")


class _RoutedUsageLog(UsageLog):
    """Stamps the current request's route on each record, then writes it through."""

    def __init__(self, inner: UsageLog) -> None:
        super().__init__(inner.path)
        self._inner = inner

    def write(self, record: UsageRecord) -> None:
        route = _ROUTE.get()
        self._inner.write(dataclasses.replace(record, route=route) if route else record)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe (the OpenAI schedule by default)."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        initial_backoff=settings.retry_initial_backoff,
        max_backoff=max(settings.retry_max_backoff, settings.retry_initial_backoff),
    )


def breaker_config(settings: Settings) -> BreakerConfig:
    """Breaker thresholds and cooldowns from settings."""
    return BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_seconds=settings.breaker_cooldown,
        quota_cooldown_seconds=max(settings.breaker_quota_cooldown, settings.breaker_cooldown),
        probe_timeout_seconds=max(settings.timeout * 2, 5.0),
    )


class LlmService:
    """Provider tiers for the current settings, behind one `complete` call."""

    def __init__(
        self,
        settings: Settings,
        usage_log: UsageLog,
        *,
        policy: RetryPolicy | None = None,
        breakers: BreakerConfig | None = None,
    ) -> None:
        self.settings = settings
        self.usage_log = usage_log
        self.policy = policy or retry_policy(settings)
        self._log = _RoutedUsageLog(usage_log)
        self.specs: tuple[TierSpec, ...] = tier_specs(settings)
        config = breakers or breaker_config(settings)
        self.tiers: dict[str, Tier] = {
            spec.name: Tier(spec, self._log, config)
            for spec in self.specs
            if spec.unavailable is None
        }
        self.router = Router([t.spec for t in self.tiers.values()], settings.routing_rules)

    @property
    def available(self) -> bool:
        """Whether any provider can be called at all."""
        return bool(self.tiers)

    def breaker_states(self) -> dict[str, str]:
        """Each provider's breaker, e.g. {"openai": "open 42 s: ...", "local": "closed"}."""
        return {name: tier.breaker.describe() for name, tier in self.tiers.items()}

    async def complete(
        self, request: ChatRequest, *, deadline: float, request_id: str
    ) -> Completion:
        """The first answer along the routed tiers by `deadline` (absolute monotonic).

        Raises `AllTiersFailed` when no tier answers; `CancelledError` propagates.
        """
        route = self.router.route(request)
        token = _ROUTE.set(route.reason)
        try:
            return await run_chain(
                self.tiers,
                route,
                request,
                deadline=Deadline(deadline, time.monotonic),
                request_id=request_id,
                policy=self.policy,
                reserve=self.settings.fallback_reserve,
                usage_log=self._log,
            )
        finally:
            _ROUTE.reset(token)

    async def aclose(self) -> None:
        """Stop probes and close every client's connections."""
        for tier in self.tiers.values():
            await tier.aclose()
