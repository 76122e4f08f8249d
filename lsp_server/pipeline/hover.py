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
import keyword
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

from lsp_server.cache import CacheOutcome
from lsp_server.context.jedi.worker import JediCrashed
from lsp_server.context.model import SymbolInfo
from lsp_server.llm.types import ChatRequest, ProviderFailure
from lsp_server.pipeline.accounting import summarize
from lsp_server.pipeline.cached import cache_keys
from lsp_server.pipeline.hover_answer import (
    AnswerSource,
    HoverAnswer,
    cache_notes,
    fallback,
    from_cache,
    pending,
)
from lsp_server.pipeline.hover_memo import (
    MemoKey,
    Prepared,
    PreparedHovers,
    line_of,
    name_span,
    pack_file,
)
from lsp_server.pipeline.hover_pack import hover_pack, prefetch_pack
from lsp_server.pipeline.hover_wait import Interest, PendingHovers
from lsp_server.pipeline.runtime import Document, HoverRuntime
from lsp_server.pipeline.spans import describe_pack, pack_span
from lsp_server.prompts import HOVER_PROMPT, hover_messages
from lsp_server.render import (
    REPEAT_NOTE,
    answer_notes,
    footer,
    offline_notice,
    placeholder,
    static_markdown,
)
from lsp_server.safe_markdown import sanitize
from lsp_server.telemetry.genai import cache_outcome, cache_span
from lsp_server.telemetry.signals import RepeatTracker
from lsp_server.telemetry.variants import choose_variant

logger = logging.getLogger(__name__)

#: How long static analysis may take before a hover gives up on it.
STATIC_DEADLINE = 5.0


class Facts(NamedTuple):
    """What a hover knows before its AI part: jedi's facts, a kept hover (its facts and
    pack, `PreparedHovers`), the pack's first steps started while jedi answered."""

    symbol: SymbolInfo
    key: MemoKey  # the hover's `PreparedHovers.key`
    prepared: Prepared | None
    prefetch: asyncio.Task[None] | None


class HoverPipeline:
    """Hovers for one runtime (workspace)."""

    def __init__(self, runtime: HoverRuntime) -> None:
        self.runtime = runtime
        self._repeats = RepeatTracker()
        self._pending: PendingHovers[HoverAnswer | None] = PendingHovers()
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
        on_ready: Callable[[HoverAnswer | None], None] | None = None,
        in_place: bool = False,
    ) -> HoverAnswer | None:
        """Hover at 0-based `line`/`column` (columns in code points); None if nothing is there.

        ``regenerate``: ask the model even if the cache has an answer, and replace it (and
        wait for it). Otherwise the model has ``hoverWait`` seconds; past them the answer is
        `AnswerSource.PENDING` and ``on_ready`` hears the whole hover when the background
        call ends (`pipeline.hover_wait`). ``in_place`` (with ``on_ready``: a client that
        updates an open hover itself): the model is not waited for at all, and static facts
        not ready within ``hoverWait`` are not waited for either (a placeholder now,
        `placeholder`; ``on_ready`` hears the hover, or None when nothing is there).
        """
        started = time.monotonic()
        settings = self.runtime.settings
        live = in_place and on_ready is not None and not regenerate
        wait = 0.0 if live else settings.hover.wait
        key = PreparedHovers.key(doc.path, doc.text, line, column)
        prepared = self._prepared.get(key, settings)
        if prepared is not None:  # this name at this text: facts and pack as last time
            facts = Facts(prepared.symbol, key, prepared, None)
            return await self._answer(doc, line, column, facts, started, regenerate, on_ready, wait)
        prefetch = prefetch_pack(self.runtime, doc, line + 1)  # while jedi answers
        lookup = asyncio.ensure_future(self._static_facts(doc, line, column))
        text = line_of(doc.text, line)
        word = text[slice(*name_span(text, column))]
        # In place, a name's facts get `wait` (a keyword or a blank: jedi answers at once);
        # past it, a placeholder now and the hover later.
        named = word.isidentifier() and not keyword.iskeyword(word)
        try:
            await asyncio.wait({lookup}, timeout=settings.hover.wait if live and named else None)
        except asyncio.CancelledError:
            lookup.cancel()
            raise
        if not lookup.done():  # a first look at a large module: the float opens without us
            return await self._placeholder(doc, line, column, word, key, lookup, prefetch, on_ready)
        symbol = lookup.result()
        if symbol is None:
            return None
        facts = Facts(symbol, key, None, prefetch)
        return await self._answer(doc, line, column, facts, started, regenerate, on_ready, wait)

    async def _static_facts(self, doc: Document, line: int, column: int) -> SymbolInfo | None:
        """jedi's facts on the name (None: nothing there, or jedi failed: logged)."""
        try:
            return await self.runtime.symbols.symbol_at(
                doc.text, doc.path, line + 1, column, deadline=STATIC_DEADLINE
            )
        except JediCrashed as exc:  # restarted on the next request
            logger.warning("static analysis failed at %s:%d: %s", doc.path, line + 1, exc)
        except TimeoutError:
            logger.warning("static analysis timed out at %s:%d", doc.path, line + 1)
        return None

    async def _placeholder(
        self,
        doc: Document,
        line: int,
        column: int,
        word: str,
        key: MemoKey,
        lookup: asyncio.Future[SymbolInfo | None],
        prefetch: asyncio.Task[None] | None,
        on_ready: Callable[[HoverAnswer | None], None] | None,
    ) -> HoverAnswer | None:
        """Static facts still coming (in place): the placeholder now, the hover later."""
        started = time.monotonic()

        async def later() -> HoverAnswer | None:
            symbol = await lookup
            if symbol is None:
                return None
            facts = Facts(symbol, key, None, prefetch)
            return await self._answer(doc, line, column, facts, started, False, on_ready, 0.0)

        pending = f"facts:{key!r}:{uuid.uuid4().hex}"
        await self._pending.wait(pending, doc.path, later, 0.0, on_ready=on_ready)
        return HoverAnswer(placeholder(word), AnswerSource.PENDING, None)

    async def _answer(
        self,
        doc: Document,
        line: int,
        column: int,
        facts: Facts,
        started: float,
        regenerate: bool,
        on_ready: Callable[[HoverAnswer | None], None] | None,
        wait: float,
    ) -> HoverAnswer:
        """The hover on ``facts.symbol``: static facts, then the AI part within ``wait``."""
        rt = self.runtime
        settings = rt.settings
        symbol, memo_key, prepared, prefetch = facts
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
                answer = from_cache(
                    self.runtime, static, symbol, pack, found, request_id, started, ""
                )
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
                    answer = await fallback(
                        self.runtime, static, symbol, pack, keys, request_id, started, kind, message
                    )
                    if answer.source is AnswerSource.STALE:
                        cache_state = "stale"
                    done(answer, "fallback")
                    return answer
                except asyncio.CancelledError:
                    done(None, "cancelled")
                    raise
                notes = answer_notes(completion.notice, llm.breaker_states())
                notes += cache_notes(self.runtime)
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
            return pending(static, symbol, on_ready is not None, pack, found.outcome)

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
        on_ready: Callable[[HoverAnswer | None], None] | None,
    ) -> HoverAnswer:
        """The whole AI part in the background, the static facts now (and the note)."""
        shared = self.runtime.answers.enabled
        key = f"early:{memo_key!r}" + ("" if shared else f":{uuid.uuid4().hex}")
        ready = await self._pending.wait(
            key, doc.path, lambda: explained(False), 0.0, on_ready=on_ready
        )
        return ready or pending(static, symbol, on_ready is not None)

    def document_edited(self, path: Path | None) -> None:
        """``path`` was edited: its hovers' background calls are about code that is gone."""
        self._pending.cancel(path)

    async def aclose(self) -> None:
        """Cancel the background calls (shutdown)."""
        await self._pending.aclose()
