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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lsp_server.cache import CacheKeys, CacheLookup, CacheOutcome
from lsp_server.context.jedi.worker import JediCrashed
from lsp_server.context.model import SymbolInfo
from lsp_server.context.pack.assembler import ContextPack
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure
from lsp_server.pipeline.accounting import summarize
from lsp_server.pipeline.cached import cache_keys, hit_footer, record_cache_use, stale_note
from lsp_server.pipeline.hover_memo import PreparedHovers, pack_file
from lsp_server.pipeline.hover_pack import hover_pack, prefetch_pack
from lsp_server.pipeline.hover_wait import Interest, PendingHovers
from lsp_server.pipeline.runtime import Document, HoverRuntime
from lsp_server.pipeline.spans import describe_pack, pack_span
from lsp_server.prompts import HOVER_PROMPT, hover_messages
from lsp_server.render import (
    PENDING_LIVE_NOTE,
    PENDING_NOTE,
    REPEAT_NOTE,
    answer_notes,
    footer,
    offline_notice,
    static_markdown,
    unavailable_notice,
)
from lsp_server.safe_markdown import sanitize
from lsp_server.telemetry.genai import cache_outcome, cache_span
from lsp_server.telemetry.signals import RepeatTracker
from lsp_server.telemetry.variants import choose_variant

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
    PENDING = "pending"
    """Past ``hoverWait``: static facts now, the explanation in the background."""
    DEFERRED = "deferred"
    """``aiHover: onRepeat`` and a first hover: static facts, no call."""


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
        self._repeats = RepeatTracker()
        self._pending: PendingHovers[HoverAnswer] = PendingHovers()
        self._interest = Interest()
        self._prepared = PreparedHovers(lambda label: pack_file(runtime.workspace, label))

    def documents_changed(self, path: Path | None) -> None:
        """The editor reported a change to ``path``: facts read from it may be stale."""
        self._prepared.forget(path)

    async def hover(
        self,
        doc: Document,
        line: int,
        column: int,
        *,
        regenerate: bool = False,
        on_ready: Callable[[HoverAnswer], None] | None = None,
        in_place: bool = False,
    ) -> HoverAnswer | None:
        """Hover at 0-based `line`/`column` (columns in code points); None if nothing is there.

        ``regenerate``: ask the model even if the cache has an answer, and replace it (and
        wait for it). Otherwise the model has ``hoverWait`` seconds; past them the answer is
        `AnswerSource.PENDING` and ``on_ready`` hears the whole hover when the background
        call ends (`pipeline.hover_wait`). ``in_place`` (with ``on_ready``: a client that
        updates an open hover itself): no wait at all; a repeated hover still shows a cached
        answer, found from its kept pack.
        """
        rt = self.runtime
        started = time.monotonic()
        settings = rt.settings
        wait = 0.0 if in_place and on_ready is not None else settings.hover.wait
        memo_key = PreparedHovers.key(doc.path, doc.text, line, column)
        prepared = self._prepared.get(memo_key, settings)
        prefetch = None
        if prepared is not None:  # this name at this text: facts and pack as last time
            symbol: SymbolInfo | None = prepared.symbol
        else:
            prefetch = prefetch_pack(rt, doc)  # the pack's first steps, while jedi answers
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

        async def explained(waits: bool) -> HoverAnswer:
            """The AI part: pack, cache, model (``waits``: within ``hoverWait``)."""
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
            if prepared is not None:
                pack = prepared.pack
                with pack_span("hover", settings.hover.context_tokens) as traced:
                    describe_pack(traced, pack)
                    traced.update({"llm_lsp.context.reused": True})  # no assembly this time
            else:
                pack = await hover_pack(rt, doc, line + 1, column, symbol)
                self._prepared.put(memo_key, settings, symbol, pack)
            where = f"{rt.display_path(doc.path)}:{line + 1}"

            def done(answer: HoverAnswer | None, outcome: str) -> None:
                cached = answer is not None and answer.source in (
                    AnswerSource.CACHE,
                    AnswerSource.STALE,
                )
                summarize(
                    log,
                    request_id,
                    "hover",
                    started,
                    outcome,
                    completion=None if cached or answer is None else answer.completion,
                    pack=pack,
                    breakers=llm.breaker_states(),
                    variant=variant,
                    prompt_version=HOVER_PROMPT.tag(variant),
                    cache=cache_state,
                    **({"tier": "cache"} if cached else {}),
                )

            request = ChatRequest(
                messages=hover_messages(symbol, pack, where, variant=variant),
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
            with cache_span("hover") as traced:
                found = await rt.answers.lookup(keys, bypass=regenerate)
                cache_state = "bypass" if regenerate else found.outcome.value
                cache_outcome(traced, cache_state, feature="hover", layer=found.layer or "")
            if found.outcome is CacheOutcome.HIT:
                answer = self._from_cache(static, symbol, pack, found, request_id, started, "")
                done(answer, "cached")
                return answer
            scope = (doc.path, key)
            if (
                settings.hover.mode == "onRepeat"
                and not regenerate
                and not self._interest.again(scope)
            ):
                answer = HoverAnswer(
                    "\n\n".join([static, "---", REPEAT_NOTE]),
                    AnswerSource.DEFERRED,
                    symbol,
                    pack=pack,
                    cache=found.outcome,
                )
                done(answer, "deferred")
                return answer
            if not rt.answers.enabled and not regenerate:  # the cache is off: its stand-in
                kept = self._pending.finished(keys.exact)
                if kept is not None and kept.source is AnswerSource.PROVIDER:
                    return kept

            async def ask() -> HoverAnswer:
                try:
                    # In this task, not wait_for's own (3.11): a cancel reaches the provider
                    # call directly, and one racing the answer is not lost.
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        completion = await rt.answers.call(
                            keys,
                            lambda: llm.complete(request, deadline=deadline, request_id=request_id),
                        )
                except (ProviderFailure, TimeoutError) as exc:
                    nonlocal cache_state
                    if isinstance(exc, ProviderFailure):
                        kind, message = exc.kind.value, exc.message
                    else:
                        kind, message = "timeout", f"no answer within {settings.hover.deadline:g} s"
                    answer = await self._fallback(
                        static, symbol, pack, keys, request_id, started, kind, message
                    )
                    if answer.source is AnswerSource.STALE:
                        cache_state = "stale"
                    done(answer, "fallback")
                    return answer
                except asyncio.CancelledError:
                    done(None, "cancelled")
                    raise
                notes = answer_notes(completion.notice, llm.breaker_states())
                notes += self._cache_notes()
                parts = [static, "---", sanitize(completion.text.strip()), *notes]
                parts.append(footer(completion, completion.tier, pack.tokens))
                outcome = CacheOutcome.BYPASS if regenerate else found.outcome
                answer = HoverAnswer(
                    "\n\n".join(parts), AnswerSource.PROVIDER, symbol, completion, pack, outcome
                )
                done(answer, "ok")
                return answer

            if regenerate:  # the Regenerate command waits for its answer
                return await ask()
            if not waits:  # already in the background (`_in_background`)
                answer = await ask()
                if not rt.answers.enabled:
                    self._pending.keep(keys.exact, doc.path, answer)
                return answer
            # Identical hovers share one call where the answer cache is on (as `AnswerCache.call`
            # does); with it off each makes its own, and a finished one is kept for the next.
            shared = rt.answers.enabled
            ready = await self._pending.wait(
                keys.exact if shared else f"{keys.exact}:{request_id}",
                doc.path,
                ask,
                wait - (time.monotonic() - started),
                on_ready=on_ready,
                keep_as=None if shared else keys.exact,
            )
            if ready is not None:
                return ready
            return _pending(static, symbol, on_ready is not None, pack, found.outcome)

        used_up = time.monotonic() - started >= wait
        if used_up and settings.hover.mode == "always" and not regenerate and prepared is None:
            # The static facts used up the wait (a busy machine, a cold start): answer with
            # them now; the pack, the cache and the model go on in the background.
            return await self._in_background(doc, symbol, static, memo_key, explained, on_ready)
        return await explained(True)

    async def _in_background(
        self,
        doc: Document,
        symbol: SymbolInfo,
        static: str,
        memo_key: tuple[object, ...],
        explained: Callable[[bool], Awaitable[HoverAnswer]],
        on_ready: Callable[[HoverAnswer], None] | None,
    ) -> HoverAnswer:
        """The whole AI part in the background, the static facts now (and the note)."""
        shared = self.runtime.answers.enabled
        key = f"early:{memo_key!r}" + ("" if shared else f":{uuid.uuid4().hex}")
        ready = await self._pending.wait(
            key, doc.path, lambda: explained(False), 0.0, on_ready=on_ready
        )
        return ready or _pending(static, symbol, on_ready is not None)

    def document_edited(self, path: Path | None) -> None:
        """``path`` was edited: its hovers' background calls are about code that is gone."""
        self._pending.cancel(path)

    async def aclose(self) -> None:
        """Cancel the background calls (shutdown)."""
        await self._pending.aclose()

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
        elapsed = (time.monotonic() - started) * 1000
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


def _pending(
    static: str,
    symbol: SymbolInfo,
    live: bool,
    pack: ContextPack | None = None,
    cache: CacheOutcome = CacheOutcome.OFF,
) -> HoverAnswer:
    """The static facts and the note that the explanation is on its way (``live``: the
    client will hear of it)."""
    note = PENDING_LIVE_NOTE if live else PENDING_NOTE
    markdown = "\n\n".join([static, "---", note])
    return HoverAnswer(markdown, AnswerSource.PENDING, symbol, pack=pack, cache=cache)
