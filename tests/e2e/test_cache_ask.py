"""The answer cache for workspace questions, through the real server (`llmLsp.ask`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session
from tests.e2e.test_ask import FIXTURE, QUESTION, ask, chats
from tests.e2e.test_cache import HIT_FOOTER

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider
) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("ask-cache")
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake_provider.base_url,
        LLM_LSP_ANSWER_CACHE="1",
    )
    session = await start_session(root, tmp_path, env=env)
    yield session
    await session.stop()


async def test_the_same_question_twice_asks_the_model_once(
    shared_session: Session, fake: FakeProvider, tmp_path: Path
) -> None:
    session = shared_session.begin()
    fake.script(Step(text="Retries live in `with_retries`."))
    first = await ask(session, {"question": QUESTION, "conversation": None})
    assert first["answered"] is True and "Retries live in `with_retries`." in first["markdown"]
    second = await ask(session, {"question": QUESTION, "conversation": None})
    assert "Retries live in `with_retries`." in second["markdown"]
    assert HIT_FOOTER.search(second["markdown"].rstrip()), second["markdown"]
    assert second["sources"] == first["sources"]
    assert len(chats(fake)) == 1
    records = await session.wait_for_lines(("cache",))
    assert [r["cache"] for r in records] == ["hit:exact"]
    summaries = await session.wait_for_lines(("request",), 2)
    assert [(r["outcome"], r["cache"], r["tier"]) for r in summaries] == [
        ("ok", "miss", "primary"),
        ("ok", "hit", "cache"),
    ]
