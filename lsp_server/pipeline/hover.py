"""Hover, independent of LSP: static facts, then the model's grounded explanation.

`HoverPipeline.hover` takes a document snapshot and a position, gathers static
facts with jedi, assembles a small context pack (the import map only: a hover
must stay fast), asks the model through `LlmService`, and returns markdown with
a footer that says who answered, what it cost and how long it took. It never
raises to its caller for provider trouble: failures become a one-line notice
under the static facts. `asyncio.CancelledError` always propagates.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from lsp_server.context.jedi.worker import JediCrashed
from lsp_server.context.model import SymbolInfo
from lsp_server.context.pack.assembler import ContextPack, ContextTask, TaskKind
from lsp_server.context.pack.grounding import focus_of
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure
from lsp_server.pipeline.accounting import summarize
from lsp_server.pipeline.runtime import Document, HoverRuntime
from lsp_server.pipeline.spans import describe_pack, pack_span
from lsp_server.prompts import HOVER_PROMPT, hover_messages
from lsp_server.render import (
    answer_notes,
    footer,
    offline_notice,
    static_markdown,
    unavailable_notice,
)
from lsp_server.safe_markdown import sanitize
from lsp_server.telemetry.signals import RepeatTracker
from lsp_server.telemetry.variants import choose_variant

logger = logging.getLogger(__name__)

#: How long static analysis may take before a hover gives up on it.
STATIC_DEADLINE = 5.0


class AnswerSource(StrEnum):
    """Where the AI part of an answer came from."""

    PROVIDER = "provider"
    FALLBACK = "fallback"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class HoverAnswer:
    """What a hover shows, and what produced it."""

    markdown: str
    source: AnswerSource
    symbol: SymbolInfo
    completion: Completion | None = None
    pack: ContextPack | None = None


class HoverPipeline:
    """Hovers for one runtime (workspace)."""

    def __init__(self, runtime: HoverRuntime) -> None:
        self.runtime = runtime
        self._repeats = RepeatTracker()

    async def hover(self, doc: Document, line: int, column: int) -> HoverAnswer | None:
        """Hover at 0-based `line`/`column` (columns in code points); None if nothing is there."""
        rt = self.runtime
        started = time.monotonic()
        prefetch = self._prefetch(doc)  # the pack's first steps, while jedi answers
        try:
            symbol = await rt.symbols.symbol_at(
                doc.text, doc.path, line + 1, column, deadline=STATIC_DEADLINE
            )
        except JediCrashed as exc:  # restarted on the next request
            logger.warning("static analysis failed at %s:%d: %s", doc.path, line + 1, exc)
            return None
        except TimeoutError:
            logger.warning("static analysis timed out at %s:%d", doc.path, line + 1)
            return None
        if symbol is None:
            return None
        static = static_markdown(symbol, rt.display_path)
        settings = rt.settings
        if not settings.hover.enabled:
            return HoverAnswer(static, AnswerSource.OFFLINE, symbol)
        if not rt.may_send(doc.path):
            notice = "_No AI explanation: this file is excluded from what llm-lsp may send._"
            return HoverAnswer(static + "\n\n---\n" + notice, AnswerSource.OFFLINE, symbol)
        llm = rt.llm
        if not llm.available:
            return HoverAnswer(
                static + "\n\n---\n" + offline_notice(), AnswerSource.OFFLINE, symbol
            )
        deadline = time.monotonic() + settings.hover.deadline
        request_id = uuid.uuid4().hex[:16]
        key = symbol.full_name or f"{rt.display_path(doc.path)}:{symbol.name}"
        variant = choose_variant(key, settings.context.prompt_variant_share)
        log = llm.usage_log
        earlier = self._repeats.seen(key, request_id)
        if earlier is not None:
            log.signal(earlier, "hover_repeated", "hover")
        if prefetch is not None:
            await prefetch
        pack = await self._pack(doc, line + 1, column, symbol)
        where = f"{rt.display_path(doc.path)}:{line + 1}"

        def done(outcome: str, completion: Completion | None = None) -> None:
            summarize(
                log,
                request_id,
                "hover",
                started,
                outcome,
                completion=completion,
                pack=pack,
                breakers=llm.breaker_states(),
                variant=variant,
                prompt_version=HOVER_PROMPT.tag(variant),
            )

        request = ChatRequest(
            messages=hover_messages(symbol, pack, where, variant=variant),
            feature="hover",
            max_tokens=settings.hover.max_tokens,
            metadata={"context_tokens": str(pack.tokens)},
        )
        try:
            # In this task, not wait_for's own (3.11): a cancel reaches the provider call
            # directly, and one racing the answer is not lost.
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                completion = await llm.complete(request, deadline=deadline, request_id=request_id)
        except ProviderFailure as failure:
            done("fallback")
            return self._static_fallback(static, symbol, pack, failure.kind.value, failure.message)
        except TimeoutError:
            done("fallback")
            message = f"no answer within {settings.hover.deadline:g} s"
            return self._static_fallback(static, symbol, pack, "timeout", message)
        except asyncio.CancelledError:
            done("cancelled")
            raise
        done("ok", completion)
        notes = answer_notes(completion.notice, llm.breaker_states())
        parts = [static, "---", sanitize(completion.text.strip()), *notes]
        parts.append(footer(completion, completion.tier, pack.tokens))
        markdown = "\n\n".join(parts)
        return HoverAnswer(markdown, AnswerSource.PROVIDER, symbol, completion, pack)

    def _static_fallback(
        self, static: str, symbol: SymbolInfo, pack: ContextPack, kind: str, message: str
    ) -> HoverAnswer:
        notice = unavailable_notice(self.runtime.settings.llm.model, kind, message)
        notes = answer_notes(None, self.runtime.llm.breaker_states())
        markdown = "\n\n".join([static, "---", notice, *notes])
        return HoverAnswer(markdown, AnswerSource.FALLBACK, symbol, pack=pack)

    def _prefetch(self, doc: Document) -> asyncio.Task[None] | None:
        """Chunk the hovered file and load the tokenizer (both cached) while jedi answers,
        when the hover will want a pack; a failure here is left to the pack to meet."""
        rt = self.runtime
        if not (rt.settings.hover.enabled and rt.llm.available and rt.may_send(doc.path)):
            return None

        async def run() -> None:
            try:
                await asyncio.gather(
                    rt.assembler.module(doc.path, doc.text), rt.counter(rt.settings.llm.model)
                )
            except Exception as exc:  # the pack meets it again and says so
                logger.debug("hover prefetch failed: %s", exc)

        return asyncio.ensure_future(run())

    async def _pack(self, doc: Document, line: int, column: int, symbol: SymbolInfo) -> ContextPack:
        """The symbol's definition first and whole, the hovered line's chunk, what it uses
        (`context.pack.grounding`).

        Only the import map places the other names (no jedi inference, no callers):
        a hover must stay fast; Explain and Fix get the full search.
        """
        settings = self.runtime.settings
        counter = await self.runtime.counter(settings.llm.model)
        task = ContextTask(
            TaskKind.HOVER,
            doc.text,
            doc.path,
            line,
            line,
            focus=focus_of(symbol),
            name=symbol.name,
            column=column,
            callers=False,
            infer=False,
        )
        with pack_span(task.kind.value, settings.hover.context_tokens) as traced:
            pack = await self.runtime.assembler.assemble(
                task, counter, settings.hover.context_tokens, deadline=0.0
            )
            describe_pack(traced, pack)
            return pack
