"""Quality signals that need no question to the user: repeats, fixes applied or not.

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
#: Changes after a resolved fix within which the text must become the fix's.
FIX_CHANGES = 3
#: Seconds after a resolved fix within which the text must become the fix's.
FIX_WINDOW = 60.0


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


class PendingFixes:
    """Fixes handed to the editor in a resolved code action: applied or discarded?

    The editor applies a picked action's edit itself, so the server learns it only
    from the document: ``changed`` compares the text after each change with the
    text the fix produces. A match is ``fix_applied``; no match within
    `FIX_CHANGES` changes or `FIX_WINDOW` seconds (the user typed on, or the editor
    refused the edit) is ``fix_discarded``. Line endings are ignored.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: dict[str, tuple[str, str, float, int]] = {}

    def offer(self, key: str, request_id: str, new_text: str) -> str | None:
        """Note a fix for document ``key``; the request id of one it replaces (discarded)."""
        earlier = self._pending.pop(key, None)
        self._pending[key] = (request_id, _plain(new_text), self._clock(), 0)
        return earlier[0] if earlier is not None else None

    def changed(self, key: str, text: str) -> tuple[str, str] | None:
        """(request id, signal) once the fix for ``key`` is decided by this change."""
        pending = self._pending.get(key)
        if pending is None:
            return None
        request_id, expected, offered, changes = pending
        if _plain(text) == expected:
            del self._pending[key]
            return request_id, "fix_applied"
        changes += 1
        if changes >= FIX_CHANGES or self._clock() - offered > FIX_WINDOW:
            del self._pending[key]
            return request_id, "fix_discarded"
        self._pending[key] = (request_id, expected, offered, changes)
        return None


def _plain(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
