"""Assemble the code a model sees for a task, under an exact token budget.

A task is a hover on a symbol, or explaining or fixing a range of lines (a
diagnostic's range, say). `Assembler.assemble` gathers, highest priority
first: the target chunk in full (else the lines around the cursor that fit);
the definitions of the names the target uses, in full when small (at most
`FULL_SHARE` of the room left) else as a skeleton; the enclosing class
skeleton; the module's imports in use; snippets of the callers of the
enclosing function; related tests (callers in test files). The names come from
`names.used_names`; their definitions from jedi, in one batched job on its
worker thread under a deadline (names not resolved by then are left out).
`pieces.build_pack` then fits the pieces to the budget and renders them in a
stable order. Every piece is labelled ``path:start-end``; same inputs give a
byte-identical pack.

Callers come from the workspace's identifier index (`callers.CallerFinder`)
once `warm` has built it in the background, from jedi before that.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from lsp_server.context.index.callers import (
    MAX_CALLERS,
    MAX_TESTS,
    CallerFinder,
    callee,
    caller_candidates,
    def_name,
)
from lsp_server.context.index.warmup import log_rescan, memo_display, warm_one
from lsp_server.context.index.words import WordIndex
from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.model import Definition
from lsp_server.context.pack.grounding import Grounding, ground, hovered_use, line_first
from lsp_server.context.pack.pieces import (
    Candidate,
    ContextPack,
    ContextPiece,
    Role,
    build_pack,
    fit,
)
from lsp_server.context.pack.snippets import (
    class_and_imports,
    definition_candidate,
    target_candidate,
)
from lsp_server.context.retrieval.embeddings import Hit
from lsp_server.context.source.chunker import Chunk
from lsp_server.context.static.modules import Module, ModuleCache
from lsp_server.context.static.names import NameUse, used_names
from lsp_server.context.static.resolver import StaticResolver
from lsp_server.context.tokens import TokenCounter
from lsp_server.workspace import Refused

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_CALLERS",
    "MAX_TESTS",
    "Assembler",
    "ContextPack",
    "ContextPiece",
    "ContextTask",
    "TaskKind",
]

#: A definition goes in full only if it takes at most this share of the room left.
FULL_SHARE = 0.25
#: The target is cut to the lines around the cursor beyond this share of the budget.
TARGET_SHARE = 0.6
MAX_NAMES = 40
#: Below this many seconds left, jedi is not asked for callers at all.
MIN_CALLERS_TIME = 0.05
#: Without file watching, the workspace is walked for new files at most this often.
RESCAN_SECONDS = 60.0


class TaskKind(StrEnum):
    HOVER = "hover"
    EXPLAIN = "explain"
    FIX = "fix"


@dataclass(frozen=True, slots=True)
class ContextTask:
    """What the pack is for: 1-based inclusive lines of ``source`` (the editor's buffer)."""

    kind: TaskKind
    source: str
    path: Path | None
    start_line: int
    end_line: int
    focus: Definition | None = None  # a hover's symbol: its definition goes first
    name: str = ""  # a hover's symbol as the user sees it
    column: int | None = None  # a hover's 0-based column (code points)
    callers: bool = True  # look up callers and related tests (project-wide, slower)
    infer: bool = True  # ask jedi about the names the import map cannot place (slower)
    guess: bool = True  # guess unannotated names' classes by convention (parses candidates)


class _Static(NamedTuple):
    """What `Assembler._static` found on its worker thread."""

    target: Module
    first: Candidate
    uses: list[NameUse]
    static: dict[tuple[int, int], list[Definition]]
    lead: Grounding | None


class Assembler:
    """Builds context packs for one workspace from a `SymbolIndex` (and its buffers)."""

    def __init__(self, symbols: SymbolIndex, *, modules: int = 4096) -> None:
        self.symbols = symbols
        self.workspace = symbols.workspace
        self.display_path = memo_display(self.workspace.display_path)
        self.modules = ModuleCache(self.workspace, modules, display_path=self.display_path)
        self.resolver = StaticResolver(symbols.root, self.modules)
        self.words = WordIndex(self.workspace)
        self.finder = CallerFinder(self.words, self.resolver, self.modules)
        self._cache_size = modules
        self._rescan: asyncio.Task[int] | None = None
        self._scanned_at = 0.0

    async def warm(
        self, paths: Iterable[Path], idle: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        """Index ``paths`` (the workspace's files) and chunk them ahead of requests.

        One worker-thread job per file reads it once (its buffer if open), adds
        its identifiers to the word index and chunks it (while the module cache
        has room), yielding to the event loop in between, and first to ``idle``
        (which returns when no request is being answered: chunking on a thread
        competes with a hover for the interpreter). Afterwards callers come from
        the index. Returns how many files were indexed.
        """
        indexed = 0
        for i, path in enumerate(paths):
            if idle is not None:
                await idle()
            chunk = i < self._cache_size
            indexed += await asyncio.to_thread(warm_one, self.words, self.modules, path, chunk)
        self.words.mark_ready()
        # The class-name index of naming-convention guesses (~0.25 s on Django), once.
        await asyncio.to_thread(self.resolver.classes.names)
        self._scanned_at = time.monotonic()
        return indexed

    async def warm_workspace(self, idle: Callable[[], Awaitable[None]] | None = None) -> int:
        """Find the workspace's Python files and `warm` them (cancel it to stop); logs the time."""
        started = time.monotonic()
        paths = await asyncio.to_thread(self.words.discover)
        indexed = await self.warm(paths, idle)
        files, words, sites = self.words.stats()
        logger.info(
            "indexed %d of %d workspace files in %.1f s (%d identifiers, %d call sites)",
            indexed,
            len(paths),
            time.monotonic() - started,
            words,
            sites,
        )
        return files

    def document_changed(self, path: Path | None) -> None:
        """A buffer or file changed, appeared or vanished: re-index it at the next query."""
        self.words.mark_dirty(path)

    def close(self) -> None:
        """Stop background work (a rescan of the workspace)."""
        if self._rescan is not None:
            self._rescan.cancel()

    async def module(self, path: Path | None, text: str) -> Module:
        """The chunked module for ``text`` (cached by content; chunked off the loop)."""
        return await asyncio.to_thread(self.modules.get, path, text)

    async def prepare_line(self, path: Path | None, text: str, line: int) -> None:
        """Chunk ``text`` and the modules its 1-based ``line``'s names come from, as the
        import map places them (cached): a hover's pack reads them next, and this runs
        while jedi works out the hovered name in its own process."""
        await asyncio.to_thread(self._prepare_line, path, text, line)

    def _prepare_line(self, path: Path | None, text: str, line: int) -> None:
        target = self.modules.get(path, text)
        uses = used_names(target.lines, line, line, target.facts.bound, limit=MAX_NAMES)
        owner, types = target.scope(line, (line, line))
        self.resolver.resolve_all(target, uses, owner, types, guess=False)

    def _static(self, task: ContextTask, counter: TokenCounter, budget: int) -> _Static:
        """Worker-thread part: chunk the target, find its names, resolve what imports can.

        The target keeps at most `TARGET_SHARE` of the budget (the lines around
        the cursor or range start), leaving room for what it uses. A hover's
        target is cut after its symbol's definition is placed (`grounding`).
        """
        target = self.modules.get(task.path, task.source)
        first = target_candidate(target.chunks, target.lines, task.start_line, task.end_line)
        lead: Grounding | None = None
        if task.kind is TaskKind.HOVER:
            home = functools.partial(self._home, task, target)
            lead = ground(target, first, task.focus, task.name, home, counter, budget)
            first = lead.target
        else:
            cut = fit(first, counter, int(budget * TARGET_SHARE))
            if cut is not None and cut is not first.piece:
                first = replace(first, piece=cut)
        region = (first.piece.start_line, first.piece.end_line)
        uses = used_names(target.lines, *region, target.facts.bound, limit=MAX_NAMES)
        if lead is not None:  # jedi's answer alone for the hovered name, its line's names next
            hovered = hovered_use(uses, task.start_line, task.column)
            uses = line_first([u for u in uses if u is not hovered], task.start_line)
        owner, types = target.scope(task.start_line, region)
        static = self.resolver.resolve_all(target, uses, owner, types, guess=task.guess)
        return _Static(target, first, uses, static, lead)

    async def assemble(
        self, task: ContextTask, counter: TokenCounter, budget: int, *, deadline: float = 1.0
    ) -> ContextPack:
        """The pack for ``task`` within ``budget`` tokens; jedi gets ``deadline`` seconds."""
        until = time.monotonic() + deadline
        display = self.display_path(task.path)
        target, first, uses, static, lead = await asyncio.to_thread(
            self._static, task, counter, budget
        )
        candidates = [*lead.lead, first] if lead is not None else [first]
        region = (first.piece.start_line, first.piece.end_line)
        enclosing = target.chunks.enclosing(task.start_line)
        positions = [(u.line, u.column) for u in uses]
        rest = [p for p in positions if p not in static]
        resolved: dict[tuple[int, int], list[Definition]] = dict(static)
        if rest and task.infer:
            resolved.update(
                await self.symbols.definitions_batch(
                    task.source, task.path, rest, deadline=max(0.0, until - time.monotonic())
                )
            )
        ordered: list[Definition] = []
        if lead is None and task.focus is not None:
            ordered.append(task.focus)
        for position in positions:
            ordered.extend(resolved.get(position, ()))
        if lead is not None and lead.placed is not None:
            shown = lead.placed
            ordered = [d for d in ordered if (d.path, d.line) != (shown.path, shown.line)]
        more = await asyncio.to_thread(self._definitions, task, target, ordered, region)
        candidates.extend(more)
        candidates.extend(class_and_imports(target, enclosing, uses, display))
        if task.callers and enclosing is not None and enclosing.kind.value in _CALLABLE:
            left = until - time.monotonic()
            if self.words.ready or left >= MIN_CALLERS_TIME:  # the index needs no deadline
                candidates.extend(await self._callers(task, target, enclosing, region, left))
        notes = lead.notes if lead is not None else ()
        return await asyncio.to_thread(build_pack, candidates, counter, budget, notes)

    def _home(self, task: ContextTask, target: Module, path: Path) -> Module | None:
        """The module of ``path``: the task's own buffer for its file, else buffer or disk."""
        if self.display_path(path) == target.display:
            return target
        return self.modules.file(path)

    def _definitions(
        self,
        task: ContextTask,
        target: Module,
        ordered: list[Definition],
        region: tuple[int, int],
    ) -> list[Candidate]:
        """Worker-thread part: the definition pieces, first use first, deduplicated.

        One thread hop for all of them: hopping per file costs milliseconds each
        while jedi's thread competes for the GIL.
        """
        out: list[Candidate] = []
        seen: set[tuple[str, int]] = set()
        for d in ordered:
            if d.path is None or d.kind == "module" or not self.workspace.contains(d.path):
                continue
            if d.path.suffix != ".py":
                continue
            where = self.display_path(d.path)
            local = where == target.display
            if (where, d.line) in seen or (local and region[0] <= d.line <= region[1]):
                continue
            seen.add((where, d.line))
            home = self._home(task, target, d.path)
            if home is None:
                continue
            role = Role.LOCAL_DEFINITION if local else Role.DEFINITION
            found = definition_candidate(home.chunks, home.lines, d, role, FULL_SHARE)
            if found is not None:
                out.append(found)
        return out

    async def assemble_hits(
        self, hits: list[Hit], counter: TokenCounter, budget: int, *, full_share: float = 0.5
    ) -> ContextPack:
        """A pack of retrieved chunks (`EmbeddingIndex.search`), best first, each in full
        when it takes at most ``full_share`` of the room left, else skeleton, else signature.

        Hit paths are workspace-relative; a chunk that moved since it was indexed is skipped.
        """
        candidates: list[Candidate] = []
        for hit in hits:
            try:
                path = self.workspace.resolve_relative(hit.path)
            except Refused:
                continue  # excluded since it was indexed
            text = await self.symbols.read(path)
            if text is None:
                continue
            home = await self.module(path, text)
            chunk = home.chunks.enclosing(hit.chunk.start_line)
            if chunk is None or (chunk.qualname, chunk.start_line) != (
                hit.chunk.qualname,
                hit.chunk.start_line,
            ):
                logger.debug("search hit %s:%s is stale", hit.path, hit.chunk.qualname)
                continue
            d = Definition(chunk.qualname, None, chunk.kind.value, path, chunk.start_line, 0, True)
            found = definition_candidate(home.chunks, home.lines, d, Role.DEFINITION, full_share)
            if found is not None:
                candidates.append(found)
        return await asyncio.to_thread(build_pack, candidates, counter, budget)

    async def _callers(
        self,
        task: ContextTask,
        target: Module,
        enclosing: Chunk,
        region: tuple[int, int],
        left: float,
    ) -> list[Candidate]:
        """Caller and related-test pieces: from the word index once built, else from jedi."""
        name = enclosing.qualname.rsplit(".", 1)[-1]
        if self.words.ready:
            self._maybe_rescan()
            return await asyncio.to_thread(self._indexed_callers, task, target, enclosing, region)
        line, column = def_name(task.source, enclosing)
        try:
            found = await self.symbols.callers(task.source, task.path, line, column, deadline=left)
        except TimeoutError:
            logger.debug("callers of %s: no answer within %.2f s", enclosing.qualname, left)
            return []
        if found is None:
            return []
        places = [
            (r.path, r.line)
            for r in found.references
            if not (
                self.display_path(r.path) == target.display and region[0] <= r.line <= region[1]
            )
        ]
        home = functools.partial(self._home, task, target)
        return await asyncio.to_thread(caller_candidates, places, name, home, self.display_path)

    def _indexed_callers(
        self, task: ContextTask, target: Module, enclosing: Chunk, region: tuple[int, int]
    ) -> list[Candidate]:
        """Worker-thread part: call sites from the index, judged and ranked, as pieces."""
        found = callee(target, enclosing)
        if found is None:
            return []
        sites = self.finder.sites(target, enclosing, region)
        name = found[1]
        places = [(s.path, s.line) for s in sites]
        home = functools.partial(self._home, task, target)
        return caller_candidates(places, name, home, self.display_path)

    def _maybe_rescan(self) -> None:
        """Without file watching, walk the workspace for new files now and then (background)."""
        if self.words.watched or (self._rescan is not None and not self._rescan.done()):
            return
        if time.monotonic() - self._scanned_at < RESCAN_SECONDS:
            return
        self._scanned_at = time.monotonic()
        self._rescan = asyncio.get_running_loop().create_task(asyncio.to_thread(self.words.rescan))
        self._rescan.add_done_callback(log_rescan)


_CALLABLE = ("function", "method")
