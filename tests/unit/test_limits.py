"""The limits' logic without a server: the sliding window, the stores, the limiter."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_server.limits.backend import Charge, LocalBackend, RateCharge
from lsp_server.limits.build import build_limiter
from lsp_server.limits.limiter import Identity, Limiter, LimitExceeded
from lsp_server.limits.window import (
    WindowState,
    admit,
    estimate,
    period_end,
    period_label,
    to_nano,
)
from lsp_server.llm.providers import TierSpec
from lsp_server.llm.router import Route, RouteStep
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure, Usage
from lsp_server.settings import build_settings
from lsp_server.settings_limits import (
    BudgetRule,
    LimitsSettings,
    RateRule,
    parse_budgets,
    parse_rate_limits,
)
from lsp_server.telemetry.usage import UsageLog
from lsp_server.testing.fake_provider import FakeProvider, Step

# -- the sliding window ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=0.99), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=20),
)
def test_the_window_never_admits_more_than_its_limit_in_any_window(
    gaps: list[float], limit: int
) -> None:
    """Whatever the arrival times, the sliding estimate after each admission stays
    within the limit, and so does every fixed window."""
    window = 1.0
    state: WindowState | None = None
    now = 100.0
    admitted: list[float] = []
    for gap in gaps:
        now += gap
        ok, new = admit(state, 1.0, limit, now, window)
        if ok:
            state = new
            admitted.append(now)
            assert estimate(new, now, window) <= limit + 1e-9
        else:
            state = new
    # a fixed window [k, k+1) never holds more than the limit
    for start in {int(t) for t in admitted}:
        assert sum(1 for t in admitted if start <= t < start + 1) <= limit


def test_the_window_slides_and_weights_the_previous_one() -> None:
    state: WindowState | None = None
    for _ in range(10):
        ok, state = admit(state, 1.0, 10, 60.0, 60.0)
        assert ok
    ok, _ = admit(state, 1.0, 10, 61.0, 60.0)
    assert not ok  # full
    # half-way through the next window, half of the previous one still counts
    assert state is not None
    ok, half = admit(state, 5.0, 10, 150.0, 60.0)
    assert ok and half.previous == 10.0 and half.current == 5.0
    ok, _ = admit(half, 1.0, 10, 150.0, 60.0)
    assert not ok  # 10 * 0.5 + 5 = 10
    # two windows later everything is forgotten
    ok, fresh = admit(half, 10.0, 10, 241.0, 60.0)
    assert ok and fresh.previous == 0.0


def test_periods_are_utc_days_and_months() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_label("day", now) == "2026-12-31"
    assert period_label("month", now) == "2026-12"
    assert period_end("day", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("month", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert to_nano(0.0012525) == 1_252_500


# -- settings ---------------------------------------------------------------------------


def test_budget_and_rate_settings_parse_and_refuse_nonsense() -> None:
    assert parse_budgets('{"user": {"dailyUsd": 1.5, "monthlyTokens": 1000}}') == (
        BudgetRule("user", "day", "usd", 1.5),
        BudgetRule("user", "month", "tokens", 1000.0),
    )
    assert parse_rate_limits({"team": {"hover": {"requests": 5}}}) == (
        RateRule("team", "hover", "requests", 5),
    )
    for bad in ({"nobody": {}}, {"user": {"dailyUsd": -1}}, {"user": {"weekly": 1}}, "[1]"):
        with pytest.raises(ValueError):
            parse_budgets(bad)
    with pytest.raises(ValueError):
        parse_rate_limits({"user": {"hover": {"requests": 1.5}}})


# -- the local store --------------------------------------------------------------------


def _reserve_many(path: str, n: int, out: multiprocessing.Queue[int]) -> None:
    backend = LocalBackend(Path(path))

    async def run() -> int:
        results = await asyncio.gather(
            *(backend.reserve([Charge("budget:x", 7, 100, 60.0)]) for _ in range(n))
        )
        return sum(1 for ok, _ in results if ok)

    out.put(asyncio.run(run()))


def test_processes_sharing_the_store_never_reserve_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "limits" / "limits.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_reserve_many, args=(str(path), 20, out)) for _ in range(3)]
    for p in procs:
        p.start()
    granted = sum(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert granted == 14  # 14 * 7 = 98 <= 100 < 105, out of 60 attempts
    ok, values = asyncio.run(LocalBackend(path).reserve([Charge("budget:x", 0, 100, 60.0)]))
    assert ok and values == [98]


def test_a_damaged_store_is_discarded_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "limits.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    backend = LocalBackend(path)
    ok, values = asyncio.run(backend.reserve([Charge("k", 5, 10, 60.0)]))
    assert ok and values == [5]
    assert sum("damaged" in r.message for r in caplog.records) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM counters").fetchone() == (5,)


def test_rate_and_first_in_the_local_store(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "l.sqlite3")

    async def run() -> tuple[list[int | None], list[bool]]:
        charges = [RateCharge("r:req", 1, 2), RateCharge("r:tok", 100, 250)]
        rates = [await backend.rate(charges, 1000.0, 60.0) for _ in range(4)]
        firsts = [await backend.first("alert:x:50", 60.0) for _ in range(3)]
        return rates, firsts

    rates, firsts = asyncio.run(run())
    assert rates == [None, None, 0, 0]  # the third meets the request limit (index 0)
    assert firsts == [True, False, False]


# -- the limiter ------------------------------------------------------------------------


def _spec(name: str, role: str) -> TierSpec:
    return TierSpec(name, role, "http://127.0.0.1:1/v1", (), None, None, 5.0)


PRIMARY = RouteStep(_spec("openai", "primary"), "gpt-4o")
CHEAP = RouteStep(_spec("openai-cheap", "cheap"), "gpt-4o-mini")
LOCAL = RouteStep(_spec("local", "local"), "gemma3")


def _route(*steps: RouteStep) -> Route:
    return Route(tuple(steps), "hover", 100, "low", steps[0].spec.role, "default")


def _limiter(tmp_path: Path, **limits: object) -> Limiter:
    settings = LimitsSettings(**{"rate_limits": (), "user": "u", **limits})  # type: ignore[arg-type]
    backend = LocalBackend(tmp_path / "l.sqlite3")

    async def count(request: ChatRequest) -> int:
        return 1000

    return Limiter(
        settings,
        backend,
        Identity("u"),
        UsageLog(tmp_path / "usage.jsonl"),
        count_prompt=count,
        clock=lambda: 1_800_000_000.0,
    )


def _request() -> ChatRequest:
    return ChatRequest([{"role": "user", "content": "x"}], "hover", max_tokens=1000)


def _completion(model: str, tier: str, prompt: int, out: int, cost: float) -> Completion:
    return Completion("ok", model, "openai", Usage(prompt, out), 1.0, cost, "r", tier=tier)


# estimate: 1000 in + 1000 out at gpt-4o = 0.0025 + 0.01 = $0.0125; gpt-4o-mini $0.00075
BIG = 0.0125


def test_the_soft_limit_routes_to_the_cheaper_model_and_shrinks_the_reservation(
    tmp_path: Path,
) -> None:
    limiter = _limiter(tmp_path, budgets=(BudgetRule("user", "day", "usd", 0.1),), soft_limit=0.5)

    async def run() -> tuple[list[str], str | None, int]:
        first = await limiter.admit(_request(), _route(PRIMARY, CHEAP, LOCAL), "a")
        await first.settle(_completion("gpt-4o", "primary", 1000, 4000, 0.0525))  # 52.5 %
        second = await limiter.admit(_request(), _route(PRIMARY, CHEAP, LOCAL), "b")
        held = dataclasses.replace(second.booked[0].charge, amount=0)
        _, values = await limiter.backend.reserve([held])
        return [s.spec.role for s in second.route.steps], second.notice, values[0]

    roles, notice, value = asyncio.run(run())
    assert roles == ["cheap", "local"]
    assert notice is not None and "past 50%" in notice and "cheaper model" in notice
    assert value == to_nano(0.0525) + to_nano(0.00075)  # only the cheap estimate is held


def test_release_gives_everything_back_and_a_hard_limit_refuses(tmp_path: Path) -> None:
    limiter = _limiter(tmp_path, budgets=(BudgetRule("user", "day", "usd", 0.02),))

    async def run() -> None:
        held = await limiter.admit(_request(), _route(PRIMARY), "a")
        with pytest.raises(LimitExceeded) as refused:
            await limiter.admit(_request(), _route(PRIMARY), "b")  # 2 x 0.0125 > 0.02
        assert "daily USD budget of user u reached" in refused.value.message
        await held.release()
        again = await limiter.admit(_request(), _route(PRIMARY), "c")
        assert [s.spec.role for s in again.route.steps] == ["primary"]
        # with a local tier the refused request goes there instead, with a notice
        degraded = await limiter.admit(_request(), _route(PRIMARY, LOCAL), "d")
        assert [s.spec.role for s in degraded.route.steps] == ["local"]
        assert degraded.notice is not None and "local model" in degraded.notice

    asyncio.run(run())


# -- the service: reserve, settle, release ---------------------------------------------


async def _through_service(tmp_path: Path, fake: FakeProvider) -> tuple[int, int, int]:
    """(held while in flight, held after a cancelled call, held after a failed call)."""
    env = {
        "HOME": str(tmp_path),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "LLM_LSP_CACHE_DIR": str(tmp_path / "cache"),
        "LLM_LSP_USER": "u",
        "LLM_LSP_BUDGETS": '{"user": {"dailyUsd": 5}}',
        "LLM_RETRY_MAX_ATTEMPTS": "1",
    }
    settings, problems = build_settings(env=env)
    assert problems == []
    usage = UsageLog(tmp_path / "usage.jsonl")
    service = LlmService(settings.llm, usage, limiter=build_limiter(settings, None, usage))
    store = LocalBackend(tmp_path / "cache" / "limits" / "limits.sqlite3")
    key = "budget:user:u:day:" + period_label("day", datetime.now(UTC)) + ":usd"

    async def held() -> int:
        _, [value] = await store.reserve([Charge(key, 0, 1, 60.0)])
        return value

    fake.set_default(Step(text="slow", delay=30.0))
    call = asyncio.ensure_future(
        service.complete(_request(), deadline=time.monotonic() + 60, request_id="c")
    )
    await fake.wait_for_requests_async(1, 60.0, finished=False)
    in_flight = await held()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    after_cancel = await held()
    fake.set_default(Step(status=400, error_message="bad request"))
    with pytest.raises(ProviderFailure):
        await service.complete(_request(), deadline=time.monotonic() + 60, request_id="f")
    after_failure = await held()
    await service.aclose()
    await store.aclose()
    return in_flight, after_cancel, after_failure


def test_a_cancelled_or_failed_call_gives_its_reservation_back(
    tmp_path: Path, fake: FakeProvider
) -> None:
    in_flight, after_cancel, after_failure = asyncio.run(_through_service(tmp_path, fake))
    assert in_flight > 0  # the estimate was held while the call ran
    assert after_cancel == 0
    assert after_failure == 0


def test_a_team_rate_limit_is_shared_by_its_members(tmp_path: Path) -> None:
    rules = (RateRule("team", "hover", "requests", 3), RateRule("user", "*", "requests", 100))

    def member(name: str) -> Limiter:
        limiter = _limiter(tmp_path, rate_limits=rules, budgets=())
        limiter.identity = Identity(name, team="core")
        return limiter

    alice, bob = member("alice"), member("bob")

    async def run() -> list[str]:
        out: list[str] = []
        for limiter in (alice, bob, alice, bob):
            try:
                admitted = await limiter.admit(_request(), _route(PRIMARY), "r")
                out.append(admitted.route.steps[0].spec.role)
            except LimitExceeded as exc:
                out.append(exc.message)
        return out

    first, second, third, fourth = asyncio.run(run())
    assert (first, second, third) == ("primary", "primary", "primary")
    assert fourth == "rate limit for hover of team core reached (3 requests per 60 s)"


class _Gated:
    """A local store whose reservations wait for a gate (to cancel in the middle)."""

    name = "local"

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.gate = asyncio.Event()

    async def reserve(self, charges: list[Charge]) -> tuple[bool, list[int]]:
        await self.gate.wait()
        return await self.inner.reserve(charges)

    async def adjust(self, charges: list[Charge]) -> list[int]:
        return await self.inner.adjust(charges)

    async def rate(self, charges: list[RateCharge], now: float, window: float) -> int | None:
        return await self.inner.rate(charges, now, window)

    async def first(self, key: str, ttl: float) -> bool:
        return await self.inner.first(key, ttl)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_reservation_cancelled_in_flight_is_given_back(tmp_path: Path) -> None:
    limiter = _limiter(tmp_path, budgets=(BudgetRule("user", "day", "usd", 1.0),))
    gated = _Gated(LocalBackend(tmp_path / "l.sqlite3"))
    limiter.backend = gated

    async def run() -> int:
        admit = asyncio.ensure_future(limiter.admit(_request(), _route(PRIMARY), "a"))
        await asyncio.sleep(0.1)
        admit.cancel()
        gated.gate.set()  # the store takes the reservation after the caller has gone
        with pytest.raises(asyncio.CancelledError):
            await admit
        await limiter.aclose()
        key = "budget:user:u:day:" + period_label("day", datetime.fromtimestamp(1.8e9, UTC))
        store = LocalBackend(tmp_path / "l.sqlite3")
        _, [value] = await store.reserve([Charge(key + ":usd", 0, 1, 60.0)])
        await store.aclose()
        return value

    assert asyncio.run(run()) == 0
