"""The team backend: the same counters in Redis, each operation one Lua script.

A Lua script runs atomically on the Redis server, so a reservation checks and
increments every counter of a request (user, workspace and team budgets) with no
other client in between: many servers on many machines sharing one Redis cannot
overspend. The sliding window (`window.py`) is the same arithmetic in Lua, on a
hash per key (``idx``, ``prev``, ``cur``) that expires after two windows, with the
Redis server's clock (``TIME``) so machines with skewed clocks agree.

Redis down or unreachable: the first failing call switches this backend to the
local one (`LocalBackend`) for the rest of the session, logs it once and tells the
user once through ``on_down``. The URL may hold a password: it is never logged, only
its host and port.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lsp_server.limits.backend import Backend, Charge, RateCharge

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 2.0
"""Seconds to connect to Redis before falling back to the local store."""
CALL_TIMEOUT = 5.0

_RESERVE = """
local n = #KEYS
local values = {}
local fits = 1
for i = 1, n do
  values[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if values[i] + tonumber(ARGV[i]) > tonumber(ARGV[n + i]) then fits = 0 end
end
if fits == 0 then return {0, unpack(values)} end
for i = 1, n do
  values[i] = redis.call('INCRBY', KEYS[i], ARGV[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2 * n + i])
end
return {1, unpack(values)}
"""

_ADJUST = """
local n = #KEYS
local values = {}
for i = 1, n do
  local v = redis.call('INCRBY', KEYS[i], ARGV[i])
  if v < 0 then redis.call('SET', KEYS[i], 0); v = 0 end
  redis.call('EXPIRE', KEYS[i], ARGV[n + i])
  values[i] = v
end
return values
"""

_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local n = #KEYS
local idx = math.floor(now / window)
local states = {}
for i = 1, n do
  local h = redis.call('HMGET', KEYS[i], 'idx', 'prev', 'cur')
  local sidx = tonumber(h[1])
  local prev = tonumber(h[2]) or 0
  local cur = tonumber(h[3]) or 0
  local ridx = idx
  if sidx == nil or sidx < idx - 1 then prev = 0; cur = 0
  elseif sidx == idx - 1 then prev = cur; cur = 0
  elseif sidx > idx then ridx = sidx end
  local weight = math.min(math.max(1 - (now - ridx * window) / window, 0), 1)
  local amount = tonumber(ARGV[1 + i])
  if prev * weight + cur + amount > tonumber(ARGV[1 + n + i]) then return i end
  states[i] = {ridx, prev, cur + amount}
end
for i = 1, n do
  redis.call('HSET', KEYS[i], 'idx', states[i][1], 'prev', tostring(states[i][2]),
             'cur', tostring(states[i][3]))
  redis.call('PEXPIRE', KEYS[i], math.ceil(window * 2000))
end
return 0
"""


def where(url: str) -> str:
    """Host and port of a Redis URL (never its password)."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path or "a unix socket"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:  # a port that is no number: still no password in the message
        return "the configured address"


class RedisBackend:
    """Counters in Redis (atomic Lua), with the local store as the fallback."""

    def __init__(
        self,
        url: str,
        prefix: str,
        fallback: Backend,
        on_down: Callable[[str], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self.fallback = fallback
        self.on_down = on_down
        self.where = where(url)
        self._client: Any = aioredis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CALL_TIMEOUT,
            decode_responses=True,
        )
        self._reserve = self._client.register_script(_RESERVE)
        self._adjust = self._client.register_script(_ADJUST)
        self._rate = self._client.register_script(_RATE)
        self.down = False

    @property
    def name(self) -> str:
        """ "redis", or "local" once Redis was found unreachable."""
        return "local" if self.down else "redis"

    def _keys(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    async def _guard(
        self, call: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if not self.down:
            try:
                return await call()
            except (RedisError, OSError) as exc:
                self.down = True
                message = (
                    f"llm-lsp: Redis at {self.where} is unreachable ({type(exc).__name__}); "
                    "budgets and rate limits are counted locally for this session"
                )
                logger.warning("%s", message)
                if self.on_down is not None:
                    self.on_down(message)
        return await local()

    async def reserve(self, charges: Sequence[Charge]) -> tuple[bool, list[int]]:
        async def call() -> tuple[bool, list[int]]:
            args = [c.amount for c in charges] + [c.limit for c in charges]
            args += [max(int(c.ttl), 1) for c in charges]
            raw = await self._reserve(keys=self._keys([c.key for c in charges]), args=args)
            return bool(int(raw[0])), [int(v) for v in raw[1:]]

        return await self._guard(call, lambda: self.fallback.reserve(charges))

    async def adjust(self, charges: Sequence[Charge]) -> list[int]:
        async def call() -> list[int]:
            args = [c.amount for c in charges] + [max(int(c.ttl), 1) for c in charges]
            raw = await self._adjust(keys=self._keys([c.key for c in charges]), args=args)
            return [int(v) for v in raw]

        return await self._guard(call, lambda: self.fallback.adjust(charges))

    async def rate(self, charges: Sequence[RateCharge], now: float, window: float) -> int | None:
        async def call() -> int | None:
            args: list[float] = [window]
            args += [c.amount for c in charges] + [c.limit for c in charges]
            raw = await self._rate(keys=self._keys([c.key for c in charges]), args=args)
            failed = int(raw)
            return failed - 1 if failed else None

        return await self._guard(call, lambda: self.fallback.rate(charges, now, window))

    async def first(self, key: str, ttl: float) -> bool:
        async def call() -> bool:
            done = await self._client.set(self.prefix + key, "1", nx=True, ex=max(int(ttl), 1))
            return bool(done)

        return await self._guard(call, lambda: self.fallback.first(key, ttl))

    async def aclose(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError) as exc:
            logger.debug("closing the Redis client: %s", exc)
        await self.fallback.aclose()
