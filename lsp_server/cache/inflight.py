"""In-flight de-duplication: identical concurrent requests share one provider call.

`InFlight.run(key, work)` starts ``work()`` as a task the first time a key is
asked for and lets every later caller with the same key wait for that same task
(through `asyncio.shield`, so one waiter's cancellation does not reach it).
A waiter that is cancelled leaves; the call goes on while anyone still waits,
and is cancelled with the last waiter, so an abandoned request stops paying for
tokens. With ``detach=True`` (for any waiter) the call is kept alive after its
last waiter leaves and finishes on its own: the work is expected to store its
result itself (the answer cache does), which is what a "finish in the
background" mode needs (the hover returns early, the answer lands in the cache).

Failures reach every waiter; a detached call's failure is logged. A key is free
again as soon as its call ends, so a later request makes a new call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class _Call(Generic[T]):
    task: asyncio.Task[T]
    waiters: int = 0
    detached: bool = False


class InFlight(Generic[T]):
    """Calls in flight by key (see the module docstring)."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call[T]] = {}
        self.started = 0  # calls made, for tests and the benchmark
        self.joined = 0  # waiters that shared a call already in flight

    def __contains__(self, key: str) -> bool:
        return key in self._calls

    def waiters(self, key: str) -> int:
        """How many callers wait for ``key``'s call now (0: none in flight)."""
        call = self._calls.get(key)
        return call.waiters if call is not None else 0

    def task(self, key: str) -> asyncio.Task[T] | None:
        """The call in flight for ``key``, if any."""
        call = self._calls.get(key)
        return call.task if call is not None else None

    def detach(self, key: str) -> None:
        """Keep ``key``'s call going after its last waiter leaves (see ``detach=`` of `run`)."""
        call = self._calls.get(key)
        if call is not None:
            call.detached = True

    async def run(self, key: str, work: Callable[[], Awaitable[T]], *, detach: bool = False) -> T:
        """``work()``'s result, shared with every concurrent caller of the same ``key``."""
        call = self._calls.get(key)
        if call is None:
            call = _Call(asyncio.ensure_future(work()))
            self._calls[key] = call
            self.started += 1
            call.task.add_done_callback(functools.partial(self._done, key))
        else:
            self.joined += 1
            logger.debug(
                "sharing the call in flight for %s (%d waiting)", key[:12], call.waiters + 1
            )
        call.detached = call.detached or detach
        call.waiters += 1
        try:
            return await asyncio.shield(call.task)
        except asyncio.CancelledError:
            if call.waiters == 1 and not call.detached and not call.task.done():
                call.task.cancel()  # the last waiter left: stop paying for the answer
            raise
        finally:
            call.waiters -= 1

    def _done(self, key: str, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is not None and self._calls[key].task is task:
            del self._calls[key]
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here too: a detached call may have no waiter
        if exc is not None:
            logger.debug("in-flight call %s failed: %s", key[:12], exc)
