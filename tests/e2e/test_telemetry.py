"""Traces and metrics of the real server, received by an OTLP/HTTP collector on 127.0.0.1.

The server is started with the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at
`tests.otlp_receiver.OtlpReceiver` (short batch and metric intervals so the test does
not wait for the defaults); the collector decodes the protobufs with
`opentelemetry-proto` and the tests check the span tree and attributes a user of
Jaeger or Tempo would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.asyncio(loop_scope="module")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as collector:
        yield collector


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traced_session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider, receiver: OtlpReceiver
) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("traced")
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake_provider.base_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="llm-lsp-under-test",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_TRACES_EXPORTER=None,
        LLM_RETRY_INITIAL_BACKOFF="0.05",
    )
    session = await start_session(copy_project(tmp_path), tmp_path, env=env)
    await session.warm(APPLY_DISCOUNT)
    yield session
    await session.stop()


@pytest.fixture
def session(traced_session: Session, fake: FakeProvider) -> Session:
    return traced_session.begin()


def _tree(span: ReceivedSpan, depth: int = 0) -> list[str]:
    lines = ["  " * depth + span.name]
    for child in span.children:
        lines.extend(_tree(child, depth + 1))
    return lines


def _find(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


async def test_a_hover_that_retried_once(
    session: Session, fake: FakeProvider, receiver: OtlpReceiver
) -> None:
    fake.script(
        Step(status=503, retry_after=0.05), Step(text="Applies the discount.", usage=(120, 9))
    )
    hover = await session.hover(*APPLY_DISCOUNT)
    assert hover is not None and "Applies the discount." in str(hover.contents)

    def retried() -> list[ReceivedSpan] | None:
        for spans in receiver.traces().values():
            roots = [s for s in spans if s.name == "textDocument/hover" and not s.parent_id]
            if roots and _find(spans, "retry.wait") and len(_find(spans, "chat gpt-4o")) == 2:
                return spans
        return None

    spans = await receiver.wait_for(retried)
    [root] = [s for s in spans if not s.parent_id]
    assert _tree(root) == [
        "textDocument/hover",
        "  context.assemble",
        "  cache.lookup",
        "  llm.chain",
        "    chat gpt-4o",
        "    retry.wait",
        "    chat gpt-4o",
    ]
    assert root.kind == "server"
    # the session's answer cache is off: the lookup says so, on its span and the root
    [lookup] = _find(spans, "cache.lookup")
    assert lookup.attributes["llm_lsp.cache"] == "off"
    assert root.attributes["llm_lsp.cache"] == "off"
    assert root.attributes["llm_lsp.attempts"] == 2
    assert root.attributes["llm_lsp.input_tokens"] == 120
    assert root.resource["service.name"] == "llm-lsp-under-test"
    assert root.resource["deployment.environment"] == "test"
    pack = _find(spans, "context.assemble")[0]
    assert pack.attributes["llm_lsp.task"] == "hover"
    assert pack.attributes["llm_lsp.context.tokens"] > 0
    pieces = pack.attributes["llm_lsp.context.pieces"]
    piece_tokens = pack.attributes["llm_lsp.context.piece_tokens"]
    assert len(pieces) == len(piece_tokens) > 0 and all(n > 0 for n in piece_tokens)
    assert sum(piece_tokens) <= pack.attributes["llm_lsp.context.tokens"]
    assert any("apply_discount" in p or "pricing" in p for p in pieces), pieces
    failed, answered = _find(spans, "chat gpt-4o")
    for attempt in (failed, answered):
        assert attempt.kind == "client"
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.attributes["gen_ai.provider.name"] == "primary"  # the provider's name
        assert attempt.attributes["gen_ai.request.model"] == "gpt-4o"
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["llm_lsp.tier"] == "primary"
        assert attempt.attributes["llm_lsp.breaker_state"] == "closed"
    assert failed.status == "error"
    assert failed.attributes["error.type"] == "server_error"
    assert failed.attributes["llm_lsp.attempt"] == 1
    assert answered.status == "unset"
    assert answered.attributes["llm_lsp.attempt"] == 2
    assert answered.attributes["gen_ai.response.model"] == "gpt-4o"
    assert answered.attributes["gen_ai.usage.input_tokens"] == 120
    assert answered.attributes["gen_ai.usage.output_tokens"] == 9
    assert answered.attributes["gen_ai.usage.cache_read.input_tokens"] == 0
    assert answered.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert answered.attributes["llm_lsp.cost_usd"] > 0
    # the usage log points at the trace (both attempts)
    usage = await session.wait_for_usage(2)
    assert [(r["outcome"], r["trace_id"]) for r in usage] == [
        ("error", root.trace_id),
        ("ok", root.trace_id),
    ]
    wait = _find(spans, "retry.wait")[0]
    assert wait.attributes["llm_lsp.retry.wait_s"] == pytest.approx(0.05)
    assert root.attributes["llm_lsp.cost_usd"] == answered.attributes["llm_lsp.cost_usd"]
    chain = _find(spans, "llm.chain")[0]
    assert chain.attributes["llm_lsp.tier"] == "primary"
    # no text of the prompt or the answer without the opt-in, and never the key
    everything = repr([s.attributes for s in spans])
    assert "gen_ai.input.messages" not in everything
    assert "Applies the discount." not in everything
    assert TEST_KEY not in everything


async def test_a_cancelled_hover_ends_its_spans_marked_cancelled(
    session: Session, fake: FakeProvider, receiver: OtlpReceiver
) -> None:
    fake.script(Step(text="too late", delay=30.0))
    await session.cancelled_hover(fake, APPLY_DISCOUNT, msg_id=7001)

    def cancelled() -> list[ReceivedSpan] | None:
        for spans in receiver.traces().values():
            root = [s for s in spans if s.name == "textDocument/hover" and not s.parent_id]
            if root and root[0].attributes.get("llm_lsp.cancelled"):
                return spans
        return None

    spans = await receiver.wait_for(cancelled)
    [root] = [s for s in spans if not s.parent_id]
    [attempt] = _find(spans, "chat gpt-4o")
    for span in (root, attempt, *_find(spans, "llm.chain")):
        assert span.status == "error"
        assert span.attributes["error.type"] == "cancelled"
        assert ("cancelled", {}) in span.events


def _call(name: str, **arguments: str) -> dict[str, object]:
    return {"name": name, "arguments": arguments}


async def test_an_explain_with_two_tool_calls(
    session: Session, fake: FakeProvider, receiver: OtlpReceiver
) -> None:
    fake.script(
        Step(
            tool_calls=[
                _call("find_references", symbol="apply_discount"),
                _call("find_definition", symbol="apply_discount"),
            ],
            usage=(500, 20),
        ),
        Step(text="**Summary**: adds VAT, then applies the discount.", usage=(700, 40)),
    )
    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="llmLsp.explain",
            arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
        )
    )
    assert result["ok"] is True

    def explained() -> list[ReceivedSpan] | None:
        for spans in receiver.traces().values():
            steps, chats = _find(spans, "agent.step"), _find(spans, "chat gpt-4o")
            root = any(s.name == "workspace/executeCommand" for s in spans)
            if root and len(steps) == 2 and len(chats) == 2:
                return spans
        return None

    spans = await receiver.wait_for(explained)
    [root] = [s for s in spans if not s.parent_id]
    assert root.attributes["llm_lsp.command"] == "explain"
    assert root.attributes["llm_lsp.input_tokens"] == 1200  # both steps
    assert _tree(root) == [
        "workspace/executeCommand",
        "  context.assemble",
        "  cache.lookup",
        "  invoke_agent explain",
        "    agent.step",
        "      llm.chain",
        "        chat gpt-4o",
        "      execute_tool find_references",
        "      execute_tool find_definition",
        "    agent.step",
        "      llm.chain",
        "        chat gpt-4o",
    ]
    [lookup] = _find(spans, "cache.lookup")  # the session's answer cache is off
    assert lookup.attributes["llm_lsp.cache"] == "off"
    agent = _find(spans, "invoke_agent explain")[0]
    assert agent.attributes["llm_lsp.agent.stop"] == "answered"
    steps = _find(spans, "agent.step")
    assert [s.attributes["llm_lsp.agent.step"] for s in steps] == [1, 2]
    tools = [s for s in spans if s.name.startswith("execute_tool")]
    assert {s.attributes["gen_ai.tool.name"] for s in tools} == {
        "find_references",
        "find_definition",
    }
    assert all(s.attributes["gen_ai.operation.name"] == "execute_tool" for s in tools)
    assert all(s.status == "unset" for s in tools)
    first, second = _find(spans, "chat gpt-4o")
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert (
        first.attributes["gen_ai.usage.input_tokens"],
        second.attributes["gen_ai.usage.input_tokens"],
    ) == (500, 700)


async def test_metrics_reach_the_collector(session: Session, receiver: OtlpReceiver) -> None:
    def gen_ai_metrics() -> dict[str, list[tuple[dict[str, object], float]]] | None:
        by_name: dict[str, list[tuple[dict[str, object], float]]] = {}
        for metric in receiver.metrics:
            by_name.setdefault(metric.name, []).extend(metric.points)
        wanted = {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "llm_lsp.cost"}
        return by_name if wanted <= set(by_name) else None

    metrics = await receiver.wait_for(gen_ai_metrics)
    tokens = metrics["gen_ai.client.token.usage"]
    assert {p[0]["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    assert all(p[0]["gen_ai.provider.name"] == "primary" for p in tokens)
    durations = metrics["gen_ai.client.operation.duration"]
    assert any(p[0].get("error.type") == "server_error" for p in durations)
    assert max(p[1] for p in metrics["llm_lsp.cost"]) > 0
    units = {m.name: m.unit for m in receiver.metrics}
    assert units["gen_ai.client.token.usage"] == "{token}"
    assert units["gen_ai.client.operation.duration"] == "s"
