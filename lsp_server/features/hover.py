"""textDocument/hover: translate LSP types to the hover pipeline's and back.

A hover answers within ``hoverWait`` (`pipeline.hover_wait`). A client that
declares the experimental capability ``{"llmLspExplanationReady": true}`` then
gets the whole hover, explanation included, as the notification
``llmLsp/explanationReady`` when the model answers, if the document is still at
the version hovered: ``{"textDocument": {"uri", "version"}, "position", "range",
"contents": {"kind": "markdown", "value"}}`` (positions in the client's units, as
in the hover request). Other clients see the explanation on the next hover (the
answer cache). A client that puts the explanation into the hover still open
(``{"llmLspExplanationReady": {"inPlace": true}}``, the Neovim plugin) is not
made to wait at all: its hover answers with what is ready (the static facts, a
cached answer of a repeated hover) and the explanation follows; static facts not
ready within ``hoverWait`` (jedi's first look at a large module) are not waited for
either: the hover is a one-line placeholder and the notification brings the whole
hover, or an empty ``value`` when the name turned out to be nothing to hover. Editors
show a hover when every server has answered, so any wait of ours holds the others'
too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types

from lsp_server.features.base import FeatureServer
from lsp_server.pipeline.hover_answer import HoverAnswer
from lsp_server.pipeline.hover_memo import name_span
from lsp_server.pipeline.runtime import Document

logger = logging.getLogger(__name__)

NOTIFICATION = "llmLsp/explanationReady"
CAPABILITY = "llmLspExplanationReady"
"""The key in ``capabilities.experimental`` by which a client asks for the notification."""


def wants_explanations(capabilities: types.ClientCapabilities) -> bool:
    """Whether the client asked for ``llmLsp/explanationReady`` notifications."""
    experimental = capabilities.experimental
    return isinstance(experimental, dict) and bool(experimental.get(CAPABILITY))


def updates_in_place(capabilities: types.ClientCapabilities) -> bool:
    """Whether the client puts an explanation into the hover still open (no need to wait)."""
    experimental = capabilities.experimental
    declared = experimental.get(CAPABILITY) if isinstance(experimental, dict) else None
    return isinstance(declared, dict) and declared.get("inPlace") is True


async def hover(ls: FeatureServer, params: types.HoverParams) -> types.Hover | None:
    """Static facts plus the model's grounded explanation; None where there is no symbol."""
    engine = ls.engine
    if engine is None:
        return None
    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        source = doc.source
    except (OSError, ValueError) as exc:  # ValueError: an unopened file that is not UTF-8
        logger.info("cannot read %s: %s", params.text_document.uri, exc)
        return None
    lines = doc.lines
    pos = params.position
    if pos.line >= len(lines):
        return None
    line_text = lines[pos.line].rstrip("\r\n")
    if pos.character > doc.position_codec.client_num_units(line_text):
        return None
    server_pos = doc.position_codec.position_from_client_units(lines, pos)
    server_line = lines[server_pos.line].rstrip("\r\n")
    start, end = name_span(server_line, server_pos.character)
    codec = doc.position_codec
    span = types.Range(
        types.Position(pos.line, codec.client_num_units(server_line[:start])),
        types.Position(pos.line, codec.client_num_units(server_line[:end])),
    )
    on_ready = None
    capabilities = ls.client_capabilities
    if wants_explanations(capabilities):
        on_ready = _deliver(ls, params.text_document.uri, doc.version, pos, span)
    answer = await engine.hover(
        Document(path=ls.uri_to_path(doc.uri), text=source, version=doc.version),
        server_pos.line,
        server_pos.character,
        on_ready=on_ready,
        in_place=updates_in_place(capabilities),
    )
    if answer is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=answer.markdown),
        range=span,
    )


def _deliver(
    ls: FeatureServer, uri: str, version: int | None, pos: types.Position, span: types.Range
) -> Callable[[HoverAnswer | None], None]:
    """Send the finished hover to the client, unless the document moved on meanwhile (an
    empty ``value``: the placeholder's name is nothing to hover, the client drops it)."""

    def send(answer: HoverAnswer | None) -> None:
        if ls.workspace.get_text_document(uri).version != version:
            logger.debug("explanation for %s v%s dropped: the document changed", uri, version)
            return
        payload: dict[str, Any] = {
            "textDocument": {"uri": uri, "version": version},
            "position": {"line": pos.line, "character": pos.character},
            "range": {
                "start": {"line": span.start.line, "character": span.start.character},
                "end": {"line": span.end.line, "character": span.end.character},
            },
            "contents": {"kind": "markdown", "value": "" if answer is None else answer.markdown},
        }
        ls.lsp_protocol.notify(NOTIFICATION, payload)

    return send
