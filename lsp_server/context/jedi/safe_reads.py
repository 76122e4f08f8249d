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
before jedi reads anything; it is idempotent. Jedi still reads a file it may not
quote (one inside a registered workspace root that the boundary's rules refuse,
or one outside every root that is not an installed or standard library: a
symlink's target, a single file's neighbours), but parso keeps its tree in
memory only: it is never pickled into the disk cache (under our cache
directory) nor loaded from it. What jedi reports about such files is filtered
by the callers (`WorkspaceBoundary.quotable`, the agent's tools).
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Any

from lsp_server.workspace import WorkspaceBoundary, is_library
from lsp_server.workspace.files import Refused, read_capped

logger = logging.getLogger(__name__)

#: Larger files read as empty for jedi.
MAX_JEDI_BYTES = 10_000_000

_lock = threading.Lock()
_installed = False
#: The rules of each workspace root jedi works in (names only: no buffers).
_roots: dict[Path, WorkspaceBoundary] = {}


def _quotable(path: Path) -> bool:
    """Whether jedi may read ``path``: inside a root and let through, or a library."""
    real = path.resolve()
    with _lock:
        roots = list(_roots.items())
    for root, boundary in roots:
        if real.is_relative_to(root):
            return boundary.contains(real) or is_library(real)
    return is_library(real)


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


def _guarded_load(load: Any) -> Any:
    """parso's cache lookup, skipped for a file jedi may not read (a tree parsed before the
    file was ignored must not come back from the pickle cache)."""

    def load_module(hashed_grammar: Any, file_io: Any, cache_path: Any = None) -> Any:
        path = Path(file_io.path) if getattr(file_io, "path", None) else None
        if path is not None and path.suffix in (".py", ".pyi") and not _quotable(path):
            return None
        return load(hashed_grammar, file_io, cache_path=cache_path)

    return load_module


def _guarded_save(save: Any) -> Any:
    """parso's cache store, kept in memory only for a file jedi may not quote: its tree (its
    text) never reaches the pickle cache on disk."""

    def try_to_save_module(
        hashed_grammar: Any,
        file_io: Any,
        module: Any,
        lines: Any,
        pickling: bool = True,
        cache_path: Any = None,
    ) -> Any:
        path = Path(file_io.path) if getattr(file_io, "path", None) else None
        if pickling and path is not None and path.suffix in (".py", ".pyi"):
            pickling = _quotable(path)
        return save(
            hashed_grammar, file_io, module, lines, pickling=pickling, cache_path=cache_path
        )

    return try_to_save_module


def guard_parso_reads(root: Path | None = None) -> None:
    """Make parso's (and so jedi's) file reads regular-file-only, capped and confined to what
    the boundary lets through; ``root`` registers a workspace root's rules."""
    global _installed
    with _lock:
        if root is not None:
            real = root.resolve()
            if real not in _roots:
                _roots[real] = WorkspaceBoundary(real)
        if _installed:
            return
        import parso.file_io

        parso.file_io.FileIO.read = _safe_read  # type: ignore[method-assign]
        import parso.grammar

        parso.grammar.load_module = _guarded_load(parso.grammar.load_module)  # type: ignore[attr-defined]
        parso.grammar.try_to_save_module = _guarded_save(parso.grammar.try_to_save_module)  # type: ignore[attr-defined]
        _installed = True
