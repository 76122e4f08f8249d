"""The answer cache through the real server: hits, misses, the stale tier, shared calls.

Each test writes its own pair of modules (``shop/<name>_defs.py`` and
``shop/<name>_use.py``), so the module's one server and its cache never mix
answers between tests.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEFS = '''"""Definitions."""


def apply_rate(total: float, rate: float) -> float:
    """Apply a rate."""
    rate = min(rate, 1.0)
    return round(total * (1 - rate), 2)
'''

USE = '''"""Uses."""

from shop.{name}_defs import apply_rate


def order_total(total: float, rate: float) -> float:
    # the order's total after its discount
    return apply_rate(total, rate)


def unrelated(x: int) -> int:
    return x + 1
'''
CALL = "return apply_rate(total, rate)"
HIT_FOOTER = re.compile(r"· cache, (just now|\d+ s old)_$")


def cache_env(tmp_path: Path, fake: FakeProvider, **extra: str | None) -> dict[str, str]:
    """A server with the answer cache on, talking to the fake provider."""
    return server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_LSP_ANSWER_CACHE="1",
        **extra,
    )


@pytest.fixture(scope="module")
def local_provider() -> Iterator[FakeProvider]:
    with FakeProvider(models=("qwen2.5-coder",)) as provider:
        yield provider


@pytest.fixture
def local(local_provider: FakeProvider) -> FakeProvider:
    local_provider.reset()
    return local_provider


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_cache_session(
    tmp_path_factory: pytest.TempPathFactory,
    fake_provider: FakeProvider,
    local_provider: FakeProvider,
) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("cache-session")
    root = copy_project(tmp_path)
    env = cache_env(
        tmp_path,
        fake_provider,
        LLM_LOCAL_BASE_URL=local_provider.base_url,
        LLM_LOCAL_MODEL="qwen2.5-coder",
        LLM_TIMEOUT="20",
        LLM_RETRY_INITIAL_BACKOFF="0.05",
        LLM_RETRY_MAX_BACKOFF="0.2",
    )
    session = await start_session(root, tmp_path, env=env)
    await session.warm(("shop/basket.py", 18, 17))
    yield session
    await session.stop()


@pytest.fixture
def cs(shared_cache_session: Session, fake: FakeProvider) -> Session:
    return shared_cache_session.begin()


class Pair:
    """One test's two modules: where the call is, and how to edit them."""

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.use = f"shop/{name}_use.py"
        self.defs = f"shop/{name}_defs.py"
        self.use_text = USE.format(name=name)
        self.defs_text = DEFS
        (session.root / self.defs).write_text(self.defs_text)
        (session.root / self.use).write_text(self.use_text)
        self.versions = {self.use: 1, self.defs: 1}
        session.open(self.use, self.use_text)

    def edit(self, relative: str, text: str) -> None:
        """The editor changes a buffer (and, for the other module, saves it)."""
        self.versions[relative] += 1
        uri = self.session.uri(relative)
        if relative == self.defs:
            self.defs_text = text
            (self.session.root / relative).write_text(text)
            self.session.client.workspace_did_change_watched_files(
                types.DidChangeWatchedFilesParams(
                    changes=[types.FileEvent(uri=uri, type=types.FileChangeType.Changed)]
                )
            )
            return
        self.use_text = text
        self.session.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[relative]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def at(self) -> tuple[str, int, int]:
        """Where `apply_rate` is called in the use module now."""
        for number, line in enumerate(self.use_text.splitlines()):
            if CALL in line:
                return self.use, number, line.index(CALL) + len("return ")
        raise AssertionError("the call is gone")

    async def hover(self) -> str:
        hover = await self.session.hover(*self.at())
        assert hover is not None
        assert isinstance(hover.contents, types.MarkupContent)
        return hover.contents.value


def chats(fake: FakeProvider) -> int:
    return len([r for r in fake.requests if r.path == "/v1/chat/completions"])


async def test_same_hover_twice_makes_one_call_and_says_cache_with_its_age(
    cs: Session, fake: FakeProvider
) -> None:
    pair = Pair(cs, "twice")
    fake.script(Step(text="Applies the capped rate.", usage=(300, 40)))
    first = await pair.hover()
    assert "Applies the capped rate." in first
    assert first.rstrip().endswith("· primary_")
    second = await pair.hover()
    assert "Applies the capped rate." in second
    assert HIT_FOOTER.search(second.rstrip()), second
    assert "saved $0.0011" in second  # 300 * 2.5/M + 40 * 10/M
    assert chats(fake) == 1
    records = await cs.wait_for_lines(("attempt", "cache"), 2)
    assert [(r["provider"], r["outcome"], r["cache"]) for r in records] == [
        ("primary", "ok", ""),
        ("cache", "cached", "hit:exact"),
    ]
    assert records[1]["saved_usd"] == pytest.approx(0.00115)


async def test_reformat_comment_and_unrelated_edits_hit(cs: Session, fake: FakeProvider) -> None:
    pair = Pair(cs, "reformat")
    fake.script(Step(text="Explained once."))
    assert "Explained once." in await pair.hover()
    edited = (
        pair.use_text.replace(
            "def order_total(total: float, rate: float) -> float:",
            "def order_total(\n    total: float,\n    rate: float,\n) -> float:",
        )
        .replace("# the order's total after its discount", "# reworded comment")
        .replace("return x + 1", "return x + 2")
        .replace("'''", '"""')
    )
    pair.edit(pair.use, edited)
    pair.edit(pair.defs, pair.defs_text.replace('"""Apply a rate."""', "'Apply a rate.'  # doc"))
    value = await pair.hover()
    assert "Explained once." in value
    assert HIT_FOOTER.search(value.rstrip()), value
    assert chats(fake) == 1
    [_, hit] = await cs.wait_for_lines(("attempt", "cache"), 2)
    assert hit["cache"] == "hit:structural"


async def test_change_to_the_function_or_a_definition_in_its_pack_misses(
    cs: Session, fake: FakeProvider
) -> None:
    pair = Pair(cs, "change")
    fake.script(Step(text="First."), Step(text="Second."), Step(text="Third."))
    assert "First." in await pair.hover()
    body = "    # the order's total after its discount\n"
    pair.edit(pair.use, pair.use_text.replace(body, "    total = abs(total)\n"))
    value = await pair.hover()
    assert "Second." in value
    assert value.rstrip().endswith("· primary_")
    pair.edit(pair.use, USE.format(name="change"))  # back to the first version: a hit
    assert "First." in await pair.hover()
    pair.edit(pair.defs, pair.defs_text.replace("min(rate, 1.0)", "min(rate, 0.9)"))
    value = await pair.hover()
    assert "Third." in value
    assert chats(fake) == 3


def _hover_params(session: Session, at: tuple[str, int, int]) -> types.HoverParams:
    path, line, character = at
    return types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=session.uri(path)),
        position=types.Position(line=line, character=character),
    )


async def _log_count(session: Session, text: str, count: int) -> None:
    """Wait (for an event in the server's log) until ``text`` appears ``count`` times."""
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        if session.stderr_log.read_text().count(text) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {count} times")


async def test_five_identical_hovers_share_one_call_and_four_cancelled_still_answer_the_fifth(
    cs: Session, fake: FakeProvider
) -> None:
    pair = Pair(cs, "five")
    joined = cs.stderr_log.read_text().count("sharing the call in flight")
    fake.script(Step(text="One answer for all.", delay=8.0))
    protocol = cs.client.protocol
    params = _hover_params(cs, pair.at())
    pending = {
        msg_id: asyncio.ensure_future(
            protocol.send_request_async(types.TEXT_DOCUMENT_HOVER, params, msg_id=msg_id)
        )
        for msg_id in range(9101, 9106)
    }
    await fake.wait_for_requests_async(1, 60.0, finished=False)
    await _log_count(cs, "sharing the call in flight", joined + 4)
    for msg_id in list(pending)[:4]:
        protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    for msg_id in list(pending)[:4]:
        with pytest.raises(JsonRpcException) as info:
            await asyncio.wait_for(pending[msg_id], 60)
        assert info.value.code == -32800
    fifth = await asyncio.wait_for(pending[9105], 60)
    assert fifth is not None and isinstance(fifth.contents, types.MarkupContent)
    assert "One answer for all." in fifth.contents.value
    [call] = fake.requests
    assert not call.client_disconnected


async def test_cancelling_every_waiter_cancels_the_shared_call(
    cs: Session, fake: FakeProvider
) -> None:
    pair = Pair(cs, "all_cancelled")
    joined = cs.stderr_log.read_text().count("sharing the call in flight")
    fake.script(Step(text="too late", delay=30.0))
    protocol = cs.client.protocol
    params = _hover_params(cs, pair.at())
    pending = [
        asyncio.ensure_future(
            protocol.send_request_async(types.TEXT_DOCUMENT_HOVER, params, msg_id=msg_id)
        )
        for msg_id in (9201, 9202)
    ]
    await fake.wait_for_requests_async(1, 60.0, finished=False)
    await _log_count(cs, "sharing the call in flight", joined + 1)
    protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=9201))
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(pending[0], 60)
    assert fake.requests[0].client_disconnected is False  # one still waits
    protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=9202))
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(pending[1], 60)
    hung_up = await fake.wait_for_disconnect_async(60.0)
    assert hung_up is not None and hung_up.client_disconnected


async def test_regenerate_action_asks_again_and_refreshes_the_cached_answer(
    cs: Session, fake: FakeProvider
) -> None:
    pair = Pair(cs, "regen")
    fake.script(Step(text="The old answer."), Step(text="The new answer."))
    assert "The old answer." in await pair.hover()
    path, line, character = pair.at()
    cursor = types.Range(types.Position(line, character), types.Position(line, character))
    actions = await cs.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=cs.uri(path)),
            range=cursor,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None
    [regen] = [a for a in actions if a.title.startswith("Regenerate")]
    assert isinstance(regen, types.CodeAction) and regen.command is not None
    assert regen.command.command == "llmLsp.regenerate"
    assert chats(fake) == 1  # listing costs nothing
    result = await cs.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=regen.command.command, arguments=regen.command.arguments)
    )
    assert result["ok"] is True
    assert "The new answer." in result["markdown"]
    assert "regenerated the explanation of `shop.regen_defs.apply_rate`" in (
        cs.client.messages[-1].message
    )
    value = await pair.hover()
    assert "The new answer." in value
    assert HIT_FOOTER.search(value.rstrip()), value
    assert chats(fake) == 2


async def test_cached_prompt_tokens_are_recorded_and_priced_at_the_cached_rate(
    cs: Session, fake: FakeProvider
) -> None:
    pair = Pair(cs, "prefix")
    fake.script(Step(text="Priced.", usage=(1000, 100), cached_tokens=800))
    value = await pair.hover()
    # 200 * $2.50/M + 800 * $1.25/M + 100 * $10/M = $0.0025
    assert "_gpt-4o · 1000 in / 100 out tokens (800 cached) · $0.0025 · " in value
    [record] = await cs.wait_for_usage()
    assert record["cached_tokens"] == 800
    assert record["cost_usd"] == pytest.approx(0.0025)
    # the stable part (system rules, then the code) comes first; the variable part last
    [request] = fake.requests
    system, user = request.messages
    assert system["role"] == "system" and "{words}" not in system["content"]
    assert user["content"].startswith("Code from the workspace:")
    assert user["content"].rstrip().endswith(f"as used at {pair.use}:{pair.at()[1] + 1}.")


async def test_all_providers_down_serves_the_earlier_answer_marked_stale(
    cs: Session, fake: FakeProvider, local: FakeProvider
) -> None:
    """Last in the module: it leaves the primary's breaker open."""
    pair = Pair(cs, "stale")
    fake.script(Step(text="Written for the first version."))
    assert "Written for the first version." in await pair.hover()
    body = "    # the order's total after its discount\n"
    pair.edit(pair.use, pair.use_text.replace(body, "    total = abs(total)\n"))
    fake.set_default(Step(status=503))
    local.set_default(Step(status=503))
    value = await pair.hover()
    assert "Written for the first version." in value
    assert "_Stale answer from the cache, written " in value
    assert "the code changed since in target: function `order_total`" in value
    assert "No live model answered: server error" in value
    assert "gpt-4o: server error 503" in value
    assert "qwen2.5-coder: server error 503" in value
    assert re.search(r"· cache, stale, (just now|\d+ s old)_$", value.rstrip()), value
    assert {r.model for r in local.requests} == {"qwen2.5-coder"}
    records = await cs.wait_for_lines(("cache",))
    assert records[-1]["cache"] == "stale:latest"
    assert records[-1]["saved_usd"] == 0.0
