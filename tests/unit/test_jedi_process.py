"""The jedi worker process: crashes, deadline overruns, stdout, shutdown, parent death."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from lsp_server.context.jedi.child import JobContext
from lsp_server.context.jedi.process import ProcessWorker
from lsp_server.context.jedi.queries import symbol_at
from lsp_server.context.jedi.worker import JediCrashed, JediFailed

# -- job functions: module level, so the child imports them by reference ------------------


def pid_job(ctx: JobContext) -> int:
    return os.getpid()


def sleep_job(ctx: JobContext, seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def until_stopped_job(ctx: JobContext, limit: float) -> str:
    """Loops like `definitions_batch` does, checking the stop flag between steps."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if ctx.stop.reached():
            return "stopped"
        time.sleep(0.01)
    return "ran out"


def parts_job(ctx: JobContext, count: int) -> int:
    for i in range(count):
        ctx.emit(i)
    return count


def segfault_job(ctx: JobContext) -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def memory_job(ctx: JobContext) -> None:
    raise MemoryError


def print_job(ctx: JobContext, marker: str) -> str:
    print(marker)
    os.write(1, marker.encode() + b"\n")
    logging.getLogger("lsp_server.context.test").warning("logged %s", marker)
    return marker


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie leader whose other threads are still exiting counts
    (its sockets are closed only when the last thread is gone)."""
    try:
        zombie = "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
        return not zombie or len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``predicate()`` becomes true within ``seconds`` (polled)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest_asyncio.fixture
async def worker() -> AsyncIterator[ProcessWorker]:
    found = ProcessWorker(grace=0.3, hard_limit=3.0)
    yield found
    found.close()


# -- tests -----------------------------------------------------------------------


async def test_jobs_run_in_a_child_process(worker: ProcessWorker) -> None:
    pid = await worker.run(pid_job, deadline=30)
    assert pid != os.getpid() and pid == worker.pid
    seen: list[int] = []
    assert await worker.run(parts_job, 3, deadline=30, on_part=seen.append) == 3
    assert seen == [0, 1, 2]


async def test_child_killed_while_idle_is_restarted_for_the_next_call(
    worker: ProcessWorker,
) -> None:
    first = await worker.run(pid_job, deadline=30)
    os.kill(first, signal.SIGKILL)
    assert await until(lambda: not alive(first))
    second = await worker.run(pid_job, deadline=30)
    assert second != first and worker.starts == 2


async def test_child_killed_mid_job_fails_that_call_only(
    worker: ProcessWorker, caplog: pytest.LogCaptureFixture
) -> None:
    first = await worker.run(pid_job, deadline=30)
    call = asyncio.create_task(worker.run(sleep_job, 20.0, deadline=30))
    await asyncio.sleep(0.3)
    os.kill(first, signal.SIGKILL)
    with pytest.raises(JediCrashed, match=r"died during sleep_job \(signal 9"):
        await call
    assert "jedi worker died during sleep_job" in caplog.text
    assert await worker.run(pid_job, deadline=30) not in (first, None)


async def test_segfault_and_memory_error_fail_cleanly(worker: ProcessWorker) -> None:
    with pytest.raises(JediCrashed, match="signal 11"):
        await worker.run(segfault_job, deadline=30)
    pid = await worker.run(pid_job, deadline=30)
    with pytest.raises(JediFailed, match="MemoryError"):  # a failed lookup for the caller
        await worker.run(memory_job, deadline=30)
    assert await until(lambda: not alive(pid))  # a worker that ran out of memory exits
    assert await worker.run(pid_job, deadline=30) != pid


async def test_overrun_is_killed_when_another_call_waits(
    worker: ProcessWorker, caplog: pytest.LogCaptureFixture
) -> None:
    first = await worker.run(pid_job, deadline=30)
    started = time.monotonic()
    slow = asyncio.create_task(worker.run(sleep_job, 30.0, deadline=0.2))
    waiting = asyncio.create_task(worker.run(pid_job, deadline=30))
    with pytest.raises(TimeoutError):
        await slow
    second = await waiting
    assert second != first
    assert time.monotonic() - started < 10  # not the 30 s the slow job wanted
    assert "overran its deadline" in caplog.text


async def test_a_cold_child_overrunning_is_given_time_to_warm_not_killed() -> None:
    """The first job on a new child overruns (jedi's import, cold caches): the caller gets its
    timeout on time, but the child is kept for the next call instead of a restart loop."""
    worker = ProcessWorker(grace=0.3, hard_limit=3.0, startup_grace=20.0)
    try:
        slow = asyncio.create_task(worker.run(sleep_job, 2.0, deadline=0.2))
        waiting = asyncio.create_task(worker.run(pid_job, deadline=30))
        with pytest.raises(TimeoutError):
            await slow
        pid = await waiting
        assert worker.starts == 1 and pid == worker.pid
    finally:
        worker.close()


async def test_overrun_alone_is_killed_at_the_hard_limit(worker: ProcessWorker) -> None:
    first = await worker.run(pid_job, deadline=30)
    with pytest.raises(TimeoutError):
        await worker.run(sleep_job, 30.0, deadline=0.1)
    assert await until(lambda: not alive(first), seconds=10)  # hard_limit is 3 s


async def test_giving_up_stops_the_job_through_its_stop_flag(worker: ProcessWorker) -> None:
    await worker.run(pid_job, deadline=30)
    call = asyncio.create_task(worker.run(until_stopped_job, 20.0, deadline=30))
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    started = time.monotonic()
    await worker.run(pid_job, deadline=30)
    assert time.monotonic() - started < 5 and worker.starts == 1  # stopped, not killed


async def test_nothing_reaches_stdout_and_logs_are_forwarded(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    worker = ProcessWorker()
    try:
        assert await worker.run(print_job, "marker-7431", deadline=30) == "marker-7431"
    finally:
        worker.close()
    out, err = capfd.readouterr()
    assert "marker-7431" not in out
    assert err.count("marker-7431") == 2  # print and os.write(1) went to stderr
    assert "[jedi worker] logged marker-7431" in caplog.text


async def test_close_leaves_no_process_and_fails_later_calls(worker: ProcessWorker) -> None:
    pid = await worker.run(pid_job, deadline=30)
    pending = asyncio.create_task(worker.run(sleep_job, 20.0, deadline=30))
    await asyncio.sleep(0.2)
    worker.close()
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped: not even a zombie
    with pytest.raises(JediCrashed):
        await pending
    with pytest.raises(JediCrashed, match="closed"):
        await worker.run(pid_job, deadline=30)


async def test_unpicklable_arguments_fail_the_call_not_the_worker(worker: ProcessWorker) -> None:
    with pytest.raises(JediFailed):
        await worker.run(parts_job, lambda: 1, deadline=30)
    assert await worker.run(parts_job, 1, deadline=30) == 1


def test_child_exits_when_the_parent_dies(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from lsp_server.context.jedi.process import ProcessWorker
        from tests.unit.test_jedi_process import pid_job

        async def main():
            worker = ProcessWorker()
            print(await worker.run(pid_job, deadline=30), flush=True)
            os._exit(0)  # no close(): the child must notice on its own

        asyncio.run(main())
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    child = int(done.stdout.strip())
    end = time.monotonic() + 10
    while alive(child) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(child)


# -- isolation, graceful close, corrupt cache ----------------------------------------------


def environment_job(ctx: JobContext) -> tuple[str, list[str], int]:
    return os.getcwd(), sorted(os.environ), sys.flags.isolated


async def test_child_is_isolated_from_cwd_pythonpath_and_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``json.py`` where the server runs never runs in the child, which sees no key."""
    marker = tmp_path / "ran"
    for name in ("json", "sitecustomize", "jedi"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("SOME_TOKEN", "t")
    worker = ProcessWorker()
    try:
        cwd, names, isolated = await worker.run(environment_job, deadline=60)
        await worker.run(symbol_at, tmp_path, "import json\njson.dumps\n", None, 2, 6, deadline=60)
    finally:
        worker.close()
    assert isolated == 1
    assert Path(cwd) != tmp_path and not Path(cwd).is_relative_to(tmp_path)
    assert "OPENAI_API_KEY" not in names and "SOME_TOKEN" not in names
    assert "PYTHONPATH" not in names
    assert not marker.exists()


async def test_close_lets_the_running_job_stop_instead_of_killing(
    worker: ProcessWorker,
) -> None:
    await worker.run(pid_job, deadline=30)
    proc = worker._proc
    assert proc is not None
    pending = asyncio.create_task(worker.run(until_stopped_job, 20.0, deadline=30))
    await asyncio.sleep(0.3)
    worker.close()
    assert proc.returncode == 0  # exited on EOF after its job stopped: no SIGKILL
    assert await pending == "stopped"  # the job saw its stop flag and its answer arrived


def _module_project(root: Path) -> str:
    (root / "helpers.py").write_text('def greet(name):\n    """Say hello."""\n    return name\n')
    source = "from helpers import greet\ngreet('x')\n"
    (root / "main.py").write_text(source)
    return source


async def test_truncated_parse_cache_is_removed_and_the_lookup_retried(tmp_path: Path) -> None:
    root, cache = tmp_path / "ws", tmp_path / "cache" / "jedi"
    root.mkdir()
    source = _module_project(root)
    args = (root, source, root / "main.py", 2, 1)
    first = ProcessWorker(cache_dir=cache)
    try:
        info = await first.run(symbol_at, *args, deadline=60)
    finally:
        first.close()
    assert info is not None and info.definition_path == root / "helpers.py"
    pickles = list(cache.rglob("*.pkl"))
    assert pickles, "jedi wrote no parse cache under the cache directory"
    for pickle_file in pickles:  # what a kill during parso's write leaves behind
        data = pickle_file.read_bytes()
        pickle_file.write_bytes(data[: len(data) // 2])
    second = ProcessWorker(cache_dir=cache)
    try:
        again = await second.run(symbol_at, *args, deadline=60)
        assert again == info
        assert await second.run(symbol_at, *args, deadline=60) == info
    finally:
        second.close()


def spawn_job(ctx: JobContext) -> int:
    """Starts a grandchild the way jedi starts its compiled-module subprocess."""
    return subprocess.Popen(["sleep", "60"]).pid


async def test_close_takes_the_childs_own_children_along(worker: ProcessWorker) -> None:
    grandchild = await worker.run(spawn_job, deadline=30)
    assert alive(grandchild)
    worker.close()
    assert await until(lambda: not alive(grandchild))
