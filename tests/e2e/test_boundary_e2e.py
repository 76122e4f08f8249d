"""The workspace boundary through the real server: a hostile repository, and a file opened alone.

The hostile workspace is generated in the test: symlinks to ``/dev/zero``,
``/proc/self/environ`` and a file outside the root, secrets files in many
spellings, a module listed in ``.llmlspignore``; each holds a marker string
(the environment's marker is a variable of the server's environment). The
server indexes it, answers a hover, an Explain whose scripted model asks the
tools for every one of those files, and a question; no marker, no environment
text and no key may appear in anything the fake provider received, in the
cache directory or in the usage log, and the server still answers.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

ENV_MARKER = "ENV-MARKER-5d1c0b"
OUTSIDE_MARKER = "OUTSIDE-MARKER-93be"
IGNORED_MARKER = "IGNORED-MARKER-a71f"
SECRET_FILES = [
    ".env",
    ".ENV",
    ".envrc",
    ".env.local",
    "id_rsa",
    "ID_RSA",
    "id_ecdsa",
    "server.PEM",
    "cert.p12",
    "credentials.json",
    "secrets.py",
    ".npmrc",
    ".git-credentials",
    ".aws/credentials",
    "config/.netrc",
    "deploy/service-account.json",
]
MAIN = (
    "from app.helpers import helper\n"
    "from app.proprietary import secret_algo\n"
    "\n"
    "\n"
    "def run(x: int) -> int:\n"
    "    total = helper(x) + secret_algo(x)\n"
    "    return total\n"
)
HELPERS = 'def helper(x: int) -> int:\n    """Add one."""\n    return x + 1\n'
PROPRIETARY = (
    f'def secret_algo(x: int, salt: str = "{IGNORED_MARKER}") -> int:\n'
    f'    """{IGNORED_MARKER}: the trade secret."""\n'
    f"    return x * len('{IGNORED_MARKER}')\n"
)


def _secret_marker(index: int) -> str:
    return f"SECRET-MARKER-{index:02d}-c4e2"


def _markers() -> list[str]:
    secrets = [_secret_marker(i) for i in range(len(SECRET_FILES))]
    return [ENV_MARKER, OUTSIDE_MARKER, IGNORED_MARKER, TEST_KEY, *secrets]


def _hostile(tmp_path: Path) -> Path:
    root = tmp_path / "hostile"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "main.py").write_text(MAIN)
    (root / "app" / "helpers.py").write_text(HELPERS)
    (root / "app" / "proprietary.py").write_text(PROPRIETARY)
    (root / ".llmlspignore").write_text("app/proprietary.py\n")
    outside = tmp_path / "outside.py"
    outside.write_text(f"TOKEN = '{OUTSIDE_MARKER}'\n")
    (root / "app" / "leak.py").symlink_to(outside)
    (root / "app" / "zero.py").symlink_to("/dev/zero")
    (root / "app" / "environ.py").symlink_to("/proc/self/environ")
    (root / "app" / "dotenv.py").symlink_to(root / ".env")
    for i, rel in enumerate(SECRET_FILES):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"TOKEN={_secret_marker(i)}\n")
    return root


def _call(name: str, call_id: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "id": call_id}


def _assert_clean(text: str, where: str) -> None:
    for marker in _markers():
        assert marker not in text, f"{marker} reached {where}"


def _assert_nothing_leaked(fake: FakeProvider, tmp_path: Path) -> None:
    for request in fake.requests:
        _assert_clean(json.dumps(request.body), f"request {request.index} ({request.path})")
        assert request.auth == TEST_KEY  # the key went where it was sent, in the header
    cache = tmp_path / "cache"
    for path in cache.rglob("*"):
        if path.is_file():
            _assert_clean(path.read_bytes().decode("utf-8", "replace"), str(path))
    _assert_clean((tmp_path / "usage.jsonl").read_text(), "the usage log")


def _tool_results(fake: FakeProvider) -> dict[str, dict[str, Any]]:
    """The tool results the server sent back, by the tool call id."""
    out: dict[str, dict[str, Any]] = {}
    for message in fake.requests[-1].messages:
        if message.get("role") == "tool":
            out[message["tool_call_id"]] = json.loads(message["content"])
    return out


async def _logged(session: Session, text: str, within: float = 90.0) -> None:
    until = time.monotonic() + within
    while time.monotonic() < until:
        if session.stderr_log.exists() and text in session.stderr_log.read_text():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server never logged {text!r}")


async def _explain(session: Session, rel: str, start: int, end: int) -> dict[str, Any]:
    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="llmLsp.explain",
            arguments=[{"uri": session.uri(rel), "start": start, "end": end}],
        )
    )
    assert isinstance(result, dict)
    return result


async def _hover_text(session: Session, rel: str, line: int, character: int) -> str:
    """The hover's markdown; asked again while the cold jedi child misses the 5 s static
    deadline (a busy machine), at most three times."""
    for _ in range(3):
        hover = await session.hover(rel, line, character)
        if hover is not None:
            assert isinstance(hover.contents, types.MarkupContent)
            return hover.contents.value
    raise AssertionError(f"no hover at {rel}:{line}:{character}")


async def test_hostile_workspace_leaks_nothing(tmp_path: Path, fake: FakeProvider) -> None:
    root = _hostile(tmp_path)
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_LSP_BOUNDARY_TEST=ENV_MARKER,
    )
    session = await start_session(root, tmp_path, env=env)
    try:
        await _logged(session, "indexed ")  # the warm-up walked past /dev/zero and the rest
        session.open("app/main.py")

        fake.script(Step(text="Adds one, then the proprietary part."))
        hover = await _hover_text(session, "app/main.py", 5, 26)  # secret_algo
        assert "Adds one, then the proprietary part." in hover

        reads = [".env", ".ENV", "id_rsa", ".aws/credentials", "app/environ.py"]
        reads += ["app/zero.py", "app/leak.py", "app/proprietary.py", "app/dotenv.py"]
        fake.script(
            # At most 8 tool calls of one reply run (the agent's bound): two replies of reads.
            Step(tool_calls=[_call("read_file", f"r{i}", path=p) for i, p in enumerate(reads)][:5]),
            Step(tool_calls=[_call("read_file", f"r{i}", path=p) for i, p in enumerate(reads)][5:]),
            Step(
                tool_calls=[
                    _call("read_symbol", "s", path="app/proprietary.py", qualname="secret_algo"),
                    _call("list_files", "l", pattern="**/*"),
                    _call("find_definition", "d", symbol="secret_algo", path="app/main.py"),
                    _call("find_references", "f", symbol="secret_algo"),
                ]
            ),
            Step(text="**Summary**: it adds two numbers."),
        )
        result = await _explain(session, "app/main.py", 5, 7)
        assert result["ok"] is True
        tools = _tool_results(fake)
        for i, rel in enumerate(reads):
            error = tools[f"r{i}"]["error"]
            assert error["type"] in ("forbidden", "outside_workspace"), (rel, error)
        assert tools["s"]["error"]["type"] == "forbidden"
        listed = tools["l"]["files"]
        assert "app/main.py" in listed and "app/helpers.py" in listed
        for rel in ("app/leak.py", "app/zero.py", "app/environ.py", "app/proprietary.py"):
            assert rel not in listed
        assert not any(f in listed for f in SECRET_FILES)
        assert tools["d"]["error"]["type"] == "forbidden"
        assert all(r.get("path") != "app/proprietary.py" for r in tools["f"]["references"])
        first = json.dumps(fake.requests[1].body)  # the explain prompt: main.py is there
        assert "total = helper(x) + secret_algo(x)" in first

        fake.script(Step(text="It is in app/helpers.py."))
        asked = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.ask", arguments=[{"question": "where is the secret token?"}]
            )
        )
        assert asked["ok"] is True
        assert {s["path"] for s in asked["sources"]} <= {"app/main.py", "app/helpers.py"}

        # still answering after all of it
        fake.script(Step(text="Still here."))
        assert "Still here." in await _hover_text(session, "app/main.py", 5, 12)
    finally:
        await session.stop()
    _assert_nothing_leaked(fake, tmp_path)


async def test_single_file_mode_sends_that_file_only(tmp_path: Path, fake: FakeProvider) -> None:
    home = tmp_path / "home"  # the server runs here, as from $HOME
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"key={_secret_marker(0)}\n")
    (home / ".env").write_text(f"KEY={_secret_marker(1)}\n")
    (home / "notes.py").write_text(f"TOKEN = '{_secret_marker(2)}'\n")
    (home / "helper.py").write_text(
        f'def helper(x: int, key: str = "{_secret_marker(3)}") -> int:\n'
        f'    """{_secret_marker(3)}"""\n'
        "    return x\n"
    )
    alone = home / "alone.py"
    alone.write_text(
        "from helper import helper\n\n\ndef greet(n: int) -> int:\n    return helper(n)\n"
    )
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    session = await start_session(home, tmp_path, env=env, cwd=home, single_file=True)
    try:
        session.open("alone.py")
        fake.script(Step(text="Greets through the helper."))
        hover = await _hover_text(session, "alone.py", 4, 12)  # helper
        assert "Greets through the helper." in hover

        reads = ["notes.py", ".env", "helper.py", ".aws/credentials"]
        fake.script(
            Step(
                tool_calls=[
                    *[_call("read_file", f"r{i}", path=p) for i, p in enumerate(reads)],
                    _call("list_files", "l", pattern="**/*"),
                    _call("read_file", "own", path="alone.py"),
                    _call("find_definition", "d", symbol="helper", path="alone.py"),
                ]
            ),
            Step(text="**Summary**: greets."),
        )
        result = await _explain(session, "alone.py", 4, 5)
        assert result["ok"] is True
        tools = _tool_results(fake)
        for i in range(len(reads)):
            assert tools[f"r{i}"]["error"]["type"] == "outside_workspace"
        assert tools["l"]["files"] == ["alone.py"]
        assert tools["own"]["text"].splitlines()[3] == "4| def greet(n: int) -> int:"
        assert "path" not in json.dumps(tools["d"])  # no file beside it is named
        prompt = json.dumps(fake.requests[1].body)
        assert "Explain lines 4-5 of `alone.py`" in prompt
        assert "def greet(n: int) -> int:" in prompt
        assert str(home) not in prompt  # not even where it lives
    finally:
        await session.stop()
    _assert_nothing_leaked(fake, tmp_path)


async def test_cli_on_a_file_outside_any_project_sees_that_file_only(
    tmp_path: Path, fake: FakeProvider
) -> None:
    home = tmp_path / "home"  # no pyproject.toml, setup.py or .git up the tree
    home.mkdir()
    (home / ".env").write_text(f"KEY={_secret_marker(0)}\n")
    (home / "notes.py").write_text(f"TOKEN = '{_secret_marker(1)}'\n")
    alone = home / "alone.py"
    alone.write_text("def greet(n: int) -> int:\n    return n\n")
    fake.script(
        Step(tool_calls=[_call("read_file", "r0", path="notes.py"), _call("list_files", "l")]),
        Step(text="**Summary**: returns n."),
    )
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lsp_server", "explain", f"{alone}:1-2"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "# Explanation of `alone.py:1-2`" in result.stdout
    tools = _tool_results(fake)
    assert tools["r0"]["error"]["type"] == "outside_workspace"
    assert tools["l"]["files"] == ["alone.py"]
    _assert_nothing_leaked(fake, tmp_path)
