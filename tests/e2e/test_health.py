"""Health in the editor through the real server: ``llmLsp.health``, the ``llmLsp/health``
notification a status line listens to, and ``llmLsp.showReport``."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import client_capabilities

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def health_session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider
) -> AsyncIterator[tuple[Session, list[dict[str, Any]]]]:
    """A server for a client that asked for health notifications; the notifications."""
    tmp_path = tmp_path_factory.mktemp("health")
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake_provider.base_url,
        LLM_BREAKER_FAILURE_THRESHOLD="1",
        LLM_BREAKER_COOLDOWN="600",
        LLM_RETRY_MAX_ATTEMPTS="1",
        # no background embedding of the workspace: the hover is the only spend to see
        LLM_LSP_EMBEDDING_MODEL="",
    )
    capabilities = client_capabilities("visual-studio-code")
    capabilities.experimental = {"llmLspHealth": True}
    received: list[dict[str, Any]] = []
    session = await start_session(
        copy_project(tmp_path), tmp_path, env=env, capabilities=capabilities
    )

    @session.client.feature("llmLsp/health")
    def on_health(params: Any) -> None:
        received.append(_plain(params))

    await session.warm(APPLY_DISCOUNT)
    yield session, received
    await session.stop()


def _plain(value: Any) -> Any:
    """A notification's params as plain JSON values (pygls hands over a namespace)."""
    if hasattr(value, "_asdict"):  # pygls's namedtuple `Object`
        value = value._asdict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, str | int | float | bool):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


async def _health(session: Session) -> dict[str, Any]:
    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llmLsp.health")
    )
    assert isinstance(result, dict) or hasattr(result, "__dict__")
    return dict(_plain(result))


async def _notified(received: list[dict[str, Any]], check: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        for payload in reversed(received):
            if check(payload):
                return payload
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such llmLsp/health notification; got {received[-3:]}")


async def test_spend_breakers_and_queue_in_the_command_and_the_notification(
    health_session: tuple[Session, list[dict[str, Any]]], fake: FakeProvider
) -> None:
    session, received = health_session
    session.begin()
    before = await _health(session)
    assert before["ok"] is True
    assert before["breakers"] == {"primary": "closed", "cheap": "closed"}
    assert before["queueDepth"] == 0
    assert before["budgetLeftUsd"] is None
    fake.script(Step(text="Applies the discount.", usage=(1000, 100)))
    hover = await session.hover(*APPLY_DISCOUNT)
    assert hover is not None and "Applies the discount." in str(hover.contents)
    [record] = await session.wait_for_usage()
    after = await _health(session)
    spent = after["spendTodayUsd"] - before["spendTodayUsd"]
    # the spend is shown to the micro-dollar: each of the two readings rounds
    assert spent == pytest.approx(record["cost_usd"], abs=2e-6) and spent > 0
    assert after["requestsToday"] == before["requestsToday"] + 1
    assert after["status"].startswith(f"llm-lsp ${after['spendTodayUsd']:.2f} today")
    await _notified(received, lambda p: p["spendTodayUsd"] == after["spendTodayUsd"])
    # the provider fails once: the breaker (threshold 1) opens, and the status line says so
    fake.set_default(Step(status=500))
    await session.hover(*APPLY_DISCOUNT)
    opened = await _notified(received, lambda p: p["breakers"]["primary"].startswith("open"))
    assert "primary open" in opened["status"]
    assert (await _health(session))["breakers"]["primary"].startswith("open")


async def test_show_report_opens_the_dashboard_or_says_why_not(
    health_session: tuple[Session, list[dict[str, Any]]],
) -> None:
    session, _ = health_session
    session.begin()
    client = session.client
    shown_before, messages_before = len(client.shown_documents), len(client.messages)
    result = _plain(
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="llmLsp.showReport")
        )
    )
    if importlib.util.find_spec("lsp_server.report") is None:  # a build without the report
        assert result == {
            "ok": False,
            "message": "llm-lsp: the usage report is not available in this build",
        }
        assert client.shown_documents[shown_before:] == []
        [message] = client.messages[messages_before:]
        assert message.message == result["message"]
        return
    assert result["ok"] is True
    [shown] = client.shown_documents[shown_before:]
    assert shown.external is True and shown.uri.endswith("report.html")
    assert "<svg" in Path(shown.uri.removeprefix("file://")).read_text(encoding="utf-8")
