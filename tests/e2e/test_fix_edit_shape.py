"""An LSP Fix is expressed in the editor's text: CRLF stays CRLF, the edit is minimal and
carries the document version it was computed for (so the editor refuses it if stale);
for clients without versioned edits the server itself drops a fix gone stale."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import Session

pytestmark = pytest.mark.asyncio(loop_scope="module")

STATS = "shop/stats.py"


def _propose(delay: float = 0.0) -> Step:
    arguments: dict[str, Any] = {
        "path": STATS,
        "start_line": 5,
        "end_line": 6,
        # repeats line 5 unchanged: only line 6 is edited
        "replacement": '    """Mean of the values."""\n'
        "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n",
        "explanation": "Guard the empty list.",
    }
    return Step(tool_calls=[{"name": "propose_fix", "arguments": arguments}], delay=delay)


async def _fix_action(session: Session, uri: str) -> types.CodeAction:
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(4, 0), types.Position(6, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None
    [fix] = [a for a in actions if isinstance(a, types.CodeAction) and a.title == "Fix this code"]
    return fix


async def test_fix_on_a_crlf_document_keeps_crlf_and_carries_the_version(
    ai_session: Session, fake: FakeProvider
) -> None:
    text = (ai_session.root / STATS).read_text().replace("\n", "\r\n")
    uri = ai_session.open(STATS, text=text, version=7)
    fake.script(_propose())
    resolved = await ai_session.client.code_action_resolve_async(await _fix_action(ai_session, uri))
    assert resolved.edit is not None
    if resolved.edit.document_changes is not None:  # VS Code: a versioned edit
        [change] = resolved.edit.document_changes
        assert isinstance(change, types.TextDocumentEdit)
        assert change.text_document.uri == uri and change.text_document.version == 7
        edits = change.edits
    else:  # Neovim 0.11 does not announce documentChanges
        edits = list((resolved.edit.changes or {})[uri])
    [edit] = edits
    assert isinstance(edit, types.TextEdit)
    # the smallest edit: the guard is inserted before the unchanged return line, in CRLF
    assert edit.range == types.Range(types.Position(5, 0), types.Position(5, 0))
    assert edit.new_text == "    if not values:\r\n        return 0.0\r\n"


async def test_a_fix_for_a_document_changed_meanwhile_is_not_offered(
    ai_session: Session, fake: FakeProvider
) -> None:
    uri = ai_session.open(STATS, version=1)
    fake.script(_propose(delay=2.0))
    fix = await _fix_action(ai_session, uri)
    pending = asyncio.ensure_future(ai_session.client.code_action_resolve_async(fix))
    await fake.wait_for_requests_async(1, 30.0, finished=False)
    ai_session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(text="# rewritten\n" * 3)
            ],
        )
    )
    resolved = await asyncio.wait_for(pending, 60)
    assert resolved.edit is None
    assert "changed while the fix was computed" in ai_session.client.messages[-1].message
