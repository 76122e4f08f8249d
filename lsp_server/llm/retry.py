"""Deadline-aware retry: the one retry layer (the SDK's own retries are off).

Only retryable `ProviderFailure`s are retried (timeouts, 408, 409, 429, 5xx,
connection errors, malformed responses; see `ProviderFailure.retryable`). The wait
before retry n is the server's `Retry-After` / `retry-after-ms`, honoured exactly,
or else the OpenAI SDK's schedule: 0.5 s doubling to at most 8 s, reduced by a
random 0-25 % (reference: `openai._base_client.BaseClient._calculate_retry_timeout`
with `INITIAL_RETRY_DELAY = 0.5`, `MAX_RETRY_DELAY = 8.0`). When the wait plus
`min_attempt_time` would pass the request's deadline, we give up at once so the
router can go to the next tier instead of sleeping.

`Deadline` is absolute on a monotonic clock (injectable for tests).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import TypeVar

from lsp_server.llm.types import ErrorKind, ProviderFailure
from lsp_server.telemetry.tracing import span

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RETRY_AFTER_SECONDS = 3600.0
"""Longer server-directed waits are clamped to this; any of them exceeds a deadline."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. `attempts` count the first one too."""

    max_attempts: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    jitter: float = 0.25
    min_attempt_time: float = 0.05

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.min_attempt_time < 0:
            raise ValueError("backoffs and min_attempt_time must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be in [0, 1]")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait after failed attempt number `attempt` (1-based) when the server gave none.

        `initial_backoff * 2 ** (attempt - 1)` capped at `max_backoff`, then reduced by a
        random fraction in [0, jitter), as the OpenAI SDK does.
        """
        exponent = min(max(attempt - 1, 0), 64)
        base = min(self.initial_backoff * 2.0**exponent, self.max_backoff)
        draw = rng.random() if rng is not None else random.random()
        return base * (1.0 - self.jitter * draw)


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point in time (on `clock`) by which the request must be answered."""

    at: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        """Whether no time is left."""
        return self.remaining() <= 0.0


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to retry after a failure, after how long, and why (for logs and notices)."""

    retry: bool
    wait: float
    reason: str


class RetryGaveUp(ProviderFailure):
    """The last `ProviderFailure` of a request we stopped retrying, with the reason.

    Copies kind, message, status, retry_after, provider and model of the last
    failure (also its `__cause__`), so `except ProviderFailure` handlers keep working.
    """

    def __init__(self, failure: ProviderFailure, *, reason: str, attempts: int) -> None:
        super().__init__(
            failure.kind,
            failure.message,
            status=failure.status,
            retry_after=failure.retry_after,
            provider=failure.provider,
            model=failure.model,
        )
        self.last_failure = failure
        self.gave_up_reason = reason
        self.attempts = attempts


def decide(
    policy: RetryPolicy,
    failure: ProviderFailure,
    attempt: int,
    deadline: Deadline,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide what to do after attempt number `attempt` (1-based) failed with `failure`."""
    if not failure.retryable:
        label = (
            failure.kind.value
            if failure.status is None
            else f"{failure.kind.value} {failure.status}"
        )
        return RetryDecision(False, 0.0, f"not retryable: {label}")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, 0.0, f"attempts exhausted ({attempt} of {policy.max_attempts})")
    if failure.retry_after is not None:
        wait, source = max(0.0, failure.retry_after), "retry-after"
    else:
        wait, source = policy.backoff(attempt, rng), "backoff"
    left = deadline.remaining()
    if wait + policy.min_attempt_time > left:
        return RetryDecision(False, wait, f"wait {wait:.2f} s exceeds deadline ({left:.2f} s left)")
    return RetryDecision(True, wait, f"{source} {wait:.2f} s")


async def call_with_retry(
    fn: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    attempt_timeout: float | None = None,
    on_attempt_failure: Callable[[ProviderFailure, int, RetryDecision], None] | None = None,
    give_up_when: Callable[[], str | None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call `fn(timeout)` until it succeeds or retrying is pointless.

    `timeout` is the time this attempt may take: the deadline's remainder, capped by
    `attempt_timeout`. Only `ProviderFailure` is retried; anything else (including
    `CircuitOpen` and `CancelledError`) propagates at once, untouched. On giving up,
    raises `RetryGaveUp` from the last failure; when the deadline has passed before
    the first attempt, `RetryGaveUp` (kind TIMEOUT, attempts=0) without calling `fn`.
    `give_up_when()` is asked before each wait; a non-None answer is the reason to
    give up now instead (e.g. the provider's breaker has just opened: skip the wait
    and go to the next tier). `on_attempt_failure(failure, attempt, decision)` is
    called after every failure with the final decision.
    """
    last: ProviderFailure | None = None
    attempt = 0
    while True:
        left = deadline.remaining()
        if left <= 0.0 or left < policy.min_attempt_time:
            reason = f"deadline passed ({left:.2f} s left)"
            if last is None:
                first = ProviderFailure(
                    ErrorKind.TIMEOUT, "deadline passed before the request was sent"
                )
                raise RetryGaveUp(first, reason=reason, attempts=0)
            raise RetryGaveUp(last, reason=reason, attempts=attempt) from last
        attempt += 1
        timeout = left if attempt_timeout is None else min(attempt_timeout, left)
        try:
            return await fn(timeout)
        except ProviderFailure as failure:
            decision = decide(policy, failure, attempt, deadline, rng)
            if decision.retry and give_up_when is not None:
                why = give_up_when()
                if why is not None:
                    decision = RetryDecision(False, decision.wait, why)
            logger.debug("attempt %d failed (%r): %s", attempt, failure, decision.reason)
            if on_attempt_failure is not None:
                on_attempt_failure(failure, attempt, decision)
            if not decision.retry:
                raise RetryGaveUp(failure, reason=decision.reason, attempts=attempt) from failure
            last = failure
        wait: dict[str, float | str | int] = {
            "llm_lsp.retry.wait_s": decision.wait,
            "llm_lsp.retry.reason": decision.reason,
            "llm_lsp.retry.after_attempt": attempt,
        }
        with span("retry.wait", wait):
            await sleep(decision.wait)


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asks us to wait, or None if it did not say (usably).

    `retry-after-ms` (milliseconds, float) takes precedence over `Retry-After`, which
    may be seconds (float accepted, as the OpenAI SDK does) or an HTTP-date; header
    names are matched case-insensitively. Unparseable, NaN or negative values are
    ignored (an unusable `retry-after-ms` falls back to `Retry-After`); a date in the
    past means 0. Absurdly long waits are clamped to `MAX_RETRY_AFTER_SECONDS` rather
    than ignored: ignoring "wait a day" would make us retry in 0.5 s instead.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None and millis >= 0:
        return min(millis / 1000.0, MAX_RETRY_AFTER_SECONDS)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is None:
        seconds = _seconds_until(raw, now)
    if seconds is None or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _seconds_until(http_date: str, now: Callable[[], float]) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())
