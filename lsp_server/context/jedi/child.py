"""The jedi child process's side, and what every jedi job function receives.

`child_main` is the entry point of the process `process.ProcessWorker`
starts: it reads jobs from its socket on one thread and runs them one at a time
on the main thread, answering with pickles. Its stdout already is the parent's
stderr; its log records are forwarded to the parent, which logs them as its
own. It exits when the socket reaches EOF or its parent pid changes.

`Stop` and `JobContext` are what a job function sees in either mode (thread or
child). A `Stop` holds an absolute deadline on the monotonic clock, which is
system-wide (the same in parent and child), plus the "caller gave up" flag.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Emit = Callable[[Any], None]
JobFn = Callable[..., Any]


class Stop:
    """A job's absolute deadline (monotonic clock) plus a flag set when the caller gives up."""

    def __init__(self, at: float | None, cancelled: threading.Event | None = None) -> None:
        self.at = at
        self.cancelled = cancelled or threading.Event()

    def reached(self) -> bool:
        return self.cancelled.is_set() or (self.at is not None and time.monotonic() >= self.at)


class JobContext:
    """What a job function gets besides its arguments."""

    def __init__(self, stop: Stop, emit: Emit) -> None:
        self.stop = stop
        self.emit = emit


class _ForwardLogs(logging.Handler):
    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # the parent is gone: nowhere to log to
            self._send(("log", 0, (record.name, record.levelno, self.format(record))))


def child_main() -> None:
    """The child's entry point: ``argv`` is fd, parent pid, sys.path (json), log level."""
    os.dup2(2, 1)  # belt and braces: stdout already is the parent's stderr
    sys.stdout = sys.stderr
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    conn = Connection(fd)
    lock = threading.Lock()

    def send(message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with lock:
            conn.send_bytes(data)

    handler = _ForwardLogs(send)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("lsp_server").setLevel(int(sys.argv[4]))
    jobs: queue.SimpleQueue[tuple[int, JobFn, tuple[Any, ...], float]] = queue.SimpleQueue()
    flags: dict[int, threading.Event] = {}

    def read() -> None:
        while True:
            try:
                if not conn.poll(1.0):
                    if os.getppid() != parent:
                        os._exit(0)
                    continue
                kind, job_id, *rest = conn.recv()
            except (EOFError, OSError):
                os._exit(0)
            if kind == "call":
                flags[job_id] = threading.Event()
                fn, args, at = rest
                jobs.put((job_id, fn, args, at))
            elif kind == "cancel" and job_id in flags:
                flags[job_id].set()

    threading.Thread(target=read, name="jedi-child-reader", daemon=True).start()
    while True:
        job_id, fn, args, at = jobs.get()
        ctx = JobContext(Stop(at, flags[job_id]), functools.partial(_part, send, job_id))
        try:
            send(("done", job_id, fn(ctx, *args)))
        except MemoryError:
            _send_error(send, job_id, MemoryError("jedi ran out of memory"))
            os._exit(3)
        except Exception as exc:
            _send_error(send, job_id, exc)
        finally:
            flags.pop(job_id, None)


def _part(send: Callable[[Any], None], job_id: int, value: Any) -> None:
    send(("part", job_id, value))


def _send_error(send: Callable[[Any], None], job_id: int, exc: BaseException) -> None:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    send(("error", job_id, exc))
