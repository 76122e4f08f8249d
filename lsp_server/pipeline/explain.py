"""Explain through the answer cache: a hit in milliseconds, a shared run on a miss, stale last.

`Explainer.explain` builds the run's opening messages, then its keys
(`explain_keys`):

* *exact*: the run's first request as sent (system prompt, the user message with
  the numbered selection and the context pack), the model chain, the step's
  parameters (max tokens, temperature, the tools offered) and the prompt version;
* *structural*: the task, the file, the prompt version, the selection's
  structural fingerprint and every pack piece's fingerprint (as hover), never a
  line number: reformatting, comment edits and edits outside the pack still hit;
  a change to the selected code or to a definition in the pack misses;
* *scope* (the fallback tier's): the file and the innermost function or class
  holding the whole selection (``Basket.total``, or ``Basket.total, lines 2-4``
  of it for part of a body; ``lines 16-19`` for module-level code).

A hit shows the cached markdown at once, its footer saying ``cache`` and the
answer's age (`cached.hit_footer`). A miss runs the agent through
`AnswerCache.call`: identical concurrent explains share one run (`InFlight`; a
cancelled waiter leaves, the run goes on while another waits, the last one's
cancel stops it), and the run's final answer is stored as one `RunCompletion`
(its text, the run's tokens and cost). Only a complete, successful run is
stored (a run that ends without an answer raises `RunFailed` inside the shared
call, so nothing is kept), and a run any step of which a later tier answered is
kept only as the scope's latest, for the fallback tier (`AnswerCache.store`).
When no live tier answers (every tier failed, a limit said no), the latest
answer for the same scope is shown at once, marked stale, with what changed
since (the request queue, `queueRequests`, is for explains with no such
answer); only then the plain failure. ``regenerate`` skips the lookup and refreshes the entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lsp_server.agent import EXPLAIN_SYSTEM, AgentBounds, AgentResult, AgentTask, StopReason
from lsp_server.cache import CacheKeys, CacheLookup, CacheOutcome
from lsp_server.cache.fingerprint import code_fingerprint
from lsp_server.context.pack.assembler import ContextPack, TaskKind
from lsp_server.context.source.chunker import ChunkedModule, ChunkKind
from lsp_server.llm.types import Completion, Usage
from lsp_server.pipeline.accounting import summarize
from lsp_server.pipeline.cached import cache_keys, hit_footer, record_cache_use, stale_note
from lsp_server.pipeline.outcome import ActionOutcome, numbered, run_summary
from lsp_server.pipeline.runtime import ActionRuntime, Document, Progress
from lsp_server.prompts import EXPLAIN_SHAPE
from lsp_server.render import answer_notes
from lsp_server.safe_markdown import fence, sanitize
from lsp_server.telemetry.genai import cache_outcome, cache_span
from lsp_server.telemetry.signals import RepeatTracker
from lsp_server.telemetry.variants import choose_variant

logger = logging.getLogger(__name__)

#: Builds the context pack of a task (`Actions._pack`).
PackFor = Callable[[Document, int, int, TaskKind], Awaitable[ContextPack]]
#: Runs the agent, appending each step's completion to the list; when no tier answers it
#: queues the request only if the last callable says so (`Actions._run_agent`).
RunAgent = Callable[
    [AgentTask, Progress | None, str, list[Completion], Callable[[], Awaitable[bool]]],
    Awaitable[tuple[AgentResult, float]],
]
_DEFS = frozenset({ChunkKind.FUNCTION, ChunkKind.METHOD, ChunkKind.CLASS})


@dataclass(frozen=True, slots=True)
class RunCompletion(Completion):
    """A whole explain run as one answer: its final text, its totals, its summary line."""

    summary: str = ""


class RunFailed(Exception):
    """A shared run ended without a complete answer: nothing is stored, every waiter sees it."""

    def __init__(self, result: AgentResult, seconds: float) -> None:
        super().__init__(result.reason or "no answer")
        self.result = result
        self.seconds = seconds


def run_completion(
    result: AgentResult, seconds: float, steps: Sequence[Completion], request_id: str
) -> RunCompletion:
    """The run as one cacheable answer; its ``notice`` is the first step's that a later tier
    answered (so it is kept for the fallback tier only)."""
    ctx = result.context
    last = result.completion
    notice = next((c.notice for c in steps if c.notice), None)
    cached = sum(c.usage.cached_tokens for c in steps)
    return RunCompletion(
        text=result.answer or "",
        model=last.model if last is not None else "",
        provider=last.provider if last is not None else "",
        usage=Usage(ctx.prompt_tokens, ctx.completion_tokens, cached),
        latency_ms=seconds * 1000,
        cost_usd=ctx.cost_usd,
        request_id=request_id,
        tier=last.tier if last is not None else "primary",
        notice=notice,
        summary=run_summary(result, seconds),
    )


def selection_scope(chunks: ChunkedModule, start: int, end: int) -> str:
    """The innermost function or class holding lines ``start``..``end`` (see the module
    docstring); ``lines a-b`` for code outside any."""
    holders = [
        c for c in chunks.chunks if c.kind in _DEFS and c.contains(start) and c.contains(end)
    ]
    if not holders:
        return f"lines {start}-{end}"
    chunk = min(holders, key=lambda c: c.end_line - c.start_line)
    if start <= chunk.start_line and end >= chunk.end_line:
        return chunk.qualname
    first = start - chunk.start_line + 1
    return f"{chunk.qualname}, lines {first}-{end - chunk.start_line + 1}"


def _why(result: AgentResult) -> str | None:
    """Why no live tier answered, when that is why the run failed; None for other ends."""
    if result.stop is StopReason.PROVIDER_FAILURE and result.failure is not None:
        return f"{result.failure.kind.value.replace('_', ' ')} ({result.failure.message})"
    if result.stop is StopReason.DEADLINE and result.context.steps == 0:
        return "timeout (no model answered within the time limit)"
    return None


class Explainer:
    """Explain for one runtime (workspace); `Actions.explain` delegates here."""

    def __init__(self, runtime: ActionRuntime, pack: PackFor, run: RunAgent) -> None:
        self.runtime = runtime
        self._pack = pack
        self._run = run
        self._repeats = RepeatTracker()

    async def keys(
        self,
        doc: Document,
        start: int,
        end: int,
        messages: list[dict[str, Any]],
        pack: ContextPack,
        variant: str,
    ) -> CacheKeys:
        """The run's cache keys (see the module docstring)."""
        rt = self.runtime
        path = rt.display_path(doc.path)
        module = await rt.assembler.module(doc.path, doc.text)
        bounds = AgentBounds()
        tools = sorted(t["function"]["name"] for t in rt.agent_tools().openai_tools())
        selected = "\n".join(doc.text.splitlines()[start - 1 : end])
        return cache_keys(
            rt.settings,
            "explain",
            messages,
            params=[bounds.max_tokens_per_step, bounds.temperature, tools],
            pack=pack,
            facts=[path, code_fingerprint(selected), EXPLAIN_SHAPE.tag(variant)],
            scope=(path, selection_scope(module.chunks, start, end)),
        )

    async def explain(
        self,
        doc: Document,
        start: int,
        end: int,
        progress: Progress | None = None,
        *,
        regenerate: bool = False,
    ) -> ActionOutcome:
        """Explain 1-based lines `start`..`end` of `doc` (``regenerate``: skip the cache)."""
        rt = self.runtime
        if not rt.llm.available:
            return ActionOutcome(
                False, "llm-lsp: no model configured (offline mode); set OPENAI_API_KEY"
            )
        path = rt.display_path(doc.path)
        if not rt.may_send(doc.path):
            return ActionOutcome(
                False, f"llm-lsp: {path} is excluded from what llm-lsp may send to a model"
            )
        started = time.monotonic()
        if progress:
            progress("Gathering context")
        pack = await self._pack(doc, start, end, TaskKind.EXPLAIN)
        request_id = uuid.uuid4().hex[:16]
        variant = choose_variant(request_id, rt.settings.context.prompt_variant_share)
        log = rt.llm.usage_log
        earlier = self._repeats.seen(f"{path}:{start}-{end}", request_id)
        if earlier is not None:
            log.signal(earlier, "regenerated", "explain")
        user = (
            f"Explain lines {start}-{end} of `{path}`:\n\n"
            f"{fence(numbered(doc.text, start, end), 'python')}\n\n"
            f"Surrounding code:\n\n{pack.render()}\n"
            f"{EXPLAIN_SHAPE.text(variant)}"
        )
        messages = [
            {"role": "system", "content": EXPLAIN_SYSTEM},
            {"role": "user", "content": user},
        ]
        task = AgentTask(
            kind="explain", messages=messages, target_path=path, line_range=(start, end)
        )
        keys = await self.keys(doc, start, end, messages, pack, variant)
        with cache_span("explain") as traced:
            found = await rt.answers.lookup(keys, bypass=regenerate)
            state = "bypass" if regenerate else found.outcome.value
            cache_outcome(traced, state, feature="explain", layer=found.layer or "")
        where = f"{path}:{start}-{end}"

        def done(outcome: str, completion: Completion | None = None, **facts: Any) -> None:
            summarize(
                log,
                request_id,
                "explain",
                started,
                outcome,
                completion=completion,
                pack=pack,
                breakers=rt.llm.breaker_states(),
                variant=variant,
                prompt_version=EXPLAIN_SHAPE.tag(variant),
                cache=state,
                **facts,
            )

        if found.outcome is CacheOutcome.HIT and found.entry is not None:
            answer = self._from_cache(found, where, request_id, started, "")
            done("cached", tier="cache", answer_chars=len(found.entry.text))
            return answer
        live = True

        def report(message: str) -> None:  # the run's first caller's progress, while it waits
            if live and progress is not None:
                progress(message)

        async def may_queue() -> bool:  # the cache tier comes before waiting for a model
            return (await rt.answers.fallback(keys)).entry is None

        async def run() -> Completion:
            steps: list[Completion] = []
            result, seconds = await self._run(task, report, request_id, steps, may_queue)
            if not result.ok or not result.answer:
                raise RunFailed(result, seconds)
            return run_completion(result, seconds, steps, request_id)

        try:
            completion = await rt.answers.call(keys, run)
        except RunFailed as failed:
            result = failed.result
            why = _why(result)
            stale = await rt.answers.fallback(keys) if why is not None else None
            if why is not None and stale is not None and stale.entry is not None:
                state = "stale"
                answer = self._from_cache(stale, where, request_id, started, why)
                done("fallback", tier="cache", answer_chars=len(stale.entry.text))
                return answer
            done("no_answer", result.completion, answer_chars=0)
            reason = result.reason or "no answer"
            return ActionOutcome(
                False,
                f"llm-lsp: could not explain {where}: {reason}",
                summary=run_summary(result, failed.seconds),
                request_id=request_id,
                cache=state,
            )
        except BaseException as exc:
            done("cancelled" if isinstance(exc, asyncio.CancelledError) else "error")
            raise
        finally:
            live = False
        done("ok", completion, answer_chars=len(completion.text))
        summary = completion.summary if isinstance(completion, RunCompletion) else ""
        notes = "".join(f"{note}\n\n" for note in self._cache_notes())
        markdown = (
            f"# Explanation of `{where}`\n\n{sanitize(completion.text.strip())}\n\n"
            f"{notes}---\n_{summary}_\n"
        )
        return ActionOutcome(
            True,
            f"Explained {where}",
            markdown=markdown,
            summary=summary,
            request_id=request_id,
            cache=state,
        )

    def _cache_notes(self) -> list[str]:
        notice = self.runtime.answers.take_notice()
        return [f"_{notice}_"] if notice else []

    def _from_cache(
        self, found: CacheLookup, where: str, request_id: str, started: float, stale_why: str
    ) -> ActionOutcome:
        """An answer from the cache: fresh (a hit) or stale (the fallback tier)."""
        assert found.entry is not None
        rt = self.runtime
        elapsed = (time.monotonic() - started) * 1000
        record_cache_use(rt.usage_log, request_id, "explain", found, elapsed)
        notes = [stale_note(found, stale_why)] if stale_why else []
        if stale_why:
            notes += answer_notes(None, rt.llm.breaker_states())
        notes += self._cache_notes()
        parts = [f"# Explanation of `{where}`", *notes, sanitize(found.entry.text.strip())]
        footer = hit_footer(found, elapsed)
        markdown = "\n\n".join(parts) + f"\n\n---\n{footer}\n"
        kind = "a stale answer from the cache" if stale_why else "from the cache"
        return ActionOutcome(
            True,
            f"Explained {where} ({kind})",
            markdown=markdown,
            summary=footer.strip("_"),
            request_id=request_id,
            cache=found.outcome.value,
        )
