"""The jedi worker interface, and the thread worker (tests, the agent's private navigator).

A job is a module-level function ``fn(ctx: JobContext, *args)`` returning plain
picklable values. `JediWorker.run` submits it as a `Job` with an absolute
deadline and awaits its result without blocking the event loop; a caller that
gives up (deadline, cancellation) sets the job's stop flag so a long loop in
the job ends soon. `ThreadWorker` runs jobs on one thread of this process;
`process.ProcessWorker` runs the same jobs in a child process (see there why
the server uses it). `JediCrashed` is a `TimeoutError`: a worker that died
means "no static facts this time" to every caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lsp_server.context.jedi.child import Emit, JobContext, JobFn, Stop, run_job

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Deadline of a job that names none (so the kill policy always has a bound).
DEFAULT_DEADLINE = 60.0


class JediCrashed(TimeoutError):
    """The jedi worker died (killed, crashed, out of memory) before answering.

    A `TimeoutError`: for every caller it means the same as a missed deadline,
    "no static facts this time".
    """


class JediFailed(JediCrashed):
    """A jedi job raised: the lookup failed (the cause is chained and logged once)."""


_reported: set[tuple[str, str]] = set()


def _failed(fn: JobFn, exc: Exception) -> JediFailed:
    key = (job_name(fn), type(exc).__name__)
    if key not in _reported:
        _reported.add(key)
        logger.warning("jedi job %s failed: %s: %s (static fallback)", key[0], key[1], exc)
    else:
        logger.debug("jedi job %s failed again: %r", key[0], exc)
    return JediFailed(f"{key[0]} failed: {key[1]}")


def job_name(fn: JobFn) -> str:
    return str(getattr(fn, "__name__", fn))


class Job:
    """One call of a job function: its deadline, its future, its cancel flag."""

    ids = itertools.count(1)

    def __init__(self, fn: JobFn, args: tuple[Any, ...], at: float, on_part: Emit | None) -> None:
        self.id = next(self.ids)
        self.fn = fn
        self.args = args
        self.at = at
        self.on_part = on_part
        self.cancelled = threading.Event()
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.on_cancel: Callable[[Job], None] | None = None

    def cancel(self) -> None:
        self.cancelled.set()
        if self.on_cancel is not None:
            self.on_cancel(self)

    def part(self, value: Any) -> None:
        if self.on_part is None:
            return
        try:
            self.on_part(value)
        except Exception:  # a bug in the receiver must not take the worker down
            logger.exception("jedi job %s: handling a partial result failed", job_name(self.fn))


class JediWorker:
    """Runs jedi jobs one at a time, off the event loop, each with a deadline."""

    async def run(
        self,
        fn: Callable[..., _T],
        *args: Any,
        deadline: float | None = None,
        on_part: Emit | None = None,
    ) -> _T:
        """``fn(ctx, *args)``'s result; `TimeoutError` after ``deadline`` seconds.

        ``on_part`` receives each ``ctx.emit`` value on a worker thread, even
        after the caller gave up (until the job stops).
        """
        wait = DEFAULT_DEADLINE if deadline is None else max(0.0, deadline)
        job = Job(fn, args, time.monotonic() + wait, on_part)
        self._submit(job)
        try:
            result: _T = await asyncio.wait_for(asyncio.wrap_future(job.future), timeout=wait)
            return result
        except (TimeoutError, asyncio.CancelledError):
            job.cancel()
            raise
        except Exception as exc:  # any jedi failure is a failed lookup, never the caller's error
            raise _failed(fn, exc) from exc

    def _submit(self, job: Job) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the worker; pending jobs are abandoned."""
        raise NotImplementedError


class ThreadWorker(JediWorker):
    """Jobs on one thread of this process (jedi's GIL use competes with the event loop)."""

    def __init__(self, name: str = "jedi") -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name
        )

    def _submit(self, job: Job) -> None:
        def execute() -> None:
            if not job.future.set_running_or_notify_cancel():
                return
            try:
                ctx = JobContext(Stop(job.at, job.cancelled), job.part)
                job.future.set_result(run_job(job.fn, ctx, job.args))
            except BaseException as exc:
                job.future.set_exception(exc)

        def abandoned(started: concurrent.futures.Future[None]) -> None:
            if started.cancelled():  # closed before the job started: its caller must not hang
                job.future.cancel()

        self._executor.submit(execute).add_done_callback(abandoned)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
