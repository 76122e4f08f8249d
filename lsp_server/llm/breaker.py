"""Per-provider circuit breaker for asyncio.

States: CLOSED (traffic flows) → OPEN (every call rejected at once for a cooldown)
→ HALF_OPEN (cooldown over; exactly one probe may run) → CLOSED on probe success,
or OPEN again with a fresh cooldown on probe failure.

The breaker trips on `failure_threshold` consecutive counted failures, or when at
least `min_calls_in_window` counted calls in the last `window_seconds` failed at a
rate of `failure_rate` or more. A quota/billing failure trips it at once for
`quota_cooldown_seconds`.

How an exception counts (see `classify`):

- `ProviderFailure` with kind QUOTA_EXCEEDED or status 402: quota, opens at once.
- `ProviderFailure` with kind CLIENT_ERROR: counted only for 408/409/429; any other
  client error (400, 404, 422, ...) is the request's fault and is neutral.
- every other `ProviderFailure` kind is counted, AUTH_ERROR included: a rejected key
  affects every request to the provider, not just this one (reset the breaker when
  the settings change).
- a bare `TimeoutError` (from `asyncio.timeout` inside the guarded block) is counted.
- `asyncio.CancelledError` and any other exception are neutral: cancellation is the
  user's choice and other exceptions are our bugs, not the provider's health.
  NB: a timeout placed *outside* the guarded block cancels the block, so the breaker
  sees a cancellation; pass the deadline to the SDK call instead.

Probes. Without a `probe` callable the first caller admitted in HALF_OPEN is the
probe. With one, user traffic never probes: a call in HALF_OPEN schedules the probe
as a background task (`schedule_probe`) and is rejected with `CircuitOpen(retry_in=0)`
so the caller goes straight to the next tier. In both modes exactly one probe is in
flight: admission is synchronous (no await between the check and the claim). A probe
in flight longer than `probe_timeout_seconds` is presumed lost and its slot reusable.

An outcome only counts if the breaker has not changed state since the call was
admitted, so stragglers from before a trip neither extend nor end it.

Usage: guard each provider attempt with `async with breaker.call(): ...` (for a
stream, keep the block open until the stream ends), or call `acquire()` and settle
the returned `Permit` yourself with `success()`, `failure(exc)` or `release()`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

from lsp_server.llm.types import ErrorKind, ProviderFailure

logger = logging.getLogger(__name__)

_COUNTED_CLIENT_STATUSES = frozenset({408, 409, 429})


class BreakerState(StrEnum):
    """What the breaker lets through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    """How one admitted call ended, as far as provider health is concerned."""

    SUCCESS = "success"
    FAILURE = "failure"
    QUOTA = "quota"
    NEUTRAL = "neutral"


def classify(exc: BaseException) -> Outcome:
    """Map an exception that ended a guarded call to FAILURE, QUOTA or NEUTRAL."""
    if isinstance(exc, ProviderFailure):
        if exc.kind is ErrorKind.QUOTA_EXCEEDED or exc.status == 402:
            return Outcome.QUOTA
        if exc.kind is ErrorKind.CLIENT_ERROR:
            counted = exc.status in _COUNTED_CLIENT_STATUSES
            return Outcome.FAILURE if counted else Outcome.NEUTRAL
        return Outcome.FAILURE
    if isinstance(exc, TimeoutError):
        return Outcome.FAILURE
    return Outcome.NEUTRAL


def _label(exc: BaseException) -> str:
    if isinstance(exc, ProviderFailure):
        return exc.kind.value if exc.status is None else f"{exc.kind.value} {exc.status}"
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT.value
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds and cooldowns, in counts and seconds."""

    failure_threshold: int = 5
    window_seconds: float = 60.0
    min_calls_in_window: int = 10
    failure_rate: float = 0.5
    cooldown_seconds: float = 30.0
    quota_cooldown_seconds: float = 600.0
    probe_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.min_calls_in_window < 1:
            raise ValueError("failure_threshold and min_calls_in_window must be >= 1")
        if not 0.0 < self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be in (0, 1]")
        durations = (
            self.window_seconds,
            self.cooldown_seconds,
            self.quota_cooldown_seconds,
            self.probe_timeout_seconds,
        )
        if any(not d > 0 for d in durations):
            raise ValueError("windows, cooldowns and probe timeout must be > 0")


class CircuitOpen(Exception):
    """Raised at once, without waiting, when the breaker does not admit a call."""

    def __init__(self, provider: str, state: BreakerState, retry_in: float, reason: str) -> None:
        self.provider = provider
        self.state = state
        self.retry_in = retry_in
        self.reason = reason
        if state is BreakerState.OPEN:
            text = f"{provider} circuit open for {math.ceil(retry_in)} s"
        else:
            text = f"{provider} circuit half-open, waiting for a probe"
        super().__init__(f"{text}: {reason}" if reason else text)


TransitionHook = Callable[[BreakerState, BreakerState, str], None]


class Permit:
    """One admitted call. Settle it exactly once; later settlements are ignored."""

    __slots__ = ("_breaker", "_settled", "epoch", "is_probe")

    def __init__(self, breaker: CircuitBreaker, epoch: int, *, is_probe: bool) -> None:
        self._breaker = breaker
        self._settled = False
        self.epoch = epoch
        self.is_probe = is_probe

    def success(self) -> None:
        """The provider answered as expected."""
        self._settle(Outcome.SUCCESS, "", None)

    def failure(self, exc: BaseException) -> None:
        """The call ended with `exc`; it counts as `classify(exc)` says."""
        retry_after = exc.retry_after if isinstance(exc, ProviderFailure) else None
        self._settle(classify(exc), _label(exc), retry_after)

    def release(self) -> None:
        """The call ended without saying anything about provider health."""
        self._settle(Outcome.NEUTRAL, "", None)

    def _settle(self, outcome: Outcome, label: str, retry_after: float | None) -> None:
        if self._settled:
            return
        self._settled = True
        self._breaker._settle(self, outcome, label, retry_after)


class CircuitBreaker:
    """Circuit breaker for one provider. Single event loop; no threads."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], Awaitable[object]] | None = None,
        on_transition: TransitionHook | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._probe = probe
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._epoch = 0
        self._open_until = 0.0
        self._consecutive = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._reason = ""
        self._probe_permit: Permit | None = None
        self._probe_started = 0.0
        self._probe_task: asyncio.Task[bool] | None = None

    # -- observation -------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """Current state; OPEN turns into HALF_OPEN once the cooldown has elapsed."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._transition(BreakerState.HALF_OPEN, "cooldown elapsed")
        return self._state

    @property
    def retry_in(self) -> float:
        """Seconds until a probe may run (0 unless OPEN)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self._open_until - self._clock())
        return 0.0

    @property
    def last_failure_reason(self) -> str:
        """Why the breaker last opened ("" if it never did)."""
        return self._reason

    @property
    def probing(self) -> bool:
        """Whether a probe is in flight now."""
        return self.state is BreakerState.HALF_OPEN and self._probe_permit is not None

    def describe(self) -> str:
        """Short text for the hover footer, e.g. "open 42 s: 5 consecutive failures ..."."""
        state = self.state
        if state is BreakerState.OPEN:
            return f"open {math.ceil(self.retry_in)} s: {self._reason}"
        if state is BreakerState.HALF_OPEN:
            return "half-open (probing)" if self._probe_permit is not None else "half-open"
        return "closed"

    # -- admission ---------------------------------------------------------------

    def acquire(self) -> Permit:
        """Admit one call or raise `CircuitOpen` at once. Settle the returned permit."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(self, self._epoch, is_probe=False)
        if state is BreakerState.OPEN:
            retry_in = max(0.0, self._open_until - self._clock())
            raise CircuitOpen(self.name, state, retry_in, self._reason)
        if self._probe is None:
            permit = self._claim_probe()
            if permit is not None:
                return permit
        else:
            self.schedule_probe()
        raise CircuitOpen(self.name, state, 0.0, self._reason)

    @asynccontextmanager
    async def call(self) -> AsyncIterator[Permit]:
        """Guard one provider call: `async with breaker.call(): await request()`.

        Raises `CircuitOpen` on entry if the call is not admitted. A normal exit is a
        success; an exception is classified (see `classify`) and re-raised.
        """
        permit = self.acquire()
        try:
            yield permit
        except BaseException as exc:
            permit.failure(exc)
            raise
        else:
            permit.success()

    def reset(self) -> None:
        """Close the breaker and forget its history (e.g. after a settings change)."""
        if self._state is not BreakerState.CLOSED:
            self._transition(BreakerState.CLOSED, "reset")
        self._consecutive = 0
        self._window.clear()

    # -- background probe ----------------------------------------------------------

    def schedule_probe(self) -> asyncio.Task[bool] | None:
        """Start the configured probe as a task if one is due; None if not started."""
        if self._probe is None or self.state is not BreakerState.HALF_OPEN:
            return None
        permit = self._claim_probe()
        if permit is None:
            return None
        task = asyncio.get_running_loop().create_task(
            self._run_probe(self._probe, permit), name=f"breaker-probe-{self.name}"
        )
        self._probe_task = task  # keep a strong reference while it runs
        return task

    async def _run_probe(self, probe: Callable[[], Awaitable[object]], permit: Permit) -> bool:
        try:
            async with asyncio.timeout(self.config.probe_timeout_seconds):
                await probe()
        except asyncio.CancelledError:
            permit.release()
            raise
        except Exception as exc:
            # Our own prompt failed: anything but cancellation means "not healthy".
            outcome = classify(exc)
            if outcome is Outcome.NEUTRAL:
                logger.warning("breaker %s: probe raised %r", self.name, exc)
                outcome = Outcome.FAILURE
            retry_after = exc.retry_after if isinstance(exc, ProviderFailure) else None
            permit._settle(outcome, _label(exc), retry_after)
            return False
        permit.success()
        return True

    # -- internals -----------------------------------------------------------------

    def _claim_probe(self) -> Permit | None:
        now = self._clock()
        if self._probe_permit is not None:
            age = now - self._probe_started
            if age < self.config.probe_timeout_seconds:
                return None
            logger.warning("breaker %s: probe in flight for %.0f s presumed lost", self.name, age)
        permit = Permit(self, self._epoch, is_probe=True)
        self._probe_permit = permit
        self._probe_started = now
        return permit

    def _settle(
        self, permit: Permit, outcome: Outcome, label: str, retry_after: float | None
    ) -> None:
        if permit.epoch != self._epoch or (permit.is_probe and self._probe_permit is not permit):
            logger.debug("breaker %s: stale %s outcome ignored", self.name, outcome.value)
            return
        cfg = self.config
        if permit.is_probe:
            self._probe_permit = None
            if outcome is Outcome.SUCCESS:
                self._transition(BreakerState.CLOSED, "probe succeeded")
            elif outcome is Outcome.QUOTA:
                self._trip(cfg.quota_cooldown_seconds, f"quota exhausted ({label})", retry_after)
            elif outcome is Outcome.FAILURE:
                self._trip(cfg.cooldown_seconds, f"probe failed ({label})", retry_after)
            return
        # Same epoch and not a probe: the breaker is CLOSED.
        if outcome is Outcome.NEUTRAL:
            return
        if outcome is Outcome.QUOTA:
            self._trip(cfg.quota_cooldown_seconds, f"quota exhausted ({label})", retry_after)
            return
        now = self._clock()
        ok = outcome is Outcome.SUCCESS
        self._window.append((now, ok))
        while self._window and self._window[0][0] <= now - cfg.window_seconds:
            self._window.popleft()
        if ok:
            self._consecutive = 0
            return
        self._consecutive += 1
        calls = len(self._window)
        failures = sum(1 for _, good in self._window if not good)
        if self._consecutive >= cfg.failure_threshold:
            reason = f"{self._consecutive} consecutive failures, last {label}"
        elif calls >= cfg.min_calls_in_window and failures >= cfg.failure_rate * calls:
            reason = f"{failures} of {calls} calls failed in {cfg.window_seconds:g} s, last {label}"
        else:
            return
        self._trip(cfg.cooldown_seconds, reason, retry_after)

    def _trip(self, cooldown: float, reason: str, retry_after: float | None) -> None:
        # A server-directed wait longer than the cooldown is honoured, up to the quota one.
        if retry_after is not None and retry_after > cooldown:
            cooldown = min(retry_after, max(cooldown, self.config.quota_cooldown_seconds))
        self._open_until = self._clock() + cooldown
        self._reason = reason
        self._transition(BreakerState.OPEN, f"{reason}; cooldown {cooldown:g} s")

    def _transition(self, new: BreakerState, reason: str) -> None:
        old = self._state
        self._state = new
        self._epoch += 1
        self._probe_permit = None
        self._consecutive = 0
        self._window.clear()
        logger.info("breaker %s: %s -> %s (%s)", self.name, old.value, new.value, reason)
        if self._on_transition is not None:
            try:
                self._on_transition(old, new, reason)
            except Exception:
                logger.exception("breaker %s: on_transition hook failed", self.name)
