"""What a hover shows (`HoverAnswer`) and the answers built without the model's live
reply: from the answer cache (fresh or stale), the static fallback, the pending note.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from lsp_server.cache import CacheKeys, CacheLookup, CacheOutcome
from lsp_server.context.model import SymbolInfo
from lsp_server.context.pack.assembler import ContextPack
from lsp_server.llm.types import Completion
from lsp_server.pipeline.cached import hit_footer, record_cache_use, stale_note
from lsp_server.pipeline.runtime import HoverRuntime
from lsp_server.render import PENDING_LIVE_NOTE, PENDING_NOTE, answer_notes, unavailable_notice
from lsp_server.safe_markdown import sanitize


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
    symbol: SymbolInfo | None
    """None only in a placeholder (`placeholder`: the static facts were still coming)."""
    completion: Completion | None = None
    pack: ContextPack | None = None
    cache: CacheOutcome = CacheOutcome.OFF
    """What the answer cache did (``llm_lsp.cache`` in traces)."""


def cache_notes(rt: HoverRuntime) -> list[str]:
    """The answer cache's one-off notice (a backend fell back), as a hover note."""
    notice = rt.answers.take_notice()
    return [f"_{notice}_"] if notice else []


def from_cache(
    rt: HoverRuntime,
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
    record_cache_use(rt.usage_log, request_id, "hover", found, elapsed)
    notes = [stale_note(found, stale_why)] if stale_why else []
    if stale_why:
        notes += answer_notes(None, rt.llm.breaker_states())
    notes += cache_notes(rt)
    body = sanitize(found.entry.text.strip())
    markdown = "\n\n".join([static, "---", body, *notes, hit_footer(found, elapsed)])
    source = AnswerSource.STALE if stale_why else AnswerSource.CACHE
    completion = found.entry.completion(request_id, elapsed)
    return HoverAnswer(markdown, source, symbol, completion, pack, found.outcome)


async def fallback(
    rt: HoverRuntime,
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
    found = await rt.answers.fallback(keys)
    if found.entry is not None:
        why = f"{kind.replace('_', ' ')} ({message})"
        return from_cache(rt, static, symbol, pack, found, request_id, started, why)
    return static_fallback(rt, static, symbol, pack, kind, message)


def static_fallback(
    rt: HoverRuntime, static: str, symbol: SymbolInfo, pack: ContextPack, kind: str, message: str
) -> HoverAnswer:
    notice = unavailable_notice(rt.settings.llm.model, kind, message)
    notes = answer_notes(None, rt.llm.breaker_states())
    notes += cache_notes(rt)
    markdown = "\n\n".join([static, "---", notice, *notes])
    return HoverAnswer(markdown, AnswerSource.FALLBACK, symbol, pack=pack)


def pending(
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
