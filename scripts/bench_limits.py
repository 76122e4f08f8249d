#!/usr/bin/env python3
"""Budget overspend under concurrency, and what the limits cost per request.

Runs `LlmService.complete` (the real path: limiter, router, chain, client) against
the fake OpenAI-compatible provider on 127.0.0.1. Each call asks for up to 40,000
tokens and the fake bills exactly that, so a call costs $0.40 at gpt-4o and the
budget of $4.20 allows ten; the cheap tier is gpt-4o too (no cheaper model to
fall back on). Scenarios:

- one process, 64 concurrent calls, local store;
- 4 processes x 16 concurrent calls sharing one local store (SQLite, WAL);
- the same on Redis (when `redis-server` is installed), each process with its own
  local store, so only Redis is shared.

Then the overhead: the time spent in the limiter (admission before the call, settling
after) over 200 sequential calls with the default limits (the fake answers at once).
Prints a Markdown table; overspend must be 0.

    python scripts/bench_limits.py
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from lsp_server.context.tokens import counter_for_model
from lsp_server.limits.build import build_limiter
from lsp_server.limits.limiter import LimitExceeded
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest
from lsp_server.settings import Settings, build_settings
from lsp_server.telemetry.usage import UsageLog
from lsp_server.testing.fake_provider import FakeProvider, Step

BUDGET = 4.2
ANSWER = 40_000
PROMPT = "Explain what `apply_discount` does with a percentage above 100. " * 20


def _settings(base_url: str, work: Path, user: str, **extra: str) -> Settings:
    env = {
        "HOME": str(work),
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": base_url,
        "LLM_CHEAP_MODEL": "gpt-4o",
        "LLM_LSP_CACHE_DIR": str(work / "cache"),
        "LLM_LSP_USAGE_LOG": str(work / "usage.jsonl"),
        "LLM_LSP_USER": user,
        "LLM_LSP_RATE_LIMITS": "{}",
        "LLM_LSP_BUDGETS": json.dumps({"user": {"dailyUsd": BUDGET}}),
        **extra,
    }
    settings, problems = build_settings(env=env)
    assert not problems, [p.message() for p in problems]
    return settings


def _service(settings: Settings, usage: UsageLog, limited: bool = True) -> LlmService:
    counter = counter_for_model("gpt-4o", settings.storage.cache_dir / "tiktoken")

    async def count(request: ChatRequest) -> int:
        return counter.count_messages(request.messages)

    limiter = build_limiter(settings, None, usage, count_prompt=count) if limited else None
    return LlmService(settings.llm, usage, limiter=limiter)


async def _burst(settings: Settings, work: Path, n: int) -> tuple[int, float]:
    """``n`` concurrent calls: (answered, cost in USD)."""
    usage = UsageLog(work / "usage.jsonl")
    service = _service(settings, usage)

    async def one(i: int) -> float:
        request = ChatRequest([{"role": "user", "content": PROMPT}], "explain", max_tokens=ANSWER)
        try:
            done = await service.complete(
                request, deadline=time.monotonic() + 120, request_id=f"b{i}"
            )
        except LimitExceeded:
            return -1.0
        return done.cost_usd

    costs = await asyncio.gather(*(one(i) for i in range(n)))
    await service.aclose()
    answered = [c for c in costs if c >= 0]
    return len(answered), sum(answered)


def _worker(base_url: str, work: str, user: str, n: int, extra: str, out: object) -> None:
    path = Path(work)
    settings = _settings(base_url, path, user, **json.loads(extra))
    answered, cost = asyncio.run(_burst(settings, path, n))
    out.put((answered, cost))  # type: ignore[attr-defined]


def _scenario(
    fake: FakeProvider, processes: int, per: int, redis_url: str | None, shared_store: bool
) -> dict[str, float]:
    fake.reset()
    fake.set_default(Step(text="ok", usage=(1, ANSWER), delay=0.5))
    user = f"bench-{uuid.uuid4().hex[:8]}"
    extra = json.dumps({"LLM_LSP_REDIS_URL": redis_url} if redis_url else {})
    root = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    started = time.perf_counter()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                fake.base_url,
                str(root if shared_store else root / str(i)),
                user,
                per,
                extra,
                out,
            ),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    elapsed = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    spent = sum(cost for _, cost in results)
    return {
        "requests": processes * per,
        "answered": sum(a for a, _ in results),
        "calls": len([r for r in fake.requests if r.path == "/v1/chat/completions"]),
        "spent": spent,
        "overspend": max(0.0, spent - BUDGET),
        "seconds": elapsed,
    }


async def _overhead(settings: Settings, n: int) -> tuple[list[float], list[float]]:
    """``n`` sequential calls with the default limits: (time spent in the limiter, whole
    call), in ms. The limiter's part is `admit` plus `settle`, timed around the same
    steps `LlmService.complete` takes (the whole call is dominated by the fake's HTTP
    round trip in this process, too noisy on a shared machine to subtract)."""
    service = _service(settings, UsageLog(None))
    limiter = service.limiter
    assert limiter is not None
    inside: list[float] = []
    whole: list[float] = []
    for i in range(n):
        request = ChatRequest([{"role": "user", "content": PROMPT}], "hover", max_tokens=100)
        t0 = time.perf_counter()
        admission = await limiter.admit(request, service.router.route(request), f"l{i}")
        t1 = time.perf_counter()
        done = await service._run(request, admission.route, time.monotonic() + 30, f"l{i}")
        t2 = time.perf_counter()
        await admission.settle(done)
        t3 = time.perf_counter()
        inside.append(((t1 - t0) + (t3 - t2)) * 1000)
        whole.append((t3 - t0) * 1000)
    await service.aclose()
    return inside, whole


def _redis() -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def main() -> int:
    rows: list[tuple[str, dict[str, float]]] = []
    with FakeProvider() as fake:
        rows.append(("1 process x 64, local store", _scenario(fake, 1, 64, None, True)))
        rows.append(("4 processes x 16, one local store", _scenario(fake, 4, 16, None, True)))
        redis = _redis()
        if redis is not None:
            proc, url = redis
            try:
                rows.append(("4 processes x 16, Redis", _scenario(fake, 4, 16, url, False)))
            finally:
                proc.terminate()
                proc.wait(10)
        fake.reset()
        fake.set_default(Step(text="ok"))
        work = Path(tempfile.mkdtemp(prefix="bench-limits-"))
        defaults = build_settings(
            env={
                "HOME": str(work),
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": fake.base_url,
                "LLM_LSP_CACHE_DIR": str(work / "cache"),
                "LLM_LSP_USER": "latency",
            }
        )[0]
        asyncio.run(_overhead(defaults, 20))  # warm-up: SDK import, store
        inside, whole = asyncio.run(_overhead(defaults, 200))
        shutil.rmtree(work, ignore_errors=True)
    print(f"Budget ${BUDGET:.2f}; each call costs $0.40 (ten fit). Machine: 2 cores, shared.\n")
    print("| scenario | requests | answered | provider calls | spent | overspend | time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        print(
            f"| {name} | {r['requests']:.0f} | {r['answered']:.0f} | {r['calls']:.0f} | "
            f"${r['spent']:.4f} | ${r['overspend']:.4f} | {r['seconds']:.1f} s |"
        )
    ordered = sorted(inside)
    print(
        f"\nLimits per call (default limits, local store), 200 sequential calls: "
        f"median {statistics.median(inside):.2f} ms, p95 {ordered[189]:.2f} ms "
        f"(reserve + rate limit before, settle after), of a median whole call of "
        f"{statistics.median(whole):.1f} ms against the fake provider"
    )
    return 1 if any(r["overspend"] > 0 for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
