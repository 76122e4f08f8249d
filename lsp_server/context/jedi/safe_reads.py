"""Jedi's own file reads made safe: regular files only, capped.

Jedi reads files the server never asked for: every ``.py`` under the project
when it searches names or references (``zero.py -> /dev/zero`` was read until
memory ran out: a ``MemoryError`` after 2 GB under a limit, the machine's
memory without one), and the modules an import leads to. `guard_parso_reads`
replaces parso's ``FileIO.read`` (which jedi's file objects inherit) with one
that goes through `files.read_capped`: a FIFO, a device or a file over
`MAX_JEDI_BYTES` reads as empty, so jedi sees an empty module there (a
missing file still raises ``FileNotFoundError``: jedi probes for stubs so).

Call it wherever jedi runs (the worker child and the in-process worker thread)
before jedi reads anything; it is idempotent. What jedi then reports about
files the boundary refuses is filtered by the callers (`WorkspaceBoundary.quotable`,
the agent's tools).
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Any

from lsp_server.workspace.files import Refused, read_capped

logger = logging.getLogger(__name__)

#: Larger files read as empty for jedi.
MAX_JEDI_BYTES = 10_000_000

_lock = threading.Lock()
_installed = False


def _safe_read(self: Any) -> bytes:
    """parso's read: a missing file still raises (jedi probes for stubs that way)."""
    path = Path(self.path)
    try:
        data, _ = read_capped(path.resolve(), MAX_JEDI_BYTES, path.name)
    except Refused as refused:
        if refused.kind == "missing":
            raise FileNotFoundError(errno.ENOENT, refused.message, str(path)) from None
        if refused.kind in ("not_a_file", "too_large") and not path.is_dir():
            logger.debug("jedi does not read %s: %s", path, refused.message)
            return b""
        raise OSError(errno.EIO, refused.message, str(path)) from None
    return data


def guard_parso_reads() -> None:
    """Make parso's (and so jedi's) file reads regular-file-only and capped; once."""
    global _installed
    with _lock:
        if _installed:
            return
        import parso.file_io

        parso.file_io.FileIO.read = _safe_read  # type: ignore[method-assign]
        _installed = True
