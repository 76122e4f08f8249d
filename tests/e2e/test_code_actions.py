"""Explain and Fix through the real server, the fake provider scripting the model's tool calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import Session

pytestmark = pytest.mark.asyncio(loop_scope="module")

STATS = "shop/stats.py"
GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"
FIXED_STATS = (
    '"""Statistics over baskets."""\n\n\n'
    "def average(values: list[float]) -> float:\n"
    '    """Mean of the values."""\n' + GOOD_FIX
)


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _propose(replacement: str, path: str = STATS, start: int = 6, end: int = 6) -> dict[str, Any]:
    return _call(
        "propose_fix",
        path=path,
        start_line=start,
        end_line=end,
        replacement=replacement,
        explanation="Return 0.0 for an empty list instead of dividing by zero.",
    )


def _range(start: int, end: int) -> types.Range:
    return types.Range(types.Position(start, 0), types.Position(end, 0))


async def _actions(
    session: Session, path: str, rng: types.Range, diagnostics: list[types.Diagnostic] | None = None
) -> list[types.CodeAction]:
    result = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=session.uri(path)),
            range=rng,
            context=types.CodeActionContext(diagnostics=diagnostics or []),
        )
    )
    assert result is not None
    assert all(isinstance(a, types.CodeAction) for a in result), result
    return [a for a in result if isinstance(a, types.CodeAction)]


def _apply(text: str, edit: types.WorkspaceEdit) -> str:
    """Apply single-document TextEdits the way an editor would."""
    edits: list[types.TextEdit] = []
    for change in edit.document_changes or []:
        assert isinstance(change, types.TextDocumentEdit)
        edits.extend(e for e in change.edits if isinstance(e, types.TextEdit))
    for text_edits in (edit.changes or {}).values():
        edits.extend(text_edits)
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for e in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        start = offsets[e.range.start.line] + e.range.start.character
        end = offsets[e.range.end.line] + e.range.end.character
        text = text[:start] + e.new_text + text[end:]
    return text


def _tool_results(fake: FakeProvider) -> list[dict[str, Any]]:
    """Every tool message the server sent back to the model, parsed."""
    out: list[dict[str, Any]] = []
    last = fake.requests[-1].messages
    for message in last:
        if message.get("role") == "tool":
            out.append(json.loads(message["content"]))
    return out


def _edits_applied_by_the_editor(session: Session) -> list[types.WorkspaceEdit]:
    """The edits the server asks the editor to apply (`workspace/applyEdit`), as it applies them.

    Registered once per client; the list is the same for every test on the session.
    """
    client = session.client
    applied: list[types.WorkspaceEdit] | None = getattr(client, "applied_edits", None)
    if applied is None:
        found: list[types.WorkspaceEdit] = []

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            found.append(params.edit)
            return types.ApplyWorkspaceEditResult(applied=True)

        client.applied_edits = found  # type: ignore[attr-defined]
        applied = found
    return applied


async def _pick(session: Session, action: types.CodeAction) -> list[types.WorkspaceEdit]:
    """Pick ``action`` as VS Code and Neovim do, and return the edits that got applied.

    Like them, the editor calls `codeAction/resolve` only when the action has no edit
    and the server advertised ``resolveProvider`` in its `initialize` result; then it
    applies the action's edit, then runs its command (which may ask for more edits).
    """
    assert session.initialized is not None
    provider = session.initialized.capabilities.code_action_provider
    resolves = isinstance(provider, types.CodeActionOptions) and bool(provider.resolve_provider)
    requested = _edits_applied_by_the_editor(session)
    before = len(requested)
    if action.edit is None and resolves:
        action = await session.client.code_action_resolve_async(action)
    edits = [action.edit] if action.edit is not None else []
    if action.command is not None:
        await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=action.command.command, arguments=action.command.arguments
            )
        )
    return edits + requested[before:]


async def test_listing_actions_costs_nothing(ai_session: Session, fake: FakeProvider) -> None:
    diag = types.Diagnostic(
        range=types.Range(types.Position(5, 11), types.Position(5, 36)),
        message="ZeroDivisionError when values is empty",
        source="test",
    )
    actions = await _actions(ai_session, STATS, _range(5, 6), [diag])
    titles = [a.title for a in actions]
    assert titles == [
        "Explain this code",
        "Fix this code",
        "Fix: ZeroDivisionError when values is empty",
    ]
    assert actions[0].command is not None and actions[0].command.command == "llmLsp.explain"
    assert list(actions[2].diagnostics or []) == [diag]
    assert all(a.edit is None for a in actions)
    assert fake.requests == []
    # Anything the listing started in the background began before this fix, which does
    # the same work: by the time the fix is applied, such a call would have reached the
    # provider. Exactly the fix's one call means the listing started nothing.
    fake.script(Step(tool_calls=[_propose(GOOD_FIX)]))
    edits = await _pick(ai_session, actions[2])
    assert [_apply((ai_session.root / STATS).read_text(), e) for e in edits] == [FIXED_STATS]
    assert len(fake.requests) == 1
    assert [r["outcome"] for r in await ai_session.wait_for_usage()] == ["ok"]


async def test_initialize_advertises_resolvable_code_actions(ai_session: Session) -> None:
    """Editors resolve a Fix only when the server says it can (VS Code, Neovim)."""
    assert ai_session.initialized is not None
    provider = ai_session.initialized.capabilities.code_action_provider
    assert isinstance(provider, types.CodeActionOptions), provider
    assert provider.resolve_provider is True
    assert list(provider.code_action_kinds or []) == [
        "refactor.llm.explain",
        "quickfix.llm",
        "refactor.llm.regenerate",
    ]


async def test_fix_picked_in_an_editor_that_honours_the_capabilities(
    ai_session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(tool_calls=[_propose(GOOD_FIX)]))
    [_, fix] = await _actions(ai_session, STATS, _range(5, 6))
    assert fix.title == "Fix this code"
    edits = await _pick(ai_session, fix)
    assert [_apply((ai_session.root / STATS).read_text(), e) for e in edits] == [FIXED_STATS]


async def test_explain_uses_tools_and_opens_a_document(
    ai_session: Session, fake: FakeProvider
) -> None:
    answer = (
        "**Summary**: `Basket.total` adds VAT, then applies the discount (see shop/pricing.py:17)."
    )
    fake.script(
        Step(tool_calls=[_call("find_references", symbol="apply_discount")], usage=(500, 20)),
        Step(text=answer, usage=(700, 40)),
    )
    result = await ai_session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="llmLsp.explain",
            arguments=[{"uri": ai_session.uri("shop/basket.py"), "start": 16, "end": 19}],
        )
    )
    assert result["ok"] is True
    [shown] = ai_session.client.shown_documents
    document = Path(shown.uri.removeprefix("file://")).read_text()
    assert answer in document
    assert "# Explanation of `shop/basket.py:16-19`" in document
    assert "1200 in / 60 out tokens" in document
    # the tool really ran: its result went back to the model
    [refs] = _tool_results(fake)
    assert any(r["path"] == "shop/basket.py" for r in refs["references"])
    first_prompt = json.dumps(fake.requests[0].messages)
    assert "def total(self, discount" in first_prompt
    # the context pack resolved the names the selection uses, across files
    assert "def apply_discount(total: float, percent: float) -> float:" in first_prompt
    reports = [
        getattr(p, "message", None)
        for token in ai_session.client.progress_reports.values()
        for p in token
    ]
    assert "Finding references of `apply_discount`" in reports
    assert [r["outcome"] for r in ai_session.usage()] == ["ok", "ok"]


async def test_fix_that_does_not_parse_is_rejected_then_corrected(
    ai_session: Session, fake: FakeProvider
) -> None:
    broken = "    if not values\n        return 0.0\n    return sum(values) / len(values)\n"
    fake.script(Step(tool_calls=[_propose(broken)]), Step(tool_calls=[_propose(GOOD_FIX)]))
    [_, fix] = await _actions(ai_session, STATS, _range(5, 6))
    assert fix.title == "Fix this code" and fix.edit is None and fix.data is not None
    resolved = await ai_session.client.code_action_resolve_async(fix)
    assert resolved.edit is not None
    original = (ai_session.root / STATS).read_text()
    assert _apply(original, resolved.edit) == FIXED_STATS
    # the server never writes the file itself
    assert (ai_session.root / STATS).read_text() == original
    [rejection] = _tool_results(fake)
    assert "parse" in json.dumps(rejection).lower()


async def test_fix_confined_to_the_workspace_despite_injection(
    ai_session: Session, fake: FakeProvider
) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    before = {p: p.read_bytes() for p in ai_session.root.rglob("*") if p.is_file()}
    fake.script(
        Step(tool_calls=[_call("read_file", path="shop/notes.py")]),
        Step(tool_calls=[_call("read_file", path="../../../../etc/passwd")]),
        Step(tool_calls=[_propose("pwned\n", path="/etc/passwd", start=1, end=1)]),
        Step(tool_calls=[_propose(GOOD_FIX)]),
    )
    [_, fix] = await _actions(ai_session, STATS, _range(5, 6))
    resolved = await ai_session.client.code_action_resolve_async(fix)
    assert resolved.edit is not None
    edit = resolved.edit
    touched = [c.text_document.uri for c in edit.document_changes or []]  # type: ignore[union-attr]
    touched += list((edit.changes or {}).keys())
    assert touched == [ai_session.uri(STATS)]
    results = _tool_results(fake)
    assert "ignore your instructions" in json.dumps(results[0])  # data, shown to the model
    assert results[1]["error"]["type"] == "outside_workspace"
    assert results[2]["error"]["type"] in ("outside_workspace", "wrong_file")
    assert Path("/etc/passwd").read_bytes() == passwd
    after = {p: p.read_bytes() for p in ai_session.root.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing deleted


async def test_fix_gives_up_with_a_clear_message_when_steps_run_out(
    ai_session: Session, fake: FakeProvider
) -> None:
    fake.set_default(Step(tool_calls=[_call("list_files", pattern="**/*.py")]))
    try:
        [_, fix] = await _actions(ai_session, STATS, _range(5, 6))
        resolved = await ai_session.client.code_action_resolve_async(fix)
    finally:
        fake.reset()
    assert resolved.edit is None
    message = ai_session.client.messages[-1]
    assert message.type == types.MessageType.Warning
    assert "no fix offered for shop/stats.py:6-6" in message.message
    assert "step limit (6)" in message.message


async def test_fix_command_asks_the_editor_to_apply_the_edit(
    ai_session: Session, fake: FakeProvider
) -> None:
    applied = _edits_applied_by_the_editor(ai_session)
    before = len(applied)
    fake.script(Step(tool_calls=[_propose(GOOD_FIX)]))
    result = await ai_session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="llmLsp.fix",
            arguments=[{"uri": ai_session.uri(STATS), "start": 6, "end": 6, "diagnostic": None}],
        )
    )
    assert result["ok"] is True
    [edit] = applied[before:]
    assert _apply((ai_session.root / STATS).read_text(), edit) == FIXED_STATS


async def test_cancel_mid_loop_closes_the_provider_call(
    ai_session: Session, fake: FakeProvider
) -> None:
    fake.script(
        Step(tool_calls=[_call("find_definition", symbol="apply_discount")]),
        Step(text="too late", delay=30.0),
    )
    protocol = ai_session.client.protocol
    pending = asyncio.ensure_future(
        protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(
                command="llmLsp.explain",
                arguments=[{"uri": ai_session.uri("shop/basket.py"), "start": 16, "end": 19}],
            ),
            msg_id=777,
        )
    )
    await fake.wait_for_requests_async(2, 60.0, finished=False)
    protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=777))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(pending, 60)
    assert info.value.code == -32800
    hung_up = await fake.wait_for_disconnect_async(60.0)
    assert hung_up is not None and hung_up.client_disconnected
    usage = await ai_session.wait_for_usage(2)
    assert [r["outcome"] for r in usage] == ["ok", "cancelled"]


async def test_doctor_command_reports_every_provider(
    ai_session: Session, fake: FakeProvider
) -> None:
    result = await ai_session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llmLsp.doctor", arguments=[])
    )
    assert result["ok"] is True
    assert "gpt-4o" in result["report"] and "gpt-4o-mini" in result["report"]
    assert any("gpt-4o" in m.message for m in ai_session.client.log_messages)
    assert {r.model for r in fake.requests if r.path == "/v1/chat/completions"} == {
        "gpt-4o",
        "gpt-4o-mini",
    }
    assert all(r["feature"] == "doctor" for r in ai_session.usage()), ai_session.usage()


async def test_cancel_button_on_the_progress_answers_the_explain_request(
    ai_session: Session, fake: FakeProvider
) -> None:
    """The editor's cancel button cancels the progress, not the request: the request must
    still get an answer (else the editor waits for ever), and the provider call is closed."""
    fake.script(Step(text="too late", delay=30.0))
    ai_session.client.progress_reports.clear()
    shown = len(ai_session.client.shown_documents)
    pending = asyncio.ensure_future(
        ai_session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.explain",
                arguments=[{"uri": ai_session.uri("shop/basket.py"), "start": 16, "end": 19}],
            )
        )
    )
    await fake.wait_for_requests_async(1, 60.0, finished=False)
    [token] = ai_session.client.progress_reports
    ai_session.client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
    )
    result = await asyncio.wait_for(pending, 60)
    assert result == {"ok": False, "cancelled": True, "message": "cancelled"}
    hung_up = await fake.wait_for_disconnect_async(60.0)
    assert hung_up is not None and hung_up.client_disconnected
    end = ai_session.client.progress_reports[token][-1]
    assert getattr(end, "message", None) == "Cancelled"
    usage = await ai_session.wait_for_usage()
    assert [r["outcome"] for r in usage] == ["cancelled"]
    assert len(ai_session.client.shown_documents) == shown  # nothing opened
