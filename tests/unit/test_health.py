"""Today's spend from the usage log (`SpendTally`) and the health status line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsp_server.telemetry.health import Health, SpendTally

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _line(cost: float, request_id: str, day: str = "2026-12-02", **extra: Any) -> str:
    record = {"ts": f"{day}T10:00:00.000+00:00", "cost_usd": cost, "request_id": request_id}
    return json.dumps({**record, "outcome": "ok", "feature": "hover", **extra}) + "\n"


def test_spend_today_counts_attempts_of_today_only(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_text(
        _line(0.01, "a")
        + _line(0.02, "a")  # a retry of the same request
        + _line(0.5, "old", day="2026-12-01")
        + _line(0.03, "a", kind="request")  # a summary repeats its attempts' cost
        + _line(0.001, "probe-1", feature="probe")
        + "not json\n"
        + _line(0.0, "b", outcome="skipped")
    )
    spend, requests = SpendTally(log).today(NOON)
    assert round(spend, 6) == 0.03
    assert requests == 1


def test_appended_lines_are_read_incrementally_and_a_torn_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_text(_line(0.01, "a"))
    tally = SpendTally(log)
    assert tally.today(NOON) == (0.01, 1)
    torn = _line(0.02, "b")
    with log.open("a") as handle:
        handle.write(torn[:20])
    assert tally.today(NOON) == (0.01, 1)
    with log.open("a") as handle:
        handle.write(torn[20:])
    spend, requests = tally.today(NOON)
    assert (round(spend, 6), requests) == (0.03, 2)


def test_rotation_and_a_new_day_start_again(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_text(_line(0.01, "a") + _line(0.02, "b"))
    tally = SpendTally(log)
    assert tally.today(NOON)[1] == 2
    log.rename(tmp_path / "usage.jsonl.1")  # rotated: a new, shorter file
    log.write_text(_line(0.04, "c"))
    assert tally.today(NOON) == (0.04, 1)
    assert tally.today(datetime(2026, 12, 3, 0, 1, tzinfo=UTC)) == (0.0, 0)
    assert SpendTally(tmp_path / "missing.jsonl").today(NOON) == (0.0, 0)


def test_the_status_line_names_what_is_wrong() -> None:
    quiet = Health(0.4211, 3, None, {"primary": "closed"}, 0)
    assert quiet.status() == "llm-lsp $0.42 today"
    busy = Health(1.0, 9, 4.0, {"primary": "open 42 s: 3 failures", "local": "closed"}, 2)
    assert busy.status() == (
        "llm-lsp $1.00 today · budget $4.00 left · primary open 42 s: 3 failures · queue 2"
    )
    assert busy.to_json()["budgetLeftUsd"] == 4.0
