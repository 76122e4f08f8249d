"""The answer cache: layered lookups, storing answers, and the fallback tier.

`AnswerCache.lookup` checks the *exact* layer (the final request) and then the
*structural* one (the code's structure, see `fingerprint`); a hit costs no
provider call. `AnswerCache.call` makes the provider call on a miss, shared by
identical concurrent requests (`InFlight`), and stores the answer under every
key: exact, structural and the *latest* answer for its scope (task, file,
qualified name). `AnswerCache.fallback` is the cache tier of the chain
(primary → cheap → local → cache → static): when no live tier may or can
answer (breakers open, every tier failed, a budget or rate limit said no), it
serves the latest answer for the same scope, even one written for an earlier
version of the code, saying which pieces changed since. Any caller that has
decided not to call a model (the chain's end, a limit) uses it.

Only answers from the first routed tier are reused as hits: an answer a
fallback model wrote during an outage is kept only as the scope's latest (for
the fallback tier), so the next hover asks the model the user chose again.

Entries live `ttl` seconds (the latest-per-scope ones at least `LATEST_MIN_TTL`,
so the fallback tier has something to serve after a long outage). Bounds and
where entries live: `backends`. A damaged entry is dropped and reads as a miss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from lsp_server.cache.backends import (
    Backend,
    DiskBackend,
    FallbackBackend,
    RedisBackend,
)
from lsp_server.cache.entry import CachedAnswer, CacheLookup, CacheOutcome
from lsp_server.cache.fingerprint import CacheKeys
from lsp_server.cache.inflight import InFlight
from lsp_server.llm.types import Completion

logger = logging.getLogger(__name__)

#: Latest-per-scope answers (the fallback tier's) live at least this long: 30 days.
LATEST_MIN_TTL = 30 * 86400.0
#: Feature names whose answers may be cached.
CACHED_FEATURES = frozenset({"hover", "explain", "ask"})

Call = Callable[[], Awaitable[Completion]]


def _key(layer: str, digest: str) -> str:
    return f"{layer}:{digest}"


class AnswerCache:
    """Cached answers for one server process (see the module docstring)."""

    def __init__(self, backend: Backend, *, ttl: float, enabled: bool = True) -> None:
        self.backend = backend
        self.ttl = ttl
        self.enabled = enabled
        self.inflight: InFlight[Completion] = InFlight()
        self.hits = 0
        self.misses = 0

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        ttl: float,
        size_bytes: int,
        redis_url: str | None = None,
        enabled: bool = True,
    ) -> AnswerCache:
        """A cache in ``directory`` (diskcache), or in Redis at ``redis_url`` with the
        directory as its fallback."""
        local = DiskBackend(directory, size_bytes)
        backend: Backend = local
        if redis_url:
            backend = FallbackBackend(RedisBackend(redis_url), local)
        return cls(backend, ttl=ttl, enabled=enabled)

    def take_notice(self) -> str | None:
        """A message for the user about the cache (Redis unreachable), once."""
        take = getattr(self.backend, "take_notice", None)
        notice = take() if callable(take) else None
        return notice if isinstance(notice, str) else None

    async def _read(self, key: str) -> CachedAnswer | None:
        raw = await self.backend.get(key)
        if raw is None:
            return None
        try:
            return CachedAnswer.from_json(raw)
        except ValueError as exc:
            logger.info("dropping an unreadable cache entry: %s", exc)
            await self.backend.delete(key)
            return None

    async def lookup(self, keys: CacheKeys, *, bypass: bool = False) -> CacheLookup:
        """An answer for exactly this request, or for the same code structure."""
        if not self.enabled or keys.feature not in CACHED_FEATURES:
            return CacheLookup(CacheOutcome.OFF)
        if bypass:
            return CacheLookup(CacheOutcome.BYPASS)
        started = time.perf_counter()
        layers = [("exact", keys.exact)]
        if keys.structural is not None:
            layers.append(("structural", keys.structural))
        for layer, digest in layers:
            entry = await self._read(_key(layer[0], digest))
            if entry is not None and entry.feature == keys.feature:
                self.hits += 1
                elapsed = (time.perf_counter() - started) * 1000
                return CacheLookup(CacheOutcome.HIT, layer, entry, elapsed_ms=elapsed)
        self.misses += 1
        elapsed = (time.perf_counter() - started) * 1000
        return CacheLookup(CacheOutcome.MISS, elapsed_ms=elapsed)

    async def store(self, keys: CacheKeys, completion: Completion) -> CachedAnswer | None:
        """Keep ``completion``'s answer under every key of ``keys``; None if not kept."""
        if not self.enabled or keys.feature not in CACHED_FEATURES:
            return None
        if not completion.text.strip() or completion.tool_calls:
            return None
        entry = CachedAnswer.from_completion(
            completion, keys.feature, keys.scope_label, keys.pieces
        )
        value = entry.to_json()
        if completion.notice is None:  # a later tier's answer is only for the fallback tier
            await self.backend.set(_key("e", keys.exact), value, self.ttl)
            if keys.structural is not None:
                await self.backend.set(_key("s", keys.structural), value, self.ttl)
        if keys.scope is not None:
            await self.backend.set(_key("l", keys.scope), value, max(self.ttl, LATEST_MIN_TTL))
        return entry

    async def call(self, keys: CacheKeys, call: Call, *, detach: bool = False) -> Completion:
        """``call()``'s answer, stored; identical concurrent calls share one (`InFlight`)."""

        async def work() -> Completion:
            completion = await call()
            await self.store(keys, completion)
            return completion

        if not self.enabled or keys.feature not in CACHED_FEATURES:
            return await call()
        return await self.inflight.run(keys.dedup, work, detach=detach)

    async def fallback(self, keys: CacheKeys) -> CacheLookup:
        """The cache tier: the latest answer for ``keys.scope``, marked stale, with what
        changed since; `CacheOutcome.MISS` when there is none."""
        if not self.enabled or keys.scope is None or keys.feature not in CACHED_FEATURES:
            return CacheLookup(CacheOutcome.MISS)
        started = time.perf_counter()
        entry = await self._read(_key("l", keys.scope))
        elapsed = (time.perf_counter() - started) * 1000
        if entry is None or entry.feature != keys.feature:
            return CacheLookup(CacheOutcome.MISS, elapsed_ms=elapsed)
        changed = [name for name, fp in keys.pieces.items() if entry.pieces.get(name) != fp]
        changed += [
            f"{name} (no longer in the context)" for name in entry.pieces if name not in keys.pieces
        ]
        return CacheLookup(CacheOutcome.STALE, "latest", entry, tuple(changed), elapsed)

    async def forget(self, keys: CacheKeys) -> None:
        """Drop the entries under ``keys`` (exact and structural; the latest stays)."""
        await self.backend.delete(_key("e", keys.exact))
        if keys.structural is not None:
            await self.backend.delete(_key("s", keys.structural))

    async def aclose(self) -> None:
        """Close the backend."""
        await self.backend.aclose()
