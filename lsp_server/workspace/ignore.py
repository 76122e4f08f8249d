"""Per-directory rules of one workspace root: ignore files (``.gitignore``, ``.llmlspignore``)
and virtualenvs.

Each directory may hold a ``.gitignore`` and a ``.llmlspignore`` (gitignore
syntax, for code that must never leave the machine); both are parsed with
`pathspec` (``GitIgnoreSpec``, git's own semantics) relative to their
directory. As in git, the deepest file with a matching pattern decides (a
``!`` pattern re-includes), and nothing below an ignored directory can be
re-included. The two kinds are separate hierarchies: a path either ignores is
out, so a ``!`` in a ``.gitignore`` never brings back what ``.llmlspignore``
keeps in. A directory holding ``pyvenv.cfg`` is a virtualenv and skipped.

What is known about a directory is kept for `TTL` seconds, so judging many
files of one directory costs a few ``stat`` calls, and an edited ignore file
counts within seconds. The ignore files themselves are read through
`files.read_capped` (regular files inside the root only, at most `MAX_IGNORE_BYTES`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from lsp_server.workspace.files import Refused, read_capped
from lsp_server.workspace.rules import VENV_MARKER

logger = logging.getLogger(__name__)

IGNORE_FILES = (".gitignore", ".llmlspignore")
#: Larger ignore files are not read (their rules do not apply).
MAX_IGNORE_BYTES = 256_000
#: Seconds what is known about a directory is trusted.
TTL = 2.0
#: Directories remembered at most (then the memory starts over).
MAX_DIRS = 50_000


@dataclass(frozen=True, slots=True)
class DirRules:
    """What one directory (relative to the root, ``""`` for the root) contributes."""

    venv: bool
    specs: tuple[pathspec.GitIgnoreSpec | None, ...]  # one per name in `IGNORE_FILES`


class IgnoreRules:
    """The ignore files and virtualenvs under one resolved root, read lazily and cached."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._dirs: dict[str, tuple[float, DirRules]] = {}

    def forget(self) -> None:
        """Drop what is known (an ignore file changed)."""
        with self._lock:
            self._dirs.clear()

    def rules(self, rel_dir: str) -> DirRules:
        """The rules of directory ``rel_dir`` (POSIX, relative to the root; ``""`` the root)."""
        now = time.monotonic()
        with self._lock:
            known = self._dirs.get(rel_dir)
        if known is not None and now - known[0] < TTL:
            return known[1]
        found = self._load(rel_dir)
        with self._lock:
            if len(self._dirs) >= MAX_DIRS:
                self._dirs.clear()
            self._dirs[rel_dir] = (now, found)
        return found

    def _load(self, rel_dir: str) -> DirRules:
        directory = self.root / rel_dir if rel_dir else self.root
        venv = (directory / VENV_MARKER).exists() if rel_dir else False
        specs: list[pathspec.GitIgnoreSpec | None] = []
        for name in IGNORE_FILES:
            specs.append(None)
            path = directory / name
            if not path.exists():
                continue
            shown = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if path.resolve().parent != directory.resolve():
                    continue  # a symlinked ignore file is not ours to trust
                data, _ = read_capped(path.resolve(), MAX_IGNORE_BYTES, shown)
            except (Refused, OSError, RuntimeError) as exc:
                logger.info("ignore file %s not used: %s", shown, exc)
                continue
            lines = data.decode("utf-8", errors="replace").splitlines()
            try:
                specs[-1] = pathspec.GitIgnoreSpec.from_lines(lines)
            except (ValueError, TypeError) as exc:  # a malformed pattern: the file is skipped
                logger.info("ignore file %s not used: %s", shown, exc)
        return DirRules(venv, tuple(specs))

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether ``rel`` (POSIX, relative to the root) is ignored, or a virtualenv.

        Checks each ancestor directory first: nothing inside an ignored one counts.
        """
        parts = PurePosixPath(rel).parts
        for depth in range(1, len(parts)):
            if self._ignored_here(parts, depth, is_dir=True):
                return True
        return self._ignored_here(parts, len(parts), is_dir=is_dir)

    def _ignored_here(self, parts: tuple[str, ...], depth: int, *, is_dir: bool) -> bool:
        """Whether ``parts[:depth]`` is ignored by the ignore files above it (or a venv)."""
        if is_dir and self.rules("/".join(parts[:depth])).venv:
            return True
        levels = [self.rules("/".join(parts[:level])) for level in range(depth)]
        return ignored_by(levels, parts[:depth], is_dir=is_dir)


def ignored_by(levels: Sequence[DirRules], parts: Sequence[str], *, is_dir: bool) -> bool:
    """Whether the path of ``parts`` is ignored by the rules of its ancestor directories
    (``levels``: the root's first, its parent's last; as long as ``parts``)."""
    if not any(spec is not None for rules in levels for spec in rules.specs):
        return False
    for kind in range(len(IGNORE_FILES)):  # each kind of file is its own hierarchy
        verdict: bool | None = None
        for level, rules in enumerate(levels):  # the root's file first, the deepest last
            spec = rules.specs[kind]
            if spec is None:
                continue
            below = "/".join(parts[level:]) + ("/" if is_dir else "")
            here = spec.check_file(below).include
            if here is not None:
                verdict = here
        if verdict:
            return True
    return False
