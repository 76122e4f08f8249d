"""Tracing and metrics export without a server: the file exporter's span tree, cancellation,
the content opt-in and its scrubbing, a dead collector, and no cost when nothing is exported."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_server.llm import spans
from lsp_server.llm.types import ChatRequest, ErrorKind, ProviderFailure, Usage
from lsp_server.telemetry import export, genai, tracing

KEY = "sk-test-DO-NOT-LEAK-1234567890abcdef"


@pytest.fixture(autouse=True)
def _no_exporter_after() -> Iterator[None]:
    yield
    export.shutdown()


def _lines(path: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["signal"] == kind]


def _attempt(what: str = "hover") -> Any:
    return type("A", (), {"feature": what, "model": "gpt-4o", "request_id": "r1", "attempt": 1})()


def test_nothing_of_the_sdk_is_loaded_when_nothing_is_exported() -> None:
    code = """
import asyncio, sys
from lsp_server import server
from lsp_server.telemetry import export, genai, metrics, tracing
from lsp_server.settings import build_settings
settings, _ = build_settings(env={})
server._configure_telemetry(settings)
with tracing.request_span("textDocument/hover") as root, tracing.span("child") as child:
    child.set("x", 1)
metrics.record_cost(1.0, provider="p", model="m", tier="primary")
assert not tracing.enabled() and not root.recording
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_file_exporter_writes_the_span_tree_and_metrics(tmp_path: Path) -> None:
    target = tmp_path / "state" / "telemetry.jsonl"
    export.configure(export.ExportConfig("file", target, version="9.9"))

    async def scenario() -> None:
        with tracing.request_span("textDocument/hover"):
            with genai.cache_span("hover") as lookup:
                genai.cache_outcome(lookup, "miss", feature="hover", layer="exact")
            with tracing.span("context.assemble", {"llm_lsp.context.tokens": 42}):
                pass
            request = ChatRequest(messages=[{"role": "user", "content": "hi"}], feature="hover")
            with spans.attempt_span(
                spans.Where("openai", None, "primary"), "chat", _attempt(), (), request
            ) as a:
                spans.attempt_result(a, (), "gpt-4o", Usage(100, 10, 40), 0.0012, "stop", "hello")

    asyncio.run(scenario())
    export.shutdown()  # flushes
    records = _lines(target, "span")
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"textDocument/hover", "context.assemble", "chat gpt-4o", "cache.lookup"}
    assert by_name["cache.lookup"]["attributes"]["llm_lsp.cache"] == "miss"
    root = by_name["textDocument/hover"]
    assert root["parent_id"] is None and root["kind"] == "SpanKind.SERVER"
    totals = {k: v for k, v in root["attributes"].items() if not k.startswith("rpc.")}
    assert totals == {
        "llm_lsp.cache": "miss",
        "llm_lsp.cost_usd": 0.0012,
        "llm_lsp.attempts": 1,
        "llm_lsp.input_tokens": 100,
        "llm_lsp.output_tokens": 10,
    }
    chat = by_name["chat gpt-4o"]
    assert chat["parent_id"] == root["context"]["span_id"]
    assert chat["kind"] == "SpanKind.CLIENT"
    assert chat["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 40
    assert chat["attributes"]["server.address"] == "api.openai.com"
    assert chat["attributes"]["llm_lsp.cost_usd"] == 0.0012
    assert "gen_ai.input.messages" not in chat["attributes"]  # no opt-in: no text
    assert chat["resource"]["attributes"]["service.name"] == "llm-lsp"
    assert target.stat().st_mode & 0o777 == 0o600
    names = {m["name"] for r in _lines(target, "metrics") for m in _all_metrics(r)}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= names
    assert {"llm_lsp.cost", "llm_lsp.cache.lookups"} <= names


def _all_metrics(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m for rm in record["resource_metrics"] for sm in rm["scope_metrics"] for m in sm["metrics"]
    ]


def test_a_cancelled_request_ends_its_spans_marked_cancelled(tmp_path: Path) -> None:
    target = tmp_path / "t.jsonl"
    export.configure(export.ExportConfig("file", target))
    started = asyncio.Event()

    async def handler() -> None:
        with tracing.request_span("textDocument/hover"), tracing.span("llm.chain"):
            started.set()
            await asyncio.sleep(60)

    async def scenario() -> None:
        task = asyncio.ensure_future(handler())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    export.shutdown()
    records = _lines(target, "span")
    assert len(records) == 2
    for record in records:
        assert record["status"]["status_code"] == "ERROR"
        assert record["attributes"]["error.type"] == "cancelled"
        assert record["attributes"]["llm_lsp.cancelled"] is True
        assert [e["name"] for e in record["events"]] == ["cancelled"]


def test_a_failed_attempt_records_its_kind_never_its_message(tmp_path: Path) -> None:
    target = tmp_path / "t.jsonl"
    export.configure(export.ExportConfig("file", target))
    where = spans.Where("openai", None, "primary")
    with pytest.raises(ProviderFailure), spans.attempt_span(where, "chat", _attempt(), (KEY,)):
        raise ProviderFailure(ErrorKind.RATE_LIMITED, f"slow down {KEY}", status=429)
    export.shutdown()
    [record] = _lines(target, "span")
    assert record["attributes"]["error.type"] == "rate_limited"
    assert KEY not in json.dumps(record)


def test_text_only_with_the_opt_in_and_never_a_key(tmp_path: Path) -> None:
    target = tmp_path / "t.jsonl"
    export.configure(export.ExportConfig("file", target, record_content=True))
    other = "sk-proj-abcdefghijklmnopqrstuvwx"
    request = ChatRequest(
        messages=[{"role": "user", "content": f"explain; key={KEY} other={other}"}],
        feature="hover",
    )
    with spans.attempt_span(
        spans.Where("openai", None, "primary"), "chat", _attempt(), (KEY,), request
    ) as a:
        spans.attempt_result(a, (KEY,), "gpt-4o", Usage(1, 1), 0.0, "stop", f"answer {KEY}")
    export.shutdown()
    [record] = _lines(target, "span")
    attrs = record["attributes"]
    assert "explain; key=<redacted>" in attrs["gen_ai.input.messages"]
    assert "answer <redacted>" in attrs["gen_ai.output.messages"]
    assert KEY not in target.read_text() and other not in target.read_text()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_collector_costs_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.5")
    caplog.set_level(logging.DEBUG)
    export.configure(export.ExportConfig("otlp"))
    active = export._active
    assert active is not None
    for i in range(3):
        with tracing.request_span("textDocument/hover", {"n": i}):
            pass
        assert active.traces.force_flush(5000) in (True, False)
    export.shutdown()
    failures = [r for r in caplog.records if "telemetry export to" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert failures[0].levelno == logging.WARNING
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING
    ]


def test_the_console_exporter_writes_to_stderr_never_to_the_lsp_stream(
    capfd: pytest.CaptureFixture[str],
) -> None:
    export.configure(export.ExportConfig("console"))
    with tracing.request_span("textDocument/hover"):
        pass
    export.shutdown()
    out, err = capfd.readouterr()
    assert out == ""
    assert '"name": "textDocument/hover"' in err
