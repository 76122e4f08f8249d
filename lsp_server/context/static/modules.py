"""Workspace modules as the import map reads them: chunked once, cached by content.

`ModuleCache` holds chunked modules keyed by path and content hash, and is safe
to use from a worker thread: files come through the `WorkspaceBoundary` (open
editor buffers win over the disk; a file it refuses is never loaded), and a
file on disk is read again only when it changed. A `Module` is a
file's text lines, its chunks and its top-level facts (`names.module_facts`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lsp_server.context.source.chunker import ChunkedModule, chunk_module
from lsp_server.context.static.names import ModuleFacts, local_types, module_facts
from lsp_server.workspace import WorkspaceBoundary


@dataclass(frozen=True, slots=True)
class Module:
    """A file's text lines, its chunks and its top-level facts."""

    path: Path | None
    display: str
    chunks: ChunkedModule
    facts: ModuleFacts
    lines: list[str]

    def scope(self, line: int, region: tuple[int, int]) -> tuple[str | None, dict[str, str]]:
        """The class enclosing 1-based ``line`` (for ``self.x``) and the evident types of
        its function's names (`names.local_types`; of ``region`` at module level)."""
        enclosing = self.chunks.enclosing(line)
        owner = enclosing.parent if enclosing is not None else None
        scope = (enclosing.start_line, enclosing.end_line) if enclosing else region
        return owner, local_types(self.lines, *scope)


def load_module(path: Path | None, display: str, text: str) -> Module:
    """Chunk ``text`` and collect its facts (pure; can be slow for big files)."""
    chunks = chunk_module(text, display)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Module(path, display, chunks, module_facts(chunks), lines)


class ModuleCache:
    """Chunked modules by (display path, sha256 of text), LRU-bounded, thread-safe."""

    def __init__(
        self,
        workspace: WorkspaceBoundary,
        size: int = 256,
        *,
        display_path: Callable[[Path | None], str] | None = None,
    ) -> None:
        """``display_path``: the boundary's, or a memoised form of it."""
        self.workspace = workspace
        self.display_path = display_path or workspace.display_path
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], Module] = OrderedDict()
        self._disk: OrderedDict[Path, tuple[tuple[int, int], Module]] = OrderedDict()

    def get(self, path: Path | None, text: str) -> Module:
        display = self.display_path(path)
        key = (display, hashlib.sha256(text.encode("utf-8", "replace")).hexdigest())
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        found = load_module(path, display, text)
        with self._lock:
            self._entries[key] = found
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return found

    def file(self, path: Path) -> Module | None:
        """The module of a file: its open buffer if any, else its text on disk; None when
        the boundary refuses it or it cannot be read.

        A file on disk is read again only when its size or modification time changed.
        """
        if not self.workspace.contains(path):
            return None
        text = self.workspace.buffers(path)
        if text is not None:
            return self.get(path, text)
        stamp = self.workspace.stamp(path)
        if stamp is None:
            return None
        with self._lock:
            known = self._disk.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        text = self.workspace.read_text(path)
        if text is None:
            return None
        found = self.get(path, text)
        with self._lock:
            self._disk[path] = (stamp, found)
            while len(self._disk) > self._size:
                self._disk.popitem(last=False)
        return found
