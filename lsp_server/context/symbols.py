"""What jedi knows about code: facts at the cursor, definitions, references, callers.

Jedi is synchronous and not safe to use from several threads at once, so every
call runs on one dedicated worker thread (exposed as `SymbolIndex.executor` so
the agent's `JediNavigator` shares it), with a deadline: the event loop never
waits on jedi for longer than the deadline (the thread finishes its current
step in the background, and long loops stop at their next step). One
`jedi.Project` per workspace root is reused, so jedi's caches stay warm.

Results are cached in memory, keyed by the query, the file and the sha256 of
the text it was asked about (so a new document version is a new key), and
capped in number. `invalidate(path)` (call it on didChange/didSave/didClose)
drops the entries asked about ``path`` or resolving into it, and every
project-wide entry (references, callers), which any file can change.

Known limit, measured with a 10 ms heartbeat on the event loop while this
thread worked through Django: the loop missed beats for up to 2.7 s. Two
GIL-holding causes: the cyclic GC walking jedi's large heap, and parso loading
its pickled parse cache; with both turned off the longest gap was 38 ms. Only
running jedi in a subprocess removes both.

Unsaved editor buffers are the source of truth: callers pass the buffer text
of the file they query, and `read` gives a buffer before the disk
(``read_text`` is injected by the engine). Jedi itself reads *other* files
from disk, so a definition in another unsaved buffer is located as saved; the
assembler then cuts it from the buffer by the jedi-reported line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jedi

from lsp_server.context import jedi_queries as q
from lsp_server.context.chunker import decode_source
from lsp_server.context.jedi_queries import Callers, Definition, Reference

logger = logging.getLogger(__name__)

__all__ = ["Callers", "Definition", "Reference", "SymbolIndex", "SymbolInfo"]

ReadText = Callable[[Path], str | None]
_T = TypeVar("_T")

#: Default caps: definitions per name, references per query, cache entries.
DEFINITION_LIMIT = 5
REFERENCE_LIMIT = 50
CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """Static facts about one name, ready to show in a hover."""

    name: str
    kind: str
    full_name: str | None
    signatures: tuple[str, ...]
    doc_summary: str | None
    type_names: tuple[str, ...]
    definition_path: Path | None
    definition_line: int | None  # 1-based
    in_workspace: bool


def first_paragraph(doc: str, limit: int = 600) -> str | None:
    """The first paragraph of a docstring, whitespace-normalised and capped."""
    lines: list[str] = []
    for line in doc.strip().splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
    text = " ".join(lines)
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_disk(path: Path) -> str | None:
    """A file's text as the chunker expects it; None when it cannot be read."""
    try:
        return decode_source(path.read_bytes())
    except OSError as exc:
        logger.debug("cannot read %s: %s", path, exc)
        return None


def _no_buffers(path: Path) -> str | None:
    return None


def _key_path(path: Path | None) -> str:
    return str(path.resolve()) if path is not None else ""


class _Cache:
    """LRU of query results; each entry remembers the files it depends on."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[frozenset[str] | None, Any]] = (
            OrderedDict()
        )

    def get(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return False, None
            self._entries.move_to_end(key)
            return True, found[1]

    def put(self, key: tuple[Any, ...], paths: frozenset[str] | None, value: Any) -> None:
        """``paths=None`` marks a project-wide entry: any change drops it."""
        with self._lock:
            self._entries[key] = (paths, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def invalidate(self, path: str) -> int:
        with self._lock:
            stale = [k for k, (p, _) in self._entries.items() if p is None or path in p]
            for key in stale:
                del self._entries[key]
            return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SymbolIndex:
    """Jedi queries for one workspace root, run off the event loop, cached per text."""

    def __init__(
        self,
        root: Path | None,
        read_text: ReadText | None = None,
        *,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.root = root
        self.read_text = read_text or _no_buffers
        self._project = jedi.Project(str(root)) if root is not None else None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jedi"
        )
        self._cache = _Cache(cache_entries)

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The single jedi thread; share it (e.g. with `JediNavigator`), never shut it down."""
        return self._executor

    def close(self) -> None:
        """Stop the worker thread (pending jedi calls are abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def invalidate(self, path: Path | None = None) -> None:
        """Forget results that ``path`` may have changed (everything when None)."""
        if path is None:
            self._cache.clear()
            return
        dropped = self._cache.invalidate(_key_path(path))
        logger.debug("invalidated %d cached jedi results for %s", dropped, path)

    async def read(self, path: Path) -> str | None:
        """An open buffer's text, else the file on disk (read off the event loop)."""
        text = self.read_text(path)
        if text is not None:
            return text
        return await asyncio.to_thread(read_disk, path)

    def in_workspace(self, path: Path | None) -> bool:
        """Whether ``path`` lies inside the workspace root."""
        return q.in_root(self.root, path)

    async def _run(self, stop: q.Stop | None, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, fn, *args)
        timeout = None if stop is None else max(0.0, stop.at - time.monotonic())
        try:
            return await asyncio.wait_for(future, timeout=timeout)
        except (TimeoutError, asyncio.CancelledError):
            if stop is not None:
                stop.cancelled.set()
            raise

    def _key(self, op: str, path: Path | None, source: str, *args: Any) -> tuple[Any, ...]:
        digest = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
        return (op, _key_path(path), digest, *args)

    @staticmethod
    def _paths(path: Path | None, found: Iterable[Definition]) -> frozenset[str]:
        return frozenset({_key_path(path), *(_key_path(d.path) for d in found if d.path)})

    async def symbol_at(
        self, source: str, path: Path | None, line: int, column: int, *, deadline: float
    ) -> SymbolInfo | None:
        """Facts for the name at 1-based `line`, 0-based `column`; None if there is none.

        Raises `TimeoutError` when jedi takes longer than `deadline` seconds.
        """
        key = self._key("symbol", path, source, line, column)
        hit, value = self._cache.get(key)
        if hit:
            return value  # type: ignore[no-any-return]
        stop = q.Stop(deadline)
        info = await self._run(stop, self._symbol_at_sync, source, path, line, column)
        paths = {_key_path(path)}
        if info is not None and info.definition_path is not None:
            paths.add(_key_path(info.definition_path))
        self._cache.put(key, frozenset(paths), info)
        return info

    async def definitions(
        self,
        source: str,
        path: Path | None,
        line: int,
        column: int,
        *,
        deadline: float,
        limit: int = DEFINITION_LIMIT,
    ) -> list[Definition]:
        """Where the name at 1-based `line`, 0-based `column` is defined (goto, else infer).

        Raises `TimeoutError` after `deadline` seconds.
        """
        found = await self.definitions_batch(
            source, path, [(line, column)], deadline=deadline, limit=limit, partial=False
        )
        return found.get((line, column), [])

    async def definitions_batch(
        self,
        source: str,
        path: Path | None,
        positions: list[tuple[int, int]],
        *,
        deadline: float,
        limit: int = DEFINITION_LIMIT,
        partial: bool = True,
    ) -> dict[tuple[int, int], list[Definition]]:
        """Definitions of several names of one file in one jedi job.

        Each name's result is cached as soon as the worker has it, even after
        the caller gave up, so a repeated request finds more. With ``partial``
        (the default), reaching the deadline returns the names resolved so far
        (the rest are missing) instead of raising `TimeoutError`.
        """
        result: dict[tuple[int, int], list[Definition]] = {}
        missing: list[tuple[int, int]] = []
        for position in dict.fromkeys(positions):
            hit, value = self._cache.get(self._key("goto", path, source, *position, limit))
            if hit:
                result[position] = list(value)
            else:
                missing.append(position)
        if not missing:
            return result
        done: dict[tuple[int, int], list[Definition]] = {}

        def store(position: tuple[int, int], found: list[Definition]) -> None:
            # On the worker thread: the cache is locked; `done` is read by the loop.
            key = self._key("goto", path, source, *position, limit)
            self._cache.put(key, self._paths(path, found), tuple(found))
            done[position] = found

        stop = q.Stop(deadline)
        job = (self._project, self.root, source, path, missing, limit, stop, store)
        try:
            await self._run(stop, q.definitions_batch, *job)
        except TimeoutError:
            if not partial:
                raise
            logger.debug("definitions: %d of %d names by the deadline", len(done), len(missing))
        result.update(dict(list(done.items())))
        return result

    async def references(
        self,
        source: str,
        path: Path | None,
        line: int,
        column: int,
        *,
        deadline: float,
        limit: int = REFERENCE_LIMIT,
    ) -> tuple[list[Reference], bool]:
        """Project-wide references to the name (workspace files only, sorted, capped).

        Returns the references and whether the cap cut them short. Raises
        `TimeoutError` after `deadline` seconds.
        """
        key = self._key("references", path, source, line, column, limit)
        hit, value = self._cache.get(key)
        if hit:
            refs, truncated = value
            return list(refs), truncated
        job = (self._project, self.root, source, path, line, column, limit)
        refs, truncated = await self._run(q.Stop(deadline), q.references, *job)
        self._cache.put(key, None, (tuple(refs), truncated))
        return refs, truncated

    async def callers(
        self,
        source: str,
        path: Path | None,
        line: int,
        column: int = 0,
        *,
        deadline: float,
        limit: int = REFERENCE_LIMIT,
    ) -> Callers | None:
        """Uses of the function enclosing 1-based `line` (None outside a function).

        Raises `TimeoutError` after `deadline` seconds.
        """
        key = self._key("callers", path, source, line, column, limit)
        hit, value = self._cache.get(key)
        if hit:
            return value  # type: ignore[no-any-return]
        job = (self._project, self.root, source, path, line, column, limit)
        found = await self._run(q.Stop(deadline), q.callers, *job)
        self._cache.put(key, None, found)
        return found

    def _symbol_at_sync(
        self, source: str, path: Path | None, line: int, column: int
    ) -> SymbolInfo | None:
        lines = source.splitlines()
        if line < 1 or line > len(lines) or column < 0 or column > len(lines[line - 1]):
            return None
        script = q.script(self._project, source, path)
        names = q.help_names(script, line, column)
        if not names:
            return None
        word = names[0].name
        definitions = _safe(script.goto, line, column, follow_imports=True) or names
        target: Any = definitions[0]
        signatures = _signatures(definitions)
        doc = _docstring(definitions)
        # Inference is the expensive part: ask for it only when the definition alone
        # does not say what the name is (a variable's type, a callable held in one).
        inferred: list[Any] = []
        if target.type not in ("function", "class", "module") or not signatures or not doc:
            inferred = _safe(script.infer, line, column) or []
            signatures = signatures or _signatures(inferred)
            doc = doc or _docstring(inferred)
        type_names = tuple(
            dict.fromkeys(n.name for n in inferred if n.type in ("instance", "class"))
        )
        module_path = getattr(target, "module_path", None)
        def_path = Path(module_path) if module_path else None
        return SymbolInfo(
            name=target.name or word,
            kind=str(target.type),
            full_name=target.full_name,
            signatures=tuple(signatures[:3]),
            doc_summary=first_paragraph(doc) if doc else None,
            type_names=type_names[:3],
            definition_path=def_path,
            definition_line=target.line,
            in_workspace=self.in_workspace(def_path),
        )


def _signatures(names: list[Any]) -> list[str]:
    """Signatures of the first of `names` that has any (deduplicated)."""
    for candidate in names:
        found: list[str] = []
        for sig in _safe(candidate.get_signatures) or ():
            text = sig.to_string()
            if text not in found:
                found.append(text)
        if found:
            return found
    return []


def _docstring(names: list[Any]) -> str:
    """The first non-empty raw docstring among `names`."""
    for candidate in names:
        doc = _safe(candidate.docstring, raw=True) or ""
        if doc.strip():
            return str(doc)
    return ""


def _safe(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a jedi method; jedi raises assorted errors on odd code, which mean 'unknown'."""
    try:
        return fn(*args, **kwargs)
    except q.JEDI_ERRORS as exc:
        logger.debug("jedi %s failed: %s", getattr(fn, "__name__", fn), exc)
        return None
