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
`pack.build_pack` then fits the pieces to the budget and renders them in a
stable order. Every piece is labelled ``path:start-end``; same inputs give a
byte-identical pack.

`assemble_hover` is the older, synchronous entry point the engine still uses
for hovers: the target and one given definition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from lsp_server.context.chunker import MODULE_QUALNAME, Chunk, ChunkedModule
from lsp_server.context.names import NameUse, local_types, used_names
from lsp_server.context.pack import (
    Candidate,
    ContextPack,
    ContextPiece,
    Role,
    build_pack,
    fit,
    piece,
)
from lsp_server.context.resolve import Module, ModuleCache, StaticResolver
from lsp_server.context.retrieval import Hit
from lsp_server.context.snippets import (
    definition_candidate,
    is_test_path,
    target_candidate,
    use_candidate,
)
from lsp_server.context.symbols import Definition, Reference, SymbolIndex
from lsp_server.context.tokens import TokenCounter

logger = logging.getLogger(__name__)

__all__ = [
    "Assembler",
    "ContextPack",
    "ContextPiece",
    "ContextTask",
    "TaskKind",
    "assemble_hover",
]

#: A definition goes in full only if it takes at most this share of the room left.
FULL_SHARE = 0.25
#: The target is cut to the lines around the cursor beyond this share of the budget.
TARGET_SHARE = 0.6
MAX_NAMES = 40
MAX_CALLERS = 3
MAX_TESTS = 2
#: Below this many seconds left, callers are not looked up at all.
MIN_CALLERS_TIME = 0.05


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
    callers: bool = True  # look up callers and related tests (project-wide, slower)
    infer: bool = True  # ask jedi about the names the import map cannot place (slower)


class Assembler:
    """Builds context packs for one workspace from a `SymbolIndex` (and its buffers)."""

    def __init__(
        self,
        symbols: SymbolIndex,
        display_path: Callable[[Path | None], str] | None = None,
        *,
        modules: int = 4096,
    ) -> None:
        self.symbols = symbols
        self.display_path = display_path or self._relative
        self.modules = ModuleCache(symbols.read_text, self.display_path, modules)
        self.resolver = StaticResolver(symbols.root, self.modules)

    def _relative(self, path: Path | None) -> str:
        if path is None:
            return "<unsaved>"
        root = self.symbols.root
        if root is not None:
            try:
                return path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    async def warm(self, paths: Iterable[Path]) -> int:
        """Chunk ``paths`` ahead of requests (one worker-thread job per file); how many loaded.

        Run it in the background after start: a request that reaches a file
        chunked already saves the chunking (tens of ms for a large module).
        """
        loaded = 0
        for path in paths:
            found = await asyncio.to_thread(self.modules.file, path)
            loaded += found is not None
        return loaded

    async def module(self, path: Path | None, text: str) -> Module:
        """The chunked module for ``text`` (cached by content; chunked off the loop)."""
        return await asyncio.to_thread(self.modules.get, path, text)

    def _static(
        self, task: ContextTask, counter: TokenCounter, budget: int
    ) -> tuple[Module, Candidate, list[NameUse], dict[tuple[int, int], Definition]]:
        """Worker-thread part: chunk the target, find its names, resolve what imports can.

        The target keeps at most `TARGET_SHARE` of the budget (the lines around
        the cursor or range start), leaving room for what it uses.
        """
        target = self.modules.get(task.path, task.source)
        first = target_candidate(target.chunks, target.lines, task.start_line, task.end_line)
        cut = fit(first, counter, int(budget * TARGET_SHARE))
        if cut is not None and cut is not first.piece:
            first = replace(first, piece=cut)
        region = (first.piece.start_line, first.piece.end_line)
        uses = used_names(target.lines, *region, target.facts.bound, limit=MAX_NAMES)
        enclosing = target.chunks.enclosing(task.start_line)
        owner = enclosing.parent if enclosing is not None else None
        scope = (enclosing.start_line, enclosing.end_line) if enclosing else region
        types = local_types(target.lines, *scope)
        return target, first, uses, self.resolver.resolve(target, uses, owner, types)

    async def assemble(
        self, task: ContextTask, counter: TokenCounter, budget: int, *, deadline: float = 1.0
    ) -> ContextPack:
        """The pack for ``task`` within ``budget`` tokens; jedi gets ``deadline`` seconds."""
        until = time.monotonic() + deadline
        display = self.display_path(task.path)
        target, first, uses, static = await asyncio.to_thread(self._static, task, counter, budget)
        candidates = [first]
        region = (first.piece.start_line, first.piece.end_line)
        enclosing = target.chunks.enclosing(task.start_line)
        positions = [(u.line, u.column) for u in uses]
        rest = [p for p in positions if p not in static]
        resolved: dict[tuple[int, int], list[Definition]] = {p: [d] for p, d in static.items()}
        if rest and task.infer:
            resolved.update(
                await self.symbols.definitions_batch(
                    task.source, task.path, rest, deadline=max(0.0, until - time.monotonic())
                )
            )
        ordered: list[Definition] = [task.focus] if task.focus is not None else []
        for position in positions:
            ordered.extend(resolved.get(position, ()))
        more = await asyncio.to_thread(self._definitions, task, target, ordered, region)
        candidates.extend(more)
        candidates.extend(_class_and_imports(target, enclosing, uses, display))
        if task.callers and enclosing is not None and enclosing.kind.value in _CALLABLE:
            left = until - time.monotonic()
            if left >= MIN_CALLERS_TIME:
                candidates.extend(await self._callers(task, target, enclosing, region, left))
        return await asyncio.to_thread(build_pack, candidates, counter, budget)

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
            if d.path is None or not d.in_workspace or d.kind == "module":
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
        root = self.symbols.root
        for hit in hits:
            path = root / hit.path if root is not None else Path(hit.path)
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
        line, column = _def_name(task.source, enclosing)
        try:
            found = await self.symbols.callers(task.source, task.path, line, column, deadline=left)
        except TimeoutError:
            logger.debug("callers of %s: no answer within %.2f s", enclosing.qualname, left)
            return []
        if found is None:
            return []
        return await asyncio.to_thread(
            self._uses, task, target, found.references, region, found.function
        )

    def _uses(
        self,
        task: ContextTask,
        target: Module,
        refs: tuple[Reference, ...],
        region: tuple[int, int],
        function: str,
    ) -> list[Candidate]:
        """Worker-thread part: caller snippets, then related tests, each capped."""
        name = function.rsplit(".", 1)[-1]
        callers: list[Candidate] = []
        tests: list[Candidate] = []
        for ref in refs:
            where = self.display_path(ref.path)
            if where == target.display and region[0] <= ref.line <= region[1]:
                continue
            test = is_test_path(where)
            bucket = tests if test else callers
            if len(bucket) >= (MAX_TESTS if test else MAX_CALLERS):
                continue
            home = self._home(task, target, ref.path)
            if home is None:
                continue
            role = Role.TEST if test else Role.CALLER
            candidate = use_candidate(home.chunks, home.lines, ref.line, role, name)
            if candidate.piece.label not in {c.piece.label for c in bucket}:
                bucket.append(candidate)
        return callers + tests


_CALLABLE = ("function", "method")


def _def_name(source: str, chunk: Chunk) -> tuple[int, int]:
    """Where the function's name is in its ``def`` line (decorators skipped)."""
    name = chunk.qualname.rsplit(".", 1)[-1]
    lines = source.split("\n")
    for line in range(chunk.start_line, min(chunk.end_line, len(lines)) + 1):
        text = lines[line - 1]
        at = text.find(f"def {name}")
        if at >= 0:
            return line, at + 4
    return chunk.end_line, 0


def _class_and_imports(
    target: Module, enclosing: Chunk | None, uses: list[NameUse], display: str
) -> list[Candidate]:
    out: list[Candidate] = []
    if enclosing is not None and enclosing.parent is not None:
        owner = target.chunks.by_qualname(enclosing.parent)
        if owner is not None:
            p = piece(
                display,
                owner.start_line,
                owner.end_line,
                Role.CLASS,
                f"class `{owner.qualname}`",
                owner.skeleton,
                "skeleton",
            )
            out.append(Candidate(p, Role.CLASS))
    used = frozenset(u.text.split(".", 1)[0] for u in uses if not u.text.startswith("?"))
    statements = [(i, i.render(used)) for i in target.facts.imports]
    kept = [(i, text) for i, text in statements if text is not None]
    if kept:
        start, end = kept[0][0].start_line, kept[-1][0].end_line
        text = "\n".join(t for _, t in kept if t)
        p = piece(display, start, end, Role.IMPORTS, "the imports the target uses", text)
        out.append(Candidate(p, Role.IMPORTS))
    return out


def assemble_hover(
    module: ChunkedModule,
    source: str,
    line: int,
    definition: tuple[ChunkedModule, int] | None,
    counter: TokenCounter,
    budget: int,
) -> ContextPack:
    """The pack for a hover at 1-based `line`: target code, then the symbol's definition.

    `definition` is the chunked module holding the definition and its 1-based line.
    """
    lines = source.replace("\r\n", "\n").split("\n")
    first = target_candidate(module, lines, line, line)
    candidates = [first]
    if definition is not None:
        def_module, def_line = definition
        enclosing = module.enclosing(line)
        chunk = def_module.enclosing(def_line)
        same = (
            chunk is not None
            and def_module.path == module.path
            and enclosing is not None
            and chunk.qualname == enclosing.qualname
            and chunk.qualname != MODULE_QUALNAME
        )
        if chunk is not None and not chunk.is_fallback and not same:
            d = Definition(chunk.qualname, None, chunk.kind.value, None, def_line, 0, True)
            role = Role.LOCAL_DEFINITION if def_module.path == module.path else Role.DEFINITION
            found = definition_candidate(def_module, _lines_of(def_module), d, role, 1.0)
            if found is not None:
                candidates.append(found)
    return build_pack(candidates, counter, budget)


def _lines_of(module: ChunkedModule) -> list[str]:
    """The module's text lines, rebuilt from its chunks (blank between chunks)."""
    last = max((c.end_line for c in module.chunks), default=0)
    lines = [""] * last
    for c in module.chunks:
        for i, text in enumerate(c.source.split("\n")):
            lines[c.start_line - 1 + i] = text
    return lines
