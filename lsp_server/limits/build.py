"""The limiter the settings describe: which backend, whose counters, which listener.

Counters go to Redis when `redisUrl` is set (a team), with the local SQLite store
under ``<cacheDir>/limits`` as its fallback, else to the local store alone. A build
never fails: a Redis client that cannot even be created is reported like Redis
being down, once, and the local store is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lsp_server.limits.alerts import LimitEvent, Listener
from lsp_server.limits.backend import Backend, LocalBackend
from lsp_server.limits.limiter import Identity, Limiter, PromptCounter
from lsp_server.settings import Settings
from lsp_server.telemetry.usage import UsageLog

logger = logging.getLogger(__name__)

STORE = "limits.sqlite3"
REDIS_PREFIX = "llm-lsp:"


def local_store(cache_dir: Path) -> Path:
    """Where the local counters live."""
    return cache_dir / "limits" / STORE


def build_limiter(
    settings: Settings,
    root: Path | None,
    usage_log: UsageLog,
    *,
    count_prompt: PromptCounter | None = None,
    notify: Listener | None = None,
) -> Limiter:
    """A limiter for ``settings`` and the workspace ``root`` (None: no workspace budget)."""
    limits = settings.limits
    local = LocalBackend(local_store(settings.storage.cache_dir))
    backend: Backend = local

    def down(message: str) -> None:
        if notify is not None:
            notify(LimitEvent("backend", message))

    url = settings.storage.redis_url
    if url is not None:
        from lsp_server.limits.redis_backend import RedisBackend, where

        try:
            backend = RedisBackend(url.reveal(), REDIS_PREFIX, local, on_down=down)
        except (ValueError, OSError) as exc:
            message = (
                f"llm-lsp: cannot use Redis at {where(url.reveal())} ({type(exc).__name__}); "
                "budgets and rate limits are counted locally"
            )
            logger.warning("%s", message)
            down(message)
    identity = Identity(
        user=limits.user,
        workspace=Identity.workspace_id(str(root)) if root is not None else None,
        team=limits.team,
    )
    return Limiter(limits, backend, identity, usage_log, count_prompt=count_prompt, notify=notify)
