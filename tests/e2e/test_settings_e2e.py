"""An invalid setting, as the user sees it: a `window/showMessage` warning naming the
setting, where it came from, the value and what is used instead; the server keeps serving."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import Session, start_session

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def _warnings(session: Session, n: int) -> list[str]:
    """The setting warnings the editor showed, once ``n`` arrived (or after a minute)."""
    deadline = time.monotonic() + 60.0
    while True:
        shown = [
            m.message
            for m in session.client.messages
            if m.type == types.MessageType.Warning and m.message.startswith("llm-lsp: invalid")
        ]
        if len(shown) >= n or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.05)


async def test_invalid_settings_are_shown_as_warnings_and_the_server_keeps_serving(
    workspace: Path, tmp_path: Path
) -> None:
    session = await start_session(
        workspace,
        tmp_path,
        init_options={"timeout": -5},
        configuration={"llmLsp": {"hoverDeadline": "soon"}},
    )
    try:
        assert await _warnings(session, 2) == [
            "llm-lsp: invalid llmLsp.timeout from initializationOptions (-5): "
            "expected a positive number of seconds; using 30.0",
            "llm-lsp: invalid llmLsp.hoverDeadline from workspace configuration ('soon'): "
            "expected a number of seconds; using 15.0",
        ]
        # a change of configuration is checked the same way
        session.client.set_configuration({"llmLsp": {"retryMaxAttempts": "many"}})
        session.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None)
        )
        shown = await _warnings(session, 3)
        assert shown[2:] == [
            "llm-lsp: invalid llmLsp.retryMaxAttempts from workspace configuration ('many'): "
            "expected a positive whole number; using 3",
        ]
        # and the server still answers
        actions = await session.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=session.uri("shop/basket.py")),
                range=types.Range(types.Position(18, 0), types.Position(19, 0)),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert [a.title for a in actions or []] == ["Explain this code", "Fix this code"]
    finally:
        await session.stop()
