"""A usage log of a few days of work, for the report's tests (written as the server does)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lsp_server.telemetry.usage import ContextUse, UsageLog, UsageRecord


def write_sample_log(path: Path, now: datetime | None = None, days: int = 4) -> UsageLog:
    """Hovers, explains and fixes over ``days`` days: retries, a fallback to the local
    tier behind an open breaker, cache hits, both prompt variants and their signals."""
    now = now or datetime.now(UTC)
    log = UsageLog(path)
    n = 0
    for day in range(days):
        for i in range(6):
            n += 1
            when = now - timedelta(days=days - 1 - day, hours=6 - i)
            ts = when.isoformat(timespec="milliseconds")
            feature = ("hover", "hover", "explain", "fix", "hover", "explain")[i]
            rid = f"{feature[:2]}{day}{i}{'0' * 10}{n:02d}"
            variant = "b" if i % 2 else "a"
            model = "gpt-4o" if i != 4 else "gpt-4o-mini"
            attempts = (
                [(1, "ok", None)] if i != 1 else [(1, "error", "rate_limit"), (2, "ok", None)]
            )

            base = UsageRecord(
                request_id=rid,
                feature=feature,
                provider="openai",
                model=model,
                outcome="ok",
                latency_ms=300.0 + 100 * i + 40 * day,
                prompt_tokens=900 + 400 * i,
                completion_tokens=120 + 30 * i,
                cached_tokens=256 if i == 2 else 0,
                cost_usd=round(0.002 + 0.004 * i * (day + 1), 6),
                price="$2.5 in / $1.25 cached / $10 out per million tokens",
                ts=ts,
            )

            tier, outcome, cache = "primary", "ok", "miss"
            if day == 2 and i == 5:  # the primary's breaker opened: the local tier answered
                log.write(
                    dataclasses.replace(
                        base,
                        outcome="skipped",
                        error_class="circuit_open",
                        latency_ms=0.0,
                        prompt_tokens=0,
                        completion_tokens=0,
                        cost_usd=0.0,
                    )
                )
                log.write(
                    dataclasses.replace(
                        base, provider="local", model="gemma3", tier="local", cost_usd=0.0
                    )
                )
                tier = "local"
            elif day == 1 and i == 4:  # answered from the cache: no attempt
                cache, tier = "hit", "cache"
            else:
                for a, out, err in attempts:
                    cost = base.cost_usd if out == "ok" else 0.0
                    log.write(
                        dataclasses.replace(
                            base, attempt=a, outcome=out, error_class=err, cost_usd=cost
                        )
                    )
            log.summarize(
                rid,
                feature,
                outcome=outcome,
                latency_ms=350.0 + 120 * i + 50 * day,
                tier=None if tier == "cache" else tier,
                cache=cache,
                context_tokens=640,
                context=(
                    ContextUse("app/models.py:10-42", "target", 410),
                    ContextUse("app/util.py:3-9", "definition", 230),
                ),
                prompt_version=f"{feature}@2{variant}",
                variant=variant,
                answer_chars=400 + 50 * i,
                signals={"fix_validated": True} if feature == "fix" else {},
                breakers_open=("openai",) if tier == "local" else (),
                ts=(when + timedelta(seconds=1)).isoformat(timespec="milliseconds"),
            )
            if feature == "fix":
                log.signal(rid, "fix_applied" if day % 2 else "fix_discarded", "fix")
            if feature == "hover" and variant == "b":
                log.signal(rid, "hover_repeated", "hover")
    return log
