"""What a hover worked out about one name, kept for the next hover on it: a cache hit
without jedi or the pack.

Hovering the same name again (people do, and the editor re-asks when the mouse
rests) would repeat the static analysis (a round trip to jedi's child process) and
the pack's assembly only to compute the same answer-cache keys. `PreparedHovers`
keeps the hover's `SymbolInfo` and `ContextPack` under the document's text, the
hovered name's span and the settings in force; an entry is used only while every
file the pack quotes (and the symbol's definition file) has the size and mtime it
had; it is forgotten when the editor reports a change to its document or to any of
those files (`forget`: the rule of jedi's own result cache, `SymbolIndex`). The
request and its cache keys are rebuilt from the kept parts each time, so a kept
entry can never produce a key the slow path would not.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lsp_server.context.model import SymbolInfo
from lsp_server.context.pack.pieces import ContextPack
from lsp_server.settings import Settings
from lsp_server.workspace import WorkspaceBoundary
from lsp_server.workspace.files import Refused

logger = logging.getLogger(__name__)

#: Hovers kept (a few hundred names is a working session).
KEPT = 256

Stamp = tuple[tuple[str, int, int], ...]
MemoKey = tuple[Path | None, int, int, int, int, int]


def name_span(line: str, column: int) -> tuple[int, int]:
    """The identifier at (or just before) ``column`` of ``line``, in code points, as
    [start, end); an empty span at ``column`` where there is none."""
    at = column
    if not _word(line, at) and _word(line, at - 1):
        at -= 1  # the cursor right after a name, as editors place it
    if not _word(line, at):
        return column, column
    start, end = at, at + 1
    while _word(line, start - 1):
        start -= 1
    while _word(line, end):
        end += 1
    return start, end


def _word(line: str, i: int) -> bool:
    return 0 <= i < len(line) and (line[i].isalnum() or line[i] == "_")


def line_of(text: str, line: int) -> str:
    """Line ``line`` (0-based) of ``text`` without its end; "" past the end."""
    parts = text.split("\n", line + 1)
    return parts[line].rstrip("\r") if line < len(parts) else ""


def pack_file(workspace: WorkspaceBoundary, label_path: str) -> Path | None:
    """The file a pack piece's path names, if the workspace boundary lets it through."""
    if Path(label_path).is_absolute():
        return Path(label_path)
    try:
        return workspace.resolve_relative(label_path)
    except Refused:
        return None


@dataclass(frozen=True, slots=True)
class Prepared:
    """One hover's static facts and pack, and what they were read from."""

    settings: Settings
    symbol: SymbolInfo
    pack: ContextPack
    stamp: Stamp  # the quoted files (resolved), read once when the entry was kept
    files: frozenset[str]  # resolved: the document and the stamped files


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path)


def stamp(paths: Iterable[str]) -> Stamp:
    """(path, size, mtime) of each file; a missing file counts with size -1."""
    out = []
    for path in sorted(set(paths)):
        try:
            st = os.stat(path)
            out.append((path, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((path, -1, 0))
    return tuple(out)


class PreparedHovers:
    """Kept hovers by (document text, line, name span) (see the module docstring)."""

    def __init__(self, resolve: Callable[[str], Path | None], kept: int = KEPT) -> None:
        """``resolve``: the file a pack piece's label path names (None: not a file)."""
        self._resolve = resolve
        self._kept = kept
        self._entries: OrderedDict[MemoKey, Prepared] = OrderedDict()

    @staticmethod
    def key(path: Path | None, text: str, line: int, column: int) -> MemoKey:
        start, end = name_span(line_of(text, line), column)
        return (path, len(text), hash(text), line, start, end)

    def get(self, key: MemoKey, settings: Settings) -> Prepared | None:
        """The kept hover for ``key`` if nothing it was read from changed since."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.settings is not settings or stamp(p for p, _, _ in entry.stamp) != entry.stamp:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: MemoKey, settings: Settings, symbol: SymbolInfo, pack: ContextPack) -> None:
        """Keep a hover's facts and pack."""
        quoted = stamp(_resolved(p) for p in self._files(symbol, pack))
        own = {_resolved(key[0])} if key[0] is not None else set()
        files = frozenset({p for p, _, _ in quoted} | own)
        self._entries[key] = Prepared(settings, symbol, pack, quoted, files)
        self._entries.move_to_end(key)
        while len(self._entries) > self._kept:
            self._entries.popitem(last=False)

    def forget(self, path: Path | None = None) -> None:
        """``path`` changed (None: anything may have): forget what was read from it."""
        if path is None:
            self._entries.clear()
            return
        changed = _resolved(path)
        for key in [k for k, e in self._entries.items() if changed in e.files]:
            del self._entries[key]

    def _files(self, symbol: SymbolInfo, pack: ContextPack) -> list[Path]:
        files = [symbol.definition_path] if symbol.definition_path else []
        for piece in pack.pieces:
            if piece.path:
                resolved = self._resolve(piece.path)
                if resolved is not None:
                    files.append(resolved)
        return files
