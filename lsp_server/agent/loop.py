"""The bounded agent loop: ask the model, run the tools it calls, repeat until done.

One step is one model call. If the model calls tools, they all run
concurrently, the assistant message and one ``tool`` message per call id are
appended, and the next step begins. An *explain* run ends when the model
answers without tool calls; a *fix* run ends when a ``propose_fix`` call passes
`validate.validate_edit` (a rejected draft goes back to the model as that
call's result). The loop only ever returns data: an answer or a
`ProposedEdit`; nothing a tool result says is acted upon.

Bounds (`AgentBounds`): ``max_steps`` model calls; ``max_total_tokens``
(prompt + completion, summed over steps from ``Completion.usage``) checked
before each further call, so an answer or fix from the step that crossed it is
still used; ``deadline`` (absolute ``time.monotonic()``) enforced around every
model call and tool batch; ``max_tool_calls`` calls of one reply run (one reply
once asked for 40 lints at once), the rest are answered with a tool error
saying so (child processes are also capped process-wide, see `isolation`). A
call identical to an earlier one (same name,
same arguments after canonical JSON) is not run again; the model is told so.
On the last step the model is told that only an answer (explain) or
``propose_fix`` (fix) will be used. Given a ``fit`` (`ConversationMemory.fit`),
each request carries the conversation fitted to the window (pinned opening,
recent exchanges verbatim, the middle summarised); the run's own record of
the messages stays whole. `asyncio.CancelledError` propagates at
once; tool subprocesses are killed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from lsp_server.agent.edits import ProposedEdit
from lsp_server.agent.execution import ExecutionContext
from lsp_server.agent.fix import PROPOSE_FIX, FixSubmissions
from lsp_server.agent.prompts import (
    LAST_STEP_EXPLAIN,
    LAST_STEP_FIX,
    NO_FIX_SUBMITTED,
)
from lsp_server.agent.registry import ToolRegistry, canonical_call, to_json
from lsp_server.agent.workspace import ToolError
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure, ToolCall
from lsp_server.telemetry import genai, tracing

logger = logging.getLogger(__name__)

Complete = Callable[[ChatRequest], Awaitable[Completion]]
ProgressCallback = Callable[[str], None]
#: Fits the conversation to the model's window before a call (`ConversationMemory.fit`).
Fit = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class StopReason(StrEnum):
    """Why a run ended."""

    ANSWERED = "answered"
    FIX_ACCEPTED = "fix_accepted"
    NO_FIX = "no_fix"
    EMPTY_ANSWER = "empty_answer"
    STEP_LIMIT = "step_limit"
    TOKEN_LIMIT = "token_limit"
    DEADLINE = "deadline"
    PROVIDER_FAILURE = "provider_failure"
    CHECK_UNAVAILABLE = "check_unavailable"


@dataclass(slots=True)
class AgentTask:
    """What to do: the opening messages and, for a fix, the file being fixed.

    ``feature`` becomes ``ChatRequest.feature`` (the router's task kind);
    it defaults to ``kind``. ``metadata`` is copied into every request, plus
    ``agent_step``.

    ``target_path`` is workspace-relative; ``original_text`` is the file as the
    editor has it (line numbers refer to it); ``line_range`` (1-based,
    inclusive) is what the user pointed at, for the record.
    """

    kind: Literal["explain", "fix"]
    messages: list[dict[str, Any]]
    target_path: str | None = None
    original_text: str | None = None
    line_range: tuple[int, int] | None = None
    feature: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentBounds:
    """Limits of one run; see the module docstring for their exact meaning."""

    max_steps: int = 6
    max_tool_calls: int = 8
    max_total_tokens: int = 60_000
    deadline: float | None = None
    max_tokens_per_step: int = 1_500
    temperature: float = 0.2


@dataclass(slots=True)
class AgentResult:
    """The outcome: an answer (explain), an edit (fix), or a reason for neither."""

    ok: bool
    stop: StopReason
    context: ExecutionContext
    answer: str | None = None
    edit: ProposedEdit | None = None
    reason: str | None = None
    failure: ProviderFailure | None = None
    completion: Completion | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


class _Deadline(Exception):
    """The run's deadline passed."""


def _assistant_message(completion: Completion, calls: list[ToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in calls
        ],
    }


class _Run:
    """State of one `run_agent` call."""

    def __init__(
        self,
        task: AgentTask,
        complete: Complete,
        tools: ToolRegistry,
        bounds: AgentBounds,
        on_progress: ProgressCallback | None,
        fit: Fit | None = None,
    ) -> None:
        self.task = task
        self.fit = fit
        self.complete = complete
        self.tools = tools
        self.bounds = bounds
        self.on_progress = on_progress
        self.ctx = ExecutionContext()
        self.messages = list(task.messages)
        self.seen: set[str] = set()
        self.fix: FixSubmissions | None = None
        self.fix_tools: ToolRegistry | None = None
        if (
            task.kind == "fix"
            and tools.workspace is not None
            and task.target_path is not None
            and task.original_text is not None
        ):
            self.fix = FixSubmissions(
                tools.workspace,
                task.target_path,
                task.original_text,
                run_tests=tools.run_tests_enabled,
                lint_timeout=tools.lint_timeout,
                test_timeout=tools.test_timeout,
            )
            self.fix_tools = ToolRegistry([self.fix.tool()])
        self.specs = tools.openai_tools() + (
            self.fix_tools.openai_tools() if self.fix_tools else []
        )
        self.last_completion: Completion | None = None

    def progress(self, text: str) -> None:
        if self.on_progress is not None:
            self.on_progress(text)

    @contextlib.asynccontextmanager
    async def within_deadline(self) -> AsyncIterator[None]:
        if self.bounds.deadline is None:
            yield
            return
        try:
            async with asyncio.timeout(max(0.0, self.bounds.deadline - time.monotonic())):
                yield
        except TimeoutError:
            raise _Deadline from None

    # -- one step ------------------------------------------------------------------

    async def _one_call(
        self, call: ToolCall, step: int, repeated: bool, last: bool, over: bool = False
    ) -> str:
        if over:
            cap = self.bounds.max_tool_calls
            return to_json(
                ToolError(
                    "too_many_calls",
                    f"Not run: at most {cap} tool calls of one reply are run.",
                    hint=f"Ask for what matters most, at most {cap} calls per reply.",
                ).to_dict()
            )
        if repeated:
            return to_json(
                ToolError(
                    "repeated_call",
                    f"You already called {call.name} with these arguments; the result was "
                    "given above. Use it or try something else.",
                ).to_dict()
            )
        if self.fix_tools is not None and call.name == PROPOSE_FIX:
            return await self.fix_tools.dispatch(call, self.ctx, step=step)
        if last:
            return to_json(
                ToolError(
                    "step_limit", "No more tool calls are run: the step limit is reached."
                ).to_dict()
            )
        return await self.tools.dispatch(call, self.ctx, step=step)

    async def run_calls(self, calls: list[ToolCall], step: int, last: bool) -> list[str]:
        flags: list[bool] = []
        cap = self.bounds.max_tool_calls
        if len(calls) > cap:
            logger.info("agent step %d: %d tool calls, %d run", step, len(calls), cap)
        for call in calls[:cap]:
            key = canonical_call(call)
            flags.append(key in self.seen)
            self.seen.add(key)
            is_fix = call.name == PROPOSE_FIX and self.fix_tools is not None
            if not flags[-1] and (is_fix or not last):
                self.progress(
                    (self.fix_tools if is_fix and self.fix_tools else self.tools).describe(call)
                )
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    self._one_call(call, step, i < cap and flags[i], last, over=i >= cap)
                )
                for i, call in enumerate(calls)
            ]
        return [t.result() for t in tasks]

    async def request(self, step: int) -> ChatRequest:
        messages = list(self.messages)
        if self.fit is not None:
            messages = await self.fit(messages)
            if len(messages) != len(self.messages):
                logger.info(
                    "agent step %d: %d messages fitted into %d",
                    step,
                    len(self.messages),
                    len(messages),
                )
        return ChatRequest(
            messages=messages,
            feature=self.task.feature or self.task.kind,
            max_tokens=self.bounds.max_tokens_per_step,
            temperature=self.bounds.temperature,
            tools=self.specs or None,
            metadata={**self.task.metadata, "agent_step": str(step)},
        )

    def result(self, ok: bool, stop: StopReason, **kwargs: Any) -> AgentResult:
        logger.info(
            "agent %s run ended: %s after %d steps, %d tokens",
            self.task.kind,
            stop.value,
            self.ctx.steps,
            self.ctx.total_tokens,
        )
        return AgentResult(
            ok=ok,
            stop=stop,
            context=self.ctx,
            completion=self.last_completion,
            messages=self.messages,
            **kwargs,
        )

    def unfinished(self, stop: StopReason, what: str) -> AgentResult:
        goal = "a valid fix" if self.task.kind == "fix" else "an answer"
        reason = f"{what} reached without {goal}"
        if self.fix is not None and self.fix.last_rejection:
            reason += f" (last draft rejected: {self.fix.last_rejection})"
        return self.result(False, stop, reason=reason)

    async def run(self) -> AgentResult:
        """The run, traced: an ``invoke_agent`` span, one ``agent.step`` span per step."""
        with genai.agent_span(self.task.kind) as traced, tracing.Steps() as self._steps:
            return genai.agent_ended(traced, await self._run())

    async def _run(self) -> AgentResult:
        bounds, is_fix = self.bounds, self.task.kind == "fix"
        nudged = False
        for step in range(1, bounds.max_steps + 1):
            self._steps.begin("agent.step", {"llm_lsp.agent.step": step})
            if step > 1 and self.ctx.total_tokens >= bounds.max_total_tokens:
                return self.unfinished(
                    StopReason.TOKEN_LIMIT, f"token limit ({bounds.max_total_tokens})"
                )
            last = step == bounds.max_steps
            if last and step > 1:
                nudge = LAST_STEP_FIX if is_fix else LAST_STEP_EXPLAIN
                self.messages.append({"role": "user", "content": nudge})
            self.progress(f"Asking the model (step {step}/{bounds.max_steps})")
            try:
                async with self.within_deadline():
                    completion = await self.complete(await self.request(step))
            except ProviderFailure as exc:
                return self.result(
                    False,
                    StopReason.PROVIDER_FAILURE,
                    reason=f"the model could not be reached: {exc.message}",
                    failure=exc,
                )
            except _Deadline:
                return self.unfinished(StopReason.DEADLINE, "time limit")
            self.ctx.add_completion(completion)
            self.last_completion = completion
            if not completion.tool_calls:
                text = completion.text.strip()
                self.messages.append({"role": "assistant", "content": completion.text})
                if not is_fix:
                    if not text:
                        return self.result(
                            False, StopReason.EMPTY_ANSWER, reason="the model gave no answer"
                        )
                    return self.result(True, StopReason.ANSWERED, answer=completion.text)
                if nudged or last:
                    return self.result(
                        False,
                        StopReason.NO_FIX,
                        answer=completion.text or None,
                        reason="the model did not propose a fix",
                    )
                nudged = True
                self.messages.append({"role": "user", "content": NO_FIX_SUBMITTED})
                continue
            calls = [
                ToolCall(c.id or f"call_{step}_{i}", c.name, c.arguments)
                for i, c in enumerate(completion.tool_calls)
            ]
            self.messages.append(_assistant_message(completion, calls))
            try:
                async with self.within_deadline():
                    results = await self.run_calls(calls, step, last)
            except _Deadline:
                return self.unfinished(StopReason.DEADLINE, "time limit")
            for call, content in zip(calls, results, strict=True):
                self.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
            if self.fix is not None and self.fix.accepted is not None:
                return self.result(
                    True,
                    StopReason.FIX_ACCEPTED,
                    edit=self.fix.accepted,
                    answer=self.fix.accepted.explanation,
                )
            if self.fix is not None and self.fix.unavailable is not None:
                return self.result(
                    False,
                    StopReason.CHECK_UNAVAILABLE,
                    reason=f"the fix could not be checked: {self.fix.unavailable}",
                )
        return self.unfinished(StopReason.STEP_LIMIT, f"step limit ({bounds.max_steps})")


async def run_agent(
    task: AgentTask,
    complete: Complete,
    tools: ToolRegistry,
    bounds: AgentBounds | None = None,
    on_progress: ProgressCallback | None = None,
    fit: Fit | None = None,
) -> AgentResult:
    """Run ``task`` to an answer, a validated edit, or a bound; see the module docstring.

    ``complete`` sends one `ChatRequest` (it raises `ProviderFailure` when no
    model can answer, which ends the run with that failure attached). A fix
    task needs ``tools.workspace``, ``task.target_path`` and
    ``task.original_text``. Never writes a file.
    """
    if task.kind == "fix" and (task.target_path is None or task.original_text is None):
        raise ValueError("a fix task needs target_path and original_text")
    if task.kind == "fix" and tools.workspace is None:
        raise ValueError("a fix task needs a ToolRegistry with a workspace (see build_tools)")
    return await _Run(task, complete, tools, bounds or AgentBounds(), on_progress, fit).run()
