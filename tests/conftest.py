"""Shared fixtures: the fake provider, and a real `llm-lsp serve` process driven over LSP."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from lsp_server.testing.fake_provider import FakeProvider, RecordedRequest

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


def copy_project(target: Path) -> Path:
    """A copy of the sample project, so tests may change files freely."""
    root = target / "project"
    shutil.copytree(FIXTURES / "project", root)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_project(tmp_path)


@dataclass
class Session:
    """A started server with its client, workspace and where it logs usage."""

    client: LanguageClient
    root: Path
    usage_log: Path
    stderr_log: Path
    usage_offset: int = 0
    line_offset: int = 0  # usage-log lines of every kind before `begin()`
    opened: set[str] = field(default_factory=set)
    initialized: types.InitializeResult | None = None  # the server's answer to `initialize`

    def begin(self) -> Session:
        """Start a test on a shared session: later `usage()` calls see only new records."""
        self.usage_offset = len(self._all_usage())
        self.line_offset = len(self.records(None))
        for uri in list(self.opened):
            self.close(uri)
        return self

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
        self.opened.add(uri)
        return uri

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        self.opened.discard(uri)

    async def hover(self, relative: str, line: int, character: int) -> types.Hover | None:
        return await self.client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri(relative)),
                position=types.Position(line=line, character=character),
            )
        )

    async def cancelled_hover(
        self, fake: FakeProvider, at: tuple[str, int, int], msg_id: int
    ) -> RecordedRequest:
        """Hover at ``at``, cancel once the fake holds the provider call; assert the editor
        got -32800 (RequestCancelled) and return the provider request the fake saw hang up."""
        path, line, character = at
        params = types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri(path)),
            position=types.Position(line=line, character=character),
        )
        protocol = self.client.protocol
        pending = asyncio.ensure_future(
            protocol.send_request_async(types.TEXT_DOCUMENT_HOVER, params, msg_id=msg_id)
        )
        await fake.wait_for_requests_async(1, 60.0, finished=False)
        protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        with pytest.raises(JsonRpcException) as info:
            await asyncio.wait_for(pending, 60)
        assert info.value.code == -32800
        hung_up = await fake.wait_for_disconnect_async(60.0)
        assert hung_up is not None and hung_up.client_disconnected
        return hung_up

    async def wait_for_usage(self, count: int = 1) -> list[dict[str, Any]]:
        """Usage records since `begin()`, once ``count`` are written (within 60 s; the log
        is async)."""
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if len(self.usage()) >= count:
                break
            await asyncio.sleep(0.05)
        return self.usage()

    async def warm(self, at: tuple[str, int, int]) -> None:
        """Hover at ``at`` until it answers, then wait for its usage record.

        Jedi's first look at the workspace can take longer than a hover's static
        deadline on a busy machine (the hover then answers null); a shared session
        warms up once, so its tests see the features and not the cold start.
        """
        deadline = time.monotonic() + 180.0
        while time.monotonic() < deadline:
            if await self.hover(*at) is not None:
                break
            await asyncio.sleep(0.5)
        await self.wait_for_usage()

    def _all_usage(self) -> list[dict[str, Any]]:
        """The attempt records (request summaries and signals are `records(kind)`)."""
        return self.records("attempt")

    def records(self, kind: str | None) -> list[dict[str, Any]]:
        """Every usage-log line of ``kind`` ("attempt", "request", "signal", "limit",
        "cache"); None: every line."""
        if not self.usage_log.exists():
            return []
        lines = [json.loads(line) for line in self.usage_log.read_text().splitlines() if line]
        return [r for r in lines if kind is None or r.get("kind", "attempt") == kind]

    async def wait_for_lines(self, kinds: tuple[str, ...], count: int = 1) -> list[dict[str, Any]]:
        """Lines of ``kinds`` written since `begin()`, in order, once ``count`` are there
        (within 60 s; the log is async)."""

        def lines() -> list[dict[str, Any]]:
            since = self.records(None)[self.line_offset :]
            return [r for r in since if r.get("kind", "attempt") in kinds]

        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if len(lines()) >= count:
                break
            await asyncio.sleep(0.05)
        return lines()

    def usage(self) -> list[dict[str, Any]]:
        """Usage records of provider attempts written since `begin()`."""
        return self._all_usage()[self.usage_offset :]

    async def stop(self) -> None:
        await self.client.shutdown_session()
        await self.client.stop()


def server_env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    env.update(
        {
            "LLM_LSP_CACHE_DIR": str(tmp_path / "cache"),
            "LLM_LSP_USAGE_LOG": str(tmp_path / "usage.jsonl"),
            "LLM_LSP_LOG_LEVEL": "DEBUG",
            # Tests repeat the same hover and expect a provider call each time; the answer
            # cache's own tests (tests/e2e/test_cache*.py) turn it on.
            "LLM_LSP_ANSWER_CACHE": "0",
            # Hover tests expect the explanation in the hover itself, however slow the
            # scripted provider; the wait's own tests (tests/e2e/test_hover_wait.py) set it.
            "LLM_LSP_HOVER_WAIT": "600",
        }
    )
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _fix_code_action_union(client: LanguageClient) -> None:
    """lsprotocol structures any `{..., "command": ...}` as a Command, even a CodeAction
    whose `command` is an object. Editors tell them apart by the type of `command`;
    make the test client do the same."""
    converter = client.protocol._converter

    def hook(obj: Any, _: type) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(types.Command | types.CodeAction, hook)
    converter.register_structure_hook(Union[types.Command, types.CodeAction], hook)  # noqa: UP007


async def start_session(
    root: Path,
    tmp_path: Path,
    *,
    client_name: str = "visual-studio-code",
    env: dict[str, str] | None = None,
    init_options: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    capabilities: types.ClientCapabilities | None = None,
    cwd: Path | None = None,
    single_file: bool = False,
) -> Session:
    """Start `python -m lsp_server serve` and initialize it like the named editor would.

    With ``cwd`` the server runs there as ``python -P`` (like the installed
    ``llm-lsp`` script, nothing is imported from its working directory). With
    ``single_file`` no workspace folder is sent (a file opened alone); ``root``
    is then only where the session's relative paths point."""
    stderr_log = tmp_path / "server-stderr.log"
    client = make_test_lsp_client()
    _fix_code_action_union(client)
    if configuration is not None:
        client.set_configuration(configuration)
    env = env or server_env(tmp_path)
    await client.start_io(
        sys.executable,
        *(["-P"] if cwd is not None else []),
        "-m",
        "lsp_server",
        "--log-file",
        str(stderr_log),
        "serve",
        env=env,
        cwd=cwd,
    )
    initialized = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities or client_capabilities(client_name),
            root_uri=None if single_file else root.as_uri(),
            workspace_folders=None
            if single_file
            else [types.WorkspaceFolder(uri=root.as_uri(), name="project")],
            initialization_options=init_options,
        )
    )
    return Session(
        client, root, Path(env["LLM_LSP_USAGE_LOG"]), stderr_log, initialized=initialized
    )


@pytest_asyncio.fixture(params=CLIENTS, scope="module", loop_scope="module")
async def shared_ai_session(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_provider: FakeProvider,
) -> AsyncIterator[Session]:
    """One server per module and editor, configured for the fake provider."""
    tmp_path = tmp_path_factory.mktemp("session")
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake_provider.base_url)
    session = await start_session(
        copy_project(tmp_path), tmp_path, client_name=request.param, env=env
    )
    await session.warm(("shop/basket.py", 18, 17))
    yield session
    await session.stop()


@pytest.fixture
def ai_session(shared_ai_session: Session, fake: FakeProvider) -> Session:
    """The module's server, as Neovim and as VS Code, with a clean fake and usage view."""
    return shared_ai_session.begin()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on 127.0.0.1 for the session; tests use their own key prefixes."""
    from tests.services import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
