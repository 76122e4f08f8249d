"""Queue instead of fail: an explain no tier can serve waits, then completes or is cancelled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

DOWN = Step(status=503)


@pytest_asyncio.fixture
async def session(workspace: Path, tmp_path: Path, fake: FakeProvider) -> AsyncIterator[Session]:
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_RETRY_MAX_ATTEMPTS="1",
        LLM_LSP_QUEUE_RETRY_INTERVAL="0.5",
    )
    session = await start_session(workspace, tmp_path, env=env)
    yield session
    await session.stop()


def _explain(session: Session) -> types.ExecuteCommandParams:
    return types.ExecuteCommandParams(
        command="llmLsp.explain",
        arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
    )


def _progress(session: Session) -> list[str]:
    return [
        str(getattr(p, "message", ""))
        for reports in session.client.progress_reports.values()
        for p in reports
    ]


async def test_queued_explain_completes_when_a_tier_returns(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(DOWN, Step(text="Recovered: it totals the basket."), model="gpt-4o")
    fake.script(DOWN, model="gpt-4o-mini")
    result = await asyncio.wait_for(
        session.client.workspace_execute_command_async(_explain(session)), 60
    )
    assert result["ok"] is True
    [shown] = session.client.shown_documents
    assert "Recovered: it totals the basket." in Path(shown.uri.removeprefix("file://")).read_text()
    assert any(m.startswith("Waiting for a model") for m in _progress(session))
    outcomes = [(r["model"], r["outcome"]) for r in session.usage()]
    assert outcomes[:2] == [("gpt-4o", "error"), ("gpt-4o-mini", "error")]
    assert outcomes[-1] == ("gpt-4o", "ok")


async def test_cancelling_a_queued_explain_stops_the_job(
    session: Session, fake: FakeProvider
) -> None:
    fake.set_default(DOWN)
    protocol = session.client.protocol
    pending = asyncio.ensure_future(
        protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, _explain(session), msg_id=99)
    )
    until = time.monotonic() + 60.0
    while not any(m.startswith("Waiting for a model") for m in _progress(session)):
        if time.monotonic() > until:
            raise AssertionError(f"never queued: {_progress(session)}")
        await asyncio.sleep(0.05)
    protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=99))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(pending, 60)
    assert info.value.code == -32800
    await asyncio.sleep(0.3)
    settled = len(fake.requests)
    await asyncio.sleep(1.5)  # three retry intervals: a live job would have called again
    assert len(fake.requests) == settled
    assert session.client.shown_documents == []
