"""Benchmark: what tracing costs an AI hover (tracing on vs off, same run, paired).

Two real `llm-lsp serve` processes over stdio, both against the project's fake
provider answering with no delay, on a real project (Django, from its PyPI wheel,
as `bench_hover.py`): one exports nothing (the default: no SDK set up), the other
exports traces and metrics over OTLP/HTTP to a receiver on 127.0.0.1 that decodes
every request (`tests/otlp_receiver.py`), with the SDK's default batching. The
same sampled call sites are hovered on both, alternating one hover here, one
there, so both see the same machine load at the same moment; the first pass
warms each file, the second (warm) pass is measured. Reports p50/p95 of each,
the difference and ratio of the medians, the median of the paired differences,
and the number of spans the collector received.

`--micro N` measures, in one process and without a server, what tracing adds to
one hover: the span tree a hover makes (root, context assembly with a six-piece
pack whose pieces are token-counted for the span, the chain, one provider attempt
with its GenAI attributes and metrics) N times with no exporter, then N times
exporting over OTLP/HTTP to the same receiver; the difference is the overhead,
free of the machine's load on the end-to-end figures.

Run: `.venv/bin/python scripts/bench_tracing.py [--positions 100] [--micro 2000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from bench_common import call_positions, machine, summary, wheel_project_for

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.otlp_receiver import OtlpReceiver

Position = tuple[Path, int, int]


class Server:
    """One server process and the files it has open."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.root = root
        self.env = env
        self.client = LanguageClient("bench", "0")
        self.opened: set[Path] = set()
        self.answered = 0

    async def start(self) -> None:
        await self.client.start_io(
            sys.executable, "-m", "lsp_server", "--log-level", "WARNING", "serve", env=self.env
        )
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(), root_uri=self.root.as_uri()
            )
        )
        self.client.initialized(types.InitializedParams())

    async def hover(self, position: Position) -> float:
        """One hover; milliseconds at the client."""
        path, line, col = position
        if path not in self.opened:
            self.client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    types.TextDocumentItem(path.as_uri(), "python", 1, path.read_text("utf-8"))
                )
            )
            self.opened.add(path)
        started = time.perf_counter()
        hover = await self.client.text_document_hover_async(
            types.HoverParams(
                types.TextDocumentIdentifier(path.as_uri()), types.Position(line, col)
            )
        )
        if hover is not None:
            self.answered += 1
        return (time.perf_counter() - started) * 1000

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def main_async(args: argparse.Namespace) -> None:
    root = wheel_project_for("django", args.django)
    positions = call_positions(root, "django", args.positions)
    state = Path(tempfile.mkdtemp(prefix="llm-lsp-bench-tracing-"))
    with (
        FakeProvider(default=Step(text="A short explanation.", usage=(900, 60))) as fake,
        OtlpReceiver() as receiver,
    ):
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        base.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake.base_url)
        off = Server("off", root, {**base, "LLM_LSP_CACHE_DIR": str(state / "off")})
        on = Server(
            "on",
            root,
            {
                **base,
                "LLM_LSP_CACHE_DIR": str(state / "on"),
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_SERVICE_NAME": "llm-lsp-bench",
            },
        )
        for server in (off, on):
            server.env["LLM_LSP_USAGE_LOG"] = str(state / f"usage-{server.name}.jsonl")
            await server.start()
        times: dict[str, list[float]] = {"off": [], "on": []}
        for measured in (False, True):  # pass 1 warms each file; pass 2 is measured
            for i, position in enumerate(positions):
                pair = (off, on) if i % 2 == 0 else (on, off)  # alternate who goes first
                for server in pair:
                    elapsed = await server.hover(position)
                    if measured:
                        times[server.name].append(elapsed)
        for server in (off, on):
            await server.stop()
        spans = len(receiver.spans)
    n = len(positions)
    off_p50, on_p50 = statistics.median(times["off"]), statistics.median(times["on"])
    paired = statistics.median(b - a for a, b in zip(times["off"], times["on"], strict=True))
    print(f"machine: {machine()}")
    print(f"project: Django {args.django} wheel; {n} positions, warm pass measured")
    print(f"tracing off (no exporter): {summary(times['off'])}; {off.answered} answered")
    print(f"tracing on (OTLP/HTTP):    {summary(times['on'])}; {on.answered} answered")
    print(
        f"p50 difference {on_p50 - off_p50:+.2f} ms, ratio {on_p50 / off_p50:.3f}x; "
        f"median paired difference {paired:+.2f} ms"
    )
    print(f"spans received by the collector: {spans}; provider calls: {len(fake.requests)}")


def _micro_hover(pack: object, counter: object) -> None:
    """The spans one AI hover makes, with their attributes and metrics."""
    from lsp_server.llm import spans
    from lsp_server.llm.types import ChatRequest, Usage
    from lsp_server.pipeline.spans import describe_pack, pack_span
    from lsp_server.telemetry import tracing

    what = type("A", (), {"feature": "hover", "model": "gpt-4o", "request_id": "r", "attempt": 1})
    request = ChatRequest(messages=[{"role": "user", "content": "x"}], feature="hover")
    where = spans.Where("primary", "http://127.0.0.1:9/v1", "primary")
    with tracing.request_span("textDocument/hover"):
        with pack_span("hover", 2000) as packed:
            describe_pack(packed, pack)  # type: ignore[arg-type]
        with tracing.span("llm.chain", {"llm_lsp.feature": "hover"}) as chain:
            tagged = tracing.tagged({"llm_lsp.breaker_state": "closed"})
            with tagged, spans.attempt_span(where, "chat", what(), (), request) as attempt:
                spans.attempt_result(attempt, (), "gpt-4o", Usage(900, 60), 0.0029, "stop")
            chain.update({"llm_lsp.tier": "primary", "llm_lsp.cost_usd": 0.0029})


def micro(iterations: int) -> None:
    """Per-hover cost of the spans, exporter off vs OTLP/HTTP (in-process)."""
    from lsp_server.context.pack.pieces import ContextPack, ContextPiece
    from lsp_server.context.tokens import counter_for_model
    from lsp_server.telemetry import export

    root = wheel_project_for("django", "6.1.3")
    source = (root / "django" / "utils" / "text.py").read_text("utf-8").splitlines()
    pieces = tuple(
        ContextPiece(
            f"django/utils/text.py:{i * 30 + 1}-{i * 30 + 30}",
            "definition",
            "function `f`",
            "\n".join(source[i * 30 : i * 30 + 30]),
            "full",
        )
        for i in range(6)
    )
    counter = counter_for_model("gpt-4o")
    pieces = tuple(replace(p, tokens=counter.count(p.render())) for p in pieces)  # as fitted
    pack = ContextPack(pieces, counter.count("\n".join(p.render() for p in pieces)), 2000, True)
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    exporter_cpu = 0.0
    with OtlpReceiver() as receiver:
        for mode in ("off", "on", "off", "on"):  # interleaved rounds
            if mode == "on":
                os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
                export.configure(export.ExportConfig("otlp"))
            process_before, thread_before = time.process_time(), time.thread_time()
            for _ in range(iterations):
                started, started_cpu = time.perf_counter(), time.thread_time()
                _micro_hover(pack, counter)
                cpu[mode].append((time.thread_time() - started_cpu) * 1e6)
                wall[mode].append((time.perf_counter() - started) * 1e6)
            export.shutdown()  # flushes: the exporter thread's work is counted below
            others = (time.process_time() - process_before) - (time.thread_time() - thread_before)
            if mode == "on":
                exporter_cpu += others
        spans = len(receiver.spans)
    hovers = 2 * iterations
    print(f"machine: {machine()}")
    print(f"pack: {len(pieces)} pieces, {pack.tokens} tokens; {hovers} hovers per mode")
    for mode, label in (("off", "no exporter, no SDK"), ("on", "OTLP/HTTP, batched")):
        print(
            f"spans {mode} ({label}): median {statistics.median(wall[mode]):.1f} us wall, "
            f"{statistics.median(cpu[mode]):.1f} us CPU of the request's thread per hover"
        )
    added_wall = statistics.median(wall["on"]) - statistics.median(wall["off"])
    added_cpu = statistics.median(cpu["on"]) - statistics.median(cpu["off"])
    print(
        f"tracing adds {added_wall:.1f} us wall / {added_cpu:.1f} us CPU per hover on the "
        f"request's thread, plus {exporter_cpu / hovers * 1e6:.1f} us CPU per hover in the "
        f"export thread; the collector received {spans} spans"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=100)
    parser.add_argument("--django", default="6.1.3")
    parser.add_argument("--micro", type=int, default=0, help="in-process rounds instead")
    args = parser.parse_args()
    if args.micro:
        micro(args.micro)
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
