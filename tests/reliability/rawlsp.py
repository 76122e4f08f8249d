"""A bare LSP client on the server's stdio with our own framing, for protocol fuzzing.

`pytest-lsp` always frames and encodes correctly; this one can send anything: garbage
between messages, broken or oversized headers, bodies that are not JSON. A reader thread
parses what the server writes; server-to-client requests get a harmless answer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from lsprotocol import types


class RawServer:
    """`python -m lsp_server serve` on pipes; `request`/`notify`/`send_bytes` and replies."""

    def __init__(self, root: Path, log: Path, env: dict[str, str]) -> None:
        self.root = root
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "--log-file", str(log), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._ids = itertools.count(1)
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._received: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    # -- framing -----------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        with self._lock:
            stdin.write(data)
            stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.send_bytes(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def _read(self, stdout: IO[bytes]) -> None:
        while True:
            length = None
            while True:
                line = stdout.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line in (b"\r\n", b"\n"):
                    break
            if length is None:
                continue
            message = json.loads(stdout.read(length))
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": _answer(message)})
            elif "id" in message:
                self._replies.put(message)

    # -- messages ----------------------------------------------------------------------

    def request(self, method: str, params: Any, *, msg_id: Any = None) -> Any:
        """Send a request; return its id."""
        msg_id = next(self._ids) if msg_id is None else msg_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not _NO_PARAMS:
            message["params"] = params
        self.send(message)
        return msg_id

    def notify(self, method: str, params: Any) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not _NO_PARAMS:
            message["params"] = params
        self.send(message)

    def reply(self, msg_id: Any, timeout: float = 60.0) -> dict[str, Any]:
        """The server's response to ``msg_id`` (others that arrive meanwhile are kept)."""
        deadline = time.monotonic() + timeout
        key = json.dumps(msg_id)
        while key not in self._received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response to {msg_id!r} within {timeout} s")
            try:
                message = self._replies.get(timeout=remaining)
            except queue.Empty:
                continue
            self._received[json.dumps(message.get("id"))] = message
        return self._received.pop(key)

    def call(self, method: str, params: Any, timeout: float = 60.0) -> dict[str, Any]:
        return self.reply(self.request(method, params), timeout)

    def initialize(self) -> None:
        params = {
            "processId": None,
            "rootUri": self.root.as_uri(),
            "capabilities": {},
            "workspaceFolders": [{"uri": self.root.as_uri(), "name": "project"}],
        }
        assert "result" in self.call(types.INITIALIZE, params)
        self.notify(types.INITIALIZED, {})

    def hover(self, relative: str, line: int, character: int) -> dict[str, Any]:
        uri = (self.root / relative).as_uri()
        return self.call(
            types.TEXT_DOCUMENT_HOVER,
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )

    def close(self, timeout: float = 30.0) -> int:
        """Close stdin (the editor went away); the exit code."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def stderr_text(self) -> str:
        stderr = self.process.stderr
        return "" if stderr is None or stderr.closed else stderr.read().decode(errors="replace")


_NO_PARAMS = object()
NO_PARAMS: Any = _NO_PARAMS
"""Pass as ``params`` to send a message without a ``params`` member."""


def _answer(message: dict[str, Any]) -> Any:
    if message.get("method") == types.WORKSPACE_CONFIGURATION:
        items = (message.get("params") or {}).get("items") or []
        return [None for _ in items]
    return None
