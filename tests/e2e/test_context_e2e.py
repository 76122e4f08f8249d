"""Hover through the real server: the prompt carries the cross-file definition, within budget.

What the budget (``hoverContextTokens``) covers: the *context pack*, i.e. the
rendered code block of the user message (``pack.render()``), counted in the
model's encoding. The rest of the prompt (system message, static facts, the
question, chat overhead) is a fixed overhead outside it; the test measures
that overhead by counting the same messages with the pack removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.context.tokens import counter_for_model
from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, server_env, start_session

FIXTURE = Path(__file__).parent.parent / "fixtures" / "context" / "proj"
PACK_START = "Code from the workspace:\n\n"
PACK_END = "\nStatic analysis of"
# app/service.py line 8 (0-based 7): `    taxed = apply_tax(subtotal)`
APPLY_TAX = ("app/service.py", 7, 14)


def _pack(messages: list[dict[str, Any]]) -> str:
    user = next(m["content"] for m in messages if m["role"] == "user")
    start = user.index(PACK_START) + len(PACK_START)
    return str(user[start : user.index(PACK_END, start)])


def _without_pack(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content = message["content"]
        if message["role"] == "user":
            content = content.replace(_pack(messages), "")
        out.append({**message, "content": content})
    return out


@pytest.mark.parametrize(("budget", "definition_in_full"), [(400, True), (100, False)])
async def test_hover_prompt_has_cross_file_definition_within_budget(
    tmp_path: Path, fake: FakeProvider, budget: int, definition_in_full: bool
) -> None:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(
        root, tmp_path, env=env, init_options={"llmLsp": {"hoverContextTokens": budget}}
    )
    try:
        fake.script(Step(text="Adds the tax."))
        hover = await session.hover(*APPLY_TAX)
    finally:
        await session.stop()
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert "Adds the tax." in hover.contents.value

    [request] = fake.requests
    messages = request.messages
    pack = _pack(messages)
    counter = counter_for_model("gpt-4o", tmp_path / "tiktoken")
    assert counter.count(pack) <= budget
    overhead = counter.count_messages(_without_pack(messages))
    assert counter.count_messages(messages) <= budget + overhead
    assert "app/pricing.py:16-18" in pack  # the definition, from another file
    assert "def apply_tax(amount: float) -> float:" in pack
    full_body = "return round(amount * (1 + RATE), 2)" in pack
    assert full_body is definition_in_full
    assert "app/service.py:7-9" in pack or "app/service.py:8-8" in pack  # the target
