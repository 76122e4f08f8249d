"""`features.base.guarded`: the one way a handler fails (never a traceback, cancellation passes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.features.base import guarded


class Protocol:
    def __init__(self) -> None:
        self.tracked = 0

    @contextlib.contextmanager
    def track_request_task(self) -> Iterator[None]:
        self.tracked += 1
        yield


class Server:
    """The members of `FeatureServer` that `guarded` uses."""

    def __init__(self) -> None:
        self.shown: list[types.ShowMessageParams] = []
        self.lsp_protocol = Protocol()

    def window_show_message(self, params: types.ShowMessageParams) -> None:
        self.shown.append(params)


async def broken() -> dict[str, Any]:
    raise KeyError("bug")


async def fine() -> dict[str, Any]:
    return {"ok": True}


async def test_a_bug_is_logged_told_in_one_line_and_answered_with_the_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ls = Server()
    with caplog.at_level(logging.ERROR, logger="lsp_server.features.base"):
        result = await guarded(
            ls, broken(), {"ok": False}, name="command explain", failure="llm-lsp: it failed"
        )  # type: ignore[arg-type]
    assert result == {"ok": False}
    assert [(m.type, m.message) for m in ls.shown] == [
        (types.MessageType.Error, "llm-lsp: it failed")
    ]
    assert "command explain failed" in caplog.text and "KeyError: 'bug'" in caplog.text


async def test_without_a_failure_message_the_user_sees_nothing() -> None:
    ls = Server()
    assert await guarded(ls, broken(), None, name="hover") is None  # type: ignore[arg-type]
    assert ls.shown == []


async def test_an_answer_passes_through_and_track_registers_the_request() -> None:
    ls = Server()
    result = await guarded(ls, fine(), {"ok": False}, name="ask", track=True)  # type: ignore[arg-type]
    assert result == {"ok": True}
    assert ls.lsp_protocol.tracked == 1 and ls.shown == []


async def test_cancellation_is_never_turned_into_a_fallback() -> None:
    ls = Server()
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.ensure_future(guarded(ls, slow(), None, name="hover"))  # type: ignore[arg-type]
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ls.shown == []
