"""`Activity`: background work waits while a request is in progress, and not forever."""

from __future__ import annotations

import asyncio
import time

from lsp_server.activity import Activity


async def test_idle_returns_at_once_when_nothing_happens() -> None:
    activity = Activity(quiet=0.05, max_hold=5.0)
    started = time.monotonic()
    await activity.idle()
    assert time.monotonic() - started < 1.0


async def test_idle_waits_for_the_request_and_a_quiet_moment() -> None:
    activity = Activity(quiet=0.05, max_hold=30.0)
    order: list[str] = []

    async def request() -> None:
        with activity.request():
            await asyncio.sleep(0.3)
            order.append("request done")

    task = asyncio.ensure_future(request())
    await asyncio.sleep(0)
    await activity.idle()
    order.append("background step")
    await task
    assert order == ["request done", "background step"]
    assert activity.quiet_now() or activity.held >= 0.3


async def test_idle_never_holds_back_longer_than_max_hold() -> None:
    activity = Activity(quiet=0.05, max_hold=0.2)
    with activity.request():
        started = time.monotonic()
        await activity.idle()
        assert time.monotonic() - started < 5.0
        assert not activity.quiet_now()
