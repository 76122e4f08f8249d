"""The soak run shared by `test_soak.py` (a short run in the suite) and `scripts/soak.py`.

A real `llm-lsp serve` process answers a random mix of hover, code action listing,
`codeAction/resolve`, Explain, Fix and Ask requests, a few in flight at once, a fifth of
them cancelled at a random moment, while the fake provider answers about one call in ten
with a fault of every kind it knows (HTTP errors with and without ``Retry-After``, quota
errors, malformed bodies, resets, timeouts, empty answers, truncated streams).

What is measured, from outside the server:

* every response the client receives, by request id (so a second response, or none, shows);
* the server's resident memory (``/proc/PID/status``) after the warm-up and at the end;
* event-loop stalls after the warm-up: `stallprobe/sitecustomize.py` times every asyncio
  callback in the server, in the main thread's CPU time (what our code costs the loop) and
  wall time (which a busy shared machine inflates); stalls are judged by CPU time, with
  full garbage collections counted apart (a gen-2 pass over the heap, ~160 ms, is the
  one pause over 100 ms seen in 2,000 requests);
* the server log's tracebacks and ERROR lines, and the usage log against the provider
  attempts the fake saw.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session

KINDS = ("hover", "actions", "resolve", "explain", "fix", "ask")
PROVIDER_PATHS = ("/v1/chat/completions", "/v1/embeddings")
ATTEMPT_TIMEOUT = 1.0
STALL_PROBE = Path(__file__).parent / "stallprobe"
MAX_GC_PAUSE_MS = 300.0
"""A full collection of the ~160 MB heap takes ~160 ms CPU (measured); more is a leak sign."""
_HOVERS = [
    ("shop/basket.py", 18, 17),
    ("shop/basket.py", 13, 30),
    ("shop/basket.py", 16, 30),
    ("shop/stats.py", 5, 15),
    ("shop/pricing.py", 16, 6),
]
_QUESTIONS = ["Where is VAT applied?", "How is a discount computed?", "What does average do?"]


def fault_steps() -> list[Step]:
    """One step of every fault the fake provider knows (the soak draws from these)."""
    return [
        Step(status=429, retry_after=0.05),
        Step(status=429, retry_after_ms=30),
        Step(status=500),
        Step(status=502),
        Step(status=503),
        Step(status=400),
        Step(status=401),
        Step(status=402),
        Step(status=403),
        Step(status=404),
        Step(status=408),
        Step(malformed=True),
        Step(raw_body="<html>bad gateway</html>", status=200),
        Step(reset=True),
        Step(reset_mid_stream=True),
        Step(truncate_stream=True),
        Step(delay=ATTEMPT_TIMEOUT + 0.5),
        Step(text=""),
    ]


@dataclass
class SoakReport:
    """What a soak run saw; `problems()` lists every broken promise."""

    requests: int = 0
    cancelled: int = 0
    answered_cancelled: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    unexpected_errors: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0
    stalls_ms: list[float] = field(default_factory=list)
    """CPU time of our code in each callback over 10 ms after the warm-up (GC excluded)."""
    stalls_wall_ms: list[float] = field(default_factory=list)
    gc_pauses_ms: list[float] = field(default_factory=list)
    """CPU time of full garbage collections inside those callbacks (not in `stalls_ms`)."""
    worst_stalls: list[str] = field(default_factory=list)
    """The three longest (by CPU time): ``cpu_ms wall_ms callback``."""
    log_problems: list[str] = field(default_factory=list)
    usage_records: int = 0
    usage_cancelled: int = 0
    provider_attempts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_warm_mb

    def problems(
        self, *, max_rss_growth_mb: float = 30.0, max_stall_ms: float = 100.0
    ) -> list[str]:
        out = [f"unexpected error: {e}" for e in self.unexpected_errors[:10]]
        out += [f"no response to {r}" for r in self.unanswered[:10]]
        out += [f"more than one response to {r}" for r in self.duplicates[:10]]
        out += [f"server log: {line}" for line in self.log_problems[:10]]
        if self.rss_growth_mb >= max_rss_growth_mb:
            out.append(f"RSS grew {self.rss_growth_mb:.1f} MB after warm-up")
        if self.stalls_ms and max(self.stalls_ms) >= max_stall_ms:
            out.append(f"event loop stalled {max(self.stalls_ms):.0f} ms")
        if self.gc_pauses_ms and max(self.gc_pauses_ms) >= MAX_GC_PAUSE_MS:
            out.append(f"a full garbage collection took {max(self.gc_pauses_ms):.0f} ms")
        # An attempt cancelled before its request left has a record the fake never saw.
        low, high = self.usage_records - self.usage_cancelled, self.usage_records
        if not low <= self.provider_attempts <= high:
            out.append(
                f"{self.usage_records} usage records ({self.usage_cancelled} cancelled) "
                f"for {self.provider_attempts} attempts"
            )
        return out

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms) or [0.0]
        return {
            "requests": self.requests,
            "cancelled": self.cancelled,
            "kinds": dict(self.kinds),
            "duration_s": round(self.duration_s, 1),
            "latency_median_ms": round(statistics.median(lat), 1),
            "latency_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1),
            "rss_warm_mb": round(self.rss_warm_mb, 1),
            "rss_end_mb": round(self.rss_end_mb, 1),
            "rss_growth_mb": round(self.rss_growth_mb, 1),
            "stalls_over_100ms_cpu": sum(1 for ms in self.stalls_ms if ms >= 100),
            "max_stall_cpu_ms": round(max(self.stalls_ms, default=0.0), 1),
            "max_gc_pause_ms": round(max(self.gc_pauses_ms, default=0.0), 1),
            "stalls_over_100ms_wall": sum(1 for ms in self.stalls_wall_ms if ms >= 100),
            "max_stall_wall_ms": round(max(self.stalls_wall_ms, default=0.0), 1),
            "worst_stalls": self.worst_stalls,
            "usage_records": self.usage_records,
            "usage_cancelled": self.usage_cancelled,
            "provider_attempts": self.provider_attempts,
            "problems": self.problems(),
        }


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def script_faults(fake: FakeProvider, rng: random.Random, calls: int, rate: float) -> None:
    """Queue ``calls`` chat and embedding steps, a fraction ``rate`` of them faults."""
    faults = fault_steps()
    for endpoint in ("chat", "embeddings"):
        steps = [rng.choice(faults) if rng.random() < rate else Step() for _ in range(calls)]
        fake.script(*steps, endpoint=endpoint)


def soak_env(tmp_path: Path, fake: FakeProvider) -> dict[str, str]:
    return server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_TIMEOUT=str(ATTEMPT_TIMEOUT),
        LLM_RETRY_INITIAL_BACKOFF="0.02",
        LLM_RETRY_MAX_BACKOFF="0.1",
        LLM_BREAKER_COOLDOWN="0.5",
        LLM_BREAKER_QUOTA_COOLDOWN="0.5",
        LLM_LSP_LOG_LEVEL="INFO",
        LLM_LSP_STALL_PROBE=str(tmp_path / "stalls.txt"),
        PYTHONPATH=os.pathsep.join(
            p for p in (str(STALL_PROBE), os.environ.get("PYTHONPATH")) if p
        ),
    )


class _Driver:
    """Sends the soak's requests on one session and accounts for every response."""

    def __init__(self, session: Session, rng: random.Random, report: SoakReport) -> None:
        self.session = session
        self.rng = rng
        self.report = report
        self.responses: Counter[str] = Counter()
        self.fix_action: types.CodeAction | None = None
        protocol = session.client.protocol
        original = protocol._handle_response

        def counting(msg_id: Any, result: Any = None, error: Any = None) -> None:
            self.responses[str(msg_id)] += 1
            original(msg_id, result, error)

        protocol._handle_response = counting  # type: ignore[method-assign]

    def _request(self, kind: str) -> tuple[str, Any]:
        s = self.session
        if kind == "hover":
            path, line, col = self.rng.choice(_HOVERS)
            return types.TEXT_DOCUMENT_HOVER, types.HoverParams(
                types.TextDocumentIdentifier(s.uri(path)), types.Position(line, col)
            )
        if kind in ("actions", "resolve") and (kind == "actions" or self.fix_action is None):
            return types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionParams(
                types.TextDocumentIdentifier(s.uri("shop/stats.py")),
                types.Range(types.Position(5, 0), types.Position(6, 0)),
                types.CodeActionContext(diagnostics=[]),
            )
        if kind == "resolve":
            return types.CODE_ACTION_RESOLVE, self.fix_action
        if kind == "ask":
            arguments: list[Any] = [{"question": self.rng.choice(_QUESTIONS)}]
            return types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
                "llmLsp.ask", arguments
            )
        start = self.rng.choice([16, 12, 9])
        arguments = [{"uri": s.uri("shop/basket.py"), "start": start, "end": start + 3}]
        return types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
            f"llmLsp.{kind}", arguments
        )

    async def one(self, index: int, kind: str, cancel: bool) -> None:
        method, params = self._request(kind)
        msg_id = f"soak-{index}"
        protocol = self.session.client.protocol
        started = time.monotonic()
        pending = asyncio.ensure_future(protocol.send_request_async(method, params, msg_id=msg_id))
        if cancel:
            await asyncio.sleep(self.rng.uniform(0.0, 0.6))
            protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        try:
            result = await asyncio.wait_for(pending, 120)
        except JsonRpcException as exc:
            if not (cancel and exc.code == -32800):
                self.report.unexpected_errors.append(f"{msg_id} {kind}: {exc.code} {exc}")
            else:
                self.report.answered_cancelled += 1
        except TimeoutError:
            self.report.unanswered.append(f"{msg_id} {kind}")
        else:
            self._check(msg_id, kind, result)
        self.report.latencies_ms.append((time.monotonic() - started) * 1000)

    def _check(self, msg_id: str, kind: str, result: Any) -> None:
        if kind in ("explain", "fix", "ask") and not isinstance(result, dict | type(None)):
            self.report.unexpected_errors.append(f"{msg_id} {kind}: odd result {result!r}")
        if kind == "actions" and isinstance(result, list) and self.fix_action is None:
            converter = self.session.client.protocol._converter
            for item in result:
                if isinstance(item, dict) and item.get("title") == "Fix this code":
                    self.fix_action = converter.structure(item, types.CodeAction)
                elif isinstance(item, types.CodeAction) and item.title == "Fix this code":
                    self.fix_action = item


async def run_soak(
    tmp_path: Path, fake: FakeProvider, *, count: int, seed: int = 15, concurrency: int = 4
) -> SoakReport:
    """Run ``count`` mixed requests against a fresh server; return what was seen."""
    rng = random.Random(seed)
    report = SoakReport()
    fake.reset()
    script_faults(fake, rng, calls=count * 3, rate=0.10)
    root = copy_project(tmp_path)
    session = await start_session(root, tmp_path, env=soak_env(tmp_path, fake))
    server = session.client._server
    assert server is not None
    driver = _Driver(session, rng, report)
    for path in ("shop/basket.py", "shop/stats.py", "shop/pricing.py"):
        session.open(path)
    plan = [(i, rng.choice(KINDS), rng.random() < 0.20) for i in range(count)]
    warm_up = max(1, count // 5)
    warm_at = [float("inf")]
    started = time.monotonic()
    try:
        queue = list(plan)

        async def worker() -> None:
            while queue:
                index, kind, cancel = queue.pop(0)
                if index == warm_up:
                    report.rss_warm_mb = rss_mb(server.pid)
                    warm_at[0] = time.monotonic()
                await driver.one(index, kind, cancel)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        report.rss_end_mb = rss_mb(server.pid)
        report.duration_s = time.monotonic() - started
    finally:
        await session.stop()
    report.requests = count
    report.cancelled = sum(1 for _, _, c in plan if c)
    report.kinds = Counter(kind for _, kind, _ in plan)
    for index, kind, _ in plan:
        seen = driver.responses[f"soak-{index}"]
        if seen == 0 and f"soak-{index} {kind}" not in report.unanswered:
            report.unanswered.append(f"soak-{index} {kind}")
        elif seen > 1:
            report.duplicates.append(f"soak-{index} {kind} ({seen})")
    _read_server_log(session.stderr_log, report)
    _read_stalls(tmp_path / "stalls.txt", warm_at[0], report)
    records = [r for r in session.usage() if r.get("outcome") != "skipped"]
    report.usage_records = len(records)
    report.usage_cancelled = sum(1 for r in records if r.get("outcome") == "cancelled")
    report.provider_attempts = sum(1 for r in fake.requests if r.path in PROVIDER_PATHS)
    return report


def _read_server_log(log: Path, report: SoakReport) -> None:
    for line in log.read_text(errors="replace").splitlines():
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
            report.log_problems.append(line[:300])


def _read_stalls(path: Path, since: float, report: SoakReport) -> None:
    if not path.exists():
        report.log_problems.append(f"the stall probe wrote nothing ({path})")
        return
    kept: list[tuple[float, str]] = []
    for line in path.read_text(errors="replace").splitlines():
        at, cpu, wall, what = line.split(" ", 3)
        if float(at) >= since:
            gc_ms = float(what.rpartition(" gc2=")[2] or 0.0)
            report.stalls_ms.append(float(cpu) - gc_ms)
            report.gc_pauses_ms.append(gc_ms)
            report.stalls_wall_ms.append(float(wall))
            kept.append((float(cpu), f"{cpu} {wall} {what[:160]}"))
    report.worst_stalls = [text for _, text in sorted(kept, reverse=True)[:3]]
