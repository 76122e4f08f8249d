"""Conversation memory: pinned head, verbatim tail, cached summaries, never over budget."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.pipeline.memory import (
    OMITTED,
    SUMMARY_PREFIX,
    ConversationMemory,
    SummaryCache,
    exchanges,
)

Message = dict[str, Any]


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    return counter_for_model("gpt-4o", tmp_path_factory.mktemp("tiktoken"))


class Summariser:
    """Records what it was asked to summarise; answers with a fixed or derived text."""

    def __init__(self, answer: str | None = None, error: BaseException | None = None) -> None:
        self.calls: list[list[Message]] = []
        self.answer = answer
        self.error = error

    async def __call__(self, messages: list[Message]) -> str:
        self.calls.append(messages)
        if self.error is not None:
            raise self.error
        return self.answer or f"summary of {len(messages)} messages"


def _conversation(turns: int, words: int = 60) -> list[Message]:
    messages: list[Message] = [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "Explain the pricing module. " + "context " * words},
    ]
    for i in range(turns):
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": "read_symbol", "arguments": f'{{"n": {i}}}'},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": "x " * words})
        messages.append({"role": "user", "content": f"follow-up question {i}"})
    return messages


async def test_small_conversation_is_sent_as_is(counter: TokenCounter) -> None:
    summarise = Summariser()
    memory = ConversationMemory(counter, 10_000, keep_last=2, summarise=summarise)
    messages = _conversation(2)
    assert await memory.fit(messages) is messages
    assert summarise.calls == []


def test_tool_results_stay_with_their_call() -> None:
    groups = exchanges(_conversation(2)[2:])
    assert [[m["role"] for m in g] for g in groups] == [
        ["assistant", "tool"],
        ["user"],
        ["assistant", "tool"],
        ["user"],
    ]


async def test_overflow_pins_head_keeps_tail_and_summarises_middle(
    counter: TokenCounter,
) -> None:
    messages = _conversation(10)
    budget = counter.count_messages(messages) // 2
    summarise = Summariser()
    memory = ConversationMemory(counter, budget, keep_last=3, summarise=summarise)
    fitted = await memory.fit(messages)
    assert fitted[:2] == messages[:2]  # system and first user message pinned
    assert fitted[-4:] == messages[-4:]  # the last 3 exchanges verbatim
    note = fitted[2]
    assert note["role"] == "user" and note["content"].startswith(SUMMARY_PREFIX)
    [asked] = summarise.calls
    assert asked == messages[2:-4]  # exactly the middle
    assert counter.count_messages(fitted) <= budget


async def test_summary_is_cached_and_extended_incrementally(
    counter: TokenCounter, tmp_path: Path
) -> None:
    messages = _conversation(10)
    budget = counter.count_messages(messages) // 2
    summarise = Summariser()
    cache = SummaryCache(tmp_path / "summaries")
    memory = ConversationMemory(counter, budget, keep_last=3, summarise=summarise, cache=cache)
    first = await memory.fit(messages)
    assert await memory.fit(messages) == first
    assert len(summarise.calls) == 1  # cached
    longer = [*messages, {"role": "user", "content": "and one more"}]
    await memory.fit(longer)
    assert len(summarise.calls) == 2
    extension = summarise.calls[1]
    assert extension[0]["content"].startswith(SUMMARY_PREFIX)  # the cached summary...
    assert extension[1:] == [messages[-4]]  # ...plus only the exchange that left the tail
    cache.close()
    # another editor window (a new process) finds the summary on disk
    again = Summariser()
    other = ConversationMemory(
        counter, budget, keep_last=3, summarise=again, cache=SummaryCache(tmp_path / "summaries")
    )
    assert await other.fit(messages) == first
    assert again.calls == []


async def test_summary_never_crosses_the_budget(counter: TokenCounter) -> None:
    rng = random.Random(5)
    messages = _conversation(12)
    for _ in range(30):
        budget = rng.randint(40, counter.count_messages(messages))
        memory = ConversationMemory(
            counter, budget, keep_last=rng.randint(1, 5), summarise=Summariser("long " * 5000)
        )
        fitted = await memory.fit(messages)
        assert counter.count_messages(fitted) <= budget, budget
        assert fitted[0] == messages[0]


async def test_failed_summariser_leaves_a_note(
    counter: TokenCounter, caplog: pytest.LogCaptureFixture
) -> None:
    messages = _conversation(10)
    budget = counter.count_messages(messages) // 2
    memory = ConversationMemory(
        counter, budget, keep_last=2, summarise=Summariser(error=RuntimeError("provider down"))
    )
    with caplog.at_level(logging.WARNING):
        fitted = await memory.fit(messages)
    assert fitted[2]["content"] == OMITTED.format(n=len(messages) - 2 - 3)
    assert "RuntimeError" in caplog.text
    assert counter.count_messages(fitted) <= budget


async def test_cancellation_propagates(counter: TokenCounter) -> None:
    messages = _conversation(10)
    memory = ConversationMemory(
        counter,
        counter.count_messages(messages) // 2,
        summarise=Summariser(error=asyncio.CancelledError()),
    )
    with pytest.raises(asyncio.CancelledError):
        await memory.fit(messages)


async def test_last_resort_cuts_contents(counter: TokenCounter) -> None:
    messages = [
        {"role": "system", "content": "rules " * 50},
        {"role": "user", "content": "question " * 400},
        {"role": "assistant", "content": "answer " * 400},
    ]
    memory = ConversationMemory(counter, 200, summarise=Summariser())
    fitted = await memory.fit(messages)
    assert counter.count_messages(fitted) <= 200
    assert [m["role"] for m in fitted] == ["system", "user", "assistant"]
    assert messages[1]["content"] == "question " * 400  # the caller's list is not changed
