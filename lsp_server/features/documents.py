"""Answers shown as documents: where they are written, and how they are opened.

Explain and Ask write their markdown under the cache directory
(`atomic.write_document`: a reader never sees half a file) and open it
beside the code with `window/showDocument`; a client that cannot (or will
not) show it gets a message saying where the file is.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from lsprotocol import types
from pygls.capabilities import get_capability

from lsp_server.atomic import write_document
from lsp_server.features.base import FeatureServer, tell


def explanation_path(cache_dir: Path, rel_path: str, start: int, end: int) -> Path:
    """Where an explanation document is written (inside the cache directory)."""
    safe = rel_path.replace("/", "__").replace("\\", "__").lstrip(".") or "buffer"
    return cache_dir / "explanations" / f"{safe}-L{start}-{end}.md"


def answer_path(cache_dir: Path, conversation: str | None, question: str) -> Path:
    """Where an answer's document goes: one file per conversation turn or question."""
    if conversation is not None:
        name = f"ask-{conversation}.md"
    else:
        name = f"ask-{hashlib.sha256(question.encode()).hexdigest()[:12]}.md"
    return cache_dir / "answers" / name


async def publish(ls: FeatureServer, target: Path, markdown: str, message: str) -> None:
    """Write ``markdown`` to ``target`` and open it beside the code; say where it is
    when the editor cannot show documents."""
    await asyncio.to_thread(write_document, target, markdown)
    if get_capability(ls.client_capabilities, "window.show_document.support", False):
        params = types.ShowDocumentParams(uri=target.as_uri(), take_focus=True)
        if (await ls.window_show_document_async(params)).success:
            return
    tell(ls, types.MessageType.Info, f"{message}: {target}")
