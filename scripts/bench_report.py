"""Time `llm-lsp report` on a usage log as large as rotation lets it grow.

Writes ``--requests`` requests (one or two attempts, a summary, some signals) spread
over 30 days through `UsageLog` with rotation at the default 20 MB, then times reading
every file, computing the figures and rendering the page, ``--runs`` times, and prints
the median wall and CPU time of each step (CPU time is the figure to compare on a
shared machine), the log's size and the page's size.

    python scripts/bench_report.py --requests 70000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lsp_server.report.data import Figures, load
from lsp_server.report.html import render
from lsp_server.telemetry.usage import ContextUse, UsageLog, UsageRecord

FEATURES = ("hover", "hover", "hover", "explain", "fix", "ask")


def write_log(path: Path, requests: int) -> UsageLog:
    log = UsageLog(path)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(days=30) / requests
    for n in range(requests):
        ts = (start + step * n).isoformat(timespec="milliseconds")
        feature = FEATURES[n % len(FEATURES)]
        rid = f"{n:016x}"
        variant = "ab"[n % 2]
        for attempt in (1, 2) if n % 17 == 0 else (1,):
            log.write(
                UsageRecord(
                    request_id=rid,
                    feature=feature,
                    provider="openai",
                    model="gpt-4o" if n % 5 else "gpt-4o-mini",
                    outcome="ok" if attempt == 2 or n % 17 else "error",
                    latency_ms=400.0 + n % 900,
                    prompt_tokens=800 + n % 2000,
                    completion_tokens=100 + n % 300,
                    cost_usd=0.001 * (1 + n % 7),
                    attempt=attempt,
                    ts=ts,
                )
            )
        log.summarize(
            rid,
            feature,
            outcome="ok",
            latency_ms=500.0 + n % 1200,
            tier="primary",
            cache=("miss", "hit")[n % 3 == 0],
            context_tokens=700,
            context=(
                ContextUse("pkg/mod.py:10-40", "target", 400),
                ContextUse("x.py:1-9", "definition", 300),
            ),
            prompt_version=f"{feature}@2{variant}",
            variant=variant,
            answer_chars=300 + n % 500,
            ts=ts,
        )
        if n % 11 == 0:
            log.signal(rid, "hover_repeated", feature)
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=70000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = write_log(Path(tmp) / "usage.jsonl", args.requests)
        size = sum(p.stat().st_size for p in log.files())
        steps: dict[str, list[tuple[float, float]]] = {"read": [], "figures": [], "render": []}
        page = ""

        def clock() -> tuple[float, float]:
            return time.perf_counter(), time.process_time()

        for _ in range(args.runs):
            t0 = clock()
            requests = load(log.read())
            t1 = clock()
            figures = Figures.build(requests)
            t2 = clock()
            page = render(figures)
            t3 = clock()
            for name, (a, b) in (("read", (t0, t1)), ("figures", (t1, t2)), ("render", (t2, t3))):
                steps[name].append((b[0] - a[0], b[1] - a[1]))
        print(
            f"{args.requests} requests, {len(log.files())} files, {size / 1e6:.1f} MB; "
            f"page {len(page) / 1e3:.0f} kB"
        )
        for name, values in steps.items():
            wall = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            print(f"  {name:8} median wall {wall:.2f} s, CPU {cpu:.2f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
