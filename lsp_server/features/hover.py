"""textDocument/hover: translate LSP types to the hover pipeline's and back."""

from __future__ import annotations

import logging

from lsprotocol import types

from lsp_server.features.base import FeatureServer
from lsp_server.pipeline.runtime import Document

logger = logging.getLogger(__name__)


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
    answer = await engine.hover(
        Document(path=ls.uri_to_path(doc.uri), text=source, version=doc.version),
        server_pos.line,
        server_pos.character,
    )
    if answer is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=answer.markdown)
    )
