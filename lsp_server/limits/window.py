"""Pure arithmetic of the limits: the two-bucket sliding window and budget periods.

The sliding-window counter keeps, per key, the window index it last saw and two
numbers: the amount counted in the previous fixed window and in the current one.
The amount "in the last `window` seconds" is estimated as the previous window's
amount weighted by how much of it still overlaps, plus the current one
(Cloudflare's sliding-window counter). That is O(1) memory per key whatever the
traffic, never undercounts a steady rate by more than the skew of one window, and
both backends (SQLite here, a Lua script for Redis in `redis_backend.py`) run exactly
this arithmetic. Periods are calendar days and months in UTC, named in the
counter keys, so a new period starts from zero without a reset job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NANO = 1_000_000_000
"""Budgets in USD are counted in integer nano-dollars: exact sums, atomic integer
increments in SQLite and Redis."""


def to_nano(usd: float) -> int:
    """USD as whole nano-dollars, rounded up (a reservation never undercounts)."""
    return math.ceil(round(usd * NANO, 3))


@dataclass(frozen=True, slots=True)
class WindowState:
    """One key's counters: the window index and the amounts of that and the previous one."""

    index: int
    previous: float
    current: float


def roll(state: WindowState | None, index: int) -> WindowState:
    """``state`` moved forward to window ``index`` (a window without traffic empties)."""
    if state is None or state.index < index - 1:
        return WindowState(index, 0.0, 0.0)
    if state.index == index - 1:
        return WindowState(index, state.current, 0.0)
    if state.index > index:  # a clock behind another process's: count it as current
        return WindowState(state.index, state.previous, state.current)
    return state


def estimate(state: WindowState, now: float, window: float) -> float:
    """The amount counted over the last ``window`` seconds at ``now``."""
    elapsed = (now - state.index * window) / window
    weight = min(max(1.0 - elapsed, 0.0), 1.0)
    return state.previous * weight + state.current


def admit(
    state: WindowState | None, amount: float, limit: float, now: float, window: float
) -> tuple[bool, WindowState]:
    """Whether ``amount`` fits under ``limit`` now, and the state to store if it does."""
    rolled = roll(state, math.floor(now / window))
    if estimate(rolled, now, window) + amount > limit:
        return False, rolled
    return True, WindowState(rolled.index, rolled.previous, rolled.current + amount)


def period_label(period: str, now: datetime) -> str:
    """The name of the UTC day ("2026-12-02") or month ("2026-12") that holds ``now``."""
    return now.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def period_end(period: str, now: datetime) -> datetime:
    """When the UTC day or month that holds ``now`` ends."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start + timedelta(days=1)
    first = start.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)
