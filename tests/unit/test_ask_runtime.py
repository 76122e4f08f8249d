"""`Asker` on a tiny runtime of its own: no `Engine`, no jedi, no language server.

The runtime below is everything Ask needs (`pipeline.runtime.AskRuntime`): the
settings, a real `LlmService` talking to the fake provider, a token counter,
an in-memory summary cache, and a packer for the retrieved chunks built on the
real `build_pack`. Nothing here starts a jedi child or a symbol index.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lsp_server.cache import AnswerCache
from lsp_server.context.pack.pieces import Candidate, ContextPack, Role, build_pack, piece
from lsp_server.context.retrieval.embeddings import Hit
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.llm.service import LlmService
from lsp_server.pipeline.ask import Asker
from lsp_server.pipeline.memory import SummaryCache
from lsp_server.settings import Settings, build_settings
from lsp_server.telemetry.usage import UsageLog
from lsp_server.testing.fake_provider import FakeProvider, Step
from lsp_server.workspace import WorkspaceBoundary

FIXTURE = Path(__file__).parent.parent / "fixtures" / "context" / "proj"
QUESTION = "Where do we handle retries?"


class TinyRuntime:
    """An `AskRuntime` without an engine."""

    def __init__(self, settings: Settings, root: Path, counter: TokenCounter) -> None:
        self.settings = settings
        self.root = root
        self.workspace = WorkspaceBoundary(root)
        self.usage_log = UsageLog(settings.storage.usage_log)
        self.llm = LlmService(settings.llm, self.usage_log)
        self.answers = AnswerCache.open(
            settings.storage.cache_dir / "answer-cache", ttl=60, size_bytes=1 << 20, enabled=False
        )
        self.assembler = self
        self._counter = counter
        self._summaries = SummaryCache()

    async def counter(self, model: str) -> TokenCounter:
        return self._counter

    def display_path(self, path: Path | None) -> str:
        return "<unsaved>" if path is None else path.relative_to(self.root).as_posix()

    def summaries(self) -> SummaryCache:
        return self._summaries

    async def assemble_hits(
        self, hits: list[Hit], counter: TokenCounter, budget: int
    ) -> ContextPack:
        """Each hit's chunk in full, as read from disk."""
        candidates = []
        for hit in hits:
            lines = (self.root / hit.path).read_text(encoding="utf-8").splitlines()
            start, end = hit.chunk.start_line, hit.chunk.end_line
            text = "\n".join(lines[start - 1 : end])
            found = piece(hit.path, start, end, Role.DEFINITION, hit.chunk.qualname, text)
            candidates.append(Candidate(found, Role.DEFINITION))
        return build_pack(candidates, counter, budget)

    async def aclose(self) -> None:
        await self.llm.aclose()
        self._summaries.close()


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return counter_for_model("gpt-4o")


@pytest_asyncio.fixture
async def runtime(
    tmp_path: Path, fake: FakeProvider, counter: TokenCounter
) -> AsyncIterator[TinyRuntime]:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    env = {
        "OPENAI_API_KEY": "sk-test-ask",
        "OPENAI_BASE_URL": fake.base_url,
        "LLM_LSP_CACHE_DIR": str(tmp_path / "cache"),
        "LLM_LSP_USAGE_LOG": str(tmp_path / "usage.jsonl"),
        "HOME": str(tmp_path),
    }
    settings, problems = build_settings(env=env, workspace_config={"embeddingModel": ""})
    assert problems == []
    rt = TinyRuntime(settings, root, counter)
    yield rt
    await rt.aclose()


def chats(fake: FakeProvider) -> list[dict[str, object]]:
    return [r.body for r in fake.requests if r.path == "/v1/chat/completions"]


async def test_ask_answers_and_follows_up_on_a_tiny_runtime(
    runtime: TinyRuntime, fake: FakeProvider
) -> None:
    fake.script(Step(text="Retries live in `with_retries`."), Step(text="Three attempts."))
    asker = Asker(runtime)
    try:
        first = await asker.ask(QUESTION)
        assert first.answered and first.ranking == "keywords"
        assert first.sources[0].path == "app/retry.py"
        assert "Retries live in `with_retries`." in first.markdown
        assert "- `app/retry.py:" in first.markdown  # the Sources list
        sent = chats(fake)[0]
        prompt = str(sent["messages"])
        assert "def with_retries(call, attempts: int = 3, delay: float = 0.1):" in prompt

        second = await asker.ask("How many attempts?", first.conversation)
        assert second.conversation == first.conversation
        assert "Three attempts." in second.markdown
        history = str(chats(fake)[1]["messages"])
        assert QUESTION in history and "Retries live in `with_retries`." in history
    finally:
        asker.close()
