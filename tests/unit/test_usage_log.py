"""The JSONL usage log: one line per attempt, never corrupt, never fatal."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from lsp_server.llm.pricing import cost_usd, price_for
from lsp_server.telemetry.usage import UsageLog, UsageRecord


def _record(i: int = 0, **kw: object) -> UsageRecord:
    base: dict[str, object] = {
        "request_id": f"r{i}",
        "feature": "hover",
        "provider": "openai",
        "model": "gpt-4o",
        "outcome": "ok",
        "latency_ms": 12.5,
        "prompt_tokens": 100,
        "completion_tokens": 20,
    }
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


def test_records_are_json_lines_with_utc_timestamps(tmp_path: Path) -> None:
    log = UsageLog(tmp_path / "deep" / "usage.jsonl")
    log.write(_record(1))
    log.write(_record(2, outcome="error", error_class="timeout"))
    lines = (tmp_path / "deep" / "usage.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["request_id"] == "r1"
    assert first["ts"].endswith("+00:00")
    assert json.loads(lines[1])["error_class"] == "timeout"
    assert [r["request_id"] for r in log.read()] == ["r1", "r2"]


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    logs = [UsageLog(path) for _ in range(4)]  # like several editor windows

    def writer(log: UsageLog, base: int) -> None:
        for i in range(200):
            log.write(_record(base + i, feature="x" * 300))

    threads = [threading.Thread(target=writer, args=(log, n * 1000)) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 800
    assert all(json.loads(line)["feature"] == "x" * 300 for line in lines)


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    log = UsageLog(path)
    log.write(_record(1))
    with path.open("a") as handle:
        handle.write('{"request_id": "torn", "feat')
    assert [r["request_id"] for r in log.read()] == ["r1"]


def test_unwritable_path_is_logged_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = UsageLog(blocker / "usage.jsonl")
    log.write(_record())  # must not raise
    assert list(log.read()) == []


def test_cost_from_pricing_table() -> None:
    assert cost_usd("gpt-4o", 1_000_000, 0) == 2.5
    assert (
        cost_usd("gpt-4o", 1000, 100, cached_tokens=400)
        == (600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6
    )
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert cost_usd("llama3:8b", 1000, 1000) == 0.0


def test_a_record_appended_to_a_torn_line_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    log = UsageLog(path)
    log.write(_record(1))
    with path.open("a") as handle:  # a writer killed mid-line, with a context list open
        handle.write('{"context":[{"label":"a.py:1-2","role":"target"},{"lab')
    log.write(_record(2))
    log.signal("r1", "hover_repeated", "hover")
    assert [(r["kind"], r["request_id"]) for r in log.read()] == [
        ("attempt", "r1"),
        ("attempt", "r2"),
        ("signal", "r1"),
    ]


def test_rotation_by_size_keeps_three_older_files(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    line = len(_record(10).to_json()) + 1  # ids r10..r64: lines of one length
    log = UsageLog(path, max_bytes=line * 10)
    for i in range(10, 65):  # rotates after every 10 lines: 5 rotations, the oldest 2 dropped
        log.write(_record(i))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "usage.jsonl",
        "usage.jsonl.1",
        "usage.jsonl.2",
        "usage.jsonl.3",
    ]
    assert all(p.stat().st_size <= line * 10 for p in log.files())
    ids = [r["request_id"] for r in log.read()]
    assert ids == [f"r{i}" for i in range(30, 65)]  # oldest first, nothing in between lost


def test_rotation_by_several_processes_rotates_once(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    line = len(_record(0).to_json()) + 1
    logs = [UsageLog(path, max_bytes=line * 100) for _ in range(4)]

    def writer(log: UsageLog, base: int) -> None:
        for i in range(50):
            log.write(_record(base + i))

    threads = [threading.Thread(target=writer, args=(log, n * 1000)) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 lines at 100 a file: one or two rotations, never one file per writer
    assert len(list(logs[0].read())) == 200
    assert len(logs[0].files()) <= 3


def test_summary_sums_its_attempts_and_records_the_pipeline_facts(tmp_path: Path) -> None:
    log = UsageLog(tmp_path / "usage.jsonl")
    log.write(_record(7, outcome="error", error_class="rate_limit", cost_usd=0.0))
    log.write(_record(7, attempt=2, cost_usd=0.002, cached_tokens=40))
    log.write(_record(8))  # another request: not in r7's totals
    summary = log.summarize(
        "r7", "hover", outcome="ok", latency_ms=812.0, tier="primary", variant="b", cache="miss"
    )
    assert (summary.attempts, summary.retries, summary.fallbacks) == (2, 1, 0)
    assert (summary.prompt_tokens, summary.cached_tokens, summary.cost_usd) == (200, 40, 0.002)
    [line] = [r for r in log.read() if r["kind"] == "request"]
    assert line["request_id"] == "r7" and line["variant"] == "b" and line["model"] == "gpt-4o"
    assert line["latency_ms"] == 812.0 and line["cache"] == "miss"
