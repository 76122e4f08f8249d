"""Budgets and rate limits, enforced at the moment a request is about to be sent.

`Limiter.admit` runs before the provider chain (`LlmService.complete`) and returns an
`Admission`: the route to walk, possibly narrowed, and a notice for the answer.

1. **Rate limits** (per user and team, per feature, by requests and by tokens): the
   request and its estimated tokens enter each sliding window, all or none
   (`backend.rate`). Limited: the local tier answers, else `LimitExceeded`.
2. **Budgets** (per user, workspace and team, per UTC day and month, in USD and
   tokens): the estimate (prompt tokens counted with tiktoken, plus ``max_tokens``,
   at the dearest paid model of the route) is *reserved* on every budget at once,
   only if each stays within its limit (`backend.reserve`), so concurrent requests, in
   this process or another, cannot overspend together. Past the soft limit (a share
   of a budget already spent) the route drops the primary tier: the cheaper model
   answers, and the reservation shrinks to its price. When even the cheaper model's
   estimate does not fit: the local tier, else `LimitExceeded` (the pipelines then
   answer from the cache or static analysis, with the reason as the notice).
3. `Admission.settle` books the real usage (reserved minus actual comes back);
   `Admission.release` gives the whole reservation back (failure, cancellation).
   A process that dies in between leaves its reservation counted until the period
   ends: the error is on the side of spending less.

Crossing 50, 80 and 100 % of a budget raises an alert once per period (`alerts.py`).
Local-tier answers cost nothing and count against no budget or rate limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lsp_server.limits.alerts import Alerts, Listener, amount_text, describe_budget
from lsp_server.limits.backend import Backend, Charge, RateCharge
from lsp_server.limits.estimate import estimate_usd
from lsp_server.limits.window import period_end, period_label, to_nano
from lsp_server.llm.router import Route, RouteStep
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.settings_limits import BudgetRule, LimitsSettings, RateRule
from lsp_server.telemetry.usage import UsageLog

logger = logging.getLogger(__name__)

PromptCounter = Callable[[ChatRequest], Awaitable[int]]


class LimitExceeded(ProviderFailure):
    """A budget or rate limit keeps the request from every tier that could answer it."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Whom the counters belong to: the user, the workspace (a path hash), the team."""

    user: str
    workspace: str | None = None
    team: str | None = None

    @staticmethod
    def workspace_id(root: str) -> str:
        """A short stable id for a workspace root (the path itself is not shared)."""
        return hashlib.sha256(root.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def of(self, scope: str) -> str | None:
        """The id a scope counts against (None: the scope does not apply)."""
        return {"user": self.user, "workspace": self.workspace, "team": self.team}.get(scope)


@dataclass(slots=True)
class _Booked:
    rule: BudgetRule
    who: str
    charge: Charge


class Admission:
    """A request let through: its route, its notice and what it reserved."""

    def __init__(
        self, limiter: Limiter, route: Route, notice: str | None, booked: list[_Booked]
    ) -> None:
        self.limiter = limiter
        self.route = route
        self.notice = notice
        self.booked = booked
        self._done = False

    async def settle(self, completion: Completion) -> None:
        """Book the real usage of ``completion`` in place of the reservation."""
        if self._done or not self.booked:
            return
        self._done = True
        paid = completion.tier != "local"
        usage = completion.usage
        actual = {
            "usd": to_nano(completion.cost_usd) if paid else 0,
            "tokens": usage.prompt_tokens + usage.completion_tokens if paid else 0,
        }
        await self.limiter.rebook(self.booked, actual)

    async def release(self) -> None:
        """Give the whole reservation back (the request failed or was cancelled)."""
        if self._done or not self.booked:
            return
        self._done = True
        await self.limiter.rebook(self.booked, {"usd": 0, "tokens": 0})


class Limiter:
    """Budgets and rate limits of one user (and workspace, and team) over one backend."""

    def __init__(
        self,
        settings: LimitsSettings,
        backend: Backend,
        identity: Identity,
        usage_log: UsageLog,
        *,
        count_prompt: PromptCounter | None = None,
        notify: Listener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.identity = identity
        self.usage_log = usage_log
        self.count_prompt = count_prompt
        self.alerts = Alerts(backend, usage_log, notify)
        self.clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    # -- admission ---------------------------------------------------------------------

    async def admit(self, request: ChatRequest, route: Route, request_id: str) -> Admission:
        """Rate limits, then budgets; raises `LimitExceeded` when nothing may answer.

        A store that fails (a disk error, a lock held past its timeout) lets the request
        through with a log line: the editor keeps its answers.
        """
        try:
            return await self._admit(request, route, request_id)
        except LimitExceeded:
            raise
        except Exception:
            logger.exception("limits store failed; request %s not counted", request_id)
            return Admission(self, route, None, [])

    async def _admit(self, request: ChatRequest, route: Route, request_id: str) -> Admission:
        paid = [s for s in route.steps if s.spec.role != "local"]
        local = [s for s in route.steps if s.spec.role == "local"]
        if not paid:
            return Admission(self, route, None, [])
        prompt = await self._prompt_tokens(request)
        tokens = prompt + request.max_tokens
        refused = await self._rate(request.feature, tokens)
        if refused is not None:
            return self._degrade(route, local, refused, ErrorKind.RATE_LIMITED, request_id)
        budgets = self._budgets()
        if not budgets:
            return Admission(self, route, None, [])
        cheaper = [s for s in paid if s.spec.role != "primary"]
        options = [paid, cheaper] if cheaper and cheaper != paid else [paid]
        for i, steps in enumerate(options):
            booked = self._charges(budgets, steps, prompt, request.max_tokens)
            ok, values = await self._reserve([b.charge for b in booked])
            if not ok:
                continue
            soft = self._past_soft(booked, values)
            if i == 0 and soft is not None and len(options) > 1:
                smaller = self._charges(budgets, options[1], prompt, request.max_tokens)
                back = [
                    dataclasses.replace(b.charge, amount=s.charge.amount - b.charge.amount)
                    for b, s in zip(booked, smaller, strict=True)
                ]
                await self._shrink(back, [s.charge for s in smaller])
                past = f"{soft} past {self.settings.soft_limit:.0%}: cheaper model"
                return Admission(self, self._narrow(route, options[1] + local), past, smaller)
            note = None if i == 0 else "budget nearly spent: cheaper model"
            return Admission(self, self._narrow(route, steps + local), note, booked)
        reason = await self._refusal(budgets, prompt + request.max_tokens)
        return self._degrade(route, local, reason, ErrorKind.QUOTA_EXCEEDED, request_id)

    async def _reserve(self, charges: list[Charge]) -> tuple[bool, list[int]]:
        """`backend.reserve`; cancelled meanwhile, what it reserved is given back."""
        task = asyncio.ensure_future(self.backend.reserve(charges))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._later(self._undo(task, charges))
            raise

    async def _shrink(self, back: list[Charge], held: list[Charge]) -> None:
        """Shrink a reservation to ``held``; cancelled meanwhile, ``held`` is given back."""
        task = asyncio.ensure_future(self.backend.adjust(back))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self._later(self._undo(task, held))
            raise

    async def _undo(self, task: asyncio.Future[Any], charges: list[Charge]) -> None:
        """Once ``task`` (a reservation) is done, give ``charges`` back if it took them."""
        result = await task
        if isinstance(result, tuple) and not result[0]:
            return
        await self.backend.adjust([dataclasses.replace(c, amount=-c.amount) for c in charges])

    def _later(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:  # a store failure: logged, the request is gone already
                logger.exception("limits: could not give a cancelled reservation back")

        task = asyncio.ensure_future(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _prompt_tokens(self, request: ChatRequest) -> int:
        if self.count_prompt is not None:
            return await self.count_prompt(request)
        text = sum(len(str(m.get("content") or "")) for m in request.messages)
        return text // 3 + 4 * len(request.messages) + 3

    def _narrow(self, route: Route, steps: Sequence[RouteStep]) -> Route:
        keep = tuple(s for s in route.steps if s in steps)
        return dataclasses.replace(route, steps=keep, tier=keep[0].spec.role if keep else "")

    def _degrade(
        self,
        route: Route,
        local: list[RouteStep],
        reason: str,
        kind: ErrorKind,
        request_id: str,
    ) -> Admission:
        self.alerts.record(
            request_id,
            "limited",
            reason,
            "rate_limit" if kind is ErrorKind.RATE_LIMITED else "budget",
        )
        if local:
            return Admission(self, self._narrow(route, local), f"{reason}: local model", [])
        raise LimitExceeded(kind, reason, provider="llm-lsp")

    # -- rate limits -------------------------------------------------------------------

    def _rate_rules(self, feature: str) -> list[tuple[RateRule, str]]:
        chosen: dict[tuple[str, str], RateRule] = {}
        for rule in self.settings.rate_limits:
            if rule.feature not in (feature, "*"):
                continue
            slot = (rule.scope, rule.unit)
            if rule.feature == feature or slot not in chosen:
                chosen[slot] = rule
        out: list[tuple[RateRule, str]] = []
        for rule in chosen.values():
            who = self.identity.of(rule.scope)
            if who is not None:
                out.append((rule, who))
        return out

    async def _rate(self, feature: str, tokens: int) -> str | None:
        """None when every window admits the request, else why not."""
        rules = self._rate_rules(feature)
        if not rules:
            return None
        charges = [
            RateCharge(
                f"rate:{r.scope}:{who}:{r.feature}:{r.unit}",
                1.0 if r.unit == "requests" else float(tokens),
                float(r.limit),
            )
            for r, who in rules
        ]
        window = self.settings.rate_window
        failed = await self.backend.rate(charges, self.clock(), window)
        if failed is None:
            return None
        rule, who = rules[failed]
        what = "" if rule.feature == "*" else f" for {rule.feature}"
        return (
            f"rate limit{what} of {rule.scope} {who} reached "
            f"({rule.limit} {rule.unit} per {window:g} s)"
        )

    # -- budgets -----------------------------------------------------------------------

    def _budgets(self) -> list[tuple[BudgetRule, str]]:
        out: list[tuple[BudgetRule, str]] = []
        for rule in self.settings.budgets:
            who = self.identity.of(rule.scope)
            if who is not None:
                out.append((rule, who))
        return out

    def _key(self, rule: BudgetRule, who: str, now: datetime) -> str:
        label = period_label(rule.period, now)
        return f"budget:{rule.scope}:{who}:{rule.period}:{label}:{rule.unit}"

    def _limit(self, rule: BudgetRule) -> int:
        return to_nano(rule.limit) if rule.unit == "usd" else int(rule.limit)

    def _charges(
        self,
        budgets: list[tuple[BudgetRule, str]],
        steps: Sequence[RouteStep],
        prompt: int,
        max_tokens: int,
    ) -> list[_Booked]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        usd = to_nano(estimate_usd([s.model for s in steps], prompt, max_tokens))
        out: list[_Booked] = []
        for rule, who in budgets:
            ttl = (period_end(rule.period, now) - now).total_seconds() + 86400
            amount = usd if rule.unit == "usd" else prompt + max_tokens
            key = self._key(rule, who, now)
            out.append(_Booked(rule, who, Charge(key, amount, self._limit(rule), ttl)))
        return out

    def _past_soft(self, booked: list[_Booked], values: list[int]) -> str | None:
        share = self.settings.soft_limit
        if share <= 0:
            return None
        for b, value in zip(booked, values, strict=True):
            if value - b.charge.amount >= share * b.charge.limit:
                return describe_budget(b.rule, b.who)
        return None

    async def _refusal(self, budgets: list[tuple[BudgetRule, str]], tokens: int) -> str:
        """Why a reservation did not fit, and the 100 % alert for the budget it hit."""
        booked = self._charges(budgets, [], 0, 0)
        values = await self.backend.adjust(
            [dataclasses.replace(b.charge, amount=0) for b in booked]
        )
        worst = max(
            zip(booked, values, strict=True),
            key=lambda bv: bv[1] / bv[0].charge.limit if bv[0].charge.limit else 2.0,
        )
        b, value = worst
        await self.alerts.budget(b.rule, b.who, b.charge, value, refused=True)
        return (
            f"{describe_budget(b.rule, b.who)} reached "
            f"({amount_text(b.rule, value)} of {amount_text(b.rule, b.charge.limit)})"
        )

    async def rebook(self, booked: list[_Booked], actual: dict[str, int]) -> None:
        """Replace each reservation by the actual amount, then raise the alerts due."""
        charges = [
            dataclasses.replace(b.charge, amount=actual[b.rule.unit] - b.charge.amount)
            for b in booked
        ]
        try:
            values = await asyncio.shield(self.backend.adjust(charges))
            for b, value in zip(booked, values, strict=True):
                await self.alerts.budget(b.rule, b.who, b.charge, value)
        except Exception:  # the answer is already there: log, never fail it
            logger.exception("limits store failed while settling")

    async def aclose(self) -> None:
        """Finish giving back cancelled reservations, then release the backend."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.backend.aclose()
