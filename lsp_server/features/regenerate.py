"""Regenerate: ask the model again for the hover at the cursor, skipping the answer cache.

`list_action` offers "Regenerate the AI explanation (skip the cache)" for an
empty range (the cursor), at no cost: it carries the `llmLsp.regenerate`
command with ``{"uri", "line", "character"}`` (the client's position units); editor
commands may send ``{"uri", "position": {"line", "character"}}`` instead.
The command runs the hover pipeline with ``regenerate=True``: the cache is not
read, the model is asked, and the new answer replaces the cached one, so the
next hover shows it. The command answers ``{"ok": true, "markdown": ...}`` and
tells the user in a message.

Given a range and no position (``{"uri", "start", "end"}``, 1-based lines, as the
Explain action carries), it regenerates that explanation: the Explain command
runs with ``"regenerate": true`` (cache skipped, the new answer replaces the
entry, the document opens as for any explain).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lsprotocol import types

from lsp_server.features.base import FeatureServer, tell, warn
from lsp_server.pipeline.hover_answer import AnswerSource
from lsp_server.pipeline.runtime import Document

logger = logging.getLogger(__name__)

CMD_REGENERATE = "llmLsp.regenerate"
KIND_REGENERATE = "refactor.llm.regenerate"
TITLE = "Regenerate the AI explanation (skip the cache)"

#: The Explain command (`code_actions.run_explain_command`), handed in by the server.
ExplainCommand = Callable[[FeatureServer, list[Any]], Awaitable[dict[str, Any]]]


def list_action(
    params: types.CodeActionParams, only: Sequence[str] | None
) -> types.CodeAction | None:
    """The Regenerate action at the cursor; None for a selection or a filter it misses."""
    if only and not any(KIND_REGENERATE.startswith(k) for k in only):
        return None
    start, end = params.range.start, params.range.end
    if (start.line, start.character) != (end.line, end.character):
        return None
    args = {"uri": params.text_document.uri, "line": start.line, "character": start.character}
    return types.CodeAction(
        title=TITLE,
        kind=KIND_REGENERATE,
        command=types.Command(title=TITLE, command=CMD_REGENERATE, arguments=[args]),
    )


def _parse(raw: Any) -> tuple[str, int, int] | None:
    if not isinstance(raw, dict):
        return None
    # the action's own arguments, or an editor command's {uri, position: {line, character}}
    where = raw.get("position")
    if not isinstance(where, dict):
        where = raw
    uri, line, character = raw.get("uri"), where.get("line"), where.get("character")
    if not isinstance(uri, str) or not isinstance(line, int) or not isinstance(character, int):
        return None
    if isinstance(line, bool) or isinstance(character, bool) or line < 0 or character < 0:
        return None
    return uri, line, character


async def run_regenerate_command(
    ls: FeatureServer, args: list[Any], explain: ExplainCommand | None = None
) -> dict[str, Any]:
    """`llmLsp.regenerate`: a fresh answer for the hover at the position, cached for the next;
    for a range, a fresh explanation through ``explain``."""
    raw = args[0] if args else None
    # a range without a position; with one it is the hover there (Neovim sends both)
    ranged = isinstance(raw, dict) and "start" in raw and "end" in raw and "position" not in raw
    if explain is not None and ranged and isinstance(raw, dict):
        return await explain(ls, [{**raw, "regenerate": True}])
    parsed = _parse(raw)
    engine = ls.engine
    if parsed is None or engine is None:
        warn(ls, "llm-lsp: this regenerate action is malformed or out of date; ask for it again")
        return {"ok": False}
    uri, line, character = parsed
    doc = ls.workspace.get_text_document(uri)
    try:
        source = doc.source
    except OSError as exc:
        logger.info("cannot read %s: %s", uri, exc)
        warn(ls, f"llm-lsp: cannot read {uri}")
        return {"ok": False}
    lines = doc.lines
    if line >= len(lines):
        warn(ls, "llm-lsp: nothing to explain there")
        return {"ok": False}
    position = doc.position_codec.position_from_client_units(
        lines, types.Position(line=line, character=character)
    )
    answer = await engine.hover(
        Document(path=ls.uri_to_path(uri), text=source, version=doc.version),
        position.line,
        position.character,
        regenerate=True,
    )
    if answer is None or answer.symbol is None:  # (a placeholder never answers regenerate)
        warn(ls, "llm-lsp: nothing to explain there")
        return {"ok": False}
    name = answer.symbol.full_name or answer.symbol.name
    if answer.completion is None or answer.source is not AnswerSource.PROVIDER:
        warn(ls, f"llm-lsp: could not regenerate the explanation of `{name}`; see the hover")
        return {"ok": False, "markdown": answer.markdown}
    tell(
        ls,
        types.MessageType.Info,
        f"llm-lsp: regenerated the explanation of `{name}`; hover it to see the new answer",
    )
    return {"ok": True, "markdown": answer.markdown}
