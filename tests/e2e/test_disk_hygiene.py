"""What the server leaves on disk is private: after a hover, an Explain and a question with a
fresh cache directory and usage log, every file under them is 0600 and every folder 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, copy_project, server_env, start_session


@pytest.mark.asyncio
async def test_cache_and_state_files_are_private(tmp_path: Path, fake: FakeProvider) -> None:
    cache_dir = tmp_path / "fresh" / "cache"
    state_dir = tmp_path / "fresh" / "state"
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_LSP_CACHE_DIR=str(cache_dir),
        LLM_LSP_USAGE_LOG=str(state_dir / "usage.jsonl"),
    )
    old_umask = os.umask(0o022)  # the server inherits the usual, permissive umask
    try:
        session = await start_session(copy_project(tmp_path), tmp_path, env=env)
    finally:
        os.umask(old_umask)
    try:
        fake.set_default(Step(text="**Summary**: adds VAT, then the discount."))
        await session.hover("shop/basket.py", 18, 17)
        explained = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.explain",
                arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
            )
        )
        assert explained["ok"] is True
        asked = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.ask",
                arguments=[{"question": "Where is VAT added?", "conversation": None}],
            )
        )
        assert asked["ok"] is True
        assert await session.wait_for_usage()
    finally:
        await session.stop()
    made = [p for top in (cache_dir, state_dir) for p in (top, *top.rglob("*"))]
    kinds = {p.relative_to(tmp_path / "fresh").parts[:2] for p in made}
    # what was exercised: documents, the tokenizer, the workspace index, the usage log
    assert {("cache", "explanations"), ("cache", "answers"), ("cache", "index")} <= kinds
    assert ("state", "usage.jsonl") in kinds
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in made}
    assert {p: m for p, m in modes.items() if Path(p).is_dir() and m != 0o700} == {}
    assert {p: m for p, m in modes.items() if Path(p).is_file() and m != 0o600} == {}
