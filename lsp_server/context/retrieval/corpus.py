"""The workspace's chunks for retrieval: which files, their chunks, and a keyword index.

`Corpus` takes the workspace's Python files from the `WorkspaceBoundary`'s
walk (its one rule for secrets, ignored files, skipped directories and
virtualenvs; at most `MAX_FILES`; files over `MAX_FILE_BYTES` left out),
chunks each on a worker thread and keeps per file a `FileEntry`: its stat
stamp, content digest and chunks (a `retrieval.ChunkRef` with the text
`retrieval.embed_text` gives it). Entries persist in ``diskcache`` under the
workspace's index directory, so after a restart only files whose content
changed are chunked again. Every chunk is a BM25 document (`lexical.Bm25`) of
its path, qualified name (counted twice) and skeleton with its docstring.

`refresh` re-checks every file (stat first, the content hash only when the
stamp moved) and drops deleted files; `update` does one file (after a save).
Files are read from disk: the index follows what is saved, like the editor's
search. A ref's ``key`` here is the sha256 of its text; the embedding index
derives its own, model-specific key from the text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lsp_server.context.retrieval.embeddings import ChunkRef, embed_text
from lsp_server.context.retrieval.lexical import Bm25, tokens
from lsp_server.context.source.chunker import chunk_module, decode_source
from lsp_server.storage import INDEX_CACHE_BYTES, open_cache
from lsp_server.workspace import Refused, WorkspaceBoundary

logger = logging.getLogger(__name__)

MAX_FILES = 5000
MAX_FILE_BYTES = 1_000_000
#: Files checked per worker-thread hop (a hop per file costs more than a small file).
HOP = 32

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One indexed file: when and what it was, and its chunks with their texts."""

    stamp: tuple[int, int]  # (st_mtime_ns, st_size)
    digest: str  # sha256 of the bytes
    chunks: tuple[tuple[ChunkRef, str], ...]


def discover(workspace: WorkspaceBoundary, limit: int = MAX_FILES) -> list[str]:
    """Workspace-relative POSIX paths of the workspace's Python files, sorted."""
    found = (workspace.relative(p) for p in workspace.iter_python_files(limit=limit))
    return sorted(rel for rel in found if rel is not None)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def load_entry(workspace: WorkspaceBoundary, rel: str, old: FileEntry | None) -> FileEntry | None:
    """``rel``'s entry, reusing ``old`` when the file did not change; None if the boundary
    refuses it or it cannot be read."""
    try:
        path = workspace.resolve_relative(rel)
        if old is not None and workspace.stamp(path) == old.stamp:
            return old
        data, stamp = workspace.read_bytes(path, max_bytes=MAX_FILE_BYTES)
    except Refused as refused:
        logger.debug("not indexing %s: %s", rel, refused.message)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if old is not None and old.digest == digest:
        return replace(old, stamp=stamp)
    module = chunk_module(decode_source(data), rel)
    chunks = []
    for c in module.chunks:
        text = embed_text(c)
        ref = ChunkRef(
            rel, c.qualname, c.kind.value, c.start_line, c.end_line, c.content_hash, _digest(text)
        )
        chunks.append((ref, text))
    return FileEntry(stamp, digest, tuple(chunks))


def _terms(ref: ChunkRef, text: str) -> list[str]:
    return [*tokens(text), *tokens(ref.qualname)]


class Corpus:
    """The indexed chunks of one workspace; see the module docstring."""

    def __init__(self, workspace: WorkspaceBoundary, directory: Path) -> None:
        self.workspace = workspace
        self._store = open_cache(directory, INDEX_CACHE_BYTES)
        self.files: dict[str, FileEntry] = {}
        self._bm25: Bm25[ChunkRef] = Bm25()
        self._loaded = False
        self._lock = asyncio.Lock()

    def close(self) -> None:
        self._store.close()

    @property
    def chunk_count(self) -> int:
        return len(self._bm25)

    # The methods named with a leading underscore run on a worker thread, one at a
    # time (the caller holds `_lock`): they alone change `files` and the BM25 index.

    def _load(self) -> None:
        for key in self._store.iterkeys():
            if isinstance(key, str) and key.startswith("entry:"):
                value = self._store.get(key)
                if isinstance(value, FileEntry):
                    self._set(key.removeprefix("entry:"), value)

    def _set(self, rel: str, entry: FileEntry | None) -> None:
        old = self.files.pop(rel, None)
        for ref, _ in old.chunks if old is not None else ():
            self._bm25.remove(ref)
        if entry is None:
            return
        self.files[rel] = entry
        for ref, text in entry.chunks:
            self._bm25.add(ref, _terms(ref, text))

    def _check(self, rels: Sequence[str]) -> int:
        """Re-check ``rels``, persist and index what changed; how many changed."""
        old = {rel: self.files.get(rel) for rel in rels}
        entries = {rel: load_entry(self.workspace, rel, old[rel]) for rel in rels}
        changed = {rel: e for rel, e in entries.items() if e is not old[rel]}
        if changed:
            with self._store.transact():
                for rel, entry in changed.items():
                    if entry is None:
                        self._store.delete(f"entry:{rel}")
                    else:
                        self._store.set(f"entry:{rel}", entry)
            for rel, entry in changed.items():
                self._set(rel, entry)
        return len(changed)

    def _forget(self, rels: list[str]) -> None:
        with self._store.transact():
            for rel in rels:
                self._store.delete(f"entry:{rel}")
        for rel in rels:
            self._set(rel, None)

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            await asyncio.to_thread(self._load)
            self._loaded = True

    async def refresh(self, report: Report | None = None) -> int:
        """Bring every file up to date; returns how many files are indexed."""
        async with self._lock:
            await self._ensure_loaded()
            paths = await asyncio.to_thread(discover, self.workspace)
            if report is not None:
                report(f"Indexing {len(paths)} files…")
            listed = set(paths)
            gone = [rel for rel in self.files if rel not in listed]
            changed = 0
            for i in range(0, len(paths), HOP):
                changed += await asyncio.to_thread(self._check, paths[i : i + HOP])
                if report is not None and i + HOP < len(paths):
                    report(f"Indexing {i + HOP}/{len(paths)} files…")
            if gone:
                await asyncio.to_thread(self._forget, gone)
        logger.info(
            "corpus %s: %d files, %d chunks (%d changed, %d removed)",
            self.workspace.root,
            len(self.files),
            self.chunk_count,
            changed,
            len(gone),
        )
        return len(self.files)

    async def update(self, rel: str) -> bool:
        """Re-check one file (saved, created or deleted); whether its entry changed."""
        async with self._lock:
            await self._ensure_loaded()
            return await asyncio.to_thread(self._check, [rel]) > 0

    async def chunks(self) -> dict[str, tuple[tuple[ChunkRef, str], ...]]:
        """Every file's chunks with their texts (what the embedding index syncs to)."""
        async with self._lock:
            return {rel: entry.chunks for rel, entry in self.files.items()}

    async def rank(self, query: str, k: int) -> list[tuple[float, ChunkRef]]:
        """The ``k`` chunks that match ``query``'s words best (BM25), best first."""
        async with self._lock:
            return await asyncio.to_thread(self._bm25.rank, tokens(query), k)
