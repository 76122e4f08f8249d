"""The answer cache inside a pipeline: keys, hits, the cache tier, and what the user reads.

A pipeline builds its request, asks `cache_keys` for the keys, then
`AnswerCache.lookup`; on a hit it shows the cached text with `hit_footer`
("… · cache, 4 min old_"). On a miss it calls the model through
`AnswerCache.call` (shared with identical concurrent requests, stored after).
When no live tier answers it asks `AnswerCache.fallback` (the cache tier) and,
given an answer, shows `stale_note` above it: its age, what changed in the code
since it was written, and why the live tiers were skipped. Every answer served
from the cache is one usage record (`record_cache_use`, ``tier`` "cache"), so
the usage log accounts for every request, not only the provider attempts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lsp_server.cache import CacheKeys, CacheLookup, CacheOutcome, keys_for
from lsp_server.context.pack.pieces import ContextPack
from lsp_server.settings import Settings
from lsp_server.telemetry.usage import UsageLog, UsageRecord


def model_chain(settings: Settings) -> list[str]:
    """What answers a request, for the keys: the configured models and providers."""
    llm = settings.llm
    chain = [llm.model, llm.cheap_model, llm.local_model or ""]
    for provider in llm.providers or ():
        chain.append(f"{provider.name}:{provider.role}:{','.join(provider.models)}")
    return chain


def cache_keys(
    settings: Settings,
    feature: str,
    messages: Sequence[dict[str, Any]],
    *,
    params: Any,
    pack: ContextPack | None,
    facts: Any = None,
    scope: tuple[str, str] | None = None,
) -> CacheKeys:
    """The keys of one request under the settings in force."""
    return keys_for(
        feature,
        messages,
        models=model_chain(settings),
        params=params,
        pack=pack,
        facts=facts,
        scope=scope,
    )


def age_text(seconds: float) -> str:
    """ "just now", "42 s", "4 min", "3 h", "2 days"."""
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{math.floor(seconds)} s"
    if seconds < 3600:
        return f"{math.floor(seconds / 60)} min"
    if seconds < 86400:
        return f"{math.floor(seconds / 3600)} h"
    days = math.floor(seconds / 86400)
    return f"{days} day" + ("s" if days != 1 else "")


def _old(seconds: float) -> str:
    text = age_text(seconds)
    return text if text == "just now" else f"{text} old"


def hit_footer(lookup: CacheLookup, elapsed_ms: float) -> str:
    """One line for an answer from the cache: model, what it saved, its age."""
    entry = lookup.entry
    if entry is None:
        return "_cache_"
    stale = lookup.outcome is CacheOutcome.STALE
    saved = "" if stale else f" · saved ${entry.cost_usd:.4f}"
    where = "cache, stale" if stale else "cache"
    return (
        f"_{entry.model} · 0 in / 0 out tokens{saved} · {elapsed_ms:.0f} ms · "
        f"{where}, {_old(entry.age())}_"
    )


def stale_note(lookup: CacheLookup, why: str) -> str:
    """Above a stale answer: its age, what changed since, why no live model answered."""
    entry = lookup.entry
    age = age_text(lookup.age)
    when = "just now" if age == "just now" else f"{age} ago"
    if lookup.changed:
        changed = "the code changed since in " + ", ".join(lookup.changed)
    else:
        changed = "the code has not changed since"
    model = f" by {entry.model}" if entry is not None else ""
    return (
        f"_Stale answer from the cache, written {when}{model}; {changed}. "
        f"No live model answered: {why}._"
    )


def record_cache_use(
    usage_log: UsageLog, request_id: str, feature: str, lookup: CacheLookup, latency_ms: float
) -> None:
    """One usage record for an answer served from the cache (no provider attempt)."""
    entry = lookup.entry
    if entry is None:
        return
    usage_log.write(
        UsageRecord(
            request_id=request_id,
            feature=feature,
            provider="cache",
            model=entry.model,
            outcome="cached",
            latency_ms=round(latency_ms, 3),
            tier="cache",
            cache=f"{lookup.outcome.value}:{lookup.layer}",
            saved_usd=0.0 if lookup.outcome is CacheOutcome.STALE else entry.cost_usd,
            kind="cache",
        )
    )
