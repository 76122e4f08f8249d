"""Explain and Fix: the pipeline behind the code actions, independent of LSP.

Both run the bounded agent loop (`agent/`) with workspace-confined tools on
top of a context pack around the selection. Explain returns markdown; Fix
returns a validated `ProposedEdit` (it parses, lints no worse, and passes the
tests when those are enabled) or a clear reason why there is none. Nothing
here writes a user file: the edit is a proposal for the editor to apply.

Explain goes through the answer cache (`explain`: hits, one shared run for
identical concurrent explains, the stale fallback tier). Fix is never cached:
an edit is only offered once it has been validated against the code as it is
now (it parses, lints no worse, passes the tests), and a cached edit would skip
that; its context changes with every edit anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from lsp_server.agent import (
    EXPLAIN_SYSTEM,
    FIX_SYSTEM,
    AgentBounds,
    AgentResult,
    AgentTask,
    run_agent,
)
from lsp_server.context.pack.assembler import ContextPack, ContextTask, TaskKind
from lsp_server.limits.estimate import estimate_usd, format_usd
from lsp_server.llm.chain import AllTiersFailed
from lsp_server.llm.queue import QueuedJob, worth_queueing
from lsp_server.llm.types import ChatRequest, Completion
from lsp_server.pipeline.accounting import summarize
from lsp_server.pipeline.conversation import run_memory
from lsp_server.pipeline.explain import Explainer
from lsp_server.pipeline.outcome import ActionOutcome, numbered, run_summary
from lsp_server.pipeline.runtime import ActionRuntime, Document, Progress
from lsp_server.pipeline.spans import describe_pack, pack_span
from lsp_server.prompts import FIX_PROMPT_VERSION
from lsp_server.safe_markdown import fence

logger = logging.getLogger(__name__)

#: Tokens kept free in the window for the fix tool's spec (not in `agent_tools`).
FIX_TOOL_TOKENS = 400


class Actions:
    """Explain and Fix for one runtime (workspace)."""

    def __init__(self, runtime: ActionRuntime) -> None:
        self.runtime = runtime
        self.explainer = Explainer(runtime, self._pack, self._run_agent)
        #: Explain 1-based lines of a document, through the answer cache (`explain`).
        self.explain = self.explainer.explain

    async def _pack(self, doc: Document, start: int, end: int, kind: TaskKind) -> ContextPack:
        """The selection's context: definitions it uses, class, imports, callers, tests."""
        rt = self.runtime
        settings = rt.settings
        counter = await rt.counter(settings.llm.model)
        # contextDeadline 0: the import map and evident types only (no jedi inference).
        infer = settings.context.deadline > 0
        task = ContextTask(kind, doc.text, doc.path, start, end, infer=infer)
        # The agent fetches more with its tools; this is what it gets up front.
        budget = (
            settings.context.fix_tokens if kind == TaskKind.FIX else settings.context.explain_tokens
        )
        with pack_span(kind.value, budget) as traced:
            pack = await rt.assembler.assemble(
                task, counter, budget, deadline=settings.context.deadline
            )
            describe_pack(traced, pack)
        return pack

    async def _run(
        self,
        task: AgentTask,
        progress: Progress | None,
        request_id: str,
        pack: ContextPack,
        **facts: str,
    ) -> tuple[AgentResult, float]:
        """Run the agent for a fix; the request's usage summary is written whatever happens."""
        started = time.monotonic()
        rt = self.runtime
        log = rt.llm.usage_log
        try:
            result, seconds = await self._run_agent(task, progress, request_id)
        except BaseException as exc:
            outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            summarize(log, request_id, task.kind, started, outcome, pack=pack)
            raise
        completion = result.completion
        signals = {"fix_validated": result.edit is not None}
        summarize(
            log,
            request_id,
            task.kind,
            started,
            "ok" if result.ok else "no_answer",
            completion=completion,
            pack=pack,
            breakers=rt.llm.breaker_states(),
            answer_chars=0,
            signals=signals,
            **facts,
        )
        return result, seconds

    async def _run_agent(
        self,
        task: AgentTask,
        progress: Progress | None,
        request_id: str,
        steps: list[Completion] | None = None,
        may_queue: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[AgentResult, float]:
        """The agent's run; each step's completion is appended to ``steps``. When no tier
        answers, the request waits in the queue (`queueRequests`) unless ``may_queue``
        says no (Explain: the cache tier has an answer to show at once)."""
        rt = self.runtime
        settings = rt.settings
        started = time.monotonic()
        # Each model call must finish by `call_deadline`; a wait in the queue (no tier
        # could answer) restarts it once a tier is back, within the run's wall bound.
        call_deadline = started + settings.agent.deadline
        queueing = settings.llm.queue_requests
        run_deadline = call_deadline + (settings.llm.queue_max_wait if queueing else 0.0)

        async def complete(request: ChatRequest) -> Completion:
            nonlocal call_deadline
            try:
                completion = await rt.llm.complete(
                    request, deadline=call_deadline, request_id=request_id
                )
            except AllTiersFailed as failure:
                if not queueing or not worth_queueing(failure):
                    raise
                if may_queue is not None and not await may_queue():
                    raise
                completion = await self._wait_in_queue(request, request_id, failure, progress)
                call_deadline = time.monotonic() + settings.agent.deadline
            if steps is not None:
                steps.append(completion)
            return completion

        bounds = AgentBounds(deadline=run_deadline)
        tools = rt.agent_tools()
        counter = await rt.counter(settings.llm.model)
        summaries: list[Completion] = []
        memory = run_memory(
            rt,
            counter,
            tools=tools.openai_tools(),
            answer_tokens=bounds.max_tokens_per_step + FIX_TOOL_TOKENS,
            deadline=lambda: call_deadline,
            request_id=request_id,
            purpose=task.kind,
            on_completion=summaries.append,
        )
        result = await run_agent(
            task, complete, tools, bounds, on_progress=progress, fit=memory.fit
        )
        for completion in summaries:
            result.context.add_side_call(completion)
        return result, time.monotonic() - started

    async def _wait_in_queue(
        self,
        request: ChatRequest,
        request_id: str,
        failure: AllTiersFailed,
        progress: Progress | None,
    ) -> Completion:
        """Hand the request to the runtime's queue and wait; cancelling cancels the job."""
        queue = self.runtime.request_queue()

        def report(job: QueuedJob) -> None:
            if progress is not None:
                progress(f"Waiting for a model ({job.message})")

        logger.info("no tier can answer now, queueing %s: %s", request_id, failure.summary)
        job = queue.submit(
            request, request_id=request_id, reason=failure.summary, on_progress=report
        )
        report(job)
        try:
            return await asyncio.shield(job.result)
        except asyncio.CancelledError:
            queue.cancel(job.id)
            raise

    async def title(self, kind: TaskKind, doc: Document, start: int, end: int) -> str:
        """ "Explain (≈ $0.004)": the run's name with the estimate of its first model call.

        The estimate is the prompt's upper bound (system prompt and selection counted,
        the whole context budget) plus the longest answer of one step, at the model the
        router picks; each later step is reserved against the budgets when it is sent.
        """
        name = "Explain" if kind == TaskKind.EXPLAIN else "Fix"
        rt = self.runtime
        if not rt.llm.available:
            return name
        settings = rt.settings
        counter = await rt.counter(settings.llm.model)
        system = EXPLAIN_SYSTEM if kind == TaskKind.EXPLAIN else FIX_SYSTEM
        budget = (
            settings.context.fix_tokens if kind == TaskKind.FIX else settings.context.explain_tokens
        )
        prompt = counter.count(system) + counter.count(numbered(doc.text, start, end)) + budget
        answer = AgentBounds().max_tokens_per_step
        probe = ChatRequest(
            messages=[],
            feature=kind.value,
            max_tokens=answer,
            metadata={"context_tokens": str(prompt)},
        )
        steps = rt.llm.router.route(probe).steps
        if not steps or steps[0].spec.role == "local":
            return name
        usd = estimate_usd([steps[0].model], prompt, answer)
        return f"{name} (≈ {format_usd(usd)})" if usd > 0 else name

    async def fix(
        self,
        doc: Document,
        start: int,
        end: int,
        diagnostic: str | None = None,
        progress: Progress | None = None,
    ) -> ActionOutcome:
        """Propose a validated fix for 1-based lines `start`..`end`, or explain why not."""
        rt = self.runtime
        if not rt.llm.available:
            return ActionOutcome(
                False, "llm-lsp: no model configured (offline mode); set OPENAI_API_KEY"
            )
        if doc.path is None or not rt.in_workspace(doc.path):
            return ActionOutcome(False, "llm-lsp: only files inside the workspace can be fixed")
        path = rt.display_path(doc.path)
        if progress:
            progress("Gathering context")
        pack = await self._pack(doc, start, end, TaskKind.FIX)
        context = pack.render()
        problem = f"The problem reported there: {diagnostic}\n\n" if diagnostic else ""
        user = (
            f"Fix the code at lines {start}-{end} of `{path}`.\n\n{problem}"
            f"{fence(numbered(doc.text, start, end), 'python')}\n\n"
            f"Surrounding code:\n\n{context}"
        )
        task = AgentTask(
            kind="fix",
            messages=[{"role": "system", "content": FIX_SYSTEM}, {"role": "user", "content": user}],
            target_path=path,
            original_text=doc.text,
            line_range=(start, end),
        )
        request_id = uuid.uuid4().hex[:16]
        result, seconds = await self._run(
            task, progress, request_id, pack, variant="a", prompt_version=FIX_PROMPT_VERSION
        )
        summary = run_summary(result, seconds)
        if not result.ok or result.edit is None:
            reason = result.reason or "no fix was found"
            return ActionOutcome(
                False,
                f"llm-lsp: no fix offered for {path}:{start}-{end}: {reason}",
                summary=summary,
            )
        return ActionOutcome(
            True,
            f"Fix for {path}:{start}-{end}: {result.edit.explanation}",
            edit=result.edit,
            summary=summary,
            request_id=request_id,
        )
