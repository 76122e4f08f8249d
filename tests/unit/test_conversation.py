"""Conversation memory in the agent loop, and the cheap-tier summariser behind it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_server.agent import (
    EXPLAIN_SYSTEM,
    AgentBounds,
    AgentTask,
    StopReason,
    ToolRegistry,
    Workspace,
    build_tools,
    run_agent,
)
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.pipeline.conversation import PART_TOKENS, summariser, transcript, window_for
from lsp_server.pipeline.memory import SUMMARY_PREFIX, ConversationMemory
from lsp_server.workspace import WorkspaceBoundary
from tests.unit.test_agent_loop import ScriptedModel, reply, use


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return counter_for_model("gpt-4o")


@pytest.fixture
def big_workspace(tmp_path: Path) -> Path:
    """Three modules, each far larger than the window the tests give the memory."""
    for name in ("alpha", "beta", "gamma"):
        body = "\n".join(f"def {name}_{i}(x):\n    return x + {i}\n" for i in range(120))
        (tmp_path / f"{name}.py").write_text(body)
    return tmp_path


@pytest.fixture
def tools(big_workspace: Path) -> Iterator[ToolRegistry]:
    registry = build_tools(Workspace(WorkspaceBoundary(big_workspace)))
    yield registry
    registry.close()


class FakeService:
    """Stands in for `LlmService.complete`: records summary requests, answers or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.requests: list[ChatRequest] = []
        self.deadlines: list[float] = []
        self.fail = fail

    async def complete(
        self, request: ChatRequest, *, deadline: float, request_id: str
    ) -> Completion:
        self.requests.append(request)
        self.deadlines.append(deadline)
        if self.fail:
            raise ProviderFailure(ErrorKind.SERVER, "503 from the cheap model")
        return reply("- alpha.py and beta.py define alpha_* and beta_* adders", tokens=300)


def _memory(
    counter: TokenCounter,
    service: FakeService,
    window: int,
    keep_last: int = 1,
    on_completion: Callable[[Completion], None] | None = None,
) -> ConversationMemory:
    summarise = summariser(
        lambda: service,  # type: ignore[arg-type, return-value]
        counter,
        deadline=lambda: 123.0,
        request_id="run-1",
        on_completion=on_completion,
    )
    return ConversationMemory(counter, window, keep_last=keep_last, summarise=summarise)


def _task() -> AgentTask:
    return AgentTask(
        "explain",
        [
            {"role": "system", "content": EXPLAIN_SYSTEM},
            {"role": "user", "content": "Explain how the adders relate"},
        ],
    )


def _reads() -> list[Completion]:
    return [
        reply("", use("read_file", {"path": f"{name}.py", "start_line": 1, "end_line": 200}))
        for name in ("alpha", "beta", "gamma")
    ]


def _assert_well_formed(messages: list[dict[str, Any]]) -> None:
    """Every tool result follows the assistant message that called it."""
    open_ids: set[str] = set()
    for message in messages:
        if message["role"] == "assistant":
            open_ids = {c["id"] for c in message.get("tool_calls") or []}
        elif message["role"] == "tool":
            assert message["tool_call_id"] in open_ids, messages


async def test_long_run_is_fitted_with_a_cheap_summary(
    tools: ToolRegistry, counter: TokenCounter
) -> None:
    service = FakeService()
    made: list[Completion] = []
    memory = _memory(counter, service, 3000, on_completion=made.append)
    model = ScriptedModel(*_reads(), reply("They all add a constant."))
    result = await run_agent(_task(), model, tools, AgentBounds(), fit=memory.fit)
    assert result.ok and result.stop is StopReason.ANSWERED
    # the run's own record is whole; what was sent was fitted
    assert len(result.messages) == 9
    for request in model.requests:
        assert counter.count_messages(request.messages) <= 3000
        assert request.messages[:2] == _task().messages  # pinned
        _assert_well_formed(request.messages)
    last = model.requests[-1].messages
    summaries = [m for m in last if str(m.get("content", "")).startswith(SUMMARY_PREFIX)]
    assert len(summaries) == 1 and "alpha_*" in summaries[0]["content"]
    assert last[-1]["role"] == "tool"  # the most recent exchange verbatim
    assert "gamma_0" in last[-1]["content"]
    # the summary request went to the cheap tier, with the run's id and deadline
    assert service.requests and all(r.feature == "summary" for r in service.requests)
    assert service.deadlines[0] == 123.0
    sent = service.requests[0].messages[1]["content"]
    assert "[assistant calls read_file]" in sent and "alpha_0" in sent
    assert len(made) == len(service.requests)


async def test_summariser_failure_leaves_a_note_and_the_run_goes_on(
    tools: ToolRegistry, counter: TokenCounter
) -> None:
    service = FakeService(fail=True)
    memory = _memory(counter, service, 3000)
    model = ScriptedModel(*_reads(), reply("Done."))
    result = await run_agent(_task(), model, tools, AgentBounds(), fit=memory.fit)
    assert result.ok
    last = model.requests[-1].messages
    assert any("earlier messages were left out" in str(m.get("content")) for m in last)
    assert counter.count_messages(last) <= 3000


async def test_short_run_is_sent_unchanged(tools: ToolRegistry, counter: TokenCounter) -> None:
    service = FakeService()
    memory = _memory(counter, service, 16_000, keep_last=4)
    model = ScriptedModel(_reads()[0], reply("Done."))
    result = await run_agent(_task(), model, tools, AgentBounds(), fit=memory.fit)
    assert result.ok
    assert model.requests[-1].messages == result.messages[:-1]
    assert service.requests == []


def test_transcript_cuts_each_part(counter: TokenCounter) -> None:
    huge = "word " * (PART_TOKENS * 3)
    messages = [
        {"role": "user", "content": "question"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "function": {"name": "read_file", "arguments": json.dumps({"p": 1})}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": huge},
    ]
    text = transcript(messages, counter)
    assert text.startswith("[user] question\n[assistant calls read_file] {")
    assert counter.count(text) <= PART_TOKENS + 50


def test_window_leaves_room_for_tools_and_answer(counter: TokenCounter) -> None:
    specs = [{"type": "function", "function": {"name": "x" * 400, "parameters": {}}}]
    window = window_for(16_000, specs, 1_500, counter)
    assert 14_000 < window < 14_500
    assert window_for(100, specs, 1_500, counter) == 1500  # never below a useful minimum
