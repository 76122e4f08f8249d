"""Keyword ranking, rank fusion and the workspace corpus, on known answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.context.retrieval import corpus as corpus_module
from lsp_server.context.retrieval.corpus import Corpus, discover
from lsp_server.context.retrieval.embeddings import ChunkRef
from lsp_server.context.retrieval.hybrid import select
from lsp_server.context.retrieval.lexical import RRF_K, Bm25, fuse, split_identifier, stem, tokens
from lsp_server.workspace import WorkspaceBoundary


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("with_retries", ["with", "retries"]),
        ("parseHTTPResponse", ["parse", "HTTP", "Response"]),
        ("RetryPolicy", ["Retry", "Policy"]),
        ("__init__", ["init"]),
        ("o200k_base", ["o", "200", "k", "base"]),
    ],
)
def test_identifiers_split_at_underscores_and_humps(name: str, parts: list[str]) -> None:
    assert split_identifier(name) == parts


def test_tokens_are_stemmed_lowercase_words_without_noise() -> None:
    assert tokens("Where do we handle retries?") == ["handl", "retry"]
    assert tokens("def with_retries(self): retrying, retried, handling") == [
        "retry",
        "retry",
        "retry",
        "handl",
    ]
    assert tokens("class Money: return None") == ["money"]
    assert {stem(w) for w in ("caches", "cache", "caching", "cached")} == {"cach"}
    assert stem("status") == "status" and stem("class") == "class"


def _ref(path: str, name: str, line: int = 1) -> ChunkRef:
    return ChunkRef(path, name, "function", line, line + 1, "h", "k")


def test_bm25_prefers_rare_terms_and_forgets_removed_documents() -> None:
    index: Bm25[str] = Bm25()
    index.add("retry", tokens("with_retries call again after transient failures"))
    index.add("tax", tokens("apply_tax add the sales tax"))
    index.add("both", tokens("retry the tax call"))
    for i in range(10):
        index.add(f"filler{i}", tokens(f"call filler number {i}"))
    ranked = index.rank(tokens("handle retries"), k=5)
    # the shorter document wins on one shared term (length normalisation) ...
    assert [key for _, key in ranked] == ["both", "retry"]
    # ... and a second, rare term outweighs it; "call" (in 12 documents) counts little
    ranked = index.rank(tokens("call with retries on transient failures"), k=3)
    assert [key for _, key in ranked][:2] == ["retry", "both"]
    assert ranked[0][0] > ranked[1][0] > ranked[2][0] > 0
    assert index.rank(tokens("nothing matches"), k=5) == []
    index.remove("retry")
    assert [key for _, key in index.rank(tokens("retries"), k=5)] == ["both"]
    assert len(index) == 12


def test_bm25_ties_keep_insertion_order() -> None:
    index: Bm25[str] = Bm25()
    for name in ("c", "a", "b"):
        index.add(name, ["same"])
    assert [key for _, key in index.rank(["same"], k=3)] == ["c", "a", "b"]


def test_fusion_rewards_agreement_between_rankings() -> None:
    fused = fuse([["a", "b", "c"], ["c", "d", "a"]])
    scores = dict((key, score) for score, key in fused)
    assert scores["a"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 3))
    assert scores["d"] == pytest.approx(1 / (RRF_K + 2))
    assert [key for _, key in fused] == ["a", "c", "b", "d"]


def test_select_keeps_the_best_files_and_caps_chunks_per_file() -> None:
    lexical = [_ref("x.py", f"f{i}", i * 10) for i in range(5)] + [_ref("y.py", "g")]
    hits = select(lexical, None, files=2, per_file=2)
    assert [(h.path, h.chunk.qualname) for h in hits] == [
        ("x.py", "f0"),
        ("x.py", "f1"),
        ("y.py", "g"),
    ]
    semantic = [_ref("z.py", "h"), _ref("y.py", "g")]
    fused = select(lexical, semantic, files=2, per_file=2)
    # y.py:g is in both rankings and wins; z.py's single vote beats x.py's second chunk's
    assert [(h.path, h.chunk.qualname) for h in fused][:2] == [("y.py", "g"), ("x.py", "f0")]
    assert {h.path for h in fused} == {"y.py", "x.py"}


@pytest.fixture
def root(root: Path) -> Path:
    """The context project, with a virtualenv and a cache directory to skip."""
    target = root
    (target / ".venv" / "lib").mkdir(parents=True)
    (target / ".venv" / "lib" / "ignored.py").write_text("def retry(): ...\n")
    (target / "app" / "__pycache__").mkdir()
    return target


def test_discover_skips_hidden_and_cache_directories(root: Path) -> None:
    found = discover(WorkspaceBoundary(root))
    assert "app/retry.py" in found and "tests/test_service.py" in found
    assert not any(".venv" in p or "__pycache__" in p for p in found)
    assert found == sorted(found)


async def test_corpus_ranks_lexically_and_follows_changes(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = Corpus(WorkspaceBoundary(root), tmp_path / "index")
    try:
        reports: list[str] = []
        assert await corpus.refresh(reports.append) == len(discover(WorkspaceBoundary(root)))
        assert reports[0] == f"Indexing {len(discover(WorkspaceBoundary(root)))} files…"
        [(_, best), *_] = await corpus.rank("Where do we handle retries?", k=5)
        assert (best.path, best.qualname, best.start_line) == ("app/retry.py", "with_retries", 6)
        # a change re-chunks that file only; a deletion drops the file
        (root / "app/pricing.py").write_text("def add_surcharge():\n    return 1\n")
        (root / "app/retry.py").unlink()
        assert await corpus.refresh() == len(discover(WorkspaceBoundary(root)))
        assert await corpus.rank("retries", k=5) == []
        assert [r.qualname for _, r in await corpus.rank("surcharge", k=5)] == ["add_surcharge"]
    finally:
        corpus.close()
    # a new instance on the same directory reuses every entry without chunking
    calls: list[str] = []
    real = corpus_module.chunk_module
    monkeypatch.setattr(
        corpus_module, "chunk_module", lambda text, path: calls.append(path) or real(text, path)
    )
    again = Corpus(WorkspaceBoundary(root), tmp_path / "index")
    try:
        await again.refresh()
        assert calls == []
        assert [r.qualname for _, r in await again.rank("surcharge", k=5)] == ["add_surcharge"]
        assert await again.update("app/pricing.py") is False
        (root / "app/pricing.py").write_text("def add_fee():\n    return 2\n")
        assert await again.update("app/pricing.py") is True
        assert calls == ["app/pricing.py"]
        assert await again.rank("surcharge", k=5) == []
    finally:
        again.close()
