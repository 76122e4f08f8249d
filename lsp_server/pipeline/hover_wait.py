"""A hover never makes the editor wait for the model: the short wait and what outlives it.

`PendingHovers.wait` gives a hover's model call ``hoverWait`` seconds. An answer
within the wait is the hover's; past it the hover returns its static facts and
the call carries on in the background (`InFlight`, detached): into the answer
cache, to whoever asked to hear of it (``on_ready``: the server sends the client
``llmLsp/explanationReady``), and, when the answer cache is off, into a small
memo of finished answers so the next hover on the same code shows it at once.
Identical hovers share one call (the caller chooses the key: with the answer cache
off, each hover gets its own); a hover cancelled by the editor before the wait
ends cancels the call unless another request still waits on it or it already
runs in the background. A background call is cancelled when its document is
edited (`cancel`) or the server shuts down (`aclose`).

`Interest` is the ``onRepeat`` mode's memory: the model is asked on the second
hover on a symbol within `REPEAT_WINDOW` seconds, so passing the mouse over code
costs nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

from lsp_server.cache.inflight import InFlight

logger = logging.getLogger(__name__)

A = TypeVar("A")

#: Seconds within which a second hover on a symbol counts as interest (``onRepeat``).
REPEAT_WINDOW = 60.0
#: Finished background answers kept for the next hover when the answer cache is off.
FINISHED_KEPT = 64
#: Symbols remembered by `Interest`.
INTEREST_KEPT = 512

Listener = Callable[[A], None]


class PendingHovers(Generic[A]):
    """Hover model calls by request key (see the module docstring)."""

    def __init__(self) -> None:
        self._calls: InFlight[A] = InFlight()
        self._background: dict[str, Path | None] = {}  # detached calls and their document
        self._listeners: dict[str, list[Listener[A]]] = {}
        self._finished: OrderedDict[str, tuple[Path | None, A]] = OrderedDict()
        self.backgrounded = 0  # calls that outlived their hover's wait (tests, benchmark)

    def finished(self, key: str) -> A | None:
        """A background answer for exactly this request, kept for the next hover."""
        kept = self._finished.get(key)
        if kept is None:
            return None
        self._finished.move_to_end(key)
        return kept[1]

    async def wait(
        self,
        key: str,
        path: Path | None,
        work: Callable[[], Awaitable[A]],
        wait: float,
        *,
        on_ready: Listener[A] | None = None,
        keep_as: str | None = None,
    ) -> A | None:
        """``work()``'s answer if it comes within ``wait`` seconds, else None (the call goes
        on in the background; ``on_ready`` hears its answer; ``keep_as``: remember it for
        `finished` under that key)."""
        waiter = asyncio.ensure_future(self._calls.run(key, work))
        try:
            done, _ = await asyncio.wait({waiter}, timeout=max(0.0, wait))
        except asyncio.CancelledError:
            waiter.cancel()  # the last waiter of a call not yet in the background stops it
            raise
        if done:  # a call cancelled under a joiner (its document changed): no answer here
            return None if waiter.cancelled() else waiter.result()
        task = self._calls.task(key)
        if task is None or task.done():  # it ended just now: take its answer
            return await waiter
        if key not in self._background:
            self.backgrounded += 1
            self._background[key] = path
            self._calls.detach(key)
            task.add_done_callback(functools.partial(self._finish, key, path, keep_as))
        if on_ready is not None:
            self._listeners.setdefault(key, []).append(on_ready)
        waiter.cancel()  # this hover leaves; the detached call goes on
        return None

    def _finish(
        self, key: str, path: Path | None, keep_as: str | None, task: asyncio.Task[A]
    ) -> None:
        listeners = self._listeners.pop(key, [])
        self._background.pop(key, None)
        if task.cancelled():
            logger.debug("background hover call %s cancelled", key[:12])
            return
        exc = task.exception()
        if exc is not None:
            logger.warning("background hover call failed: %s", exc)
            return
        answer = task.result()
        if keep_as is not None:
            self.keep(keep_as, path, answer)
        for listener in listeners:
            try:
                listener(answer)
            except Exception:  # one client's delivery never breaks another's
                logger.exception("cannot deliver a background hover answer")

    def keep(self, key: str, path: Path | None, answer: A) -> None:
        """Remember a finished answer for `finished` (the answer cache's stand-in)."""
        self._finished[key] = (path, answer)
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)

    def cancel(self, path: Path | None) -> int:
        """Cancel the background calls for ``path`` (its document was edited); how many."""
        for key in [k for k, (p, _) in self._finished.items() if p == path]:
            del self._finished[key]  # about code as it was: never asked for again
        cancelled = 0
        for key, where in list(self._background.items()):
            task = self._calls.task(key)
            if where == path and task is not None and not task.done():
                task.cancel()
                cancelled += 1
        if cancelled:
            logger.info("%d background hover call(s) cancelled: %s changed", cancelled, path)
        return cancelled

    async def aclose(self) -> None:
        """Cancel every background call (the server is shutting down)."""
        tasks = [t for key in list(self._background) if (t := self._calls.task(key)) is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class Interest:
    """Which symbols were hovered lately (``onRepeat``): the second hover within
    `REPEAT_WINDOW` seconds asks the model."""

    def __init__(self, window: float = REPEAT_WINDOW) -> None:
        self.window = window
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def again(self, key: Hashable) -> bool:
        """Record a hover on ``key``; True when it was hovered within the window before."""
        now = time.monotonic()
        last = self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > INTEREST_KEPT:
            self._seen.popitem(last=False)
        return last is not None and now - last <= self.window
