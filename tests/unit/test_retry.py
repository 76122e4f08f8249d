"""Tests for the deadline-aware retry policy and Retry-After parsing."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from openai._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY

from lsp_server.llm.breaker import BreakerConfig, CircuitBreaker, CircuitOpen
from lsp_server.llm.retry import (
    MAX_RETRY_AFTER_SECONDS,
    Deadline,
    RetryDecision,
    RetryGaveUp,
    RetryPolicy,
    call_with_retry,
    decide,
    parse_retry_after,
)
from lsp_server.llm.types import ErrorKind, ProviderFailure

NO_JITTER = RetryPolicy(max_attempts=10, jitter=0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failure(
    kind: ErrorKind = ErrorKind.SERVER_ERROR,
    *,
    status: int | None = 500,
    retry_after: float | None = None,
) -> ProviderFailure:
    return ProviderFailure(kind, "provider said no", status=status, retry_after=retry_after)


# -- backoff ---------------------------------------------------------------------------


def test_backoff_schedule_matches_openai_sdk() -> None:
    assert (INITIAL_RETRY_DELAY, MAX_RETRY_DELAY) == (0.5, 8.0)
    schedule = [NO_JITTER.backoff(n) for n in range(1, 8)]
    assert schedule == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert NO_JITTER.backoff(10_000) == 8.0  # no overflow


def test_backoff_jitter_only_shortens_by_up_to_a_quarter() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    for attempt in range(1, 7):
        base = min(0.5 * 2 ** (attempt - 1), 8.0)
        waits = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.75 * base < w <= base for w in waits)
        assert max(waits) - min(waits) > 0.1 * base  # it really is random


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)


# -- deadline --------------------------------------------------------------------------


def test_deadline() -> None:
    clock = FakeClock()
    deadline = Deadline.after(2.0, clock=clock)
    assert deadline.remaining() == 2.0
    assert not deadline.expired
    clock.now += 2.5
    assert deadline.remaining() == 0.0
    assert deadline.expired


# -- decide ----------------------------------------------------------------------------


def test_decide_uses_backoff() -> None:
    deadline = Deadline.after(30.0, clock=FakeClock())
    decision = decide(NO_JITTER, failure(), 2, deadline)
    assert decision == RetryDecision(True, 1.0, "backoff 1.00 s")


def test_decide_honours_retry_after_exactly() -> None:
    deadline = Deadline.after(30.0, clock=FakeClock())
    decision = decide(RetryPolicy(), failure(retry_after=2.0), 1, deadline)
    assert decision == RetryDecision(True, 2.0, "retry-after 2.00 s")
    decision = decide(RetryPolicy(), failure(retry_after=0.0), 1, deadline)
    assert decision.retry
    assert decision.wait == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        failure(ErrorKind.CLIENT_ERROR, status=400),
        failure(ErrorKind.CLIENT_ERROR, status=404),
        failure(ErrorKind.AUTH_ERROR, status=401),
        failure(ErrorKind.QUOTA_EXCEEDED, status=429, retry_after=1.0),
    ],
)
def test_decide_does_not_retry_non_retryable(bad: ProviderFailure) -> None:
    decision = decide(RetryPolicy(), bad, 1, Deadline.after(30.0, clock=FakeClock()))
    assert not decision.retry
    assert decision.reason == f"not retryable: {bad.kind.value} {bad.status}"


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (ErrorKind.CLIENT_ERROR, 408),
        (ErrorKind.CLIENT_ERROR, 409),
        (ErrorKind.RATE_LIMITED, 429),
        (ErrorKind.SERVER_ERROR, 503),
        (ErrorKind.TIMEOUT, None),
        (ErrorKind.CONNECTION_ERROR, None),
    ],
)
def test_decide_retries_retryable(kind: ErrorKind, status: int | None) -> None:
    decision = decide(RetryPolicy(), failure(kind, status=status), 1, Deadline.after(30.0))
    assert decision.retry


def test_decide_stops_when_attempts_exhausted() -> None:
    deadline = Deadline.after(30.0, clock=FakeClock())
    assert decide(RetryPolicy(max_attempts=3), failure(), 2, deadline).retry
    decision = decide(RetryPolicy(max_attempts=3), failure(), 3, deadline)
    assert decision == RetryDecision(False, 0.0, "attempts exhausted (3 of 3)")


def test_decide_skips_when_wait_would_pass_deadline() -> None:
    deadline = Deadline.after(1.2, clock=FakeClock())
    decision = decide(RetryPolicy(), failure(retry_after=30.0), 1, deadline)
    assert not decision.retry
    assert decision.reason == "wait 30.00 s exceeds deadline (1.20 s left)"


def test_decide_leaves_time_for_the_next_attempt() -> None:
    deadline = Deadline.after(1.0, clock=FakeClock())
    policy = RetryPolicy(min_attempt_time=0.05)
    assert decide(policy, failure(retry_after=0.95), 1, deadline).retry
    assert not decide(policy, failure(retry_after=0.96), 1, deadline).retry


# -- call_with_retry ---------------------------------------------------------------------


async def test_retries_until_success_with_exact_waits() -> None:
    clock = FakeClock()
    outcomes: list[BaseException | str] = [failure(retry_after=1.5), failure(), "done"]
    timeouts: list[float] = []

    async def attempt(seconds: float) -> str:
        timeouts.append(seconds)
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    result = await call_with_retry(
        attempt,
        policy=RetryPolicy(max_attempts=3, jitter=0.0),
        deadline=Deadline.after(10.0, clock=clock),
        attempt_timeout=4.0,
        sleep=clock.sleep,
    )
    assert result == "done"
    assert clock.sleeps == [1.5, 1.0]
    assert timeouts == [4.0, 4.0, 4.0]  # capped by attempt_timeout
    assert len(outcomes) == 0


async def test_attempt_timeout_is_capped_by_deadline() -> None:
    clock = FakeClock()
    timeouts: list[float] = []

    async def attempt(seconds: float) -> None:
        timeouts.append(seconds)
        if len(timeouts) < 3:
            raise failure()

    await call_with_retry(
        attempt,
        policy=NO_JITTER,
        deadline=Deadline.after(3.0, clock=clock),
        attempt_timeout=10.0,
        sleep=clock.sleep,
    )
    assert timeouts == [3.0, 2.5, 1.5]


async def test_gives_up_when_attempts_exhausted() -> None:
    clock = FakeClock()
    calls = 0
    seen: list[tuple[int, RetryDecision]] = []

    async def attempt(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise failure()

    with pytest.raises(RetryGaveUp) as info:
        await call_with_retry(
            attempt,
            policy=RetryPolicy(max_attempts=3, jitter=0.0),
            deadline=Deadline.after(30.0, clock=clock),
            on_attempt_failure=lambda f, n, d: seen.append((n, d)),
            sleep=clock.sleep,
        )
    assert calls == 3
    assert info.value.attempts == 3
    assert info.value.gave_up_reason == "attempts exhausted (3 of 3)"
    assert info.value.kind is ErrorKind.SERVER_ERROR
    assert info.value.status == 500
    assert isinstance(info.value.__cause__, ProviderFailure)
    assert [n for n, _ in seen] == [1, 2, 3]
    assert [d.retry for _, d in seen] == [True, True, False]


async def test_non_retryable_stops_at_once() -> None:
    clock = FakeClock()
    calls = 0

    async def attempt(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise failure(ErrorKind.CLIENT_ERROR, status=400)

    with pytest.raises(RetryGaveUp) as info:
        await call_with_retry(
            attempt, policy=RetryPolicy(), deadline=Deadline.after(30, clock=clock)
        )
    assert calls == 1
    assert info.value.gave_up_reason == "not retryable: client_error 400"
    assert clock.sleeps == []


async def test_skips_to_next_tier_when_retry_after_passes_deadline() -> None:
    clock = FakeClock()
    calls = 0

    async def attempt(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise failure(ErrorKind.RATE_LIMITED, status=429, retry_after=20.0)

    with pytest.raises(RetryGaveUp) as info:
        await call_with_retry(
            attempt,
            policy=RetryPolicy(),
            deadline=Deadline.after(2.0, clock=clock),
            sleep=clock.sleep,
        )
    assert calls == 1
    assert clock.sleeps == []
    assert info.value.gave_up_reason == "wait 20.00 s exceeds deadline (2.00 s left)"


async def test_expired_deadline_never_calls_fn() -> None:
    clock = FakeClock()

    async def attempt(seconds: float) -> None:
        raise AssertionError("must not be called")

    with pytest.raises(RetryGaveUp) as info:
        await call_with_retry(
            attempt, policy=RetryPolicy(), deadline=Deadline.after(0.0, clock=clock)
        )
    assert info.value.attempts == 0
    assert info.value.kind is ErrorKind.TIMEOUT


async def test_cancellation_is_never_retried() -> None:
    calls = 0

    async def attempt(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await call_with_retry(attempt, policy=RetryPolicy(), deadline=Deadline.after(30.0))
    assert calls == 1


async def test_cancellation_during_backoff_propagates() -> None:
    calls = 0

    async def attempt(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise failure(retry_after=0.03)  # a real, short sleep

    task = asyncio.create_task(
        call_with_retry(attempt, policy=RetryPolicy(), deadline=Deadline.after(30.0))
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


async def test_other_exceptions_propagate_untouched() -> None:
    async def attempt(seconds: float) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await call_with_retry(attempt, policy=RetryPolicy(), deadline=Deadline.after(30.0))


async def test_breaker_opening_mid_retry_stops_retrying() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("openai", BreakerConfig(failure_threshold=2), clock=clock)
    calls = 0

    async def attempt(seconds: float) -> None:
        nonlocal calls
        async with breaker.call():
            calls += 1
            raise failure()

    with pytest.raises(CircuitOpen):
        await call_with_retry(
            attempt,
            policy=RetryPolicy(max_attempts=5),
            deadline=Deadline.after(30.0, clock=clock),
            sleep=clock.sleep,
        )
    assert calls == 2


async def test_give_up_when_skips_the_wait() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("openai", BreakerConfig(failure_threshold=2), clock=clock)
    calls = 0
    decisions: list[RetryDecision] = []

    async def attempt(seconds: float) -> None:
        nonlocal calls
        async with breaker.call():
            calls += 1
            raise failure()

    def circuit_not_closed() -> str | None:
        return None if breaker.state == "closed" else f"circuit {breaker.describe()}"

    with pytest.raises(RetryGaveUp) as info:
        await call_with_retry(
            attempt,
            policy=RetryPolicy(max_attempts=5, jitter=0.0),
            deadline=Deadline.after(30.0, clock=clock),
            on_attempt_failure=lambda f, n, d: decisions.append(d),
            give_up_when=circuit_not_closed,
            sleep=clock.sleep,
        )
    assert calls == 2
    assert clock.sleeps == [0.5]
    assert info.value.gave_up_reason.startswith("circuit open 30 s: 2 consecutive failures")
    assert [d.retry for d in decisions] == [True, False]


# -- parse_retry_after -------------------------------------------------------------------

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "-5", "retry-after": "9"}, 9.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "later"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "1e999"}, MAX_RETRY_AFTER_SECONDS),
        ({"retry-after": "86400"}, MAX_RETRY_AFTER_SECONDS),
        ({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 01 Jan 2025 11:59:00 GMT"}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=lambda: NOW) == expected


def test_parse_retry_after_http_date_roundtrip() -> None:
    when = datetime.fromtimestamp(NOW + 7, tz=UTC)
    headers = {"Retry-After": format_datetime(when, usegmt=True)}
    assert parse_retry_after(headers, now=lambda: NOW) == 7.0
