"""Trusted and untrusted settings through the real server: a repository's own configuration
(`workspace/configuration`, or settings pushed with `didChangeConfiguration`) cannot send the
user's key and code to another endpoint or switch on test runs unless the client declares the
workspace trusted (`initializationOptions.trustedWorkspace`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="function")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
ANSWER = "Caps the percentage at 100 and rounds the discounted total to cents."


@pytest.fixture
def second() -> Iterator[FakeProvider]:
    """The endpoint a repository's configuration points at."""
    with FakeProvider() as provider:
        yield provider


async def _message(client: LanguageClient, text: str, within: float = 60.0) -> str:
    """The first showMessage containing `text`, once it has arrived."""

    async def wait() -> str:
        while True:
            for m in client.messages:
                if text in m.message:
                    return m.message
            await client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)

    return await asyncio.wait_for(wait(), within)


async def _hover_text(session: Session) -> str:
    """The hover's markdown. A hover whose static analysis timed out (the jedi child still
    busy with the warm-up on a loaded machine) answers None before any model call; ask again."""
    for _ in range(3):
        hover = await session.hover(*APPLY_DISCOUNT)
        if hover is not None:
            break
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


def _ignored(session: Session) -> list[types.ShowMessageParams]:
    return [m for m in session.client.messages if "ignored" in m.message]


async def test_untrusted_workspace_cannot_redirect_the_key_or_run_tests(
    workspace: Path, tmp_path: Path, fake: FakeProvider, second: FakeProvider
) -> None:
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(
        workspace,
        tmp_path,
        env=env,
        configuration={"llmLsp": {"baseUrl": second.base_url, "runTests": True}},
    )
    try:
        message = await _message(session.client, "ignored")
        fake.script(Step(text=ANSWER))
        value = await _hover_text(session)
        # A configuration change rebuilds the settings: the ignored settings are not
        # announced again (a new notice is, after where a repeat would have come).
        session.client.set_configuration(
            {"llmLsp": {"baseUrl": second.base_url, "runTests": True, "modle": "gpt-4.1"}}
        )
        session.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None)
        )
        await _message(session.client, "llmLsp.modle")
    finally:
        await session.stop()
    assert message.startswith(
        "llm-lsp: ignored llmLsp.baseUrl, llmLsp.runTests from the workspace configuration: "
        "the workspace is not trusted;"
    )
    assert "trustedWorkspace" in message
    [shown] = _ignored(session)  # one message, not one per setting or per rebuild
    assert shown.type == types.MessageType.Warning
    assert ANSWER in value
    [request] = fake.requests  # the configured provider answered, with the user's key
    assert request.auth == TEST_KEY
    assert second.requests == []  # the repository's endpoint saw nothing


async def test_trusted_workspace_configuration_wins(
    workspace: Path, tmp_path: Path, fake: FakeProvider, second: FakeProvider
) -> None:
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(
        workspace,
        tmp_path,
        env=env,
        init_options={"trustedWorkspace": True},
        configuration={"llmLsp": {"baseUrl": second.base_url, "hoverMaxTokenz": 10}},
    )
    try:
        # The unknown key's warning comes once the workspace layer is in force.
        unknown = await _message(session.client, "hoverMaxTokenz")
        second.script(Step(text=ANSWER))
        value = await _hover_text(session)
    finally:
        await session.stop()
    assert unknown == (
        "llm-lsp: unknown setting llmLsp.hoverMaxTokenz from workspace configuration; "
        "did you mean llmLsp.hoverMaxTokens?"
    )
    assert _ignored(session) == []
    assert ANSWER in value
    [request] = second.requests
    assert request.auth == TEST_KEY
    assert fake.requests == []


async def test_pushed_settings_count_as_the_workspace_layer(
    workspace: Path, tmp_path: Path, fake: FakeProvider, second: FakeProvider
) -> None:
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    # A client that cannot answer workspace/configuration pushes its settings instead.
    capabilities = client_capabilities("neovim@v0.11.0")
    assert capabilities.workspace is not None
    capabilities.workspace.configuration = False
    session = await start_session(workspace, tmp_path, env=env, capabilities=capabilities)
    try:
        session.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"llmLsp": {"baseUrl": second.base_url, "timeout": 20}}
            )
        )
        message = await _message(session.client, "ignored")
        fake.script(Step(text=ANSWER))
        value = await _hover_text(session)
    finally:
        await session.stop()
    assert "llmLsp.baseUrl" in message
    assert ANSWER in value
    assert len(fake.requests) == 1 and second.requests == []
