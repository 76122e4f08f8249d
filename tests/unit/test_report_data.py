"""The report's figures from a usage log: exact sums, percentiles, openings, variants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lsp_server.report.data import Figures, load, parse_since, percentile
from lsp_server.report.terminal import cost_breakdown, find, summary_table
from lsp_server.telemetry.usage import UsageLog
from tests.usage_samples import write_sample_log

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def log(tmp_path: Path) -> UsageLog:
    return write_sample_log(tmp_path / "usage.jsonl", now=NOW, days=4)


def test_money_is_summed_from_the_attempts(log: UsageLog) -> None:
    records = list(log.read())
    figures = Figures.build(load(records))
    attempts = [r for r in records if r["kind"] == "attempt"]
    assert figures.attempts == len(attempts) == 28
    assert figures.total_cost == pytest.approx(sum(a["cost_usd"] for a in attempts))
    assert sum(figures.cost_by_model.values()) == pytest.approx(figures.total_cost)
    assert figures.cost_by_model["gemma3"] == 0.0  # the local tier is free
    assert list(figures.cost_by_day) == ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]
    assert figures.top[0].cost == max(r.cost for r in figures.requests)


def test_since_keeps_the_recent_days_only(log: UsageLog) -> None:
    since = parse_since("2d", now=NOW)
    figures = Figures.build(load(log.read(), since), since)
    assert list(figures.cost_by_day) == ["2026-12-01", "2026-12-02"]
    assert len(figures.requests) == 12


def test_latency_cache_fallbacks_and_openings(log: UsageLog) -> None:
    figures = Figures.build(load(log.read()))
    assert set(figures.latency_by_tier) == {"primary", "local", "cache"}
    assert figures.latency_by_tier["local"] == (1050.0, 1050.0, 1)
    assert (figures.cache_hits, figures.cache_lookups) == (1, 24)
    # each day's retried hover fell back once, and day 3's request skipped an open breaker
    assert figures.fallbacks_by_day == {
        "2026-11-29": 1,
        "2026-11-30": 1,
        "2026-12-01": 2,
        "2026-12-02": 1,
    }
    assert figures.breaker_openings_by_day == {"2026-12-01": 1}


def test_variants_are_compared_with_their_signals(log: UsageLog) -> None:
    rows = {v.variant: v for v in Figures.build(load(log.read())).variants}
    assert set(rows) == {"hover@2a", "hover@2b", "explain@2a", "explain@2b", "fix@2b"}
    assert rows["hover@2b"].signals == {"hover_repeated": 4}
    assert rows["fix@2b"].signals == {"fix_applied": 2, "fix_discarded": 2, "fix_validated": 4}
    assert rows["hover@2a"].requests == 8


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95)) == (50.0, 95.0)
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) == 0.0


@pytest.mark.parametrize("text", ["last week", "7w", "", "2026-13-01"])
def test_a_bad_since_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="expected 7d, 12h, 30m or an ISO date"):
        parse_since(text)


def test_iso_since_is_utc() -> None:
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("90m", now=NOW) == NOW - timedelta(minutes=90)


def test_terminal_views(log: UsageLog) -> None:
    requests = load(log.read())
    table = summary_table(Figures.build(requests))
    assert table.splitlines()[0].startswith("llm-lsp usage all records: 24 requests, 28 provider")
    [local] = [r for r in requests if r.tier == "local"]
    assert find(requests, local.request_id[:6]) == [local]
    text = cost_breakdown(local)
    assert "answered by: local (gemma3)" in text
    assert "skipped (circuit_open)" in text
    assert "app/models.py:10-42  target         410" in text
