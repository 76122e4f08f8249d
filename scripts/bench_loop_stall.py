"""Benchmark: how long jedi work stalls the event loop, jedi in a thread vs in a child process.

A heartbeat task sleeps 10 ms at a time and records how late each wake-up is,
while `SymbolIndex` answers hovers, definitions and callers at sampled call
sites of Django (unpacked from its PyPI wheel), as the server does. Each run
is a fresh Python process (so parso's in-memory cache starts cold in both
modes), the two modes alternate, and medians over the runs are reported:
longest stall, 99th percentile lateness, wall time of the jedi work, the
first `symbol_at` right after the index is created, RSS of this process
and of the jedi child, and what a killed child costs the next request.

Run: `.venv/bin/python scripts/bench_loop_stall.py [--runs 3] [--positions 40]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import call_positions, machine, percentile, rss_mb, wheel_project_for

from lsp_server.context.jedi.process import ProcessWorker
from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.source.chunker import decode_source
from lsp_server.workspace import WorkspaceBoundary

BEAT = 0.010


async def _heartbeat(lateness: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(BEAT)
        lateness.append((loop.time() - before - BEAT) * 1000)


async def one_run(isolate: bool, django: str, count: int) -> dict[str, float]:
    root = wheel_project_for("django", django)
    positions = call_positions(root, "django", count)
    texts = {p: decode_source(p.read_bytes()) for p, _, _ in positions}
    started = time.perf_counter()
    index = SymbolIndex(WorkspaceBoundary(root), isolate=isolate)
    path, line, col = positions[0]
    await index.symbol_at(texts[path], path, line + 1, col, deadline=60)
    first = (time.perf_counter() - started) * 1000
    lateness: list[float] = []
    stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(lateness, stop))
    t0 = time.perf_counter()
    timeouts = 0
    for path, line, col in positions:
        text = texts[path]
        for query in (
            index.symbol_at(text, path, line + 1, col, deadline=5.0),
            index.definitions_batch(text, path, [(line + 1, col)], deadline=5.0, partial=False),
            index.callers(text, path, line + 1, col, deadline=5.0),
        ):
            try:
                await query
            except TimeoutError:
                timeouts += 1
    work = (time.perf_counter() - t0) * 1000
    stop.set()
    await beat
    worker = index.worker
    child = worker.pid if isinstance(worker, ProcessWorker) else None
    rss_child = rss_mb(child) if child else 0.0
    restart = 0.0
    if child:  # what a crash costs the next request: a new child, jedi's caches cold
        os.kill(child, signal.SIGKILL)
        for _ in range(1000):  # dead while idle (a kill mid-job fails that job)
            if worker.pid is None:
                break
            await asyncio.sleep(0.01)
        path, line, col = positions[1]
        t0 = time.perf_counter()
        await index.symbol_at(texts[path] + "\n", path, line + 1, col, deadline=60)
        restart = (time.perf_counter() - t0) * 1000
    result = {
        "first_ms": first,
        "work_ms": work,
        "max_stall_ms": max(lateness),
        "p99_late_ms": percentile(lateness, 99),
        "beats": float(len(lateness)),
        "timeouts": float(timeouts),
        "rss_parent_mb": rss_mb(os.getpid()),
        "rss_child_mb": rss_child,
        "restart_ms": restart,
    }
    index.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (alternating)")
    parser.add_argument("--positions", type=int, default=40)
    parser.add_argument("--django", default="6.1.3")
    parser.add_argument("--one", choices=("thread", "process"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = asyncio.run(one_run(args.one == "process", args.django, args.positions))
        print(json.dumps(result))
        return
    results: dict[str, list[dict[str, float]]] = {"thread": [], "process": []}
    for _ in range(args.runs):
        for mode in ("thread", "process"):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    mode,
                    "--positions",
                    str(args.positions),
                    "--django",
                    args.django,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"machine: {machine()}")
    print(
        f"Django {args.django}: {args.positions} call sites x (symbol_at, definitions, callers), "
        f"5 s deadline each; {args.runs} fresh processes per mode, medians"
    )
    keys = [
        ("max_stall_ms", "longest event-loop stall (ms)"),
        ("p99_late_ms", "heartbeat lateness p99 (ms)"),
        ("work_ms", "jedi work wall time (ms)"),
        ("first_ms", "index created -> first symbol_at (ms)"),
        ("timeouts", "queries past their deadline"),
        ("rss_parent_mb", "RSS this process (MiB)"),
        ("rss_child_mb", "RSS jedi child (MiB)"),
        ("restart_ms", "child killed -> next symbol_at (ms)"),
    ]
    print(f"{'':40} {'thread':>10} {'process':>10}")
    for key, label in keys:
        row = [statistics.median(r[key] for r in results[mode]) for mode in ("thread", "process")]
        print(f"{label:40} {row[0]:10.1f} {row[1]:10.1f}")
    for mode in ("thread", "process"):
        stalls = ", ".join(f"{r['max_stall_ms']:.0f}" for r in results[mode])
        print(f"  {mode} runs, longest stall each: {stalls} ms")


if __name__ == "__main__":
    main()
