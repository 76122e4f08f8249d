"""The answer cache shared between server processes: one diskcache folder, or Redis.

Also what happens when the store is damaged (discarded and rebuilt, one log
line) or Redis is unreachable (the local cache, said once in the log and once
to the user).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import Session, copy_project, start_session
from tests.e2e.test_cache import HIT_FOOTER, Pair, cache_env, chats
from tests.services import free_port

pytestmark = pytest.mark.asyncio


async def _start(tmp_path: Path, name: str, fake: FakeProvider, **extra: str) -> Session:
    """A server on its own copy of the project (same relative paths), own usage log."""
    home = tmp_path / name
    home.mkdir()
    env = cache_env(home, fake, LLM_HOVER_DEADLINE="60", LLM_TIMEOUT="30", **extra)
    return await start_session(copy_project(home), home, env=env)


async def _answer(pair: Pair) -> str:
    """The hover's text once jedi has warmed up (a cold start may answer null)."""
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline:
        hover = await pair.session.hover(*pair.at())
        if hover is not None:
            assert isinstance(hover.contents, types.MarkupContent)
            return hover.contents.value
        await asyncio.sleep(0.5)
    raise AssertionError("no hover within 180 s")


async def test_two_servers_share_one_diskcache_folder_and_a_damaged_one_is_rebuilt(
    tmp_path: Path, fake: FakeProvider
) -> None:
    shared = str(tmp_path / "shared-cache")
    a, b = await asyncio.gather(
        _start(tmp_path, "a", fake, LLM_LSP_CACHE_DIR=shared),
        _start(tmp_path, "b", fake, LLM_LSP_CACHE_DIR=shared),
    )
    try:
        fake.set_default(Step(text="From the first window."))
        assert "From the first window." in await _answer(Pair(a, "shared"))
        calls = chats(fake)
        value = await _answer(Pair(b, "shared"))
        assert "From the first window." in value
        assert HIT_FOOTER.search(value.rstrip()), value
        assert chats(fake) == calls
    finally:
        await asyncio.gather(a.stop(), b.stop())
    database = Path(shared) / "answer-cache" / "cache.db"
    assert database.exists()
    for leftover in database.parent.glob("cache.db-*"):
        leftover.unlink()
    database.write_bytes(b"this is not a SQLite database" * 100)
    c = await _start(tmp_path, "c", fake, LLM_LSP_CACHE_DIR=shared)
    try:
        fake.set_default(Step(text="Asked again after the damage."))
        pair = Pair(c, "shared")
        assert "Asked again after the damage." in await _answer(pair)
        calls = chats(fake)
        assert "Asked again after the damage." in await pair.hover()  # rebuilt: a hit
        assert chats(fake) == calls
        log = c.stderr_log.read_text()
        assert log.count("is damaged") == 1, log
    finally:
        await c.stop()


async def test_two_servers_share_answers_through_redis(
    tmp_path: Path, fake: FakeProvider, redis_url: str
) -> None:
    a, b = await asyncio.gather(
        _start(tmp_path, "a", fake, LLM_LSP_REDIS_URL=redis_url),
        _start(tmp_path, "b", fake, LLM_LSP_REDIS_URL=redis_url),
    )
    try:
        fake.set_default(Step(text="Shared by the team."))
        assert "Shared by the team." in await _answer(Pair(a, "redis"))
        calls = chats(fake)
        value = await _answer(Pair(b, "redis"))
        assert "Shared by the team." in value
        assert HIT_FOOTER.search(value.rstrip()), value
        assert chats(fake) == calls
        assert not (tmp_path / "b" / "cache" / "answer-cache").exists()  # not the local store
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_redis_down_falls_back_to_the_local_cache_and_says_so_once(
    tmp_path: Path, fake: FakeProvider
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    session = await _start(tmp_path, "a", fake, LLM_LSP_REDIS_URL=url)
    try:
        fake.set_default(Step(text="Answered anyway."))
        pair = Pair(session, "down")
        first = await _answer(pair)
        assert "Answered anyway." in first
        assert f"the shared answer cache (Redis at {url}) is unreachable" in first
        calls = chats(fake)
        second = await pair.hover()
        assert "Answered anyway." in second
        assert HIT_FOOTER.search(second.rstrip()), second  # from the local store
        assert "unreachable" not in second
        assert chats(fake) == calls
        log = session.stderr_log.read_text()
        assert log.count("Redis answer cache at") == 1, log
    finally:
        await session.stop()
