"""Whether the server is answering a request now: background work waits its turn.

The workspace warm-up chunks files on worker threads, which compete with a
hover for the interpreter; `Activity.idle` lets it go on only when no request
has been in progress for `QUIET` seconds, yet never holds it back longer than
`MAX_HOLD` seconds per step, so the index is built even while someone hovers
without pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Seconds without a request before background work goes on.
QUIET = 0.05
#: The longest a background step is held back.
MAX_HOLD = 2.0


class Activity:
    """Requests in progress, and when the last one ended."""

    def __init__(self, quiet: float = QUIET, max_hold: float = MAX_HOLD) -> None:
        self.quiet = quiet
        self.max_hold = max_hold
        self._busy = 0
        self._ended = 0.0
        self._free = asyncio.Event()  # set while no request is in progress
        self._free.set()
        self.held = 0.0  # seconds background work waited, in all (the log, tests)

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around a request's work."""
        self._busy += 1
        self._free.clear()
        try:
            yield
        finally:
            self._busy -= 1
            self._ended = time.monotonic()
            if self._busy == 0:
                self._free.set()

    def quiet_now(self) -> bool:
        """Whether no request is in progress nor ended within `quiet` seconds."""
        return self._busy == 0 and time.monotonic() - self._ended >= self.quiet

    async def idle(self) -> None:
        """Return once the server is quiet, or after `max_hold` seconds."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.max_hold):
                while not self.quiet_now():
                    await self._free.wait()
                    await asyncio.sleep(max(0.0, self.quiet - (time.monotonic() - self._ended)))
        except TimeoutError:
            pass  # held long enough: a step of background work goes on anyway
        self.held += time.monotonic() - started
