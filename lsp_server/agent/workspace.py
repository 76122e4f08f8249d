"""The workspace as agent tools see it: model-written paths checked, then the boundary asked.

A tool never opens a path the model wrote without `Workspace.resolve`, which
refuses empty paths, NUL bytes, absolute paths, ``~`` and ``..`` components,
then asks the `WorkspaceBoundary` (the one owner of the rules: symlinks out of
the root, secrets, ignored and skipped files; in single-file mode every file
but the one open). Refusals are `ToolError`s: a type, a message and a hint the
model can act on (a missing file comes back with the nearest existing paths).

Text comes from the boundary: the editor's open buffers first, then the disk
(a regular file, capped), decoded like the chunker does (PEP 263 cookie or
UTF-8, newlines normalised), so line numbers match what the editor shows.
Without a root, tools run in a private empty directory (`root`): no tool
reaches the server's working directory.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_server.workspace import MAX_READ_BYTES, Refused, WorkspaceBoundary

logger = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")
#: Files larger than this are refused by `Workspace.read`.
MAX_FILE_BYTES = MAX_READ_BYTES
#: At most this many files are walked when listing or suggesting paths.
MAX_WALK_FILES = 20_000
#: What a boundary refusal becomes for the model.
_REFUSALS = {
    "invalid": "invalid_path",
    "outside": "outside_workspace",
    "secret": "forbidden",
    "ignored": "forbidden",
    "skipped": "forbidden",
    "not_a_file": "not_a_file",
    "too_large": "too_large",
    "unreadable": "unreadable",
}
_HINTS = {
    "outside_workspace": "Only files inside the workspace can be used.",
    "forbidden": "Read source files instead.",
    "too_large": "Use read_symbol or read_file with a line range instead.",
}


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


def tool_error(refused: Refused) -> ToolError:
    """A boundary refusal as the model sees it."""
    kind = _REFUSALS.get(refused.kind, "unreadable")
    message = refused.message[:1].upper() + refused.message[1:] + "."
    return ToolError(kind, message, hint=_HINTS.get(kind))


class Workspace:
    """The agent's view of one `WorkspaceBoundary`: resolves, reads and lists what it allows."""

    def __init__(self, boundary: WorkspaceBoundary) -> None:
        self.boundary = boundary
        self._scratch: Path | None = None
        if boundary.real_root is not None:
            self.root = boundary.real_root
        else:  # single-file mode: tools run somewhere that holds nothing
            self._scratch = self.root = Path(tempfile.mkdtemp(prefix="llm-lsp-single-file-"))

    def close(self) -> None:
        """Remove the private directory of single-file mode."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

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
            inside = self.boundary.relative(Path(rel)) if pure.is_absolute() else None
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
        try:
            return self.boundary.resolve_relative(pure.as_posix())
        except Refused as refused:
            raise tool_error(refused) from None

    def relative(self, path: Path) -> str:
        """``path`` (inside the boundary) as the model names it."""
        return self.boundary.display_path(path)

    # -- reading -----------------------------------------------------------------

    async def read(self, rel: str, *, max_bytes: int = MAX_FILE_BYTES) -> tuple[str, str]:
        """(workspace-relative path, text) of ``rel``; buffers win over the disk.

        Raises `ToolError` for refused, missing, non-file and oversized paths.
        """
        path = self.resolve(rel)
        shown = self.relative(path)
        try:
            text = await asyncio.to_thread(self.boundary.read, path, max_bytes=max_bytes)
        except Refused as refused:
            if refused.kind != "missing":
                error = tool_error(refused)
                if error.type == "not_a_file" and path.is_dir():
                    error.hint = f"Use list_files with the pattern '{shown}/*' to see its files."
                raise error from None
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
            ) from None
        return shown, text

    # -- listing -----------------------------------------------------------------

    def iter_files(self, limit: int = MAX_WALK_FILES) -> Iterator[str]:
        """Workspace-relative paths of the files the boundary lets through; blocking."""
        for path in self.boundary.iter_files(limit=limit):
            yield self.relative(path)

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
