"""Shared fixtures: the fake provider, and a real `llm-lsp serve` process driven over LSP."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from lsp_server.testing.fake_provider import FakeProvider

FIXTURES = Path(__file__).parent / "fixtures"
TEST_KEY = "sk-test-DO-NOT-LEAK-1234567890abcdef"
CLIENTS = ["neovim@v0.11.0", "visual-studio-code"]


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    """One fake provider for the session; each test starts from a clean script."""
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset()
    return fake_provider


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the sample project, so tests may change files freely."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", root)
    return root


@dataclass
class Session:
    """A started server with its client, workspace and where it logs usage."""

    client: LanguageClient
    root: Path
    usage_log: Path
    stderr_log: Path

    def uri(self, relative: str) -> str:
        return (self.root / relative).as_uri()

    def open(self, relative: str, text: str | None = None, version: int = 1) -> str:
        uri = self.uri(relative)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri,
                    language_id="python",
                    version=version,
                    text=text if text is not None else (self.root / relative).read_text(),
                )
            )
        )
        return uri

    async def hover(self, relative: str, line: int, character: int) -> types.Hover | None:
        return await self.client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri(relative)),
                position=types.Position(line=line, character=character),
            )
        )

    def usage(self) -> list[dict[str, Any]]:
        if not self.usage_log.exists():
            return []
        return [json.loads(line) for line in self.usage_log.read_text().splitlines() if line]


def server_env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    env.update(
        {
            "LLM_LSP_CACHE_DIR": str(tmp_path / "cache"),
            "LLM_LSP_USAGE_LOG": str(tmp_path / "usage.jsonl"),
            "LLM_LSP_LOG_LEVEL": "DEBUG",
        }
    )
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


async def start_session(
    root: Path,
    tmp_path: Path,
    *,
    client_name: str = "visual-studio-code",
    env: dict[str, str] | None = None,
    init_options: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
) -> Session:
    """Start `python -m lsp_server serve` and initialize it like the named editor would."""
    stderr_log = tmp_path / "server-stderr.log"
    client = make_test_lsp_client()
    if configuration is not None:
        client.set_configuration(configuration)
    env = env or server_env(tmp_path)
    await client.start_io(
        sys.executable,
        "-m",
        "lsp_server",
        "--log-file",
        str(stderr_log),
        "serve",
        env=env,
    )
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(client_name),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="project")],
            initialization_options=init_options,
        )
    )
    return Session(client, root, Path(env["LLM_LSP_USAGE_LOG"]), stderr_log)


@pytest_asyncio.fixture(params=CLIENTS)
async def ai_session(
    request: pytest.FixtureRequest, workspace: Path, tmp_path: Path, fake: FakeProvider
) -> AsyncIterator[Session]:
    """A server configured for the fake provider, as Neovim and as VS Code."""
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(workspace, tmp_path, client_name=request.param, env=env)
    yield session
    await session.client.shutdown_session()
    await session.client.stop()
