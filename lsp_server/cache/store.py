"""The answer cache: layered lookups, storing answers, and the fallback tier.

`AnswerCache.lookup` checks the *exact* layer (the final request) and then the
*structural* one (the code's structure, see `fingerprint`); a hit costs no
provider call. For workspace questions, `semantic_lookup` adds the *semantic*
layer: a question whose embedding is close to an earlier one's AND whose
retrieved code has the same fingerprints gets that answer; a question about
other code never does, however similar its wording. `AnswerCache.call` makes
the provider call on a miss, shared by
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

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
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
#: Cosine similarity from which two questions about the same code share an answer.
SEMANTIC_THRESHOLD = 0.95
#: Questions remembered per code scope for the semantic layer.
SEMANTIC_PER_SCOPE = 32
#: Feature names whose answers may be cached.
CACHED_FEATURES = frozenset({"hover", "explain", "ask"})

Call = Callable[[], Awaitable[Completion]]


def _key(layer: str, digest: str) -> str:
    return f"{layer}:{digest}"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0.0 for vectors of different lengths or zero length."""
    if len(a) != len(b) or not a:
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


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

    async def semantic_lookup(self, keys: CacheKeys, vector: Sequence[float]) -> CacheLookup:
        """The semantic layer (Ask only): an answer to a question whose embedding is at least
        `SEMANTIC_THRESHOLD` similar to ``vector`` AND whose code scope (``keys.code_scope``:
        the fingerprints of the retrieved code) is the same. Never an answer about other code.
        """
        if not self.enabled or keys.feature != "ask" or keys.code_scope is None:
            return CacheLookup(CacheOutcome.OFF)
        started = time.perf_counter()
        best: tuple[float, str] | None = None
        for other, digest in await self._questions(keys.code_scope):
            score = cosine(vector, other)
            if score >= SEMANTIC_THRESHOLD and (best is None or score > best[0]):
                best = (score, digest)
        entry = await self._read(_key("e", best[1])) if best is not None else None
        elapsed = (time.perf_counter() - started) * 1000
        if entry is None:
            return CacheLookup(CacheOutcome.MISS, elapsed_ms=elapsed)
        self.hits += 1
        return CacheLookup(CacheOutcome.HIT, "semantic", entry, elapsed_ms=elapsed)

    async def remember_question(self, keys: CacheKeys, vector: Sequence[float]) -> None:
        """Index the question behind ``keys`` (already stored) for `semantic_lookup`."""
        if not self.enabled or keys.feature != "ask" or keys.code_scope is None:
            return
        known = [(v, d) for v, d in await self._questions(keys.code_scope) if d != keys.exact]
        known.append(([float(x) for x in vector], keys.exact))
        value = json.dumps(known[-SEMANTIC_PER_SCOPE:], separators=(",", ":"))
        await self.backend.set(_key("q", keys.code_scope), value, self.ttl)

    async def _questions(self, scope: str) -> list[tuple[list[float], str]]:
        raw = await self.backend.get(_key("q", scope))
        if raw is None:
            return []
        try:
            data = json.loads(raw)
            return [
                ([float(x) for x in vector], str(digest))
                for vector, digest in data
                if isinstance(vector, list) and isinstance(digest, str)
            ]
        except (ValueError, TypeError):
            logger.info("dropping an unreadable question index")
            await self.backend.delete(_key("q", scope))
            return []

    async def forget(self, keys: CacheKeys) -> None:
        """Drop the entries under ``keys`` (exact and structural; the latest stays)."""
        await self.backend.delete(_key("e", keys.exact))
        if keys.structural is not None:
            await self.backend.delete(_key("s", keys.structural))

    async def aclose(self) -> None:
        """Close the backend."""
        await self.backend.aclose()
