"""Where jedi runs: a child process per workspace (the server), or a thread (tests, tools).

Jedi holds the GIL for long stretches (cyclic GC over its heap, parso loading
pickled parse caches): on a thread of the server it stalled the event loop for
seconds on Django (`scripts/bench_loop_stall.py`). `ProcessWorker` runs every
jedi call in one child process; `ThreadWorker` runs the same jobs on a thread.

A job is a module-level function ``fn(ctx: JobContext, *args)`` (pickled by
reference) returning plain picklable values. ``ctx.stop`` tells long loops
when the caller gave up or the deadline passed; ``ctx.emit(value)`` hands a
partial result to the parent as soon as it is known.

The child is started with ``subprocess`` (a fresh interpreter: never ``fork``,
the server has threads), isolated (`isolation.python_command`: ``python -I``
in a private directory with an allow-listed environment, so no module of the
workspace or the server's working directory shadows ours and no key is in its
``os.environ``), with jedi's cache directory set to ``cache_dir``. Its stdout
is the server's stderr from its first instruction, so nothing it prints can
reach the LSP stream (multiprocessing's
spawn imports the parent's ``__main__`` in the child before any of our code
runs). Its stdin is /dev/null; requests, answers and log records travel over a
socket pair as pickles. The child exits when that socket reaches EOF (the
parent closed it or died) or its parent pid changes, after the running job
returned; `close` waits `CLOSE_WAIT` seconds for that before it kills. It
starts in the background when the worker is created, importing jedi and
warming a project.

Failures: a child that died while idle is restarted and the job sent again; a
child that dies during a job (killed, segfault, out of memory) fails that job
with `JediCrashed` and the next job starts a new one. A job still running
``grace`` seconds after its deadline is killed (jedi's in-memory caches go with
it; parso's disk cache stays) when another job is waiting, and regardless at
``hard_limit`` seconds after its deadline; on a child started for that job both
come `STARTUP_GRACE` seconds later (a cold child is slow, and killing it would
make the next job start cold again: a restart loop). Any other exception a job raises
(jedi fails in many ways on odd code, a corrupt cache it could not recover
from) becomes `JediFailed`, a `JediCrashed`: "no static facts this time",
logged once per job and error type.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from lsp_server.context.jedi.child import JobFn
from lsp_server.context.jedi.worker import (
    DEFAULT_DEADLINE,
    JediCrashed,
    JediWorker,
    Job,
    ThreadWorker,
    job_name,
)
from lsp_server.isolation import child_env, kill_group, private_cwd, python_command
from lsp_server.storage import private_dir

logger = logging.getLogger(__name__)

#: Seconds a job may run past its deadline before it is killed when work is waiting.
GRACE = 2.0
#: Seconds past its deadline after which a job is killed even when nothing waits.
HARD_LIMIT = 30.0
#: Seconds more a job on a child started for it may overrun before it is killed: a new child
#: imports jedi and fills its caches (seconds on a busy machine); killing it for that would
#: make the next job start cold again, and the next, a restart loop that never answers.
STARTUP_GRACE = 20.0
#: Seconds `ProcessWorker.close` lets the child finish its job and exit before killing it.
CLOSE_WAIT = 2.0
#: Variables the child keeps beyond `isolation.child_env` (jedi finds the user's venv by them).
_JEDI_ENV = ("VIRTUAL_ENV", "CONDA_PREFIX")


def thread_or_process(
    isolate: bool, warm: JobFn | None, *args: Any, cache_dir: Path | None = None
) -> JediWorker:
    """A `ProcessWorker` (warmed with ``warm(*args)``) when ``isolate``, else a `ThreadWorker`.

    The child needs POSIX (its socket is passed by file descriptor) and a Python
    executable to start; without them jedi runs on a thread, and the log says so.
    ``cache_dir`` is the child's jedi cache directory (None: jedi's default).
    """
    if isolate and os.name == "posix" and sys.executable:
        return ProcessWorker(warm, *args, cache_dir=cache_dir)
    if isolate:
        logger.warning("jedi runs on a thread: no child process on %s", sys.platform)
    return ThreadWorker()


_BOOT = "from lsp_server.context.jedi.child import child_main; child_main()"


class ProcessWorker(JediWorker):
    """Jobs in one child process, fed by a dispatcher thread; see the module docstring."""

    def __init__(
        self,
        warm: JobFn | None = None,
        *warm_args: Any,
        grace: float = GRACE,
        hard_limit: float = HARD_LIMIT,
        cache_dir: Path | None = None,
        startup_grace: float = STARTUP_GRACE,
    ) -> None:
        self.cache_dir = cache_dir
        self.grace = grace
        self.startup_grace = startup_grace
        self.hard_limit = hard_limit
        self.starts = 0
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._current: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="jedi-dispatch", daemon=True)
        self._thread.start()
        if warm is not None:  # starts the child now, so the first request does not wait
            self._queue.put(Job(warm, warm_args, time.monotonic() + DEFAULT_DEADLINE, None))

    @property
    def pid(self) -> int | None:
        """The child's pid while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _submit(self, job: Job) -> None:
        if self._closed:
            job.future.set_exception(JediCrashed("the jedi worker is closed"))
            return
        job.on_cancel = self._send_cancel
        self._queue.put(job)

    def close(self) -> None:
        """Stop the child (EOF, `CLOSE_WAIT` for it to exit, then kill) and reap it."""
        self._closed = True
        self._queue.put(None)
        proc, conn = self._proc, self._conn
        if proc is None or proc.poll() is not None:
            return
        if conn is not None:
            _send_eof(conn)
        try:
            proc.wait(timeout=CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            logger.warning("jedi worker pid %d did not exit on EOF; killing it", proc.pid)
        kill_group(proc.pid)  # the child if it still runs, and whatever it started
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            logger.error("jedi worker pid %d did not exit after SIGKILL", proc.pid)

    # -- dispatcher thread -------------------------------------------------------

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._closed:
                self._shut_down(job)
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            if job.cancelled.is_set() or time.monotonic() >= job.at:
                job.future.set_exception(TimeoutError(f"{job_name(job.fn)}: deadline passed"))
                continue
            try:
                self._execute(job)
            except Exception as exc:  # never let the dispatcher die: fail the job instead
                logger.exception("jedi worker: %s failed in the dispatcher", job_name(job.fn))
                if not job.future.done():
                    job.future.set_exception(JediCrashed(f"jedi worker failure: {exc}"))
            finally:
                self._current = None

    def _shut_down(self, job: Job | None) -> None:
        """Fail what is still queued, then stop the child (on the dispatcher thread)."""
        while job is not None or not self._queue.empty():
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(JediCrashed("the jedi worker is closed"))
            job = None if self._queue.empty() else self._queue.get()
        self._stop_child(kill=False)

    def _execute(self, job: Job) -> None:
        message = ("call", job.id, job.fn, job.args, job.at)
        try:
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            job.future.set_exception(exc)
            return
        for attempt in (1, 2):  # a child that died while idle is restarted once
            try:
                fresh = self._conn is None or (
                    self._proc is not None and self._proc.poll() is not None
                )
                conn = self._child()
                self._current = job
                with self._send_lock:
                    conn.send_bytes(payload)
                break
            except OSError as exc:
                self._current = None
                why = self._reap()
                logger.error("jedi worker unavailable (%s, %s)", exc, why)
                if attempt == 2:
                    job.future.set_exception(JediCrashed(f"the jedi worker cannot start: {exc}"))
                    return
        self._await_answer(job, conn, self.startup_grace if fresh else 0.0)

    def _await_answer(self, job: Job, conn: Connection, extra: float) -> None:
        """``job``'s answer; a job overrunning its deadline is killed ``grace`` seconds
        later if work waits, ``hard_limit`` seconds later anyway, both ``extra`` seconds
        later on a child started for it (the caller gets its `TimeoutError` on time)."""
        name = job_name(job.fn)
        kill_at = job.at + self.grace + extra
        hard_at = job.at + self.hard_limit + extra
        while True:
            now = time.monotonic()
            if now >= hard_at or (now >= kill_at and not self._queue.empty()):
                logger.warning(
                    "jedi worker: %s overran its deadline by %.1f s; killing the worker "
                    "(its jedi caches are lost, the next job starts a new one)",
                    name,
                    now - job.at,
                )
                self._reap(kill=True)
                job.future.set_exception(TimeoutError(f"{name}: killed after overrun"))
                return
            wait = kill_at - now if now < kill_at else 0.05
            try:
                if not conn.poll(wait):
                    continue
                kind, job_id, value = conn.recv()
            except (EOFError, OSError) as exc:
                why = self._reap()
                if self._closed:
                    job.future.set_exception(JediCrashed("the jedi worker is closed"))
                    return
                logger.error("jedi worker died during %s (%s): %s", name, why, exc)
                job.future.set_exception(JediCrashed(f"the jedi worker died during {name} ({why})"))
                return
            if kind == "log":
                logger_name, level, text = value
                logging.getLogger(logger_name).log(level, "[jedi worker] %s", text)
            elif job_id != job.id:
                logger.debug("jedi worker: stale message for job %s", job_id)
            elif kind == "part":
                job.part(value)
            elif kind == "done":
                job.future.set_result(value)
                return
            else:
                job.future.set_exception(value)
                if isinstance(value, MemoryError):  # the child exits after one of these
                    self._reap()
                return

    def _child(self) -> Connection:
        """The running child's connection, starting a child if there is none."""
        if self._proc is not None and self._proc.poll() is not None:
            logger.error("jedi worker died while idle (%s); restarting it", self._reap())
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise OSError("the jedi worker is closed")
        if self.cache_dir is not None:
            private_dir(
                self.cache_dir
            )  # 0700, like every folder of ours (the child adds 0600 files)
        ours, theirs = socket.socketpair()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                python_command(
                    _BOOT,
                    str(theirs.fileno()),
                    str(os.getpid()),
                    str(self.cache_dir or ""),
                    str(logging.getLogger("lsp_server").getEffectiveLevel()),
                ),
                cwd=private_cwd(),
                env=child_env({k: os.environ[k] for k in _JEDI_ENV if k in os.environ}),
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._proc = proc
        self._conn = Connection(ours.detach())
        self.starts += 1
        logger.info(
            "jedi worker pid %d started (%d) in %.0f ms",
            proc.pid,
            self.starts,
            (time.monotonic() - started) * 1000,
        )
        return self._conn

    def _reap(self, *, kill: bool = False) -> str:
        """Forget the child (killing it if asked) and say how it ended."""
        proc = self._proc
        self._stop_child(kill=kill)
        if proc is None:
            return "not running"
        code = proc.returncode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def _stop_child(self, *, kill: bool = True) -> None:
        """Close the connection (the child exits on EOF), kill if asked or slow, reap."""
        with self._send_lock:
            conn, proc = self._conn, self._proc
            self._conn, self._proc = None, None
            if conn is not None:
                conn.close()
        if proc is None:
            return
        if kill and proc.poll() is None:
            kill_group(proc.pid)
        try:
            proc.wait(timeout=CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
        kill_group(proc.pid)  # what jedi started (its compiled-module subprocess) goes too

    def _send_cancel(self, job: Job) -> None:
        if self._current is not job:
            return
        with self._send_lock:
            if self._conn is None:
                return
            try:
                self._conn.send(("cancel", job.id, None))
            except OSError as exc:
                logger.debug("jedi worker: cancel not delivered: %s", exc)


def _send_eof(conn: Connection) -> None:
    """Shut the socket's sending side: the child sees EOF while the parent may still read."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        logger.debug("jedi worker: EOF not sent: %s", exc)


def _has_fileno(stream: Any) -> bool:
    try:
        return isinstance(stream.fileno(), int)
    except (AttributeError, OSError, ValueError):
        return False
