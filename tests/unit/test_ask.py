"""`Asker` in process (no LSP): keyword-only ranking when embeddings are off or unavailable."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from lsp_server.engine import Engine
from lsp_server.pipeline.ask import AskError
from lsp_server.settings import build_settings
from lsp_server.testing.fake_provider import FakeProvider, Step

FIXTURE = Path(__file__).parent.parent / "fixtures" / "context" / "proj"
QUESTION = "Where do we handle retries?"

MakeEngine = Callable[..., Coroutine[Any, Any, Engine]]


@pytest_asyncio.fixture
async def make_engine(tmp_path: Path, fake: FakeProvider) -> AsyncIterator[MakeEngine]:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    engines: list[Engine] = []

    async def make(**config: Any) -> Engine:
        env = {
            "OPENAI_API_KEY": "sk-test-ask",
            "OPENAI_BASE_URL": fake.base_url,
            "LLM_LSP_CACHE_DIR": str(tmp_path / "cache"),
            "LLM_LSP_USAGE_LOG": str(tmp_path / "usage.jsonl"),
            "HOME": str(tmp_path),
        }
        settings, problems = build_settings(env=env, init_options=config)
        assert problems == []
        engine = Engine(settings, root)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.aclose()


def embeddings(fake: FakeProvider) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/embeddings"]


async def test_empty_embedding_model_ranks_by_keywords_and_embeds_nothing(
    make_engine: MakeEngine, fake: FakeProvider
) -> None:
    engine = await make_engine(embeddingModel="")
    outcome = await engine.asker().ask(QUESTION)
    assert outcome.ranking == "keywords" and outcome.answered
    assert "_Ranked by keyword match only: embeddings are off (`embeddingModel` is empty)._" in (
        outcome.markdown
    )
    assert outcome.sources[0].path == "app/retry.py"
    assert embeddings(fake) == []


async def test_open_breaker_skips_embeddings_and_says_why(
    make_engine: MakeEngine, fake: FakeProvider
) -> None:
    engine = await make_engine(breakerFailureThreshold=1, retryMaxAttempts=1)
    fake.script(Step(status=500), endpoint="embeddings")
    fake.script(Step(text="first"), Step(text="second"))
    first = await engine.asker().ask(QUESTION)
    assert first.ranking == "keywords"
    assert "embeddings unavailable: primary text-embedding-3-small: server error 500" in (
        first.markdown
    )
    sent = len(embeddings(fake))
    second = await engine.asker().ask(QUESTION)
    # the primary's breaker is open: no embeddings call; the cheap tier answers the question
    assert len(embeddings(fake)) == sent
    assert "embeddings unavailable: primary circuit open" in second.markdown
    assert second.answered and second.completion is not None
    assert second.completion.tier == "cheap"


async def test_bad_input_and_no_workspace(make_engine: MakeEngine) -> None:
    engine = await make_engine()
    with pytest.raises(AskError, match="the question is longer than 4000 characters"):
        await engine.asker().ask("why? " * 1000)
    no_root = Engine(engine.settings, None)
    try:
        with pytest.raises(AskError, match="open a workspace folder first"):
            await no_root.asker().ask(QUESTION)
    finally:
        await no_root.aclose()
