"""What the LSP features need from the server, and the one way a handler fails.

Features depend on `FeatureServer`, a small protocol of the server's members
they use (the engine, the workspace, the client's capabilities, a few
requests to the client), never on `server.py`, which implements it and
registers the handlers. `guarded` is how every handler keeps a traceback from
the editor: an unexpected exception is logged, optionally told to the user in
one line, and answered with a fallback; `asyncio.CancelledError` is not
caught (pygls answers RequestCancelled).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol, TypeVar

from lsprotocol import types
from pygls.progress import Progress
from pygls.workspace import Workspace

from lsp_server.engine import Engine
from lsp_server.protocol import LlmProtocol

logger = logging.getLogger(__name__)

R = TypeVar("R")


class FeatureServer(Protocol):
    """The server as the features see it (`server.LlmLanguageServer` implements it)."""

    @property
    def engine(self) -> Engine | None:
        """The engine for the workspace (None before `initialize`)."""
        ...

    @property
    def client_capabilities(self) -> types.ClientCapabilities:
        """What the client said it supports (read with `get_capability`)."""
        ...

    @property
    def workspace(self) -> Workspace:
        """The editor's open documents."""
        ...

    @property
    def work_done_progress(self) -> Progress:
        """Server-initiated progress."""
        ...

    @property
    def lsp_protocol(self) -> LlmProtocol:
        """The JSON-RPC protocol (request tracking for commands)."""
        ...

    def uri_to_path(self, uri: str) -> Path | None:
        """A filesystem path for a file:// URI, else None."""
        ...

    def window_show_message(self, params: types.ShowMessageParams) -> None: ...

    def window_log_message(self, params: types.LogMessageParams) -> None: ...

    async def window_show_document_async(
        self, params: types.ShowDocumentParams
    ) -> types.ShowDocumentResult: ...

    async def workspace_apply_edit_async(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult: ...


def tell(ls: FeatureServer, kind: types.MessageType, message: str) -> None:
    """One line for the user (`window/showMessage`)."""
    ls.window_show_message(types.ShowMessageParams(type=kind, message=message))


def warn(ls: FeatureServer, message: str) -> None:
    """A warning for the user."""
    tell(ls, types.MessageType.Warning, message)


async def guarded(
    ls: FeatureServer,
    work: Awaitable[R],
    fallback: R,
    *,
    name: str,
    failure: str | None = None,
    track: bool = False,
) -> R:
    """``await work``; on an unexpected exception log it, show ``failure`` (if any) and
    answer ``fallback``: the editor never sees a traceback.

    ``track`` registers the running task with the protocol so a ``$/cancelRequest``
    cancels it (pygls does not do that for commands).
    """
    try:
        if track:
            with ls.lsp_protocol.track_request_task():
                return await work
        return await work
    except Exception:
        logger.exception("%s failed; answering %r", name, fallback)
        if failure is not None:
            tell(ls, types.MessageType.Error, failure)
        return fallback
