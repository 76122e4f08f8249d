"""Conversation memory wired to the model: multi-turn chats stay within their window.

`ConversationMemory` (`memory.py`, beside this module) decides *what* to keep; this module
gives it a summariser that asks the cheap tier (``feature="summary"``, which
the router sends to the cheap model first) through the same `LlmService` as
every other call, so the summary is retried, breaker-guarded, logged in the
usage log with its tokens and cost, and bounded by the caller's deadline.

The transcript handed to the summariser is plain text: each message's role,
its text, the tools an assistant message called (name and arguments) and each
tool result, every part cut to `PART_TOKENS` so one huge file read cannot
crowd out the rest, the whole cut to `TRANSCRIPT_TOKENS`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from lsp_server.context.tokens import TokenCounter
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest, Completion
from lsp_server.pipeline.memory import ConversationMemory, Message, Summarise
from lsp_server.pipeline.runtime import MemoryRuntime

logger = logging.getLogger(__name__)

SUMMARY_SYSTEM = (
    "You compress the earlier part of a conversation between a developer, a coding "
    "assistant and its tools, so the assistant can continue without it. Keep every fact "
    "the assistant found that may still matter: file paths with line numbers, names of "
    "functions and classes, what tool results showed, decisions taken and open questions. "
    "Drop pleasantries and repetition. Write terse bullet points, no preamble."
)
#: Tokens of one message part (text, tool arguments, tool result) in the transcript.
PART_TOKENS = 1500
#: Tokens of the whole transcript sent to the summariser.
TRANSCRIPT_TOKENS = 12_000
#: Tokens the summary may take.
SUMMARY_MAX_TOKENS = 500
#: A window smaller than this is raised to it: below it nothing useful fits.
MIN_WINDOW = 1500

OnCompletion = Callable[[Completion], None]


def transcript(messages: list[Message], counter: TokenCounter) -> str:
    """The messages as plain text for the summariser, each part cut to `PART_TOKENS`."""
    lines: list[str] = []
    for message in messages:
        role = str(message.get("role", "?"))
        content = _text(message.get("content"))
        if content:
            lines.append(f"[{role}] {counter.truncate(content, PART_TOKENS)}")
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            arguments = counter.truncate(str(function.get("arguments", "")), PART_TOKENS)
            lines.append(f"[{role} calls {function.get('name', '?')}] {arguments}")
    return counter.truncate("\n".join(lines), TRANSCRIPT_TOKENS)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def summariser(
    llm: Callable[[], LlmService],
    counter: TokenCounter,
    *,
    deadline: Callable[[], float],
    request_id: str,
    on_completion: OnCompletion | None = None,
    metadata: dict[str, str] | None = None,
) -> Summarise:
    """A `Summarise` that asks the cheap tier; ``deadline()`` gives the absolute
    (monotonic) time the call must end by, read at each call.

    ``llm`` is called at each use (settings may swap the service mid-run). A
    `ProviderFailure` propagates to `ConversationMemory`, which leaves a note
    in place of the summary.
    """

    async def summarise(messages: list[Message]) -> str:
        request = ChatRequest(
            messages=[
                {"role": "system", "content": SUMMARY_SYSTEM},
                {"role": "user", "content": transcript(messages, counter)},
            ],
            feature="summary",
            max_tokens=SUMMARY_MAX_TOKENS,
            temperature=0.0,
            metadata={**(metadata or {}), "summarised_messages": str(len(messages))},
        )
        completion = await llm().complete(request, deadline=deadline(), request_id=request_id)
        if on_completion is not None:
            on_completion(completion)
        logger.info(
            "summarised %d messages into %d tokens with %s",
            len(messages),
            completion.usage.completion_tokens,
            completion.model,
        )
        return completion.text

    return summarise


def window_for(
    total: int, tools: list[dict[str, Any]] | None, answer_tokens: int, counter: TokenCounter
) -> int:
    """The room for messages: ``total`` less the tool specs and the answer's tokens."""
    specs = counter.count(json.dumps(tools, ensure_ascii=False)) if tools else 0
    return max(MIN_WINDOW, total - specs - answer_tokens)


def run_memory(
    runtime: MemoryRuntime,
    counter: TokenCounter,
    *,
    tools: list[dict[str, Any]] | None,
    answer_tokens: int,
    deadline: Callable[[], float],
    request_id: str,
    purpose: str,
    on_completion: OnCompletion | None = None,
) -> ConversationMemory:
    """The memory for one run: the runtime's window and ``keep_last``, its summary
    cache, and the cheap tier of its current `LlmService` as summariser."""
    settings = runtime.settings
    return ConversationMemory(
        counter,
        window_for(settings.context.memory_window_tokens, tools, answer_tokens, counter),
        keep_last=settings.context.memory_keep_last,
        summarise=summariser(
            lambda: runtime.llm,
            counter,
            deadline=deadline,
            request_id=request_id,
            on_completion=on_completion,
            metadata={"for": purpose},
        ),
        cache=runtime.summaries(),
    )
