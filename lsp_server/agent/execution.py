"""What one agent run did: files read, tool calls, drafted edits, checks, failures, tokens.

The loop and the tools append to an `ExecutionContext`; the engine reads it for
telemetry and to explain to the user what the agent looked at. Everything in it
is plain data (`summary()` is JSON-serialisable).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from lsp_server.llm.types import Completion

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One dispatched tool call and how it ended."""

    step: int
    name: str
    arguments: str
    ok: bool
    duration_ms: float
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class EditAttempt:
    """One fix the model proposed and the validator's verdict."""

    path: str
    start_line: int
    end_line: int
    accepted: bool
    reasons: tuple[str, ...] = ()


@dataclass(slots=True)
class ExecutionContext:
    """The running record of an agent run."""

    files_read: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    edits_drafted: list[EditAttempt] = field(default_factory=list)
    lint_results: list[dict[str, Any]] = field(default_factory=list)
    test_results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    models: list[str] = field(default_factory=list)
    side_calls: int = 0  # summaries of the conversation, counted in tokens and cost

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens over every model call so far."""
        return self.prompt_tokens + self.completion_tokens

    def note_file_read(self, path: str) -> None:
        """Remember that a tool showed the model (part of) ``path``."""
        if path not in self.files_read:
            self.files_read.append(path)

    def note_failure(self, message: str) -> None:
        """Remember a tool or validation failure (already phrased for a log)."""
        self.failures.append(message)

    def add_completion(self, completion: Completion) -> None:
        """Count one model call's usage and cost."""
        self.steps += 1
        self._count(completion)

    def add_side_call(self, completion: Completion) -> None:
        """Count a call made for the run but not a step of it (a conversation summary)."""
        self.side_calls += 1
        self._count(completion)

    def _count(self, completion: Completion) -> None:
        self.prompt_tokens += completion.usage.prompt_tokens
        self.completion_tokens += completion.usage.completion_tokens
        self.cost_usd += completion.cost_usd
        if completion.model and completion.model not in self.models:
            self.models.append(completion.model)

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot, for telemetry and debugging."""
        return {
            "steps": self.steps,
            "side_calls": self.side_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "models": list(self.models),
            "files_read": list(self.files_read),
            "tool_calls": [asdict(c) for c in self.tool_calls],
            "edits_drafted": [asdict(e) for e in self.edits_drafted],
            "lint_results": list(self.lint_results),
            "test_results": list(self.test_results),
            "failures": list(self.failures),
        }
