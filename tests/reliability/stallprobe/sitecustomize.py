"""Test-only: measure how long each event-loop callback holds the loop, in a server process.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the soak puts this folder
on the server's ``PYTHONPATH`` with ``LLM_LSP_STALL_PROBE`` naming a file. Every asyncio
callback (`asyncio.Handle._run`: a task step, a reader callback) is then timed twice:
the main thread's CPU time, which is what our code costs the loop, and wall time, which
also counts the moments the busy machine did not run the process at all. Each callback
over 10 ms of either is appended to the file as ``monotonic cpu_ms wall_ms what gc2=ms``
(what: the task's coroutine; gc2: CPU time of full garbage collections inside it). The
soak judges stalls by CPU time (a shared 2-core machine inflates wall time tenfold) and
reports both.
"""

from __future__ import annotations

import asyncio.events
import gc
import os
import threading
import time

_PATH = os.environ.get("LLM_LSP_STALL_PROBE")
_THRESHOLD = 0.010

if _PATH:
    _original = asyncio.events.Handle._run
    _lock = threading.Lock()
    _out = open(_PATH, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process

    def _timed(self: asyncio.events.Handle) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            _original(self)
        finally:
            cpu = time.thread_time() - cpu
            wall = time.perf_counter() - wall
            if cpu > _THRESHOLD or wall > _THRESHOLD:
                with _lock:
                    _out.write(
                        f"{time.monotonic():.3f} {cpu * 1000:.1f} {wall * 1000:.1f} "
                        f"{_describe(self)} gc2={_gc_ms[0]:.1f}\n"
                    )
            _gc_ms[0] = 0.0

    _gc_ms = [0.0]
    _gc_started = [0.0]

    def _describe(handle: asyncio.events.Handle) -> str:
        callback = getattr(handle, "_callback", None)
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):  # which coroutine the task was running
            coro = owner.get_coro()
            return f"task:{getattr(coro, '__qualname__', repr(coro))}"
        return repr(callback)[:160].replace("\n", " ").replace(" ", "_")

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        """Full collections' CPU time, charged to the callback during which they ran."""
        if info.get("generation") != 2:
            return
        if phase == "start":
            _gc_started[0] = time.thread_time()
        else:
            _gc_ms[0] += (time.thread_time() - _gc_started[0]) * 1000

    gc.callbacks.append(_on_gc)

    asyncio.events.Handle._run = _timed  # type: ignore[method-assign]
