"""What jedi knows about code: facts at the cursor, definitions, references, callers.

Every jedi call runs in a worker (`jedi.process`): by default one child
process per workspace, started in the background when the index is created,
so jedi's GIL use (cyclic GC over its large heap, parso loading its pickled
parse cache) never stalls the event loop; ``isolate=False`` runs the same jobs
(`jedi.queries`) on one thread instead. The agent's `JediNavigator` shares the
worker (`SymbolIndex.worker`). Each call has a deadline: the caller never
waits longer (TimeoutError, or the names resolved so far for a batch); a
crashed worker fails that call with `JediCrashed` (a TimeoutError: "no static
facts") and the next call starts a new one.

Results are cached in memory, keyed by the query, the file and the sha256 of
the text it was asked about (so a new document version is a new key), and
capped in number. `invalidate(path)` (call it on didChange/didSave/didClose)
drops the entries asked about ``path`` or resolving into it, and every
project-wide entry (references, callers), which any file can change.

Unsaved editor buffers are the source of truth: callers pass the buffer text
of the file they query (it travels with each job), and `read` asks the
`WorkspaceBoundary` (a buffer before the disk, refused files never). Jedi
itself reads *other* files from disk, so a definition in another unsaved
buffer is located as saved; the assembler then cuts it from the buffer by the
jedi-reported line. Jedi also reads files the boundary refuses (an ignored
module, a symlink out of the root): the facts it gives about a name defined
there (signature, inferred type, docstring) are dropped (`WorkspaceBoundary.quotable`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lsp_server.context.jedi import queries as q
from lsp_server.context.jedi.process import thread_or_process
from lsp_server.context.jedi.worker import JediWorker
from lsp_server.context.model import Callers, Definition, SymbolInfo
from lsp_server.workspace import WorkspaceBoundary

logger = logging.getLogger(__name__)

#: Default caps: definitions per name, references per query, cache entries.
DEFINITION_LIMIT = 5
REFERENCE_LIMIT = 50
CACHE_ENTRIES = 4096


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
    """Jedi queries for one workspace root, run in a worker, cached per text."""

    def __init__(
        self,
        workspace: WorkspaceBoundary,
        *,
        cache_entries: int = CACHE_ENTRIES,
        isolate: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        """``isolate``: jedi in a child process (started now, in the background), else a thread;
        ``cache_dir``: the child's jedi (parso) cache directory."""
        self.workspace = workspace
        self.root = workspace.root
        self._worker = thread_or_process(isolate, q.warm, self.root, cache_dir=cache_dir)
        self._cache = _Cache(cache_entries)

    @property
    def worker(self) -> JediWorker:
        """Where jedi runs; share it (e.g. with `JediNavigator`), never close it there."""
        return self._worker

    def close(self) -> None:
        """Stop the worker (pending jedi calls fail; a child process is reaped)."""
        self._worker.close()

    def invalidate(self, path: Path | None = None) -> None:
        """Forget results that ``path`` may have changed (everything when None)."""
        if path is None:
            self._cache.clear()
            return
        dropped = self._cache.invalidate(_key_path(path))
        logger.debug("invalidated %d cached jedi results for %s", dropped, path)

    async def read(self, path: Path) -> str | None:
        """An open buffer's text, else the file on disk (off the event loop); None when
        the boundary refuses it or it cannot be read."""
        return await asyncio.to_thread(self.workspace.read_text, path)

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
        job = (self.root, source, path, line, column)
        info = await self._worker.run(q.symbol_at, *job, deadline=deadline)
        if info is not None and not self.workspace.quotable(info.definition_path):
            info = replace(info, signatures=(), doc_summary=None, type_names=())
        paths = {_key_path(path)}
        if info is not None and info.definition_path is not None:
            paths.add(_key_path(info.definition_path))
        self._cache.put(key, frozenset(paths), info)
        return info

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

        def store(part: tuple[tuple[int, int], list[Definition]]) -> None:
            # On a worker thread: the cache is locked; `done` is read by the loop.
            position, found = part
            key = self._key("goto", path, source, *position, limit)
            self._cache.put(key, self._paths(path, found), tuple(found))
            done[position] = found

        job = (self.root, source, path, missing, limit)
        try:
            await self._worker.run(q.definitions_batch, *job, deadline=deadline, on_part=store)
        except TimeoutError as exc:  # JediCrashed too: keep what arrived before
            if not partial:
                raise
            logger.debug(
                "definitions: %d of %d names by the deadline (%s)", len(done), len(missing), exc
            )
        result.update(dict(list(done.items())))
        return result

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
        job = (self.root, source, path, line, column, limit)
        found = await self._worker.run(q.callers, *job, deadline=deadline)
        self._cache.put(key, None, found)
        return found
