"""Embedding retrieval against the fake provider's /v1/embeddings, stored in diskcache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import pytest_asyncio

from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.pack.assembler import Assembler
from lsp_server.context.retrieval.corpus import Corpus
from lsp_server.context.retrieval.embeddings import Embed, EmbeddingIndex, embed_text
from lsp_server.context.source.chunker import chunk_module
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.testing.fake_provider import FakeProvider, fake_embedding
from lsp_server.workspace import WorkspaceBoundary

FILES = ["app/pricing.py", "app/retry.py", "app/service.py", "app/models.py"]


@pytest_asyncio.fixture
async def embed(fake: FakeProvider) -> AsyncIterator[Embed]:
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)

    async def call(texts: list[str]) -> list[list[float]]:
        response = await client.embeddings.create(model="text-embedding-3-small", input=texts)
        return [item.embedding for item in response.data]

    yield call
    await client.close()


async def _index(root: Path, cache: Path, embed: Embed) -> EmbeddingIndex:
    index = EmbeddingIndex(cache, embed, model="text-embedding-3-small")
    for rel in FILES:
        await index.update_file(rel, (root / rel).read_text())
    return index


async def test_search_finds_the_chunk_and_scores_in_order(
    root: Path, tmp_path: Path, embed: Embed, fake: FakeProvider
) -> None:
    index = await _index(root, tmp_path / "vectors", embed)
    try:
        retry = chunk_module((root / "app/retry.py").read_text(), "app/retry.py")
        target = retry.by_qualname("with_retries")
        assert target is not None
        # The fake's vectors are hashes of the text: the chunk's own text scores 1.0.
        hits = await index.search(embed_text(target), k=5)
        assert (hits[0].path, hits[0].chunk.qualname) == ("app/retry.py", "with_retries")
        assert hits[0].score == pytest.approx(1.0)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        expected = sum(
            a * b
            for a, b in zip(
                fake_embedding("where do we retry?"),
                fake_embedding(embed_text(target)),
                strict=True,
            )
        )
        scores = {
            (h.path, h.chunk.qualname): h.score
            for h in await index.search("where do we retry?", k=100)
        }
        assert scores[("app/retry.py", "with_retries")] == pytest.approx(expected, abs=1e-6)
        assert all(r.path == "/v1/embeddings" for r in fake.requests)
    finally:
        index.close()


async def test_update_embeds_only_changed_chunks(
    root: Path, tmp_path: Path, embed: Embed, fake: FakeProvider
) -> None:
    index = await _index(root, tmp_path / "vectors", embed)
    try:
        first = index.embedded
        assert first > 0
        text = (root / "app/pricing.py").read_text()
        assert await index.update_file("app/pricing.py", text) == 0  # saved, unchanged
        edited = text.replace('"""Add the sales tax to an amount."""', '"""Add VAT."""')
        assert await index.update_file("app/pricing.py", edited) == 1  # one skeleton changed
        assert index.embedded == first + 1
    finally:
        index.close()


async def test_vectors_persist_across_instances(
    root: Path, tmp_path: Path, embed: Embed, fake: FakeProvider
) -> None:
    (await _index(root, tmp_path / "vectors", embed)).close()
    fake.reset()
    again = EmbeddingIndex(tmp_path / "vectors", embed, model="text-embedding-3-small")
    try:
        files = await again.top_files("retries with backoff", files=10, per_file=2)
        assert {group[0].path for group in files} == set(FILES)
        assert all(len(group) <= 2 for group in files)
        assert len(fake.requests) == 1  # only the query was embedded
        assert await again.update_file("app/retry.py", (root / "app/retry.py").read_text()) == 0
        # a deleted file leaves the index when it syncs to the workspace's chunks
        (root / "app/retry.py").unlink()
        corpus = Corpus(WorkspaceBoundary(root), tmp_path / "corpus")
        try:
            await corpus.refresh()
            await again.sync(await corpus.chunks())
        finally:
            corpus.close()
        hits = await again.search("retries", k=100)
        assert "app/retry.py" not in {h.path for h in hits}
        assert "app/pricing.py" in {h.path for h in hits}
    finally:
        again.close()


async def test_hits_become_a_budgeted_pack(
    root: Path, tmp_path: Path, embed: Embed, fake: FakeProvider
) -> None:
    counter: TokenCounter = counter_for_model("gpt-4o", tmp_path / "tiktoken")
    index = await _index(root, tmp_path / "vectors", embed)
    symbols = SymbolIndex(WorkspaceBoundary(root))
    try:
        retry = chunk_module((root / "app/retry.py").read_text(), "app/retry.py")
        target = retry.by_qualname("with_retries")
        assert target is not None
        hits = await index.search(embed_text(target), k=8)
        pack = await Assembler(symbols).assemble_hits(hits, counter, 400)
        assert pack.tokens == counter.count(pack.render()) <= 400
        assert any(p.label == "app/retry.py:6-14" for p in pack.pieces)
        (root / "app/retry.py").write_text("# moved away\n")  # a stale hit is skipped
        stale = await Assembler(symbols).assemble_hits(hits, counter, 400)
        assert not any(p.path == "app/retry.py" for p in stale.pieces)
    finally:
        symbols.close()
        index.close()
