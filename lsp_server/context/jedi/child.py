"""The jedi child process's side, and what every jedi job function receives.

`child_main` is the entry point of the process `process.ProcessWorker`
starts: it reads jobs from its socket on one thread and runs them one at a time
on the main thread, answering with pickles. Its stdout already is the parent's
stderr; its log records are forwarded to the parent, which logs them as its
own. When the socket reaches EOF or its parent pid changes it stops the
running job (its stop flag), lets it return and exits: never in the middle of
one, where parso may be writing a pickle to its disk cache.

`run_job` runs one job in either mode. Parso writes its pickle cache without
an atomic rename, so a process killed during a write leaves a truncated
pickle, after which every lookup touching that module raised ``EOFError``. A
job failing inside parso's cache loader (or with ``EOFError`` /
``UnpicklingError``) therefore removes jedi's cache directory and parso's
in-memory cache, and runs once more.

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
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Emit = Callable[[Any], None]
JobFn = Callable[..., Any]

logger = logging.getLogger(__name__)


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


def _from_parse_cache(exc: BaseException) -> bool:
    if isinstance(exc, (EOFError, pickle.UnpicklingError)):
        return True
    cache_module = os.path.join("parso", "cache.py")
    return any(
        frame.f_code.co_filename.endswith(cache_module)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def clear_parse_cache() -> None:
    """Remove jedi's disk cache directory (parso's pickles) and parso's in-memory cache."""
    import jedi.settings
    import parso.cache

    shutil.rmtree(jedi.settings.cache_directory, ignore_errors=True)
    parso.cache.parser_cache.clear()


def run_job(fn: JobFn, ctx: JobContext, args: tuple[Any, ...]) -> Any:
    """``fn(ctx, *args)``, run again once after clearing a corrupt parse cache."""
    try:
        return fn(ctx, *args)
    except Exception as exc:
        if not _from_parse_cache(exc):
            raise
        logger.warning(
            "jedi's parse cache is corrupt (%s: %s); removing it and retrying once",
            type(exc).__name__,
            exc,
        )
    clear_parse_cache()
    return fn(ctx, *args)


def child_main() -> None:
    """The child's entry point: ``argv`` is fd, parent pid, cache directory, log level."""
    os.dup2(2, 1)  # belt and braces: stdout already is the parent's stderr
    sys.stdout = sys.stderr
    os.umask(0o077)  # jedi's parse cache holds the user's code: private files and folders
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    if sys.argv[3]:
        import jedi.settings

        jedi.settings.cache_directory = sys.argv[3]
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
    jobs: queue.SimpleQueue[tuple[int, JobFn, tuple[Any, ...], float] | None] = queue.SimpleQueue()
    flags: dict[int, threading.Event] = {}

    def finish() -> None:  # stop the running job, exit once it returned
        for flag in list(flags.values()):
            flag.set()
        jobs.put(None)

    def read() -> None:
        while True:
            try:
                if not conn.poll(1.0):
                    if os.getppid() != parent:
                        return finish()
                    continue
                kind, job_id, *rest = conn.recv()
            except (EOFError, OSError):
                return finish()
            if kind == "call":
                flags[job_id] = threading.Event()
                fn, args, at = rest
                jobs.put((job_id, fn, args, at))
            elif kind == "cancel" and job_id in flags:
                flags[job_id].set()

    threading.Thread(target=read, name="jedi-child-reader", daemon=True).start()
    while (item := jobs.get()) is not None:
        job_id, fn, args, at = item
        ctx = JobContext(Stop(at, flags[job_id]), functools.partial(_part, send, job_id))
        try:
            send(("done", job_id, run_job(fn, ctx, args)))
        except MemoryError:
            _send_error(send, job_id, MemoryError("jedi ran out of memory"))
            os._exit(3)
        except Exception as exc:
            with contextlib.suppress(OSError):  # the parent is gone
                _send_error(send, job_id, exc)
        finally:
            flags.pop(job_id, None)
    os._exit(0)


def _part(send: Callable[[Any], None], job_id: int, value: Any) -> None:
    send(("part", job_id, value))


def _send_error(send: Callable[[Any], None], job_id: int, exc: BaseException) -> None:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    send(("error", job_id, exc))
