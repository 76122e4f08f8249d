"""Where cached answers live: diskcache on one machine, Redis for a team.

`DiskBackend` keeps entries in a diskcache store (SQLite, safe for several
server processes, i.e. editor windows, at once) in a private folder under the
user cache dir, bounded by ``size_limit`` (least recently stored evicted first)
and each entry by its TTL. A store found damaged (SQLite "file is not a
database", "malformed") is discarded and rebuilt, with one warning in the log.

`RedisBackend` keeps them in Redis under the ``llm-lsp:cache:`` prefix, each
with its TTL (the size bound is Redis's own ``maxmemory`` policy). Its client
has short socket timeouts so a slow Redis cannot hold a hover.

`FallbackBackend` puts Redis first and the local store behind it: the first
Redis failure switches the process to the local store for good, said once in the
log and once to the user (`take_notice`). Redis URLs may carry a password, so
they are shown only without their user part.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import diskcache

from lsp_server.storage import private_dir, private_files

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Values up to this size stay inside SQLite (one folder: cache.db and its WAL files).
_INLINE_BYTES = 1 << 40
#: Seconds a diskcache operation waits for another process's lock.
DISK_LOCK_TIMEOUT = 2.0
#: Seconds Redis may take to connect or answer before the local store takes over.
REDIS_TIMEOUT = 1.0
REDIS_PREFIX = "llm-lsp:cache:"


class Backend(Protocol):
    """A key-value store of JSON text with per-entry TTLs."""

    @property
    def name(self) -> str:
        """What the store is, for logs: "disk" or "redis"."""
        ...

    async def get(self, key: str) -> str | None:
        """The value under ``key``, None when missing or expired."""
        ...

    async def set(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


def redacted_url(url: str) -> str:
    """``url`` without its user and password, for logs and messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unreadable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class DiskBackend:
    """A bounded diskcache store in a private folder; damaged → rebuilt (one log line)."""

    name = "disk"

    def __init__(self, directory: Path, size_limit: int) -> None:
        self.directory = directory
        self.size_limit = size_limit
        self._lock = threading.Lock()
        self._cache: diskcache.Cache | None = None

    def _open(self) -> diskcache.Cache:
        if self._cache is None:
            try:
                self._cache = self._make()
            except sqlite3.DatabaseError as exc:
                self._rebuild(exc)
                self._cache = self._make()
        return self._cache

    def _make(self) -> diskcache.Cache:
        private_dir(self.directory)
        cache = diskcache.Cache(
            str(self.directory),
            size_limit=self.size_limit,
            disk_min_file_size=_INLINE_BYTES,
            timeout=DISK_LOCK_TIMEOUT,
        )
        private_files(self.directory)
        return cache

    def _rebuild(self, exc: Exception) -> None:
        logger.warning(
            "answer cache %s is damaged (%s); discarded and rebuilt", self.directory, exc
        )
        if self._cache is not None:
            try:
                self._cache.close()
            except Exception as close_exc:  # a damaged store may fail to close too
                logger.debug("closing the damaged cache: %s", close_exc)
            self._cache = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, op: str, key: str, value: str | None = None, ttl: float = 0.0) -> str | None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    cache = self._open()
                    if op == "get":
                        found = cache.get(key)
                        return found if isinstance(found, str) else None
                    if op == "set":
                        cache.set(key, value, expire=ttl)
                    else:
                        cache.delete(key)
                    return None
                except sqlite3.DatabaseError as exc:
                    if attempt == 2:
                        raise
                    self._rebuild(exc)
        return None

    async def get(self, key: str) -> str | None:
        """See `Backend.get`. A lock held too long by another process reads as a miss."""
        try:
            return await asyncio.to_thread(self._run, "get", key)
        except (diskcache.Timeout, OSError, sqlite3.Error) as exc:
            logger.info("answer cache read skipped: %s", exc)
            return None

    async def set(self, key: str, value: str, ttl: float) -> None:
        """See `Backend.set`; a failure is logged, never raised."""
        try:
            await asyncio.to_thread(self._run, "set", key, value, ttl)
        except (diskcache.Timeout, OSError, sqlite3.Error) as exc:
            logger.info("answer cache write skipped: %s", exc)

    async def delete(self, key: str) -> None:
        """See `Backend.delete`."""
        try:
            await asyncio.to_thread(self._run, "delete", key)
        except (diskcache.Timeout, OSError, sqlite3.Error) as exc:
            logger.info("answer cache delete skipped: %s", exc)

    async def aclose(self) -> None:
        """Close the store."""
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None


class SharedStoreError(OSError):
    """Redis failed (its own exception, carried as an OSError so callers need not import it)."""


class RedisBackend:
    """Entries in Redis under `REDIS_PREFIX`; errors are raised as `SharedStoreError`
    (`FallbackBackend` handles them). The redis package is imported only when one is
    configured (it pulls in a good part of OpenTelemetry's SDK)."""

    name = "redis"

    def __init__(self, url: str, prefix: str = REDIS_PREFIX) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self._client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            decode_responses=True,
        )

    async def _call(self, work: Awaitable[T]) -> T:
        from redis.exceptions import RedisError

        try:
            return await work
        except RedisError as exc:
            raise SharedStoreError(f"{type(exc).__name__}: {exc}") from exc

    async def get(self, key: str) -> str | None:
        """See `Backend.get`."""
        value = await self._call(self._client.get(self.prefix + key))
        return value if isinstance(value, str) else None

    async def set(self, key: str, value: str, ttl: float) -> None:
        """See `Backend.set`."""
        await self._call(self._client.set(self.prefix + key, value, px=max(1, int(ttl * 1000))))

    async def delete(self, key: str) -> None:
        """See `Backend.delete`."""
        await self._call(self._client.delete(self.prefix + key))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._call(self._client.aclose())


class FallbackBackend:
    """Redis first; on its first failure the local store, for good (said once)."""

    def __init__(self, shared: RedisBackend, local: Backend) -> None:
        self.shared: RedisBackend | None = shared
        self.local = local
        self._notice: str | None = None
        self._where = redacted_url(shared.url)

    @property
    def name(self) -> str:
        """Which store answers now: "redis" or the local one's name."""
        return self.shared.name if self.shared is not None else self.local.name

    def take_notice(self) -> str | None:
        """The message for the user about the switch, once."""
        notice, self._notice = self._notice, None
        return notice

    async def _failed(self, exc: Exception) -> None:
        shared, self.shared = self.shared, None
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        logger.warning(
            "Redis answer cache at %s unreachable (%s); using the local cache from now on",
            self._where,
            reason,
        )
        self._notice = (
            f"llm-lsp: the shared answer cache (Redis at {self._where}) is unreachable; "
            "using the local cache on this machine instead"
        )
        if shared is not None:
            try:
                await shared.aclose()
            except OSError as close_exc:
                logger.debug("closing Redis: %s", close_exc)

    async def get(self, key: str) -> str | None:
        """See `Backend.get`."""
        if self.shared is not None:
            try:
                return await self.shared.get(key)
            except OSError as exc:
                await self._failed(exc)
        return await self.local.get(key)

    async def set(self, key: str, value: str, ttl: float) -> None:
        """See `Backend.set`."""
        if self.shared is not None:
            try:
                await self.shared.set(key, value, ttl)
                return
            except OSError as exc:
                await self._failed(exc)
        await self.local.set(key, value, ttl)

    async def delete(self, key: str) -> None:
        """See `Backend.delete`."""
        if self.shared is not None:
            try:
                await self.shared.delete(key)
                return
            except OSError as exc:
                await self._failed(exc)
        await self.local.delete(key)

    async def aclose(self) -> None:
        """Close both stores."""
        if self.shared is not None:
            await self.shared.aclose()
        await self.local.aclose()
