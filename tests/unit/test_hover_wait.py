"""`PendingHovers`: the hover's short wait, the background call, who hears of it, and
who may cancel it; `Interest` for ``aiHover: onRepeat``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lsp_server.pipeline.hover_wait import Interest, PendingHovers

FILE = Path("/w/a.py")


class Model:
    """A model call that answers when the test says so, and tells whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0

    async def __call__(self) -> str:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "explained"


async def test_an_answer_within_the_wait_is_the_hovers() -> None:
    pending: PendingHovers[str] = PendingHovers()
    model = Model()
    model.release.set()
    assert await pending.wait("k", FILE, model, 5.0) == "explained"
    assert pending.backgrounded == 0


async def test_past_the_wait_the_call_goes_on_and_is_delivered_and_kept() -> None:
    pending: PendingHovers[str] = PendingHovers()
    model = Model()
    heard: list[str] = []
    assert await pending.wait("k", FILE, model, 0.01, on_ready=heard.append, keep_as="k") is None
    assert pending.backgrounded == 1 and pending.finished("k") is None
    # a second hover on the same code joins the same call
    assert await pending.wait("k", FILE, model, 0.01, on_ready=heard.append, keep_as="k") is None
    model.release.set()
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert heard == ["explained", "explained"]
    assert model.started == 1 and model.cancelled == 0
    assert pending.finished("k") == "explained"
    pending.cancel(FILE)  # an edit: the kept answer is about code that is gone
    assert pending.finished("k") is None


async def test_a_hover_cancelled_within_the_wait_cancels_the_call() -> None:
    pending: PendingHovers[str] = PendingHovers()
    model = Model()
    hover = asyncio.ensure_future(pending.wait("k", FILE, model, 30.0))
    await asyncio.sleep(0.05)
    hover.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hover
    await asyncio.sleep(0.01)
    assert model.cancelled == 1


async def test_a_cancelled_hover_leaves_the_call_to_another_waiting_hover() -> None:
    pending: PendingHovers[str] = PendingHovers()
    model = Model()
    first = asyncio.ensure_future(pending.wait("k", FILE, model, 30.0))
    second = asyncio.ensure_future(pending.wait("k", FILE, model, 30.0))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0.05)
    assert model.cancelled == 0
    model.release.set()
    assert await second == "explained"
    assert model.started == 1


async def test_a_background_call_outlives_a_cancelled_later_hover() -> None:
    pending: PendingHovers[str] = PendingHovers()
    model = Model()
    heard: list[str] = []
    assert await pending.wait("k", FILE, model, 0.01, on_ready=heard.append) is None
    later = asyncio.ensure_future(pending.wait("k", FILE, model, 30.0))
    await asyncio.sleep(0.05)
    later.cancel()
    await asyncio.sleep(0.05)
    assert model.cancelled == 0  # the first hover's user still expects the explanation
    model.release.set()
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert heard == ["explained"]


async def test_an_edit_or_shutdown_cancels_background_calls_and_nobody_hears() -> None:
    pending: PendingHovers[str] = PendingHovers()
    model = Model()
    heard: list[str] = []
    await pending.wait("a", FILE, model, 0.01, on_ready=heard.append)
    await pending.wait("b", Path("/w/b.py"), model, 0.01, on_ready=heard.append)
    assert pending.cancel(Path("/w/other.py")) == 0
    assert pending.cancel(FILE) == 1
    await asyncio.sleep(0.01)
    assert model.cancelled == 1
    await pending.aclose()
    assert model.cancelled == 2
    assert heard == []


async def test_a_failing_call_is_logged_and_a_failing_listener_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pending: PendingHovers[str] = PendingHovers()
    heard: list[str] = []
    gate = asyncio.Event()

    async def broken() -> str:
        await gate.wait()
        raise RuntimeError("boom")

    def rude(answer: str) -> None:
        raise ValueError("listener")

    await pending.wait("x", FILE, broken, 0.01, on_ready=heard.append)
    gate.set()
    await asyncio.sleep(0.05)
    assert "background hover call failed: boom" in caplog.text
    model = Model()
    await pending.wait("y", FILE, model, 0.01, on_ready=rude)
    await pending.wait("y", FILE, model, 0.01, on_ready=heard.append)
    model.release.set()
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert heard == ["explained"]


def test_interest_is_a_second_hover_within_the_window() -> None:
    interest = Interest(window=60.0)
    assert not interest.again(("a.py", "f"))
    assert interest.again(("a.py", "f"))
    assert not interest.again(("a.py", "g"))
    assert not Interest(window=0.0).again("x")
