"""Explain / Fix code actions: listed for free, computed only when the user picks one.

`textDocument/codeAction` returns stubs and never calls a model. "Explain this
code" carries the `llmLsp.explain` command, which runs the agent with
progress and opens the markdown answer with `window/showDocument`. "Fix this
code" and "Fix: <diagnostic>" are computed in `codeAction/resolve` when the
client can resolve edits, otherwise through the `llmLsp.fix` command, which
hands the edit to the editor with `workspace/applyEdit`. Either way the edit is
a proposal the editor applies; the server never writes a user file.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.capabilities import get_capability

from lsp_server.agent import ProposedEdit
from lsp_server.context.pack.assembler import TaskKind
from lsp_server.features.base import FeatureServer, warn
from lsp_server.features.documents import explanation_path, publish
from lsp_server.features.progress import ActionProgress, UserCancelled
from lsp_server.features.regenerate import list_action as regenerate_action
from lsp_server.pipeline.outcome import ActionOutcome
from lsp_server.pipeline.runtime import Document

logger = logging.getLogger(__name__)

CMD_EXPLAIN = "llmLsp.explain"
CMD_FIX = "llmLsp.fix"
KIND_EXPLAIN = "refactor.llm.explain"
KIND_FIX = "quickfix.llm"
_MAX_TITLE = 80


def _line_span(rng: types.Range) -> tuple[int, int]:
    """1-based inclusive lines covered by an LSP range (a range ending at column 0 stops above)."""
    start = rng.start.line + 1
    end = rng.end.line + 1
    if rng.end.line > rng.start.line and rng.end.character == 0:
        end -= 1
    return start, max(start, end)


def _resolves_edits(ls: FeatureServer) -> bool:
    caps = ls.client_capabilities
    return "edit" in get_capability(
        caps, "text_document.code_action.resolve_support.properties", []
    )


def _args(uri: str, start: int, end: int, diagnostic: str | None) -> dict[str, Any]:
    return {"uri": uri, "start": start, "end": end, "diagnostic": diagnostic}


def _fix_action(
    ls: FeatureServer,
    title: str,
    args: dict[str, Any],
    diagnostics: list[types.Diagnostic] | None,
) -> types.CodeAction:
    if _resolves_edits(ls):
        return types.CodeAction(title=title, kind=KIND_FIX, diagnostics=diagnostics, data=args)
    return types.CodeAction(
        title=title,
        kind=KIND_FIX,
        diagnostics=diagnostics,
        command=types.Command(title=title, command=CMD_FIX, arguments=[args]),
    )


async def list_actions(
    ls: FeatureServer, params: types.CodeActionParams
) -> list[types.CodeAction | types.Command]:
    """The action stubs for a range; costs no model call (and awaits nothing)."""
    only = params.context.only
    uri = params.text_document.uri
    start, end = _line_span(params.range)
    actions: list[types.CodeAction | types.Command] = []
    if not only or any(KIND_EXPLAIN.startswith(k) for k in only):
        args = _args(uri, start, end, None)
        actions.append(
            types.CodeAction(
                title="Explain this code",
                kind=KIND_EXPLAIN,
                command=types.Command(
                    title="Explain this code", command=CMD_EXPLAIN, arguments=[args]
                ),
            )
        )
    if not only or any(KIND_FIX.startswith(k) for k in only):
        actions.append(_fix_action(ls, "Fix this code", _args(uri, start, end, None), None))
        for diag in params.context.diagnostics:
            message = " ".join(diag.message.split())
            title = "Fix: " + (message if len(message) <= _MAX_TITLE else message[:77] + "...")
            d_start, d_end = _line_span(diag.range)
            args = _args(uri, d_start, d_end, message)
            actions.append(_fix_action(ls, title, args, [diag]))
    regenerate = regenerate_action(params, only)
    if regenerate is not None:
        actions.append(regenerate)
    return actions


def _parse_args(raw: Any) -> tuple[str, int, int, str | None] | None:
    if not isinstance(raw, dict):
        return None
    uri, start, end, diag = raw.get("uri"), raw.get("start"), raw.get("end"), raw.get("diagnostic")
    if not isinstance(uri, str) or not isinstance(start, int) or not isinstance(end, int):
        return None
    if start < 1 or end < start or (diag is not None and not isinstance(diag, str)):
        return None
    return uri, start, end, diag


def _document(ls: FeatureServer, uri: str) -> tuple[Document, int | None] | None:
    doc = ls.workspace.get_text_document(uri)
    try:
        text = doc.source
    except OSError as exc:
        logger.info("cannot read %s: %s", uri, exc)
        return None
    return Document(path=ls.uri_to_path(uri), text=text, version=doc.version), doc.version


def workspace_edit(
    ls: FeatureServer, uri: str, version: int | None, edit: ProposedEdit
) -> types.WorkspaceEdit:
    """The proposed edit as a versioned WorkspaceEdit (plain `changes` for old clients)."""
    (sl, sc), (el, ec) = edit.lsp_range
    text_edit = types.TextEdit(
        range=types.Range(types.Position(sl, sc), types.Position(el, ec)), new_text=edit.new_text
    )
    caps = ls.client_capabilities
    if get_capability(caps, "workspace.workspace_edit.document_changes", False):
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=[text_edit],
                )
            ]
        )
    return types.WorkspaceEdit(changes={uri: [text_edit]})


async def _run_fix(ls: FeatureServer, raw: Any) -> tuple[ActionOutcome, str, int | None] | None:
    parsed = _parse_args(raw)
    engine = ls.engine
    if parsed is None or engine is None:
        warn(ls, "llm-lsp: this fix action is malformed or out of date; ask for it again")
        return None
    uri, start, end, diagnostic = parsed
    found = _document(ls, uri)
    if found is None:
        warn(ls, f"llm-lsp: cannot read {uri}")
        return None
    doc, version = found
    title = await engine.actions.title(TaskKind.FIX, doc, start, end)
    async with ActionProgress(ls, f"llm-lsp: {title}") as progress:
        outcome = await engine.actions.fix(doc, start, end, diagnostic, progress.report)
        progress.end_message = outcome.message
    if outcome.edit is not None and ls.workspace.get_text_document(uri).version != version:
        # clients without versioned `documentChanges` cannot refuse a stale edit themselves
        stale = "llm-lsp: the document changed while the fix was computed; ask for it again"
        return ActionOutcome(False, stale, summary=outcome.summary), uri, version
    return outcome, uri, version


CANCELLED = {"ok": False, "cancelled": True, "message": "cancelled"}


async def resolve(ls: FeatureServer, action: types.CodeAction) -> types.CodeAction:
    """Compute the fix for a stub; on failure the user gets a message and no edit."""
    try:
        result = await _run_fix(ls, action.data)
    except UserCancelled:
        return action
    if result is None:
        return action
    outcome, uri, version = result
    if outcome.edit is None:
        warn(ls, outcome.message)
        return action
    action.edit = workspace_edit(ls, uri, version, outcome.edit)
    if ls.engine is not None:  # applied or discarded: the document's next changes tell
        replaced = ls.engine.pending_fixes.offer(
            uri, outcome.request_id, outcome.edit.full_new_file_text
        )
        if replaced is not None:
            ls.engine.llm.usage_log.signal(replaced, "fix_discarded", "fix")
    return action


def document_changed(ls: FeatureServer, uri: str) -> None:
    """After a change: the quality signal of a fix handed out by `resolve`, once decided."""
    engine = ls.engine
    if engine is None:
        return
    decided = engine.pending_fixes.changed(uri, str(ls.workspace.get_text_document(uri).source))
    if decided is not None:
        engine.llm.usage_log.signal(*decided, "fix")


async def run_fix_command(ls: FeatureServer, args: list[Any]) -> dict[str, Any]:
    """`llmLsp.fix`: compute the fix and ask the editor to apply it."""
    try:
        result = await _run_fix(ls, args[0] if args else None)
    except UserCancelled:
        return dict(CANCELLED)
    if result is None:
        return {"ok": False}
    outcome, uri, version = result
    if outcome.edit is None:
        warn(ls, outcome.message)
        return {"ok": False, "message": outcome.message}
    applied = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(
            edit=workspace_edit(ls, uri, version, outcome.edit), label="llm-lsp fix"
        )
    )
    if ls.engine is not None:  # a quality signal for the usage log
        signal = "fix_applied" if applied.applied else "fix_discarded"
        ls.engine.llm.usage_log.signal(outcome.request_id, signal, "fix")
    return {"ok": bool(applied.applied), "message": outcome.message}


async def run_explain_command(ls: FeatureServer, args: list[Any]) -> dict[str, Any]:
    """`llmLsp.explain`: explain the range and open the answer beside the code.

    With ``"regenerate": true`` in its arguments the answer cache is not read: the
    model is asked again and the new answer replaces the cached one."""
    parsed = _parse_args(args[0] if args else None)
    engine = ls.engine
    if parsed is None or engine is None:
        warn(ls, "llm-lsp: this explain action is malformed or out of date; ask for it again")
        return {"ok": False}
    uri, start, end, _ = parsed
    regenerate = isinstance(args[0], dict) and args[0].get("regenerate") is True
    found = _document(ls, uri)
    if found is None:
        warn(ls, f"llm-lsp: cannot read {uri}")
        return {"ok": False}
    doc, _version = found
    title = await engine.actions.title(TaskKind.EXPLAIN, doc, start, end)
    try:
        async with ActionProgress(ls, f"llm-lsp: {title}") as progress:
            outcome = await engine.actions.explain(
                doc, start, end, progress.report, regenerate=regenerate
            )
            progress.end_message = outcome.message
    except UserCancelled:
        return dict(CANCELLED)
    if outcome.markdown is None:
        warn(ls, outcome.message)
        return {"ok": False, "message": outcome.message}
    target = explanation_path(
        engine.settings.storage.cache_dir, engine.display_path(doc.path), start, end
    )
    await publish(ls, target, outcome.markdown, outcome.message)
    return {
        "ok": True,
        "uri": target.as_uri(),
        "message": outcome.message,
        "cache": outcome.cache,
    }
