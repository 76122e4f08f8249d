"""The one door to the models: route a request, then walk the provider chain.

`LlmService` builds one `Tier` (client + circuit breaker + probe) per callable
provider in the settings' chain (see `providers.tier_specs`), a `Router` over them,
and the retry policy from settings. `complete` routes the request, walks the tiers
(`chain.run_chain`) and returns the first answer with `tier`, `notice` and
`route_reason` filled in, or raises `AllTiersFailed` (a `ProviderFailure`) with a
readable summary per tier, after which the engine answers from the cache or static
analysis. The router's decision is stamped on every usage record of the request.
Before the chain, the limiter (`lsp_server/limits/`, when the engine gives one)
applies budgets and rate limits: it may narrow the route or refuse with
`LimitExceeded`; what it reserved is settled with the answer or released.

`embed` asks one embedding-capable provider (`embedding_providers`: the primary
endpoint, then a local one) for vectors, in batches of `EMBED_BATCH`, behind the
same breaker and retry policy, each attempt one usage record (feature "embed").
It never moves to another provider on its own: vectors of different models do
not mix, so the caller picks the provider (and keeps one index per provider).

Breakers live as long as the service: the engine builds a new service when the
settings change, which starts every provider afresh.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from lsp_server.llm.breaker import BreakerConfig, CircuitOpen
from lsp_server.llm.chain import (
    AllTiersFailed,
    describe_gave_up,
    describe_open,
    run_chain,
)
from lsp_server.llm.client import Embeddings
from lsp_server.llm.providers import TierSpec, tier_specs
from lsp_server.llm.retry import Deadline, RetryGaveUp, RetryPolicy
from lsp_server.llm.router import Route, Router
from lsp_server.llm.tier import Tier
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure, Usage
from lsp_server.settings import LlmSettings
from lsp_server.telemetry.tracing import span
from lsp_server.telemetry.usage import UsageLog

if TYPE_CHECKING:
    from lsp_server.limits.limiter import Limiter

logger = logging.getLogger(__name__)

__all__ = ["AllTiersFailed", "Embeddings", "LlmService"]

#: Texts per embeddings request.
EMBED_BATCH = 256
#: Provider roles whose endpoints are asked for embeddings, in this order.
EMBED_ROLES = ("primary", "local")


def retry_policy(settings: LlmSettings) -> RetryPolicy:
    """The retry policy the settings describe (the OpenAI schedule by default)."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        initial_backoff=settings.retry_initial_backoff,
        max_backoff=max(settings.retry_max_backoff, settings.retry_initial_backoff),
    )


def breaker_config(settings: LlmSettings) -> BreakerConfig:
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
        settings: LlmSettings,
        usage_log: UsageLog,
        *,
        policy: RetryPolicy | None = None,
        breakers: BreakerConfig | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.settings = settings
        self.usage_log = usage_log
        self.policy = policy or retry_policy(settings)
        self.specs: tuple[TierSpec, ...] = tier_specs(settings)
        config = breakers or breaker_config(settings)
        self.tiers: dict[str, Tier] = {
            spec.name: Tier(spec, usage_log, config)
            for spec in self.specs
            if spec.unavailable is None
        }
        self.router = Router([t.spec for t in self.tiers.values()], settings.routing_rules)
        #: Budgets and rate limits, asked before each request (`lsp_server/limits/`).
        self.limiter = limiter

    @property
    def available(self) -> bool:
        """Whether any provider can be called at all."""
        return bool(self.tiers)

    def prepare(self) -> None:
        """Make every provider's SDK client ahead of the first call (worker thread)."""
        for tier in self.tiers.values():
            tier.client.prepare()

    def breaker_states(self) -> dict[str, str]:
        """Each provider's breaker, e.g. {"openai": "open 42 s: ...", "local": "closed"}."""
        return {name: tier.breaker.describe() for name, tier in self.tiers.items()}

    async def complete(
        self, request: ChatRequest, *, deadline: float, request_id: str
    ) -> Completion:
        """The first answer along the routed tiers by `deadline` (absolute monotonic).

        The limiter (when there is one) may narrow the route (soft limit: the cheaper
        model; hard or rate limit: the local tier) or refuse (`LimitExceeded`, a
        `ProviderFailure`); what it reserved is settled with the answer's usage, or
        released when none comes (failure, cancellation).
        Raises `AllTiersFailed` when no tier answers; `CancelledError` propagates.
        """
        route = self.router.route(request)
        if self.limiter is None:
            return await self._run(request, route, deadline, request_id)
        admission = await self.limiter.admit(request, route, request_id)
        try:
            completion = await self._run(request, admission.route, deadline, request_id)
        except BaseException:
            await admission.release()
            raise
        await admission.settle(completion)
        if admission.notice:
            notice = "; ".join(n for n in (admission.notice, completion.notice) if n)
            completion = dataclasses.replace(completion, notice=notice)
        return completion

    async def _run(
        self, request: ChatRequest, route: Route, deadline: float, request_id: str
    ) -> Completion:
        attrs = {"llm_lsp.feature": request.feature, "llm_lsp.route": route.reason}
        with span("llm.chain", {**attrs, "llm_lsp.request_id": request_id}) as traced:
            completion = await run_chain(
                self.tiers,
                route,
                request,
                deadline=Deadline(deadline, time.monotonic),
                request_id=request_id,
                policy=self.policy,
                reserve=self.settings.fallback_reserve,
                usage_log=self.usage_log,
            )
            traced.update(
                {"llm_lsp.tier": completion.tier, "llm_lsp.cost_usd": completion.cost_usd}
            )
            traced.set("llm_lsp.notice", completion.notice)
            return completion

    def embedding_providers(self) -> list[str]:
        """Providers that can embed, in the order to prefer them: one per endpoint."""
        names: list[str] = []
        seen: set[str] = set()
        for role in EMBED_ROLES:
            for name, tier in self.tiers.items():
                url = tier.spec.url.rstrip("/")
                if tier.spec.role == role and url not in seen:
                    seen.add(url)
                    names.append(name)
        return names

    def viable(self, provider: str) -> bool:
        """Whether ``provider``'s breaker would admit a call now."""
        tier = self.tiers.get(provider)
        return tier is not None and tier.viable

    async def embed(
        self,
        texts: list[str],
        *,
        model: str,
        provider: str,
        deadline: float,
        request_id: str,
        dimensions: int | None = None,
    ) -> Embeddings:
        """Vectors for ``texts`` from ``provider`` by ``deadline`` (absolute monotonic).

        Batches of `EMBED_BATCH`, each retried within the deadline behind the provider's
        breaker. Raises `ProviderFailure` with a readable message when the provider
        cannot answer; `CancelledError` propagates.
        """
        tier = self.tiers.get(provider)
        if tier is None:
            raise ProviderFailure(
                ErrorKind.CLIENT_ERROR, f"no provider {provider!r}", provider=provider
            )
        route = f"embed, {len(texts)} inputs -> {tier.spec.role} {provider}"
        vectors: list[list[float]] = []
        tokens = 0
        cost = 0.0
        for i in range(0, len(texts), EMBED_BATCH):
            batch = await self._embed_batch(
                tier, texts[i : i + EMBED_BATCH], model, deadline, request_id, dimensions, route
            )
            vectors.extend(batch.vectors)
            tokens += batch.usage.prompt_tokens
            cost += batch.cost_usd
        return Embeddings(vectors, model, provider, Usage(prompt_tokens=tokens), round(cost, 8))

    async def _embed_batch(
        self,
        tier: Tier,
        texts: list[str],
        model: str,
        deadline: float,
        request_id: str,
        dimensions: int | None,
        route: str,
    ) -> Embeddings:
        """One batch from ``tier`` (`Tier.embed`), its failure as one readable `ProviderFailure`."""
        try:
            return await tier.embed(
                texts,
                model,
                request_id=request_id,
                deadline=Deadline(deadline, time.monotonic),
                policy=self.policy,
                dimensions=dimensions,
                route=route,
            )
        except CircuitOpen as exc:
            raise ProviderFailure(
                ErrorKind.CONNECTION_ERROR,
                f"{tier.spec.name} {describe_open(exc)}",
                provider=tier.spec.name,
                model=model,
            ) from None
        except RetryGaveUp as exc:
            raise ProviderFailure(
                exc.kind,
                f"{tier.spec.name} {model}: {describe_gave_up(exc)} ({exc.message})",
                status=exc.status,
                provider=tier.spec.name,
                model=model,
            ) from None

    async def aclose(self) -> None:
        """Stop probes and close every client's connections."""
        for tier in self.tiers.values():
            await tier.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()
