"""Hover through the real `llm-lsp serve` process, with the fake provider on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

# basket.py line 19 (0-based 18): `        return apply_discount(with_vat, discount)`
pytestmark = pytest.mark.asyncio(loop_scope="module")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
EXPLANATION = "Caps the percentage at 100 and rounds the discounted total to cents."


def _value(hover: types.Hover | None) -> str:
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.kind == types.MarkupKind.Markdown
    return hover.contents.value


async def test_hover_shows_static_facts_model_answer_and_truthful_footer(
    ai_session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(text=EXPLANATION, usage=(321, 45), cached_tokens=0))
    value = _value(await ai_session.hover(*APPLY_DISCOUNT))

    assert "def apply_discount(total: float, percent: float) -> float" in value
    assert "**function** `shop.pricing.apply_discount`" in value
    assert "defined at `shop/pricing.py:17`" in value
    assert "Reduce a total by a percentage." in value
    assert EXPLANATION in value
    # 321 * $2.50/M + 45 * $10/M = $0.0012525
    assert "_gpt-4o · 321 in / 45 out tokens · $0.0013 · " in value
    assert value.rstrip().endswith("· primary_")

    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.model == "gpt-4o"
    assert request.auth == TEST_KEY
    prompt = "\n".join(str(m["content"]) for m in request.messages)
    # grounded: the enclosing method and the cross-file definition are in the prompt
    assert "def total(self, discount: float = 0.0) -> float:" in prompt
    assert "percent = min(percent, 100.0)" in prompt
    assert "shop/pricing.py:17-23" in prompt
    assert "shop/basket.py:16-19" in prompt

    [record] = ai_session.usage()
    assert record["feature"] == "hover"
    assert record["outcome"] == "ok"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (321, 45)
    assert record["cost_usd"] == pytest.approx(0.0012525)
    assert record["model"] == "gpt-4o"
    for text in (ai_session.usage_log.read_text(), ai_session.stderr_log.read_text()):
        assert TEST_KEY not in text
        assert TEST_KEY[8:] not in text


async def test_hover_offline_shows_static_part_and_how_to_enable(
    workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    session = await start_session(workspace, tmp_path)
    try:
        value = _value(await session.hover(*APPLY_DISCOUNT))
    finally:
        await session.stop()
    assert "def apply_discount(total: float, percent: float) -> float" in value
    assert "offline mode" in value
    assert "OPENAI_API_KEY" in value
    assert fake.requests == []


@pytest.mark.parametrize(
    ("line", "character"),
    [
        (15, 0),  # blank line inside the class
        (12, 8),  # a comment
        (18, 9),  # the keyword `return`
        (0, 3),  # inside the module docstring
        (500, 0),  # past the end of the file
        (18, 400),  # past the end of the line
    ],
)
async def test_hover_on_nothing_is_null(
    ai_session: Session, fake: FakeProvider, line: int, character: int
) -> None:
    assert await ai_session.hover("shop/basket.py", line, character) is None
    assert fake.requests == []


async def test_broken_file_still_gets_static_facts(ai_session: Session, fake: FakeProvider) -> None:
    ai_session.open("shop/broken.py")
    fake.script(Step(text="It applies a 10% discount."))
    # line 7 (0-based 6): `    return apply_discount(total, 10.0)`
    value = _value(await ai_session.hover("shop/broken.py", 6, 12))
    assert "apply_discount(total: float, percent: float) -> float" in value
    assert "It applies a 10% discount." in value
    # the half-written function: no crash, never an error: null, and no model call
    assert await ai_session.hover("shop/broken.py", 9, 4) is None
    assert len(fake.requests) == 1


async def test_unsaved_buffer_is_the_source_of_truth(
    ai_session: Session, fake: FakeProvider
) -> None:
    text = (ai_session.root / "shop/basket.py").read_text()
    text = text.replace("apply_discount(with_vat, discount)", "apply_discount(with_vat, 5.0)")
    ai_session.open("shop/basket.py", text)
    fake.script(Step(text="ok"))
    _value(await ai_session.hover(*APPLY_DISCOUNT))
    prompt = "\n".join(str(m["content"]) for m in fake.requests[0].messages)
    assert "apply_discount(with_vat, 5.0)" in prompt


async def test_cancel_closes_the_provider_request(ai_session: Session, fake: FakeProvider) -> None:
    fake.script(Step(text="too late", delay=30.0))
    await ai_session.cancelled_hover(fake, APPLY_DISCOUNT, msg_id=4242)
    [record] = await ai_session.wait_for_usage()
    assert record["outcome"] == "cancelled"
    assert record["error_class"] is None
    # the server keeps serving
    fake.script(Step(text="back"))
    assert "back" in _value(await ai_session.hover(*APPLY_DISCOUNT))


async def test_cancelled_hover_ends_the_provider_call_and_makes_no_other(
    ai_session: Session, fake: FakeProvider
) -> None:
    """The editor cancels a hover while the model is answering: the reply is -32800
    (not an answer built from an empty or fallback reply), the provider sees the call
    hang up, the attempt is logged as cancelled, and no retry or other tier follows.

    The next hover is ordered after the cancelled one (its reply came first), so
    the fake's requests are exactly the cancelled call and the next hover's."""
    fake.script(Step(text="too late", delay=30.0))
    hung_up = await ai_session.cancelled_hover(fake, APPLY_DISCOUNT, msg_id=4343)
    assert hung_up.model == "gpt-4o"
    fake.script(Step(text="the next answer"))
    assert "the next answer" in _value(await ai_session.hover(*APPLY_DISCOUNT))
    chats = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert [(r.model, r.client_disconnected) for r in chats] == [
        ("gpt-4o", True),
        ("gpt-4o", False),
    ]
    usage = await ai_session.wait_for_usage(2)
    assert [(r["outcome"], r["error_class"]) for r in usage] == [
        ("cancelled", None),
        ("ok", None),
    ]


async def test_malformed_request_gets_invalid_params_and_server_keeps_serving(
    ai_session: Session, fake: FakeProvider
) -> None:
    params = types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=ai_session.uri("shop/basket.py")),
        position=types.Position(line=0, character=0),
    )
    # What a buggy client sends: lsprotocol's validators would refuse it, so bypass them.
    object.__setattr__(params.position, "line", -1)
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(
            ai_session.client.protocol.send_request_async(types.TEXT_DOCUMENT_HOVER, params), 60
        )
    assert info.value.code == -32602
    assert "textDocument/hover" in str(info.value)
    fake.script(Step(text="still here"))
    assert "still here" in _value(await ai_session.hover(*APPLY_DISCOUNT))


async def test_provider_error_degrades_to_static_with_notice(
    ai_session: Session, fake: FakeProvider
) -> None:
    bad_key = Step(status=401, error_message=f"Incorrect API key provided: {TEST_KEY}")
    fake.script(bad_key, model="gpt-4o")
    value = _value(await ai_session.hover(*APPLY_DISCOUNT))
    assert "def apply_discount" in value
    assert "AI explanation unavailable" in value
    assert "auth error 401" in value
    assert TEST_KEY not in value
    records = ai_session.usage()
    assert [(r["model"], r["outcome"], r["error_class"], r["status"]) for r in records] == [
        ("gpt-4o", "error", "auth_error", 401),
        # same key, same account: the cheaper model is not tried in vain
        ("gpt-4o-mini", "skipped", "same_account", None),
    ]
    assert [r.model for r in fake.requests] == ["gpt-4o"]


async def test_invalid_settings_are_reported_and_replaced(
    workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    env = server_env(
        tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url, LLM_TIMEOUT="soon"
    )
    session = await start_session(
        workspace,
        tmp_path,
        env=env,
        init_options={"llmLsp": {"hoverContextTokens": -5}},
        configuration={"llmLsp": {"model": "gpt-4o-mini", "baseUrl": "ftp://nope"}},
    )
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if len(session.client.messages) >= 3:
                break
            await asyncio.sleep(0.05)
        messages = [m.message for m in session.client.messages]
        assert any("LLM_TIMEOUT" in m and "using 30.0" in m for m in messages), messages
        assert any("llmLsp.hoverContextTokens" in m and "using 2000" in m for m in messages)
        assert any("llmLsp.baseUrl" in m for m in messages)
        assert all(m.type == types.MessageType.Warning for m in session.client.messages)
        fake.script(Step(text="from mini"))
        value = _value(await session.hover(*APPLY_DISCOUNT))
        assert "from mini" in value
        assert fake.requests[0].model == "gpt-4o-mini"
    finally:
        await session.stop()
