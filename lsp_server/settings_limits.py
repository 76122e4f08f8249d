"""The `settings.limits` group: budgets, rate limits and who is counted.

Declared like every other group (see `settings_spec.setting`). A budget or a rate
limit is a cost control: a repository must not raise it, remove it or book its spend
to someone else, so every setting here is `Trust.USER` (taken from the workspace
layer only when the client declares the workspace trusted). The value types
(`BudgetRule`, `RateRule`) and their parsers live here too, so the settings layer
needs nothing from `lsp_server/limits/`, which enforces them.

`budgets` is an object by scope ("user", "workspace", "team"), each with any of
`dailyUsd`, `monthlyUsd`, `dailyTokens`, `monthlyTokens` (null: no limit);
`rateLimits` is an object by scope ("user", "team"), then by feature ("hover",
"explain", "fix", "ask", "summary", or "*" for any other), each with `requests`
and/or `tokens` per `rateLimitWindow` seconds.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lsp_server.settings_spec import Trust, setting
from lsp_server.settings_values import (
    Secret,
    parse_fraction,
    parse_optional_str,
    parse_positive_float,
    parse_str,
)

USER = Trust.USER

BUDGET_SCOPES = ("user", "workspace", "team")
RATE_SCOPES = ("user", "team")
PERIODS = ("day", "month")
UNITS = ("usd", "tokens")
_BUDGET_KEYS = {
    "dailyUsd": ("day", "usd"),
    "monthlyUsd": ("month", "usd"),
    "dailyTokens": ("day", "tokens"),
    "monthlyTokens": ("month", "tokens"),
}


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One budget: at most `limit` USD or tokens per `period` for one `scope`."""

    scope: str
    period: str
    unit: str
    limit: float


@dataclass(frozen=True, slots=True)
class RateRule:
    """One rate limit: at most `limit` requests or tokens per window, per scope and feature."""

    scope: str
    feature: str
    unit: str  # "requests" | "tokens"
    limit: int


DEFAULT_BUDGETS: tuple[BudgetRule, ...] = (
    BudgetRule("user", "day", "usd", 10.0),
    BudgetRule("user", "month", "usd", 100.0),
)
"""$10 a day and $100 a month per user; no token or workspace budget."""

DEFAULT_RATE_LIMITS: tuple[RateRule, ...] = (
    RateRule("user", "hover", "requests", 300),
    RateRule("user", "hover", "tokens", 1_000_000),
    RateRule("user", "explain", "requests", 60),
    RateRule("user", "fix", "requests", 60),
    RateRule("user", "ask", "requests", 60),
    RateRule("user", "*", "requests", 120),
    RateRule("user", "*", "tokens", 2_000_000),
)
"""Per user and minute: many small hovers, fewer (larger) agent steps (each step of an
Explain or Fix is one request). Generous: they stop a runaway loop, not a person."""


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"expected a JSON object of {what}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object of {what}")
    return value


def _amount(value: Any, what: str, *, integer: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{what}: expected a number from 0 up, or null")
    if integer and int(value) != value:
        raise ValueError(f"{what}: expected a whole number")
    return float(value)


def parse_budgets(value: Any) -> tuple[BudgetRule, ...]:
    """The `budgets` object; null or "" means no budget at all."""
    if value is None or value == "":
        return ()
    out: list[BudgetRule] = []
    for scope, limits in _object(value, "budgets by scope").items():
        if scope not in BUDGET_SCOPES:
            raise ValueError(f"unknown scope {scope!r}: expected {', '.join(BUDGET_SCOPES)}")
        for key, raw in _object(limits, f"{scope} budgets").items():
            if key not in _BUDGET_KEYS:
                raise ValueError(f"{scope}: unknown budget {key!r}: {', '.join(_BUDGET_KEYS)}")
            period, unit = _BUDGET_KEYS[key]
            limit = _amount(raw, f"{scope}.{key}", integer=unit == "tokens")
            if limit is not None:
                out.append(BudgetRule(str(scope), period, unit, limit))
    return tuple(out)


def parse_rate_limits(value: Any) -> tuple[RateRule, ...]:
    """The `rateLimits` object; null or "" means no rate limit."""
    if value is None or value == "":
        return ()
    out: list[RateRule] = []
    for scope, features in _object(value, "rate limits by scope").items():
        if scope not in RATE_SCOPES:
            raise ValueError(f"unknown scope {scope!r}: expected {', '.join(RATE_SCOPES)}")
        for feature, limits in _object(features, f"{scope} rate limits by feature").items():
            if not isinstance(feature, str) or not feature:
                raise ValueError(f"{scope}: a feature must be a non-empty string")
            for unit, raw in _object(limits, f"{scope}.{feature} limits").items():
                if unit not in ("requests", "tokens"):
                    raise ValueError(f"{scope}.{feature}: unknown limit {unit!r}")
                limit = _amount(raw, f"{scope}.{feature}.{unit}", integer=True)
                if limit is not None:
                    out.append(RateRule(str(scope), feature, unit, int(limit)))
    return tuple(out)


def parse_redis_url(value: Any) -> Secret | None:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL (kept secret: it may hold a
    password), or None for null or ""."""
    text = parse_optional_str(value)
    if text is None:
        return None
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return Secret(text)


def _current_user(env: Mapping[str, str]) -> str:
    name = env.get("USER") or env.get("LOGNAME")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (containers)
        return "default"


@dataclass(frozen=True)
class LimitsSettings:
    """Budgets (USD and tokens per day and month) and rate limits (per window)."""

    # The defaults are given as `env_default`: they are not JSON, so the editors' schema
    # shows them in the description (`shown_default`) rather than as a default value.
    budgets: tuple[BudgetRule, ...] = setting(
        key="budgets",
        env="LLM_LSP_BUDGETS",
        parse=parse_budgets,
        doc="spend limits by scope (user, workspace, team): dailyUsd, monthlyUsd, "
        "dailyTokens, monthlyTokens; reached: no paid model until the period ends",
        trust=USER,
        env_default=lambda env: DEFAULT_BUDGETS,
        shown_default='`{"user": {"dailyUsd": 10, "monthlyUsd": 100}}`',
    )
    soft_limit: float = setting(
        0.8,
        key="budgetSoftLimit",
        env="LLM_LSP_BUDGET_SOFT_LIMIT",
        parse=parse_fraction,
        doc="share of a budget past which requests go to the cheaper model (0: never)",
        trust=USER,
    )
    rate_limits: tuple[RateRule, ...] = setting(
        key="rateLimits",
        env="LLM_LSP_RATE_LIMITS",
        parse=parse_rate_limits,
        doc="requests and tokens per window by scope (user, team) and feature (hover, "
        'explain, fix, ask, summary, "*"); limited requests degrade to local/cache/static',
        trust=USER,
        env_default=lambda env: DEFAULT_RATE_LIMITS,
        shown_default="per user: hover 300 requests and 1M tokens, explain/fix/ask 60 "
        "requests (one per agent step), others 120 requests and 2M tokens",
    )
    rate_window: float = setting(
        60.0,
        key="rateLimitWindow",
        env="LLM_LSP_RATE_LIMIT_WINDOW",
        parse=parse_positive_float,
        doc="seconds of the rate limits' sliding window",
        trust=USER,
    )
    user: str = setting(
        key="user",
        env="LLM_LSP_USER",
        parse=parse_str,
        doc="who user budgets and rate limits count against",
        trust=USER,
        env_default=_current_user,
        shown_default="the login name",
    )
    team: str | None = setting(
        key="team",
        env="LLM_LSP_TEAM",
        parse=parse_optional_str,
        doc="team whose budgets and rate limits also apply (shared through `redisUrl`)",
        trust=USER,
        shown_default="none",
    )
