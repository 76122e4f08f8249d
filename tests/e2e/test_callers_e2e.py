"""Explain through the real server: callers and related tests come from the identifier index.

The context deadline is made tiny (``contextDeadline``), below what the
assembler needs to ask jedi for callers at all, so the caller snippet from
another file and the related tests in the prompt can only come from the
workspace index the server builds in the background after ``initialized``.
The index also follows an unsaved editor buffer, and a test file created
outside the editor and reported with ``workspace/didChangeWatchedFiles``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

FIXTURE = Path(__file__).parent.parent / "fixtures" / "context" / "proj"
NEW_TEST = (
    "from app import service\n\n\n"
    "def test_checkout_from_disk() -> None:\n"
    "    assert service.checkout(1.0) == 1.2\n"
)
BUFFER_TEST = (
    "from app.service import checkout\n\n\n"
    "def test_checkout_in_unsaved_buffer() -> None:\n"
    "    assert checkout(10.0) == 12.0\n"
)


async def _indexed(session: Session) -> None:
    """Wait (up to a minute) for the server's log line saying the background index is built."""
    until = time.monotonic() + 60.0
    while time.monotonic() < until:
        if session.stderr_log.exists() and "indexed " in session.stderr_log.read_text():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the workspace index was not built in time")


async def test_explain_prompt_has_callers_and_tests_from_the_index(
    tmp_path: Path, fake: FakeProvider
) -> None:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(
        root, tmp_path, env=env, init_options={"llmLsp": {"contextDeadline": 0.001}}
    )
    try:
        await _indexed(session)
        # a related test that exists only in an unsaved editor buffer
        session.open("tests/test_service.py", BUFFER_TEST)
        # a test file created outside the editor, reported by the client
        (root / "tests" / "test_disk.py").write_text(NEW_TEST)
        session.client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[
                    types.FileEvent(
                        uri=session.uri("tests/test_disk.py"), type=types.FileChangeType.Created
                    )
                ]
            )
        )
        fake.script(Step(text="`checkout` adds the tax."))
        result = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.explain",
                arguments=[{"uri": session.uri("app/service.py"), "start": 8, "end": 8}],
            )
        )
    finally:
        await session.stop()
    assert result is not None and result["ok"] is True
    prompt = json.dumps(fake.requests[0].messages)
    # the caller in another function of the module, and both related tests
    assert "app/service.py:17-18" in prompt and "`in_cents` uses `checkout`" in prompt
    assert "tests/test_service.py:4-5" in prompt
    assert "test_checkout_in_unsaved_buffer" in prompt  # the buffer, not the disk
    assert "test_checkout_adds_tax" not in prompt
    assert "tests/test_disk.py:4-5" in prompt and "service.checkout(1.0)" in prompt
