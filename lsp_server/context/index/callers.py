"""Callers of a function and its related tests, found through the identifier index.

`CallerFinder.sites` takes the function enclosing a task's target and returns
the places that call it, best first. Candidates come from the `WordIndex`:
the files whose code contains the function's name, and in each its call sites
(``f(``, ``.f(``, ``@f``). Each site is then judged by the import map
(`StaticResolver`), on a worker thread:

* the site resolves to our function: kept, ranked first ("decided ours");
* it resolves to another definition, or its name (or receiver) is imported
  from a module outside the workspace, or it cannot be ours by shape (a plain
  ``f(`` for a method; ``x().f(`` for a module-level function): left out;
* otherwise undecided, kept and ranked: same module, then modules that import
  the defining module, then the rest.

Within a rank sites are ordered by path, line and column, so the same inputs
give the same answer. `caller_candidates` turns sites (or jedi's references,
the fallback while the index is being built) into pack pieces: callers first,
then related tests (sites in test files), each capped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lsp_server.context.index.words import Site, WordIndex, sites_in
from lsp_server.context.model import Definition
from lsp_server.context.pack.pieces import Candidate, Role
from lsp_server.context.pack.snippets import is_test_path, use_candidate
from lsp_server.context.source.chunker import Chunk, ChunkKind
from lsp_server.context.static.modules import Module, ModuleCache
from lsp_server.context.static.names import NameUse, local_types
from lsp_server.context.static.resolver import StaticResolver

logger = logging.getLogger(__name__)

MAX_CALLERS = 3
MAX_TESTS = 2
#: At most this many candidate files are examined (the defining module and its importers first).
MAX_FILES = 120

#: Functions parsed for their locals' types per query (``x = Cls(); x.f()``); the rest undecided.
MAX_TYPE_PARSES = 16

RANK_OURS = 0
RANK_SAME_MODULE = 1
RANK_IMPORTER = 2
RANK_OTHER = 3

#: The dotted receiver before ``.name`` at the end of a line's prefix.
_RECEIVER = re.compile(r"(super\(\)|[^\W\d]\w*(?:\s*\.\s*[^\W\d]\w*)*)\s*\.\s*$")


@dataclass(frozen=True, slots=True)
class CallSite:
    """A place that calls the function: 1-based line, 0-based column of the name."""

    path: Path
    display: str
    line: int
    column: int
    rank: int


def callee(target: Module, function: Chunk) -> tuple[Chunk, str] | None:
    """What callers call: the function itself, or for ``__init__``/``__new__`` its class
    (``Cls(...)``); None for other dunder methods (Python calls those implicitly)."""
    name = function.qualname.rsplit(".", 1)[-1]
    if name in ("__init__", "__new__") and function.parent is not None:
        owner = target.chunks.by_qualname(function.parent)
        if owner is not None and owner.kind is ChunkKind.CLASS:
            return owner, owner.qualname.rsplit(".", 1)[-1]
        return None
    if name.startswith("__") and name.endswith("__"):
        return None
    return function, name


def receiver(before: str) -> str:
    """The dotted expression before ``.name`` (``self``, ``a.b``, ``super()``); ``?`` if none."""
    match = _RECEIVER.search(before)
    if match is None or (match.start() > 0 and before[match.start() - 1] in ".)]}'\""):
        return "?"
    return re.sub(r"\s+", "", match.group(1))


class CallerFinder:
    """Call sites of workspace functions from the index, judged by the import map."""

    def __init__(self, words: WordIndex, resolver: StaticResolver, modules: ModuleCache) -> None:
        self.words = words
        self.resolver = resolver
        self.modules = modules

    def sites(self, target: Module, function: Chunk, skip: tuple[int, int]) -> list[CallSite]:
        """Call sites of ``function`` (a chunk of ``target``), best first; worker thread.

        Sites of ``target`` within lines ``skip`` (the task's own region) are left out.
        """
        found_callee = callee(target, function)
        if found_callee is None:
            return []
        function, name = found_callee
        own = self.words.key(target.path) if target.path is not None else None
        files = self._files(name)
        dotted = self.resolver.dotted_name(target)
        module_word = dotted.rsplit(".", 1)[-1] if dotted else None
        near = set(self.words.files_with(module_word)) if module_word else set()
        found: dict[Path, list[Site]] = {}
        for path in files:
            if path != own:
                sites = self.words.call_sites(path, name)
                if sites:
                    found[path] = sites
        ordered = sorted(found, key=lambda p: (p not in near, p))[:MAX_FILES]
        judge = _Judge(self.resolver, target, function, name, dotted)
        out: list[CallSite] = []
        homes: list[tuple[Module, list[Site]]] = []
        if own is not None and self.words.has(own):
            homes.append((target, self.words.call_sites(own, name)))
        else:  # not in the index (unsaved, outside the root, too large): scan the text itself
            homes.append((target, sites_in("\n".join(target.lines), name)))
        for path in ordered:
            home = self.modules.file(path)
            if home is not None:
                homes.append((home, found[path]))
        for home, sites in homes:
            for line, column, attribute in self._current(home, sites, name):
                if home is target and skip[0] <= line <= skip[1]:
                    continue
                rank = judge.rank(home, line, column, attribute)
                if rank is not None:
                    out.append(CallSite(home.path or Path(), home.display, line, column, rank))
        out.sort(key=lambda s: (s.rank, s.display, s.line, s.column))
        return out

    def _files(self, name: str) -> list[Path]:
        """Files mentioning ``name``, after bringing changed files up to date."""
        self.words.refresh()
        files = self.words.files_with(name)
        if not self.words.watched and self.words.refresh(files, check_mtime=True):
            files = self.words.files_with(name)
        return files

    def _current(self, home: Module, sites: list[Site], name: str) -> list[Site]:
        """The sites whose text still says ``name`` (the file may have changed since)."""
        out: list[Site] = []
        for line, column, attribute in sites:
            text = home.lines[line - 1] if 0 < line <= len(home.lines) else ""
            if text[column : column + len(name)] == name:
                out.append((line, column, attribute))
        if len(out) < len(sites) and home.path is not None:
            logger.debug("index of %s is stale; re-reading it at the next query", home.path)
            self.words.mark_dirty(home.path)
        return out


class _Judge:
    """Ranks one function's call sites (per query: caches local types per chunk)."""

    def __init__(
        self, resolver: StaticResolver, target: Module, function: Chunk, name: str, dotted: str
    ) -> None:
        self.resolver = resolver
        self.target = target
        self.function = function
        self.name = name
        self.dotted = dotted
        self.method = function.kind is ChunkKind.METHOD
        self._types: dict[tuple[str, int], dict[str, str]] = {}
        self._importers: dict[str, bool] = {}
        self._tops: dict[str, bool] = {}

    def ours(self, found: Definition) -> bool:
        f = self.function
        return (
            found.path is not None
            and self.resolver.modules.display_path(found.path) == self.target.display
            and f.start_line <= found.line <= f.end_line
        )

    def rank(self, home: Module, line: int, column: int, attribute: bool) -> int | None:
        """The site's rank, or None when it is not a call of our function."""
        if attribute:
            recv = receiver(home.lines[line - 1][:column])
            if recv == "?" and not self.method:
                return None  # `x().f(`: not a module-level function
            text = f"{recv}.{self.name}"
        elif self.method:
            return None  # a plain `f(` does not reach a method
        else:
            recv, text = "", self.name
        chunk = home.chunks.enclosing(line)
        owner = _class_of(chunk)
        head = recv.split(".", 1)[0] if recv else self.name
        types: dict[str, str] = {}
        if recv and head.isidentifier() and head not in home.facts.bound and chunk is not None:
            types = self._local_types(home, chunk, head)
        use = NameUse(text, line, column, attribute)
        placed = self.resolver.resolve_all(home, [use], owner, types).get((line, column))
        found = placed[0] if placed else None
        if found is not None:
            return RANK_OURS if self.ours(found) else None
        if head != "?" and self._foreign(home, head):
            return None
        if home.display == self.target.display:
            return RANK_SAME_MODULE
        return RANK_IMPORTER if self._imports_us(home) else RANK_OTHER

    def _local_types(self, home: Module, chunk: Chunk, head: str) -> dict[str, str]:
        """Evident classes of the chunk's local names; {} (without parsing) unless ``head``
        is annotated or assigned in it."""
        if re.search(rf"\b{re.escape(head)}\s*(?::|=(?!=))", chunk.source) is None:
            return {}
        key = (home.display, chunk.start_line)
        found = self._types.get(key)
        if found is None and len(self._types) >= MAX_TYPE_PARSES:
            return {}  # the site stays undecided
        if found is None:
            found = local_types(home.lines, chunk.start_line, chunk.end_line)
            self._types[key] = found
        return found

    def _foreign(self, home: Module, head: str) -> bool:
        """Whether top-level ``head`` of ``home`` is imported from outside the workspace."""
        for stmt in home.facts.imports:
            for imported, bound in stmt.names:
                if bound != head:
                    continue
                dotted = self.resolver.absolute(stmt.module or imported, home.path)
                if not dotted:
                    return False
                return self._outside(dotted.split(".", 1)[0])
        return False

    def _outside(self, top: str) -> bool:
        """Whether top-level package ``top`` is not the workspace's own (stdlib, installed)."""
        known = self._tops.get(top)
        if known is None:
            root = self.resolver.root
            local = self.resolver.module_file(top) is not None or (
                root is not None and any((base / top).exists() for base in (root, root / "src"))
            )
            known = not local
            self._tops[top] = known
        return known

    def _imports_us(self, home: Module) -> bool:
        """Whether ``home`` imports the defining module (or names from it)."""
        known = self._importers.get(home.display)
        if known is not None:
            return known
        found = False
        if self.dotted:
            for stmt in home.facts.imports:
                base = self.resolver.absolute(stmt.module, home.path) if stmt.module else ""
                names = [f"{base}.{i}" if base else i for i, _ in stmt.names]
                if base == self.dotted or self.dotted in names:
                    found = True
                    break
        self._importers[home.display] = found
        return found


def _class_of(chunk: Chunk | None) -> str | None:
    """The class a site sits in (a method's class, or the class body itself)."""
    if chunk is None:
        return None
    if chunk.kind is ChunkKind.CLASS:
        return chunk.qualname
    return chunk.parent if chunk.kind is ChunkKind.METHOD else None


def caller_candidates(
    places: Iterable[tuple[Path, int]],
    name: str,
    home: Callable[[Path], Module | None],
    display: Callable[[Path], str],
) -> list[Candidate]:
    """Pieces for call sites, in the order given: callers, then related tests, each capped."""
    callers: list[Candidate] = []
    tests: list[Candidate] = []
    for path, line in places:
        test = is_test_path(display(path))
        bucket = tests if test else callers
        if len(bucket) >= (MAX_TESTS if test else MAX_CALLERS):
            if len(callers) >= MAX_CALLERS and len(tests) >= MAX_TESTS:
                break
            continue
        module = home(path)
        if module is None:
            continue
        role = Role.TEST if test else Role.CALLER
        candidate = use_candidate(module.chunks, module.lines, line, role, name)
        if candidate.piece.label not in {c.piece.label for c in bucket}:
            bucket.append(candidate)
    return callers + tests


def def_name(source: str, chunk: Chunk) -> tuple[int, int]:
    """Where the function's name is in its ``def`` line (decorators skipped)."""
    name = chunk.qualname.rsplit(".", 1)[-1]
    lines = source.split("\n")
    for line in range(chunk.start_line, min(chunk.end_line, len(lines)) + 1):
        text = lines[line - 1]
        at = text.find(f"def {name}")
        if at >= 0:
            return line, at + 4
    return chunk.end_line, 0
