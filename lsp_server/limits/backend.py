"""Where budget and rate-limit counters live: the backend protocol and the local store.

A backend offers four atomic operations on named integer counters, and nothing else:
`reserve` (add to several counters only if every one stays within its limit: all or
nothing), `adjust` (add a signed amount, never below zero: settle or release a
reservation), `rate` (the sliding-window admission of `window.admit` on several keys,
all or nothing) and `first` (true once per key: an alert raised once per period).

`LocalBackend` is one SQLite file under the cache directory, in WAL mode, each
operation one ``BEGIN IMMEDIATE`` transaction, so several server processes of one
user (several editor windows) share it and never both pass a check the other has
already used up. Calls run in a worker thread (a busy database waits up to
`BUSY_TIMEOUT` seconds for the other process, never on the event loop). The file is
disposable like every cache: one found damaged is deleted and rebuilt with one log
line (the counts of the current period start again from zero). `RedisBackend`
(`redis_backend.py`) is the same protocol for a team.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from lsp_server.limits.window import WindowState, admit
from lsp_server.storage import PRIVATE_FILE, private_dir

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT = 10.0
"""Seconds a transaction waits for another process's lock before failing."""
PRUNE_EVERY = 256
"""Operations between two deletions of expired counters."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL,"
    " expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, idx INTEGER NOT NULL,"
    " previous REAL NOT NULL, current REAL NOT NULL, expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS marks (key TEXT PRIMARY KEY, expires REAL NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class Charge:
    """An amount for one counter: its key, its limit (for `reserve`) and how long it lives."""

    key: str
    amount: int
    limit: int = 0
    ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class RateCharge:
    """An amount for one sliding-window key, and its limit per window."""

    key: str
    amount: float
    limit: float


class Backend(Protocol):
    """Atomic counters shared by every process that points at the same store."""

    @property
    def name(self) -> str:
        """ "local" or "redis" (for messages and the usage log)."""
        ...

    async def reserve(self, charges: Sequence[Charge]) -> tuple[bool, list[int]]:
        """Add every amount if each counter stays within its limit, else nothing.

        Returns whether it did, and the counters' values after (or as they are)."""
        ...

    async def adjust(self, charges: Sequence[Charge]) -> list[int]:
        """Add each (signed) amount, clamping at zero; the values after."""
        ...

    async def rate(self, charges: Sequence[RateCharge], now: float, window: float) -> int | None:
        """Count every amount in its sliding window if each fits under its limit (None),
        else count none and return the index of the first charge that does not fit."""
        ...

    async def first(self, key: str, ttl: float) -> bool:
        """True for the first caller of ``key`` within ``ttl`` seconds, false after."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class LocalBackend:
    """Counters in one SQLite file, shared by the server processes of one user."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._ops = 0

    # -- connection --------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        private_dir(self.path.parent)
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
        except sqlite3.DatabaseError:
            db.close()
            raise
        with contextlib.suppress(OSError):
            self.path.chmod(PRIVATE_FILE)
        return db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                self._discard(exc)
                self._db = self._open()
        return self._db

    def _discard(self, exc: Exception) -> None:
        """Delete a damaged store (with its WAL files) so it is rebuilt."""
        logger.warning("limits store %s damaged (%s): discarded and rebuilt", self.path, exc)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(str(self.path) + suffix).unlink()

    def _run(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` in one ``BEGIN IMMEDIATE`` transaction (retried once on a damaged file)."""
        with self._lock:
            for attempt in (1, 2):
                db = self._connection()
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        result = body(db)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                    self._maybe_prune(db)
                    return result
                except sqlite3.OperationalError:
                    raise  # locked past the busy timeout, disk full: not damage
                except sqlite3.DatabaseError as exc:
                    if attempt == 2:
                        raise
                    self._discard(exc)
            raise AssertionError("unreachable")

    async def _call(self, body: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._run, body)

    def _maybe_prune(self, db: sqlite3.Connection) -> None:
        self._ops += 1
        if self._ops % PRUNE_EVERY:
            return
        now = time.time()
        with contextlib.suppress(sqlite3.OperationalError):
            for table in ("counters", "windows", "marks"):
                db.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))

    # -- operations ----------------------------------------------------------------

    @staticmethod
    def _values(db: sqlite3.Connection, keys: Sequence[str]) -> list[int]:
        out: list[int] = []
        now = time.time()
        for key in keys:
            row = db.execute(
                "SELECT value FROM counters WHERE key = ? AND expires >= ?", (key, now)
            ).fetchone()
            out.append(int(row[0]) if row else 0)
        return out

    @staticmethod
    def _store(db: sqlite3.Connection, key: str, value: int, ttl: float) -> None:
        db.execute(
            "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) ON CONFLICT(key) "
            "DO UPDATE SET value = excluded.value, expires = MAX(expires, excluded.expires)",
            (key, value, time.time() + ttl),
        )

    async def reserve(self, charges: Sequence[Charge]) -> tuple[bool, list[int]]:
        def body(db: sqlite3.Connection) -> tuple[bool, list[int]]:
            values = self._values(db, [c.key for c in charges])
            if any(v + c.amount > c.limit for v, c in zip(values, charges, strict=True)):
                return False, values
            after = [v + c.amount for v, c in zip(values, charges, strict=True)]
            for value, charge in zip(after, charges, strict=True):
                self._store(db, charge.key, value, charge.ttl)
            return True, after

        return await self._call(body)

    async def adjust(self, charges: Sequence[Charge]) -> list[int]:
        def body(db: sqlite3.Connection) -> list[int]:
            values = self._values(db, [c.key for c in charges])
            after = [max(v + c.amount, 0) for v, c in zip(values, charges, strict=True)]
            for value, charge in zip(after, charges, strict=True):
                self._store(db, charge.key, value, charge.ttl)
            return after

        return await self._call(body)

    async def rate(self, charges: Sequence[RateCharge], now: float, window: float) -> int | None:
        def body(db: sqlite3.Connection) -> int | None:
            states: list[WindowState] = []
            for i, charge in enumerate(charges):
                row = db.execute(
                    "SELECT idx, previous, current FROM windows WHERE key = ?", (charge.key,)
                ).fetchone()
                state = WindowState(int(row[0]), float(row[1]), float(row[2])) if row else None
                ok, new = admit(state, charge.amount, charge.limit, now, window)
                if not ok:
                    return i
                states.append(new)
            for charge, state in zip(charges, states, strict=True):
                db.execute(
                    "INSERT OR REPLACE INTO windows (key, idx, previous, current, expires) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (charge.key, state.index, state.previous, state.current, now + 2 * window),
                )
            return None

        return await self._call(body)

    async def first(self, key: str, ttl: float) -> bool:
        def body(db: sqlite3.Connection) -> bool:
            now = time.time()
            db.execute("DELETE FROM marks WHERE key = ? AND expires < ?", (key, now))
            cursor = db.execute(
                "INSERT OR IGNORE INTO marks (key, expires) VALUES (?, ?)", (key, now + ttl)
            )
            return cursor.rowcount == 1

        return await self._call(body)

    async def aclose(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
