"""The workspace as agent tools see it: every path confined to one root directory.

A tool never opens a path the model wrote without `Workspace.resolve`, which
refuses absolute paths, ``..`` components, NUL bytes, symlinks that lead out of
the root, and a few files that typically hold secrets (``.git/``, ``.env*``,
``*.pem``, ``*.key``, ``.netrc``, ``.pypirc``). Refusals are `ToolError`s: a
type, a message and a hint the model can act on (a missing file comes back with
the nearest existing paths).

Text is read from the editor's open buffers first (a cheap callable the engine
supplies; it must not touch the disk), then from disk in a worker thread,
decoded like the chunker does (PEP 263 cookie or UTF-8, newlines normalised), so
line numbers match what the editor shows.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_server.context.source.chunker import decode_source

logger = logging.getLogger(__name__)

#: Directories never listed, searched or copied.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".eggs",
    }
)
_SECRET_DIRS = frozenset({".git", ".hg", ".svn"})
_SECRET_FILES = (".env", ".env.*", "*.pem", "*.key", ".netrc", ".pypirc", "id_rsa*", "id_ed25519*")
_DRIVE = re.compile(r"^[A-Za-z]:")
#: Files larger than this are refused by `Workspace.read`.
MAX_FILE_BYTES = 2_000_000
#: At most this many files are walked when listing or suggesting paths.
MAX_WALK_FILES = 20_000


class ToolError(Exception):
    """A failure the model can act on; becomes ``{"error": {...}}`` in the tool result."""

    def __init__(
        self,
        type_: str,
        message: str,
        *,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable error envelope sent back to the model."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        error.update(self.details)
        return {"error": error}


BufferReader = Callable[[Path], str | None]


class Workspace:
    """One workspace root; resolves, reads and lists paths strictly inside it."""

    def __init__(self, root: Path, read_text: BufferReader | None = None) -> None:
        self.root = root.resolve()
        self._buffers = read_text

    # -- confinement -------------------------------------------------------------

    def resolve(self, rel: str) -> Path:
        """The real path of workspace-relative ``rel``; `ToolError` if it is not allowed."""
        if not isinstance(rel, str) or not rel.strip():
            raise ToolError(
                "invalid_path", "The path is empty.", hint="Give a path such as 'pkg/module.py'."
            )
        if "\x00" in rel:
            raise ToolError("invalid_path", "The path contains a NUL byte.")
        pure = PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or rel.startswith("~") or _DRIVE.match(rel):
            hint = "Use a path relative to the workspace root, such as 'pkg/module.py'."
            inside = self._relative_or_none(Path(rel))
            if inside is not None:
                hint = f"Use the workspace-relative path '{inside}'."
            raise ToolError(
                "outside_workspace", f"Absolute paths are not allowed: {rel}", hint=hint
            )
        if ".." in pure.parts:
            raise ToolError(
                "outside_workspace",
                f"'..' is not allowed in paths: {rel}",
                hint="Every path must stay inside the workspace root.",
            )
        resolved = (self.root / pure).resolve()
        relative = self._relative_or_none(resolved)
        if relative is None:
            raise ToolError(
                "outside_workspace",
                f"{rel} leads outside the workspace (through a symbolic link).",
                hint="Only files inside the workspace can be used.",
            )
        if self._is_private(relative):
            raise ToolError(
                "forbidden",
                f"{relative} may hold secrets or repository internals and is not readable.",
                hint="Read source files instead.",
            )
        return resolved

    def relative(self, path: Path) -> str:
        """``path`` (inside the root) as a POSIX workspace-relative string."""
        rel = self._relative_or_none(path)
        return rel if rel is not None else path.name

    def _relative_or_none(self, path: Path) -> str | None:
        try:
            rel = path.resolve().relative_to(self.root) if path.is_absolute() else None
        except (ValueError, OSError):
            return None
        if rel is None:
            return None
        return rel.as_posix() or "."

    @staticmethod
    def _is_private(relative: str) -> bool:
        parts = PurePosixPath(relative).parts
        if any(part in _SECRET_DIRS for part in parts):
            return True
        return bool(parts) and any(fnmatch.fnmatchcase(parts[-1], pat) for pat in _SECRET_FILES)

    # -- reading -----------------------------------------------------------------

    def buffer_text(self, path: Path) -> str | None:
        """The open editor buffer for resolved ``path``, if the engine gave a reader."""
        return self._buffers(path) if self._buffers is not None else None

    async def read(self, rel: str, *, max_bytes: int = MAX_FILE_BYTES) -> tuple[str, str]:
        """(workspace-relative path, text) of ``rel``; buffers win over the disk.

        Raises `ToolError` for refused, missing, non-file and oversized paths.
        """
        path = self.resolve(rel)
        shown = self.relative(path)
        buffered = self.buffer_text(path)
        if buffered is not None:
            return shown, buffered
        data = await asyncio.to_thread(self._read_bytes, path, shown, max_bytes)
        if data is None:
            suggestions = await self.nearest(rel)
            hint = (
                "Did you mean one of: " + ", ".join(suggestions) + "?"
                if suggestions
                else "Use list_files to see which files exist."
            )
            raise ToolError(
                "not_found",
                f"No file named {rel} in the workspace.",
                hint=hint,
                details={"nearest": suggestions},
            )
        return shown, decode_source(data)

    @staticmethod
    def _read_bytes(path: Path, shown: str, max_bytes: int) -> bytes | None:
        if path.is_dir():
            raise ToolError(
                "not_a_file",
                f"{shown} is a directory.",
                hint=f"Use list_files with the pattern '{shown}/*' to see its files.",
            )
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ToolError("unreadable", f"{shown} cannot be read: {exc.strerror}") from exc
        if size > max_bytes:
            raise ToolError(
                "too_large",
                f"{shown} has {size} bytes; the limit is {max_bytes}.",
                hint="Use read_symbol or read_file with a line range instead.",
            )
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ToolError("unreadable", f"{shown} cannot be read: {exc.strerror}") from exc

    # -- listing -----------------------------------------------------------------

    def iter_files(self, limit: int = MAX_WALK_FILES) -> Iterator[str]:
        """Workspace-relative paths of regular files, skipping `SKIP_DIRS`; blocking.

        Symbolic links are not followed into directories; a symlinked file whose
        target lies outside the root is left out.
        """
        count = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            base = Path(dirpath)
            for name in sorted(filenames):
                full = base / name
                if full.is_symlink() and self._relative_or_none(full) is None:
                    continue
                rel = full.relative_to(self.root).as_posix()
                if self._is_private(rel):
                    continue
                yield rel
                count += 1
                if count >= limit:
                    return

    async def glob(self, pattern: str, *, limit: int = 200) -> tuple[list[str], bool]:
        """Files matching ``pattern`` and whether the list was cut at ``limit``.

        ``*`` and ``?`` stay within one path segment, ``**`` spans segments; a
        pattern without ``/`` matches file names at any depth (``*.py``).
        """
        if "\x00" in pattern or ".." in PurePosixPath(pattern).parts:
            raise ToolError("invalid_pattern", "Patterns may not contain '..' or NUL bytes.")
        if pattern.startswith(("/", "~")) or _DRIVE.match(pattern):
            raise ToolError(
                "outside_workspace",
                "Patterns are relative to the workspace root.",
                hint="Try '**/*.py'.",
            )
        regex = glob_to_regex(pattern if "/" in pattern else "**/" + pattern)

        def collect() -> tuple[list[str], bool]:
            found: list[str] = []
            for rel in self.iter_files():
                if regex.fullmatch(rel):
                    if len(found) >= limit:
                        return found, True
                    found.append(rel)
            return found, False

        return await asyncio.to_thread(collect)

    async def nearest(self, rel: str, *, limit: int = 5) -> list[str]:
        """Existing files whose path is closest to ``rel`` (difflib), at most ``limit``."""

        def compute() -> list[str]:
            files = list(self.iter_files())
            target = rel.replace("\\", "/").removeprefix("./")
            name = PurePosixPath(target).name
            same_name = [f for f in files if PurePosixPath(f).name == name]
            close = difflib.get_close_matches(target, files, n=limit, cutoff=0.5)
            by_name = difflib.get_close_matches(
                name, [PurePosixPath(f).name for f in files], n=limit, cutoff=0.6
            )
            named = [f for f in files if PurePosixPath(f).name in by_name]
            return list(dict.fromkeys([*same_name, *close, *named]))[:limit]

        return await asyncio.to_thread(compute)


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: ``**/`` any directories, ``*``/``?`` within a segment."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
