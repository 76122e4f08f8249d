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

from lsp_server.cache import CacheKeys, CacheLookup, CacheOutcome
from lsp_server.context.jedi.worker import JediCrashed
from lsp_server.context.model import Definition, SymbolInfo
from lsp_server.context.pack.assembler import ContextPack, ContextTask, TaskKind
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure
from lsp_server.pipeline.cached import cache_keys, hit_footer, record_cache_use, stale_note
from lsp_server.pipeline.runtime import Document, HoverRuntime
from lsp_server.prompts import hover_messages
from lsp_server.render import (
    answer_notes,
    footer,
    offline_notice,
    static_markdown,
    unavailable_notice,
)
from lsp_server.safe_markdown import sanitize

logger = logging.getLogger(__name__)

#: How long static analysis may take before a hover gives up on it.
STATIC_DEADLINE = 5.0


class AnswerSource(StrEnum):
    """Where the AI part of an answer came from."""

    PROVIDER = "provider"
    CACHE = "cache"
    STALE = "stale"
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
    cache: CacheOutcome = CacheOutcome.OFF
    """What the answer cache did (``llm_lsp.cache`` in traces)."""


class HoverPipeline:
    """Hovers for one runtime (workspace)."""

    def __init__(self, runtime: HoverRuntime) -> None:
        self.runtime = runtime

    async def hover(
        self, doc: Document, line: int, column: int, *, regenerate: bool = False
    ) -> HoverAnswer | None:
        """Hover at 0-based `line`/`column` (columns in code points); None if nothing is there.

        ``regenerate``: ask the model even if the cache has an answer, and replace it.
        """
        started = time.perf_counter()
        rt = self.runtime
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
        pack = await self._pack(doc, line + 1, symbol)
        where = f"{rt.display_path(doc.path)}:{line + 1}"
        request = ChatRequest(
            messages=hover_messages(symbol, pack, where),
            feature="hover",
            max_tokens=settings.hover.max_tokens,
            metadata={"context_tokens": str(pack.tokens)},
        )
        keys = cache_keys(
            settings,
            "hover",
            request.messages,
            params=[request.max_tokens, request.temperature],
            pack=pack,
            facts=[symbol.name, symbol.full_name, symbol.kind, symbol.signatures[:1]],
            scope=(rt.display_path(doc.path), symbol.full_name or symbol.name),
        )
        found = await rt.answers.lookup(keys, bypass=regenerate)
        if found.outcome is CacheOutcome.HIT:
            return self._from_cache(static, symbol, pack, found, request_id, started, "")
        try:
            # In this task, not wait_for's own (3.11): a cancel reaches the provider call
            # directly, and one racing the answer is not lost.
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                completion = await rt.answers.call(
                    keys,
                    lambda: llm.complete(request, deadline=deadline, request_id=request_id),
                )
        except ProviderFailure as failure:
            return await self._fallback(
                static, symbol, pack, keys, request_id, started, failure.kind.value,
                failure.message,
            )  # fmt: skip
        except TimeoutError:
            message = f"no answer within {settings.hover.deadline:g} s"
            return await self._fallback(
                static, symbol, pack, keys, request_id, started, "timeout", message
            )
        notes = answer_notes(completion.notice, llm.breaker_states())
        notes += self._cache_notes()
        parts = [static, "---", sanitize(completion.text.strip()), *notes]
        parts.append(footer(completion, completion.tier, pack.tokens))
        markdown = "\n\n".join(parts)
        outcome = CacheOutcome.BYPASS if regenerate else found.outcome
        return HoverAnswer(markdown, AnswerSource.PROVIDER, symbol, completion, pack, outcome)

    def _cache_notes(self) -> list[str]:
        notice = self.runtime.answers.take_notice()
        return [f"_{notice}_"] if notice else []

    def _from_cache(
        self,
        static: str,
        symbol: SymbolInfo,
        pack: ContextPack,
        found: CacheLookup,
        request_id: str,
        started: float,
        stale_why: str,
    ) -> HoverAnswer:
        """An answer from the cache: fresh (a hit) or stale (the fallback tier)."""
        assert found.entry is not None
        elapsed = (time.perf_counter() - started) * 1000
        record_cache_use(self.runtime.usage_log, request_id, "hover", found, elapsed)
        notes = [stale_note(found, stale_why)] if stale_why else []
        if stale_why:
            notes += answer_notes(None, self.runtime.llm.breaker_states())
        notes += self._cache_notes()
        body = sanitize(found.entry.text.strip())
        markdown = "\n\n".join([static, "---", body, *notes, hit_footer(found, elapsed)])
        source = AnswerSource.STALE if stale_why else AnswerSource.CACHE
        completion = found.entry.completion(request_id, elapsed)
        return HoverAnswer(markdown, source, symbol, completion, pack, found.outcome)

    async def _fallback(
        self,
        static: str,
        symbol: SymbolInfo,
        pack: ContextPack,
        keys: CacheKeys,
        request_id: str,
        started: float,
        kind: str,
        message: str,
    ) -> HoverAnswer:
        """No live tier answered: the cache tier (the latest answer, stale), then static."""
        found = await self.runtime.answers.fallback(keys)
        if found.entry is not None:
            why = f"{kind.replace('_', ' ')} ({message})"
            return self._from_cache(static, symbol, pack, found, request_id, started, why)
        return self._static_fallback(static, symbol, pack, kind, message)

    def _static_fallback(
        self, static: str, symbol: SymbolInfo, pack: ContextPack, kind: str, message: str
    ) -> HoverAnswer:
        notice = unavailable_notice(self.runtime.settings.llm.model, kind, message)
        notes = answer_notes(None, self.runtime.llm.breaker_states())
        notes += self._cache_notes()
        markdown = "\n\n".join([static, "---", notice, *notes])
        return HoverAnswer(markdown, AnswerSource.FALLBACK, symbol, pack=pack)

    async def _pack(self, doc: Document, line: int, symbol: SymbolInfo) -> ContextPack:
        """The hovered line's chunk, the symbol's definition first, then what the chunk uses.

        Only the import map places the other names (no jedi inference, no callers):
        a hover must stay fast; Explain and Fix get the full search.
        """
        settings = self.runtime.settings
        counter = await self.runtime.counter(settings.llm.model)
        focus: Definition | None = None
        if symbol.definition_path is not None and symbol.definition_line is not None:
            focus = Definition(
                symbol.name,
                symbol.full_name,
                symbol.kind,
                symbol.definition_path,
                symbol.definition_line,
                0,
                symbol.in_workspace,
            )
        task = ContextTask(
            TaskKind.HOVER, doc.text, doc.path, line, line, focus=focus, callers=False, infer=False
        )
        return await self.runtime.assembler.assemble(
            task, counter, settings.hover.context_tokens, deadline=0.0
        )
