"""Tests for the per-provider circuit breaker: transitions, probes, cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lsp_server.llm.breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    Outcome,
    classify,
)
from lsp_server.llm.types import ErrorKind, ProviderFailure

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def server_error() -> ProviderFailure:
    return ProviderFailure(ErrorKind.SERVER_ERROR, "boom", status=503)


def make(
    clock: FakeClock, *, threshold: int = 3, min_calls: int = 100, **kw: float
) -> CircuitBreaker:
    config = BreakerConfig(
        failure_threshold=threshold,
        min_calls_in_window=min_calls,
        cooldown_seconds=30.0,
        quota_cooldown_seconds=600.0,
        **kw,
    )
    return CircuitBreaker("openai", config, clock=clock)


async def succeed(breaker: CircuitBreaker) -> None:
    async with breaker.call():
        pass


async def fail(breaker: CircuitBreaker, exc: BaseException | None = None) -> None:
    with pytest.raises(type(exc) if exc is not None else ProviderFailure):
        async with breaker.call():
            raise exc if exc is not None else server_error()


async def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        await fail(breaker)
    assert breaker.state is OPEN


async def cancelled_call(breaker: CircuitBreaker) -> None:
    entered = asyncio.Event()

    async def body() -> None:
        async with breaker.call():
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ProviderFailure(ErrorKind.SERVER_ERROR, "x", status=500), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.TIMEOUT, "x"), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.CONNECTION_ERROR, "x"), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.RATE_LIMITED, "x", status=429), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.MALFORMED_RESPONSE, "x"), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.AUTH_ERROR, "x", status=401), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=408), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=409), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=429), Outcome.FAILURE),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=400), Outcome.NEUTRAL),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=404), Outcome.NEUTRAL),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=422), Outcome.NEUTRAL),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x"), Outcome.NEUTRAL),
        (ProviderFailure(ErrorKind.CLIENT_ERROR, "x", status=402), Outcome.QUOTA),
        (ProviderFailure(ErrorKind.QUOTA_EXCEEDED, "x", status=429), Outcome.QUOTA),
        (TimeoutError(), Outcome.FAILURE),
        (asyncio.CancelledError(), Outcome.NEUTRAL),
        (ValueError("our bug"), Outcome.NEUTRAL),
    ],
)
def test_classify(exc: BaseException, expected: Outcome) -> None:
    assert classify(exc) is expected


# -- closed → open -------------------------------------------------------------------


async def test_starts_closed() -> None:
    breaker = make(FakeClock())
    assert breaker.state is CLOSED
    assert breaker.retry_in == 0.0
    assert breaker.describe() == "closed"
    assert breaker.last_failure_reason == ""


async def test_opens_after_exactly_threshold_consecutive_failures() -> None:
    breaker = make(FakeClock(), threshold=3)
    await fail(breaker)
    await fail(breaker)
    assert breaker.state is CLOSED
    await fail(breaker)
    assert breaker.state is OPEN
    assert breaker.retry_in == 30.0
    assert breaker.last_failure_reason == "3 consecutive failures, last server_error 503"
    assert breaker.describe() == "open 30 s: 3 consecutive failures, last server_error 503"


async def test_success_resets_consecutive_count() -> None:
    breaker = make(FakeClock(), threshold=3)
    await fail(breaker)
    await fail(breaker)
    await succeed(breaker)
    await fail(breaker)
    await fail(breaker)
    assert breaker.state is CLOSED
    await fail(breaker)
    assert breaker.state is OPEN


async def test_opens_on_failure_rate_once_min_calls_reached() -> None:
    breaker = make(FakeClock(), threshold=100, min_calls=10, failure_rate=0.5)
    for _ in range(4):
        await fail(breaker)
    assert breaker.state is CLOSED  # 100 % failures but only 4 calls
    for _ in range(5):
        await succeed(breaker)
    assert breaker.state is CLOSED  # 4 of 9
    await fail(breaker)  # 5 of 10
    assert breaker.state is OPEN
    assert breaker.last_failure_reason == "5 of 10 calls failed in 60 s, last server_error 503"


async def test_failure_rate_forgets_calls_outside_window() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=100, min_calls=10, failure_rate=0.5, window_seconds=60.0)
    for _ in range(5):
        await fail(breaker)
    await succeed(breaker)
    clock.advance(61.0)
    for _ in range(4):
        await fail(breaker)
    assert breaker.state is CLOSED  # the first six calls have left the window


async def test_client_errors_are_neutral_but_408_409_429_count() -> None:
    breaker = make(FakeClock(), threshold=2)
    for status in (400, 404, 422, 400, 404):
        await fail(breaker, ProviderFailure(ErrorKind.CLIENT_ERROR, "bad", status=status))
    assert breaker.state is CLOSED
    await fail(breaker, ProviderFailure(ErrorKind.CLIENT_ERROR, "timeout", status=408))
    await fail(breaker, ProviderFailure(ErrorKind.CLIENT_ERROR, "bad", status=400))
    assert breaker.state is CLOSED  # neutral: does not reset the count either
    await fail(breaker, ProviderFailure(ErrorKind.RATE_LIMITED, "slow", status=429))
    assert breaker.state is OPEN


async def test_auth_errors_count() -> None:
    breaker = make(FakeClock(), threshold=2)
    await fail(breaker, ProviderFailure(ErrorKind.AUTH_ERROR, "bad key", status=401))
    await fail(breaker, ProviderFailure(ErrorKind.AUTH_ERROR, "bad key", status=401))
    assert breaker.state is OPEN


@pytest.mark.parametrize(
    "failure",
    [
        ProviderFailure(ErrorKind.QUOTA_EXCEEDED, "insufficient_quota", status=429),
        ProviderFailure(ErrorKind.CLIENT_ERROR, "payment required", status=402),
    ],
)
async def test_quota_error_opens_at_once_for_quota_cooldown(failure: ProviderFailure) -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=5)
    await fail(breaker, failure)
    assert breaker.state is OPEN
    assert breaker.retry_in == 600.0
    assert breaker.last_failure_reason.startswith("quota exhausted")
    clock.advance(599.0)
    assert breaker.state is OPEN
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN


async def test_retry_after_longer_than_cooldown_keeps_it_open() -> None:
    breaker = make(FakeClock(), threshold=1)
    await fail(breaker, ProviderFailure(ErrorKind.RATE_LIMITED, "x", status=429, retry_after=90))
    assert breaker.retry_in == 90.0


async def test_other_exceptions_are_neutral_and_timeout_error_counts() -> None:
    breaker = make(FakeClock(), threshold=2)
    for _ in range(3):
        await fail(breaker, ValueError("our bug"))
    assert breaker.state is CLOSED
    await fail(breaker, TimeoutError())
    await fail(breaker, TimeoutError())
    assert breaker.state is OPEN


# -- open ----------------------------------------------------------------------------


async def test_open_rejects_immediately_with_retry_in() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(12.0)
    entered = False
    with pytest.raises(CircuitOpen) as info:
        async with breaker.call():
            entered = True
    assert not entered
    assert info.value.state is OPEN
    assert info.value.retry_in == 18.0
    assert info.value.provider == "openai"
    assert str(info.value).startswith("openai circuit open for 18 s: 3 consecutive failures")


async def test_cooldown_elapsed_reports_half_open() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(29.9)
    assert breaker.state is OPEN
    clock.advance(0.1)
    assert breaker.state is HALF_OPEN
    assert breaker.retry_in == 0.0
    assert breaker.describe() == "half-open"


# -- half-open with user-request probes ------------------------------------------------


async def test_probe_success_closes_and_resets_counts() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=2)
    await trip(breaker)
    clock.advance(30.0)
    await succeed(breaker)
    assert breaker.state is CLOSED
    await fail(breaker)
    assert breaker.state is CLOSED  # count started from zero


async def test_probe_failure_reopens_with_fresh_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(45.0)
    await fail(breaker, ProviderFailure(ErrorKind.TIMEOUT, "slow"))
    assert breaker.state is OPEN
    assert breaker.retry_in == 30.0
    assert breaker.last_failure_reason == "probe failed (timeout)"


async def test_probe_quota_failure_reopens_for_quota_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(30.0)
    await fail(breaker, ProviderFailure(ErrorKind.QUOTA_EXCEEDED, "insufficient_quota"))
    assert breaker.retry_in == 600.0


async def test_ten_concurrent_callers_in_half_open_admit_exactly_one() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(30.0)
    release = asyncio.Event()
    entered = 0

    async def caller() -> str:
        nonlocal entered
        async with breaker.call():
            entered += 1
            await release.wait()
        return "answered"

    tasks = [asyncio.create_task(caller()) for _ in range(10)]
    await asyncio.sleep(0)  # every task runs up to its first suspension point
    assert entered == 1
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 9  # nobody waited
    for task in rejected:
        exc = task.exception()
        assert isinstance(exc, CircuitOpen)
        assert exc.state is HALF_OPEN
        assert exc.retry_in == 0.0
    assert breaker.describe() == "half-open (probing)"
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("answered") == 1
    assert breaker.state is CLOSED


async def test_cancelled_probe_releases_slot_and_keeps_half_open() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(30.0)
    await cancelled_call(breaker)
    assert breaker.state is HALF_OPEN
    assert not breaker.probing
    await succeed(breaker)  # the next caller may probe
    assert breaker.state is CLOSED


async def test_neutral_probe_outcome_releases_slot() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(30.0)
    await fail(breaker, ProviderFailure(ErrorKind.CLIENT_ERROR, "bad", status=400))
    assert breaker.state is HALF_OPEN
    assert not breaker.probing


async def test_lost_probe_slot_is_reusable_after_probe_timeout() -> None:
    clock = FakeClock()
    breaker = make(clock, probe_timeout_seconds=60.0)
    await trip(breaker)
    clock.advance(30.0)
    stuck = breaker.acquire()
    assert stuck.is_probe
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    clock.advance(60.0)
    fresh = breaker.acquire()
    stuck.failure(server_error())  # the lost probe's late outcome is ignored
    assert breaker.state is HALF_OPEN
    fresh.success()
    assert breaker.state is CLOSED


# -- cancellation and stragglers --------------------------------------------------------


async def test_cancellation_in_closed_neither_trips_nor_resets() -> None:
    breaker = make(FakeClock(), threshold=3)
    await fail(breaker)
    await fail(breaker)
    for _ in range(5):
        await cancelled_call(breaker)
    assert breaker.state is CLOSED
    await fail(breaker)  # the count was still 2
    assert breaker.state is OPEN


async def test_cancellation_never_counts_as_failure() -> None:
    breaker = make(FakeClock(), threshold=1, min_calls=1)
    await cancelled_call(breaker)
    assert breaker.state is CLOSED


async def test_stale_outcomes_from_before_a_trip_are_ignored() -> None:
    clock = FakeClock()
    breaker = make(clock)
    straggler = breaker.acquire()
    await trip(breaker)
    straggler.success()
    assert breaker.state is OPEN
    clock.advance(30.0)
    probe = breaker.acquire()
    probe.success()
    probe.failure(server_error())  # a permit settles once
    assert breaker.state is CLOSED


async def test_reset_closes() -> None:
    breaker = make(FakeClock())
    await trip(breaker)
    breaker.reset()
    assert breaker.state is CLOSED
    await succeed(breaker)


# -- background probe mode ------------------------------------------------------------


class Probe:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self) -> None:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error


def make_probed(clock: FakeClock, probe: Probe) -> CircuitBreaker:
    config = BreakerConfig(failure_threshold=2, cooldown_seconds=30.0)
    return CircuitBreaker("openai", config, clock=clock, probe=probe)


async def test_background_probe_gates_half_open_and_user_requests_never_probe() -> None:
    clock = FakeClock()
    probe = Probe()
    breaker = make_probed(clock, probe)
    await trip(breaker)
    clock.advance(30.0)
    entered = 0
    for _ in range(10):
        with pytest.raises(CircuitOpen) as info:
            async with breaker.call():
                entered += 1
        assert info.value.retry_in == 0.0
    assert entered == 0
    await asyncio.sleep(0)
    assert probe.calls == 1
    assert breaker.probing
    assert breaker.schedule_probe() is None  # one at a time
    probe.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert breaker.state is CLOSED
    await succeed(breaker)


async def test_background_probe_failure_reopens_with_fresh_cooldown() -> None:
    clock = FakeClock()
    probe = Probe()
    probe.release.set()
    probe.error = ValueError("probe prompt broken")  # neutral for users, failure here
    breaker = make_probed(clock, probe)
    await trip(breaker)
    clock.advance(50.0)
    task = breaker.schedule_probe()
    assert task is not None
    assert await task is False
    assert probe.calls == 1
    assert breaker.state is OPEN
    assert breaker.retry_in == 30.0
    assert breaker.last_failure_reason == "probe failed (ValueError)"


async def test_probe_runs_only_when_due() -> None:
    clock = FakeClock()
    probe = Probe()
    probe.release.set()
    breaker = make_probed(clock, probe)
    assert breaker.schedule_probe() is None  # closed
    await trip(breaker)
    assert breaker.schedule_probe() is None  # cooldown not over
    clock.advance(30.0)
    task = breaker.schedule_probe()
    assert task is not None
    assert await task is True
    assert probe.calls == 1
    assert breaker.state is CLOSED


async def test_no_probe_without_probe_callable() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker)
    clock.advance(30.0)
    assert breaker.schedule_probe() is None
    assert breaker.state is HALF_OPEN


async def test_cancelled_background_probe_keeps_half_open() -> None:
    clock = FakeClock()
    probe = Probe()
    breaker = make_probed(clock, probe)
    await trip(breaker)
    clock.advance(30.0)
    task = breaker.schedule_probe()
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is HALF_OPEN
    assert not breaker.probing
    probe.release.set()
    task = breaker.schedule_probe()
    assert task is not None
    assert await task is True
    assert breaker.state is CLOSED


# -- hooks, logging, config -------------------------------------------------------------


async def test_transitions_are_reported_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    seen: list[tuple[BreakerState, BreakerState]] = []

    def hook(old: BreakerState, new: BreakerState, reason: str) -> None:
        seen.append((old, new))
        raise RuntimeError("telemetry down")  # must not break the breaker

    config = BreakerConfig(failure_threshold=1)
    breaker = CircuitBreaker("openai", config, clock=clock, on_transition=hook)
    with caplog.at_level(logging.INFO, logger="lsp_server.llm.breaker"):
        await fail(breaker)
        clock.advance(30.0)
        await succeed(breaker)
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "breaker openai: closed -> open" in messages[0]
    assert "breaker openai: half_open -> closed (probe succeeded)" in messages[-1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"min_calls_in_window": 0},
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"cooldown_seconds": 0.0},
        {"window_seconds": -1.0},
    ],
)
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]
