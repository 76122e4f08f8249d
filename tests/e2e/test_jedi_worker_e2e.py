"""The server's jedi child process, through the real `llm-lsp serve`: killed, it comes back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, server_env, start_session
from tests.unit.test_jedi_process import alive, until

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
SIGNATURE = "def apply_discount(total: float, percent: float) -> float"


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _jedi_child(server: int) -> int | None:
    """The server's one jedi child process (None if it has none)."""
    found: list[int] = []
    for pid in _children(server):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"lsp_server.context.jedi.child" in cmdline and alive(pid):
            found.append(pid)
    assert len(found) <= 1, f"more than one jedi worker: {found}"
    return found[0] if found else None


def _value(hover: types.Hover | None) -> str:
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


async def test_jedi_runs_in_a_child_that_restarts_after_being_killed(
    workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    fake.set_default(Step(text="An explanation."))
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(workspace, tmp_path, env=env)
    client = session.client
    assert client._server is not None
    server = client._server.pid
    try:
        session.open(APPLY_DISCOUNT[0])
        assert SIGNATURE in _value(await session.hover(*APPLY_DISCOUNT))
        first = _jedi_child(server)
        assert first is not None  # jedi answered from a child process of the server

        os.kill(first, signal.SIGKILL)
        await until(lambda: not alive(first))
        # a new text, so the answer cannot come from the parent's cache
        uri = session.open(APPLY_DISCOUNT[0], (workspace / APPLY_DISCOUNT[0]).read_text() + "\n")
        value = _value(await session.hover(*APPLY_DISCOUNT))
        assert SIGNATURE in value and "An explanation." in value
        second = _jedi_child(server)
        assert second is not None and second != first
        assert "jedi worker died while idle" in session.stderr_log.read_text()
        session.close(uri)
    finally:
        await session.stop()
    assert await until(lambda: not Path(f"/proc/{second}").exists())
