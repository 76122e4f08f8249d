"""A hover never waits for the model (`hoverWait`): static facts at once, the explanation
by ``llmLsp/explanationReady`` and from the cache; ``aiHover: onRepeat``; a document
edit cancels the background call. Through the real server, the fake provider slowed
to 2 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import client_capabilities

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session
from tests.e2e.test_health import _plain

pytestmark = pytest.mark.asyncio(loop_scope="module")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
LINE_ITEM = ("shop/basket.py", 13, 28)  # `LineItem(sku, price, quantity)`
VAT_RATE = ("shop/basket.py", 17, 37)  # `(1 + VAT_RATE)`
EXPLANATION = "Builds one line of the basket from a sku, its unit price and a quantity."
SLOW = 5.0  # the provider's latency: well past the wait, even on a busy machine


def _value(hover: types.Hover | None) -> str:
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


async def _first_hover(session: Session, at: tuple[str, int, int]) -> str:
    """The first hover that answers: jedi's first look at the workspace may take longer
    than a hover's static deadline on a busy machine (the hover then answers null)."""
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline:
        hover = await session.hover(*at)
        if hover is not None:
            return _value(hover)
        await asyncio.sleep(0.5)
    raise AssertionError(f"no hover at {at}")


def _env(tmp_path: Path, fake: FakeProvider, **extra: str) -> dict[str, str]:
    settings = {
        "OPENAI_API_KEY": TEST_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "LLM_LSP_HOVER_WAIT": "0.3",
        "LLM_LSP_EMBEDDING_MODEL": "",  # no background embedding: hovers are the only calls
    }
    return server_env(tmp_path, **{**settings, **extra})


async def _listening(
    tmp_path: Path, env: dict[str, str], declared: object = True
) -> tuple[Session, list[dict[str, Any]]]:
    """A server for a client that asked for ``llmLsp/explanationReady``; what it hears."""
    capabilities = client_capabilities("neovim")
    capabilities.experimental = {"llmLspExplanationReady": declared}
    received: list[dict[str, Any]] = []
    session = await start_session(
        copy_project(tmp_path), tmp_path, env=env, capabilities=capabilities
    )

    @session.client.feature("llmLsp/explanationReady")
    def on_ready(params: Any) -> None:
        received.append(_plain(params))

    return session, received


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live_session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider
) -> AsyncIterator[tuple[Session, list[dict[str, Any]]]]:
    """A client that asked for ``llmLsp/explanationReady``, the answer cache on."""
    tmp_path = tmp_path_factory.mktemp("hover-wait")
    env = _env(tmp_path, fake_provider, LLM_LSP_ANSWER_CACHE="1")
    session, received = await _listening(tmp_path, env)
    fake_provider.reset()  # what an earlier module scripted is not this warm-up's
    await session.warm(APPLY_DISCOUNT)
    yield session, received
    await session.stop()


async def _notified(received: list[dict[str, Any]], line: int, saying: str = "") -> dict[str, Any]:
    """The notification for a hover on ``line`` (the warm-up's may come late, too) whose
    markdown holds ``saying``."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        for payload in received:
            if payload["position"]["line"] == line and saying in payload["contents"]["value"]:
                return payload
        await asyncio.sleep(0.05)
    raise AssertionError(f"no llmLsp/explanationReady notification for line {line}: {received}")


async def test_slow_model_hover_answers_static_now_explanation_follows_then_cached(
    live_session: tuple[Session, list[dict[str, Any]]], fake: FakeProvider
) -> None:
    session, received = live_session
    session.begin()
    received.clear()
    fake.script(Step(text=EXPLANATION, delay=SLOW))

    value = _value(await session.hover(*LINE_ITEM))
    # answered while the provider still holds the call: static facts and the note
    [held] = await fake.wait_for_requests_async(1, 60.0, finished=False)
    assert not held.finished
    assert "class LineItem" in value or "`shop.pricing.LineItem`" in value
    assert "on its way" in value and EXPLANATION not in value

    path, line, character = LINE_ITEM
    payload = await _notified(received, line)
    assert payload["textDocument"]["uri"] == session.uri(path)
    assert payload["position"] == {"line": line, "character": character}
    assert payload["range"]["start"]["line"] == line
    assert payload["contents"]["kind"] == "markdown"
    ready = payload["contents"]["value"]
    assert EXPLANATION in ready and "`shop.pricing.LineItem`" in ready
    assert "on its way" not in ready

    again = _value(await session.hover(*LINE_ITEM))
    assert EXPLANATION in again and "cache" in again.splitlines()[-1]
    assert len(fake.requests) == 1  # the second hover paid nothing


async def test_an_edit_before_the_answer_cancels_the_background_call(
    live_session: tuple[Session, list[dict[str, Any]]], fake: FakeProvider
) -> None:
    session, received = live_session
    session.begin()
    received.clear()
    fake.script(Step(text=EXPLANATION, delay=30.0))
    path = "shop/stats.py"
    text = (session.root / path).read_text()
    uri = session.open(path, text)
    line = next(i for i, row in enumerate(text.splitlines()) if "def " in row)
    column = text.splitlines()[line].index("def ") + 4

    value = _value(await session.hover(path, line, column))
    assert "on its way" in value
    await fake.wait_for_requests_async(1, 60.0, finished=False)
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + "\n# x\n")],
        )
    )
    hung_up = await fake.wait_for_disconnect_async(60.0)
    assert hung_up is not None and hung_up.client_disconnected
    summaries = await session.wait_for_lines(("request",), 1)
    assert [s["outcome"] for s in summaries if s.get("feature") == "hover"] == ["cancelled"]
    await asyncio.sleep(0.5)  # nothing more is coming; give a stray notification its chance
    assert [p for p in received if p["textDocument"]["uri"] == uri] == []


async def test_on_repeat_first_hover_is_free_the_second_asks(
    tmp_path: Path, fake: FakeProvider
) -> None:
    env = _env(tmp_path, fake, LLM_LSP_AI_HOVER="onRepeat", LLM_LSP_HOVER_WAIT="600")
    session = await start_session(copy_project(tmp_path), tmp_path, env=env)
    try:
        first = await _first_hover(session, VAT_RATE)
        assert "VAT_RATE" in first and "Hover again" in first
        assert fake.requests == []
        fake.script(Step(text=EXPLANATION))
        second = _value(await session.hover(*VAT_RATE))
        assert EXPLANATION in second
        assert len(fake.requests) == 1
    finally:
        await session.stop()


async def test_without_the_notification_the_next_hover_shows_the_finished_answer(
    tmp_path: Path, fake: FakeProvider
) -> None:
    """An editor without the plugin, the answer cache off: the background answer is kept
    for the next hover on the same code."""
    session = await start_session(copy_project(tmp_path), tmp_path, env=_env(tmp_path, fake))
    try:
        fake.script(Step(text=EXPLANATION, delay=SLOW))
        first = await _first_hover(session, LINE_ITEM)
        assert "on its way" in first and "hover again" in first
        await fake.wait_for_requests_async(1, 60.0)
        await session.wait_for_lines(("request",), 1)
        second = _value(await session.hover(*LINE_ITEM))
        assert EXPLANATION in second
        assert len(fake.requests) == 1
    finally:
        await session.stop()


@pytest.mark.parametrize(
    ("wait", "declared", "delay"),
    [
        # ``hoverWait`` 0: the static facts always use it up, so the hover answers with
        # them before its pack is built; pack, cache and model follow in the background
        ("0", True, 0.0),
        # ``{"inPlace": true}`` (the Neovim plugin) is never made to wait, even with a
        # ``hoverWait`` of 600 s: the hover answers while the provider holds the call
        ("600", {"inPlace": True}, SLOW),
    ],
    ids=["static-facts-use-up-the-wait", "client-updates-in-place"],
)
async def test_a_hover_past_its_wait_answers_at_once_the_rest_follows(
    tmp_path: Path, fake: FakeProvider, wait: str, declared: object, delay: float
) -> None:
    """The first hover: static facts and the note; the explanation by notification; the
    same code hovered again shows the cached answer in the hover itself."""
    env = _env(tmp_path, fake, LLM_LSP_HOVER_WAIT=wait, LLM_LSP_ANSWER_CACHE="1")
    session, received = await _listening(tmp_path, env, declared)
    try:
        fake.script(Step(text=EXPLANATION, delay=delay))
        first = await _first_hover(session, LINE_ITEM)
        assert "`shop.pricing.LineItem`" in first and "on its way" in first
        assert EXPLANATION not in first
        payload = await _notified(received, LINE_ITEM[1])
        assert EXPLANATION in payload["contents"]["value"]
        again = _value(await session.hover(*LINE_ITEM))
        assert EXPLANATION in again and "cache" in again.splitlines()[-1]
        assert len(fake.requests) == 1
    finally:
        await session.stop()


async def _ready_for(
    session: Session, received: list[dict[str, Any]], at: tuple[str, int, int]
) -> tuple[str, str]:
    """A hover whose static facts were not ready within the wait (a placeholder), and the
    notification that followed it. Retried while jedi's first look at the workspace runs
    past a hover's static deadline on a busy machine (the notification is then empty)."""
    deadline = time.monotonic() + 180.0
    while time.monotonic() < deadline:
        received.clear()
        shown = _value(await session.hover(*at))
        payload = await _notified(received, at[1])
        if payload["contents"]["value"]:
            return shown, payload["contents"]["value"]
        await asyncio.sleep(0.5)
    raise AssertionError(f"no hover at {at}")


async def test_static_facts_an_in_place_client_would_wait_for_come_by_notification(
    tmp_path: Path, fake: FakeProvider
) -> None:
    """``hoverWait`` 0 and ``{"inPlace": true}``: the hover on a name is a one-line
    placeholder; the notification brings the whole hover (static facts and explanation);
    a name that is nothing to hover (a word in a comment) gets an empty notification;
    a keyword or a blank waits for jedi as before (no placeholder)."""
    env = _env(tmp_path, fake, LLM_LSP_HOVER_WAIT="0", LLM_LSP_ANSWER_CACHE="1")
    session, received = await _listening(tmp_path, env, {"inPlace": True})
    try:
        fake.script(Step(text=EXPLANATION))
        shown, later = await _ready_for(session, received, LINE_ITEM)
        assert shown == "_Reading the definition of `LineItem`; the AI explanation is on its way._"
        # the static facts as soon as they are ready (with the note), then the explanation
        assert "`shop.pricing.LineItem`" in later and "on its way" in later
        payload = await _notified(received, LINE_ITEM[1], EXPLANATION)
        assert "`shop.pricing.LineItem`" in payload["contents"]["value"]
        # "sku" in `# keep one line per sku`: a placeholder, then nothing
        received.clear()
        in_comment = ("shop/basket.py", 12, 29)
        assert "`sku`" in _value(await session.hover(*in_comment))
        payload = await _notified(received, in_comment[1])
        assert payload["contents"] == {"kind": "markdown", "value": ""}
        # `from` (a keyword): jedi's answer is awaited, and it is nothing
        assert await session.hover("shop/basket.py", 2, 1) is None
        assert len(fake.requests) == 1
    finally:
        await session.stop()
