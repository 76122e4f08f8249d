"""Quality signals that need no question to the user: repeats of the same request.

A hover on the same symbol again within a few minutes, or an Explain of the same
lines again, says the first answer did not help. `RepeatTracker.seen(key, request_id)`
remembers the last request per key (bounded, in memory, per process) and returns
the earlier request's id when this one repeats it within the window; the caller
records a ``hover_repeated`` / ``regenerated`` signal against that earlier request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

#: A repeat counts within this many seconds of the earlier request.
REPEAT_WINDOW = 600.0
#: Keys remembered at most.
_KEYS = 2048


class RepeatTracker:
    """The last request id per key, to tell a repeat from a first request."""

    def __init__(
        self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._last: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def seen(self, key: str, request_id: str) -> str | None:
        """Note ``request_id`` for ``key``; the earlier request's id if this repeats it."""
        now = self._clock()
        earlier = self._last.pop(key, None)
        self._last[key] = (request_id, now)
        while len(self._last) > _KEYS:
            self._last.popitem(last=False)
        if earlier is not None and now - earlier[1] <= self.window:
            return earlier[0]
        return None
