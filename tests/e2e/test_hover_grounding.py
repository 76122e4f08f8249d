"""Hover grounding through the real server: jedi places the hovered name, its definition
leads the prompt, the reply's range is the hovered name's."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import FIXTURES, TEST_KEY, Session, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE = "pkg/service.py"


def _position(root: Path, needle: str, offset: int = 0) -> tuple[int, int]:
    """0-based line and UTF-16 column of ``needle`` (+ offset) in the service module."""
    text = (root / SERVICE).read_text()
    at = text.index(needle) + offset
    line = text.count("\n", 0, at)
    before = text[text.rfind("\n", 0, at) + 1 : at]
    return line, len(before.encode("utf-16-le")) // 2


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider
) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("grounding")
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "grounding", root)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake_provider.base_url)
    started = await start_session(
        root, tmp_path, env=env, init_options={"llmLsp": {"hoverContextTokens": 500}}
    )
    await started.warm((SERVICE, *_position(root, "normalize(value)")))
    yield started
    await started.stop()


def _prompt(fake: FakeProvider) -> str:
    [request] = fake.requests
    return "\n".join(str(m["content"]) for m in request.messages)


async def test_imported_function_leads_whole_not_a_same_named_method(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(text="Normalises."))
    line, column = _position(session.root, "normalize(value)", 3)
    hover = await session.hover(SERVICE, line, column)
    assert hover is not None
    prompt = _prompt(fake)
    code = prompt[prompt.index("Code from the workspace:") :]
    lead = "### pkg/text.py:4-7 (definition of the hovered name: function `normalize`)"
    assert code.split("\n")[2] == lead
    assert "# text.normalize body" in prompt
    assert "# Cleaner.normalize body" not in prompt
    assert "cleaned = normalize(value)" in prompt
    assert hover.range == types.Range(
        types.Position(line, column - 3), types.Position(line, column - 3 + len("normalize"))
    )


async def test_small_function_whole_within_a_small_budget(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(text="Scales."))
    line, column = _position(session.root, "scale(amount, 0.5)")
    assert await session.hover(SERVICE, line, column) is not None
    prompt = _prompt(fake)
    for body in ("# scale body: negative", "# scale body: above one", "# scale body: result"):
        assert body in prompt
    assert "return engine.process(amount) + scale(amount, 0.5)" in prompt
    assert "# _Fallback.scale body" not in prompt


async def test_library_definition_is_said_not_replaced(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(text="Serialises."))
    line, column = _position(session.root, "json.dumps(data)", len("json."))
    assert await session.hover(SERVICE, line, column) is not None
    prompt = _prompt(fake)
    assert "Note: the definition of the hovered name `dumps` is not shown" in prompt
    assert "# Serializer.dumps body" not in prompt


async def test_range_counts_utf16_units_before_the_name(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(text="Shouts."))
    line, column = _position(session.root, "normalize(value)  # a name after")
    hover = await session.hover(SERVICE, line, column + len("normalize"))  # just after it
    assert hover is not None
    assert column == len('    return "𝄞 " + '.encode("utf-16-le")) // 2
    assert hover.range == types.Range(
        types.Position(line, column), types.Position(line, column + len("normalize"))
    )
