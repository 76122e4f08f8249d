"""Naming-convention types for names the code gives no evident value (``app_config.get_model``).

Unannotated parameters and loop variables are the largest share of what the
import map cannot place: jedi finds their values by searching call sites,
which takes seconds on a large project. Their names usually say the class,
though: ``app_config`` holds an ``AppConfig``, ``stream`` a ``LazyStream``,
``formset`` one of the ``…FormSet`` classes. `ClassIndex` maps the
workspace's class names to their files (one regex pass over the files, built
on first use); `convention_class` takes the classes whose name is the
variable's (``_`` removed, case ignored) or ends with it at a word boundary,
and accepts a guess only when it is safe (the files are the `WorkspaceBoundary`'s
walk, read through it: open buffers first, refused files never):

* a class of that name the module binds (imported or defined) wins, when it
  has the attribute used;
* otherwise every workspace candidate that has the attribute (through its
  bases) must give the same definition: ``formset.forms`` is
  ``BaseFormSet.forms`` whichever formset it is, while ``request.method``,
  assigned in two request classes, stays unresolved;
* capitalised names (a class passed in), names shorter than `MIN_LENGTH`
  and names matching more than `MAX_CANDIDATES` classes are not guessed.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from lsp_server.context.index.words import MAX_FILE_BYTES, MAX_FILES
from lsp_server.context.model import Definition
from lsp_server.context.source.chunker import ChunkKind
from lsp_server.context.static.modules import Module
from lsp_server.context.static.protocol import Resolver
from lsp_server.workspace import WorkspaceBoundary

logger = logging.getLogger(__name__)

#: Variable names shorter than this (``qs``, ``db``) are not guessed.
MIN_LENGTH = 3
#: A name matching more classes than this is too generic to guess from.
MAX_CANDIDATES = 6
#: How many variable names' candidates are remembered.
MAX_MEMO = 4096
_CLASS = re.compile(r"^[ \t]*class[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


class ClassIndex:
    """Class name → the workspace files defining a class of that name (built once, lazily)."""

    def __init__(self, workspace: WorkspaceBoundary) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        self._names: dict[str, tuple[Path, ...]] | None = None
        self._matching: dict[str, list[str] | None] = {}

    def names(self) -> dict[str, tuple[Path, ...]]:
        """The index, scanning the workspace on first call (worker thread)."""
        with self._lock:
            if self._names is None:
                self._names = self._scan()
            return self._names

    def _scan(self) -> dict[str, tuple[Path, ...]]:
        found: dict[str, list[Path]] = {}
        if self.workspace.root is None:
            return {}
        count = 0
        for path in self.workspace.iter_python_files(limit=MAX_FILES):
            count += 1
            text = self.workspace.read_text(path, max_bytes=MAX_FILE_BYTES)
            for cls in set(_CLASS.findall(text or "")):
                found.setdefault(cls, []).append(path)
        logger.debug("class index: %d names in %d files", len(found), count)
        return {name: tuple(paths) for name, paths in found.items()}

    def matching(self, variable: str) -> list[str] | None:
        """Class names ``variable`` suggests (sorted); None when too many to guess from."""
        key = variable.strip("_").replace("_", "").lower()
        if len(key) < MIN_LENGTH:
            return []
        if key in self._matching:
            return self._matching[key]
        out = [name for name in self.names() if _suggests(key, name)]
        found = sorted(out) if len(out) <= MAX_CANDIDATES else None
        with self._lock:
            if len(self._matching) >= MAX_MEMO:
                self._matching.clear()
            self._matching[key] = found
        return found


def _suggests(key: str, name: str) -> bool:
    """``lazystream`` suggests ``LazyStream`` and ``Stream``, not ``Downstream``."""
    lower = name.lower()
    if lower == key:
        return True
    if not lower.endswith(key):
        return False
    start = len(name) - len(key)
    return name[start].isupper() and not name[start - 1].isupper()


def convention_class(
    resolver: Resolver, index: ClassIndex, module: Module, variable: str, attr: str
) -> tuple[Module, str] | None:
    """The class ``variable`` evidently holds by its name, judged by the ``attr`` used on it."""
    key = variable.strip("_").replace("_", "").lower()
    if len(key) < MIN_LENGTH or not variable.strip("_")[:1].islower():
        return None  # short, or capitalised: a parameter holding a class, not an instance
    for bound in sorted(module.facts.bound):
        if bound.lower() != key:
            continue
        cls = resolver.class_of(module, bound)
        if cls is not None and resolver.member(cls[0], cls[1], attr) is not None:
            return cls
    names = index.matching(variable)
    if not names:
        return None
    chosen: tuple[Module, str] | None = None
    place: tuple[Path | None, int] | None = None
    for name in names:
        for cls in _classes(resolver, index, name):
            found: Definition | None = resolver.member(cls[0], cls[1], attr)
            if found is None:
                continue
            if place is not None and place != (found.path, found.line):
                return None  # candidates disagree: not guessed
            place = (found.path, found.line)
            chosen = chosen or cls
    return chosen


def _classes(resolver: Resolver, index: ClassIndex, name: str) -> list[tuple[Module, str]]:
    """The (module, qualname) of each workspace class called ``name``."""
    out: list[tuple[Module, str]] = []
    for path in index.names().get(name, ()):
        home = resolver.modules.file(path)
        if home is None:
            continue
        chunk = home.chunks.by_qualname(name)
        if chunk is not None and chunk.kind is ChunkKind.CLASS:
            out.append((home, name))
            continue
        for chunk in home.chunks.chunks:  # a nested class: `Outer.Name`
            if chunk.kind is ChunkKind.CLASS and chunk.qualname.endswith(f".{name}"):
                out.append((home, chunk.qualname))
    return out
