"""Subprocesses for agent tools (ruff, pytest): bounded in time and output, always reaped.

`run_process` starts the child in its own session (process group), reads its
output incrementally keeping only the head and the tail, and kills the whole
group on every way out (timeout, cancellation, and also after a normal exit,
so grandchildren it left behind die with it), then waits for it, so nothing
outlives the request that started it. At most `isolation.MAX_CHILDREN` run at
once. The environment passed to children is `isolation.child_env`'s
allow-list (no credential-like variables): tests run user code, and with the
agent's edit applied, code the model wrote.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.isolation import child_env, child_slot, kill_group

logger = logging.getLogger(__name__)

_CHUNK = 65_536


class ProcessTimeout(Exception):
    """The child ran longer than its timeout and was killed."""

    def __init__(self, timeout: float, output: str) -> None:
        super().__init__(f"timed out after {timeout:g} s")
        self.timeout = timeout
        self.output = output


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a child process ended and what it printed (possibly truncated)."""

    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool


def safe_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment for a child (`isolation.child_env`), plus ``extra``."""
    return child_env(extra)


class _Capture:
    """Keeps the first and the last ``limit // 2`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            excess = len(self.tail) - self.half
            if excess > 0:
                self.dropped += excess
                del self.tail[:excess]

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes omitted ...]\n{tail}"
        return head + tail


async def _drain(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_CHUNK):
        capture.feed(chunk)


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stdin is None:
        return
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError) as exc:  # the child exited early
        logger.debug("child closed stdin early: %s", exc)


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's whole process group, even when the child itself has exited."""
    if sys.platform != "win32":
        kill_group(proc.pid)
    elif proc.returncode is None:  # pragma: no cover - exercised on Windows only
        proc.kill()


async def run_process(
    args: Sequence[str],
    *,
    cwd: Path,
    time_limit: float,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    max_output: int = 64_000,
) -> ProcessResult:
    """Run ``args`` in ``cwd``; raise `ProcessTimeout` after ``time_limit`` seconds.

    (A parameter rather than the caller's ``asyncio.timeout`` so the partial
    output survives the timeout.) Cancellation kills the child's process
    group, waits for it and propagates.
    """
    async with child_slot():
        return await _run(args, cwd, time_limit, stdin, env, max_output)


async def _run(
    args: Sequence[str],
    cwd: Path,
    time_limit: float,
    stdin: bytes | None,
    env: Mapping[str, str] | None,
    max_output: int,
) -> ProcessResult:
    started = time.monotonic()
    kwargs: dict[str, Any] = {"start_new_session": True} if sys.platform != "win32" else {}
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=dict(env) if env is not None else safe_env(),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **kwargs,
    )
    out, err = _Capture(max_output), _Capture(max_output // 4)
    try:
        async with asyncio.timeout(time_limit):
            async with asyncio.TaskGroup() as group:
                group.create_task(_feed(proc.stdin, stdin))
                group.create_task(_drain(proc.stdout, out))
                group.create_task(_drain(proc.stderr, err))
            returncode = await proc.wait()
    except TimeoutError:
        logger.info("%s timed out after %.1f s; killed", args[:4], time_limit)
        raise ProcessTimeout(time_limit, out.text() + err.text()) from None
    finally:
        _kill(proc)  # also after a normal exit: grandchildren left behind die too
        if proc.returncode is None:
            await proc.wait()
    return ProcessResult(
        returncode=returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration_s=time.monotonic() - started,
        truncated=bool(out.dropped or err.dropped),
    )


@dataclass(frozen=True, slots=True)
class TestRun:
    """The outcome of one pytest run, ready to become tool output."""

    targets: tuple[str, ...]
    passed: bool
    exit_code: int | None
    summary: str
    output: str
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "passed": self.passed,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "output": self.output,
            "timed_out": self.timed_out,
        }


_EXIT_MEANING = {
    0: "all tests passed",
    1: "some tests failed",
    2: "test execution was interrupted",
    3: "pytest hit an internal error",
    4: "pytest was called wrongly",
    5: "no tests were collected",
}


async def run_pytest(
    targets: Sequence[str],
    *,
    cwd: Path,
    time_limit: float,
    keyword: str | None = None,
    max_output: int = 12_000,
) -> TestRun:
    """``python -m pytest -x -q`` on ``targets`` in ``cwd``; never writes a cache there.

    ``targets`` must already be confined (workspace-relative paths or node ids).
    """
    args = [sys.executable, "-m", "pytest", "-x", "-q", "--color=no", "-p", "no:cacheprovider"]
    if keyword:
        args += ["-k", keyword]
    args += ["--", *targets]
    env = safe_env({"PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), _pythonpath()]))})
    try:
        result = await run_process(
            args, cwd=cwd, time_limit=time_limit, env=env, max_output=max_output
        )
    except ProcessTimeout as exc:
        return TestRun(
            tuple(targets),
            passed=False,
            exit_code=None,
            summary=f"tests timed out after {time_limit:g} s and were stopped",
            output=exc.output[-max_output:],
            timed_out=True,
        )
    lines = [ln for ln in result.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else _EXIT_MEANING.get(result.returncode, "pytest failed")
    output = result.stdout + (("\n" + result.stderr) if result.stderr.strip() else "")
    return TestRun(
        tuple(targets),
        passed=result.returncode == 0,
        exit_code=result.returncode,
        summary=summary,
        output=output,
    )


def _pythonpath() -> str:
    return os.environ.get("PYTHONPATH", "")
