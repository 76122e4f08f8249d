"""Hybrid retrieval for questions about the workspace: keywords fused with embeddings.

`Retriever` holds one workspace's `Corpus` (chunks and their BM25 index) and
one `EmbeddingIndex` per embedding *space* (a provider and model: vectors of
different models never mix), all under one ``diskcache`` directory per
workspace. A question is ranked twice, by BM25 over identifier words and by
cosine similarity of its embedding, and the two rankings are merged by
reciprocal rank fusion (`lexical.fuse`); with no embeddings the keyword ranking
is used alone. `select` then keeps the best files (by their best chunk) and up
to a few chunks of each, best first, as `Hit`s for `Assembler.assemble_hits`.

Embedding costs money, so nothing here embeds on its own: `semantic` is called
when the user asks a question, and `file_saved` re-embeds a saved file's
changed chunks only in the spaces a question has already used in this session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from lsp_server.context.retrieval.corpus import Corpus, Report
from lsp_server.context.retrieval.embeddings import ChunkRef, Embed, EmbeddingIndex, Hit
from lsp_server.context.retrieval.lexical import fuse
from lsp_server.storage import KEEP_INDEXES, STAMP, prune_folders, touch
from lsp_server.workspace import WorkspaceBoundary

logger = logging.getLogger(__name__)

#: Chunks taken from each ranking before fusion.
DEPTH = 100
#: Files kept, and chunks per file.
TOP_FILES = 5
PER_FILE = 3

Identity = tuple[str, str, int, int]


def identity(ref: ChunkRef) -> Identity:
    """A chunk's place, the same in the corpus and in every embedding space."""
    return (ref.path, ref.qualname, ref.start_line, ref.end_line)


def index_dir(cache_dir: Path, root: Path) -> Path:
    """Where one workspace's retrieval index lives under the cache directory."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / "index" / f"{root.name or 'root'}-{digest}"


def select(
    lexical: list[ChunkRef],
    semantic: list[ChunkRef] | None,
    files: int = TOP_FILES,
    per_file: int = PER_FILE,
) -> list[Hit]:
    """Fuse the rankings (or take the keyword one alone) and keep the best files' chunks."""
    refs = {identity(r): r for r in lexical}
    rankings = [[identity(r) for r in lexical]]
    if semantic is not None:
        for r in semantic:
            refs.setdefault(identity(r), r)
        rankings.append([identity(r) for r in semantic])
    fused = fuse(rankings)
    grouped: dict[str, list[Hit]] = {}
    for score, key in fused:
        ref = refs[key]
        bucket = grouped.get(ref.path)
        if bucket is None:
            if len(grouped) >= files:
                continue
            bucket = grouped[ref.path] = []
        if len(bucket) < per_file:
            bucket.append(Hit(ref.path, score, ref))
    hits = [hit for bucket in grouped.values() for hit in bucket]
    hits.sort(key=lambda h: -h.score)
    return hits


class Retriever:
    """The retrieval index of one workspace; see the module docstring."""

    def __init__(self, workspace: WorkspaceBoundary, cache_dir: Path) -> None:
        if workspace.root is None:
            raise ValueError("a retrieval index needs a workspace root")
        self.workspace = workspace
        self.root = workspace.root
        self.cache_dir = cache_dir
        self.directory = index_dir(cache_dir, self.root)
        self.corpus = Corpus(workspace, self.directory)
        self._spaces: dict[str, EmbeddingIndex] = {}
        self._used: set[str] = set()  # spaces a question has synced in this session
        self._pruned = False

    def close(self) -> None:
        for index in self._spaces.values():
            index.close()
        self.corpus.close()

    async def refresh(self, report: Report | None = None) -> int:
        """Bring the corpus up to date with the disk; how many files are indexed.

        Records the use of this workspace's index and, once per session, deletes
        the least recently used indexes of other workspaces beyond `KEEP_INDEXES`.
        """
        await asyncio.to_thread(self._record_use)
        return await self.corpus.refresh(report)

    def _record_use(self) -> None:
        touch(self.directory / STAMP)
        if not self._pruned:
            self._pruned = True
            prune_folders(self.directory.parent, KEEP_INDEXES, spare=self.directory)

    async def lexical(self, query: str, k: int = DEPTH) -> list[ChunkRef]:
        """Chunks by keyword match, best first."""
        return [ref for _, ref in await self.corpus.rank(query, k)]

    def _space(self, name: str, embed: Embed) -> EmbeddingIndex:
        index = self._spaces.get(name)
        if index is None:
            index = self._spaces[name] = EmbeddingIndex(self.directory, embed, model=name)
        return index

    async def semantic(
        self,
        name: str,
        embed: Embed,
        query: str,
        progress: Callable[[int, int], None] | None = None,
        k: int = DEPTH,
    ) -> tuple[list[ChunkRef], int]:
        """Chunks by embedding similarity in space ``name``, and how many texts were embedded.

        Embeds the corpus's missing chunks first (only those: vectors are kept by
        text). ``embed``'s failure propagates; what was embedded before it is kept.
        """
        index = self._space(name, embed)
        embedded = await index.sync(await self.corpus.chunks(), progress)
        self._used.add(name)
        hits = await index.search(query, k=k)
        return [h.chunk for h in hits], embedded

    async def file_saved(self, rel: str) -> int:
        """Re-index a saved file; returns how many of its chunks were embedded again.

        Only the spaces used by a question in this session are kept current; an
        embedding failure is logged and left for the next question to retry.
        """
        if not await self.corpus.update(rel):
            return 0
        embedded = 0
        for name in sorted(self._used):
            try:
                embedded += await self._spaces[name].sync(await self.corpus.chunks())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next question syncs again; log why it failed now
                logger.info("re-embedding %s in %s failed: %s", rel, name, exc)
        return embedded
