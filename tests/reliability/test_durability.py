"""Durability: kill -9 during cache writes, usage-log writes and `fix --apply`, repeatedly.

The next start serves no corrupted entry (hover, Explain and Ask answer as before), no
completed usage record is lost (each round's log is a prefix of the next round's, every
line whole), no source file is ever half-written, and two servers share one cache
directory under load.

What the server keeps on disk is listed once in `STORES`: each entry exercises one store
(so a kill can hit its writes) and says how a restarted server proves the store sound.
The answer cache (on for this test) is written by every hover.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, copy_project, server_env
from tests.reliability.rawlsp import RawServer

pytestmark = pytest.mark.timeout(600)

ROUNDS = 4
KILLS = 4
APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
SIGNATURE = "apply_discount(total: float, percent: float)"
ANSWER = "Adds VAT, then applies the discount."


def _explain(server: RawServer) -> Any:
    uri = (server.root / "shop/basket.py").as_uri()
    return server.request(
        types.WORKSPACE_EXECUTE_COMMAND,
        {"command": "llmLsp.explain", "arguments": [{"uri": uri, "start": 16, "end": 19}]},
    )


def _ask(server: RawServer) -> Any:
    return server.request(
        types.WORKSPACE_EXECUTE_COMMAND,
        {"command": "llmLsp.ask", "arguments": [{"question": "Where is VAT applied?"}]},
    )


def _hover(server: RawServer) -> Any:
    path, line, character = APPLY_DISCOUNT
    uri = (server.root / path).as_uri()
    return server.request(
        types.TEXT_DOCUMENT_HOVER,
        {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
    )


def _hover_text(server: RawServer) -> str:
    for _ in range(10):  # a cold jedi can miss a hover's static deadline on a busy machine
        result = server.reply(_hover(server), 120)["result"]
        if result is not None:
            return str(result["contents"]["value"])
    raise AssertionError("hover never answered")


def _command_ok(server: RawServer, msg_id: Any) -> bool:
    return bool(server.reply(msg_id, 120)["result"]["ok"])


@dataclass(frozen=True)
class Store:
    """Something the server writes to disk: how to make it write, how to prove it sound."""

    name: str
    exercise: Callable[[RawServer], Any]
    """Send a request that makes the server write to the store (returns the request id)."""
    sound: Callable[[RawServer], None]
    """Assert, on a freshly started server, that the store serves nothing corrupt."""


def _jedi_sound(server: RawServer) -> None:
    assert SIGNATURE in _hover_text(server)


def _index_sound(server: RawServer) -> None:
    assert _command_ok(server, _ask(server))


def _explain_sound(server: RawServer) -> None:
    assert _command_ok(server, _explain(server))


def _answer_sound(server: RawServer) -> None:
    assert ANSWER in _hover_text(server)  # from the cache or the provider, never garbage


STORES = [
    Store("jedi parse cache", _hover, _jedi_sound),
    Store("answer cache", _hover, _answer_sound),
    Store("retrieval index and embeddings", _ask, _index_sound),
    Store("explanation documents", _explain, _explain_sound),
]


def _usage_lines(log: Path) -> list[str]:
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    for line in lines:
        record = json.loads(line)  # a torn or glued line fails here
        assert isinstance(record, dict) and record["request_id"], line
    return lines


def _start(root: Path, tmp_path: Path, env: dict[str, str], n: int) -> RawServer:
    server = RawServer(root, tmp_path / f"server-{n}.log", env)
    server.initialize()
    return server


def test_kill_during_cache_and_usage_writes_loses_and_corrupts_nothing(
    tmp_path: Path, fake: FakeProvider
) -> None:
    rng = random.Random(15)
    root = copy_project(tmp_path)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    env["LLM_LSP_ANSWER_CACHE"] = "1"
    usage_log = Path(env["LLM_LSP_USAGE_LOG"])
    fake.set_default(Step(text=ANSWER, delay=0.02))
    kept: list[str] = []
    for n in range(ROUNDS):
        server = _start(root, tmp_path, env, n)
        for _ in range(6):
            rng.choice(STORES).exercise(server)
        time.sleep(rng.uniform(0.3, 2.5))
        server.process.kill()  # SIGKILL: no handler, no flush, no cleanup
        server.close()
        lines = _usage_lines(usage_log)
        assert lines[: len(kept)] == kept, f"round {n} lost or rewrote usage records"
        kept = lines
    attempts = [line for line in kept if json.loads(line).get("kind", "attempt") == "attempt"]
    assert len(attempts) <= len([r for r in fake.requests if r.path.startswith("/v1/")])
    server = _start(root, tmp_path, env, ROUNDS)
    try:
        for store in STORES:
            store.sound(server)
    finally:
        assert server.close() == 0
    assert _usage_lines(usage_log)[: len(kept)] == kept
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]


GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"


def test_kill_during_fix_apply_never_leaves_a_half_written_file(
    tmp_path: Path, fake: FakeProvider
) -> None:
    root = copy_project(tmp_path)
    target = root / "shop/stats.py"
    original = target.read_bytes()
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    arguments = {
        "path": "shop/stats.py",
        "start_line": 6,
        "end_line": 6,
        "replacement": GOOD_FIX,
        "explanation": "Guard the empty list.",
    }
    fake.set_default(Step(tool_calls=[{"name": "propose_fix", "arguments": arguments}]))
    command = [sys.executable, "-m", "lsp_server", "fix", f"{target}:6", "--apply"]
    done = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    [answered] = fake.requests
    assert answered.finished_at is not None
    # what the CLI does after the model's answer (validate, then write), in seconds
    tail = time.monotonic() - answered.finished_at
    fixed = target.read_bytes()
    assert fixed != original and GOOD_FIX.encode() in fixed
    rng = random.Random(15)
    outcomes = []
    for n in range(KILLS):
        target.write_bytes(original)
        with subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as process:
            fake.wait_for_requests(n + 2, timeout=300)  # the model answered this run
            time.sleep(tail * rng.uniform(0.0, 1.0))  # somewhere in validate-then-write
            process.kill()
            process.communicate()
        now = target.read_bytes()
        assert now in (original, fixed), now
        outcomes.append("fixed" if now == fixed else "original")
        assert not [q.name for q in target.parent.iterdir() if q.name.endswith(".tmp")]
    print(f"kills after the answer, within {tail:.1f} s: {outcomes}")


def test_two_servers_share_one_cache_directory_under_load(
    tmp_path: Path, fake: FakeProvider
) -> None:
    root = copy_project(tmp_path)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    fake.set_default(Step(text=ANSWER))
    servers = [_start(root, tmp_path, env, n) for n in range(2)]
    failures: list[str] = []

    def load(server: RawServer) -> None:
        try:
            for _ in range(4):
                ids = [store.exercise(server) for store in STORES]
                for msg_id in ids:
                    reply = server.reply(msg_id, 180)
                    if "error" in reply:
                        failures.append(str(reply))
        except Exception as exc:  # reported below with the others
            failures.append(repr(exc))

    threads = [threading.Thread(target=load, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    try:
        assert failures == []
        for server in servers:
            for store in STORES:
                store.sound(server)
    finally:
        codes = [server.close() for server in servers]
    assert codes == [0, 0]
    lines = [json.loads(line) for line in _usage_lines(Path(env["LLM_LSP_USAGE_LOG"]))]
    records = [r for r in lines if r.get("kind", "attempt") == "attempt"]
    attempts = [r for r in fake.requests if r.path.startswith("/v1/")]
    # one record per attempt; an attempt cancelled before it left has one the fake never saw
    done = [r for r in records if r["outcome"] != "cancelled"]
    assert len(done) <= len(attempts) <= len(records), (len(done), len(attempts), len(records))
    for server in servers:
        log = server.log.read_text(errors="replace")
        assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]
