"""The server's health for a status line: today's spend, budget left, breakers, queue.

`Health` is what the ``llmLsp.health`` command answers and the ``llmLsp/health``
notification carries (`Health.to_json`), plus a one-line `Health.status` an editor
can show as is. Spend is summed from the usage log (every editor window writes to
the same file, so it is the user's spend today, not this process's), UTC day, from
attempt records only (request summaries repeat their attempts' cost). `SpendTally`
reads the log incrementally: only the bytes appended since its last look, from the
start again when the day changes or the file was rotated (it got shorter or was
replaced), so asking every few seconds costs a ``stat``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    """One snapshot of the server's state."""

    spend_today_usd: float
    requests_today: int
    budget_left_usd: float | None  # None: no budget is set (or none is known)
    breakers: dict[str, str] = field(default_factory=dict)  # provider → "closed" / "open 42 s: …"
    queue_depth: int = 0
    exporter: str = "none"

    def status(self) -> str:
        """One line for a status bar: "llm-lsp $0.42 today · budget $4.58 left · queue 1"."""
        parts = [f"llm-lsp ${self.spend_today_usd:.2f} today"]
        if self.budget_left_usd is not None:
            parts.append(f"budget ${self.budget_left_usd:.2f} left")
        down = [f"{name} {state}" for name, state in self.breakers.items() if state != "closed"]
        parts.extend(down)
        if self.queue_depth:
            parts.append(f"queue {self.queue_depth}")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The notification's / command's payload."""
        return {
            "spendTodayUsd": round(self.spend_today_usd, 6),
            "requestsToday": self.requests_today,
            "budgetLeftUsd": None
            if self.budget_left_usd is None
            else round(self.budget_left_usd, 6),
            "breakers": dict(self.breakers),
            "queueDepth": self.queue_depth,
            "telemetryExporter": self.exporter,
            "status": self.status(),
        }


class SpendTally:
    """Today's (UTC) spend and attempt count from a usage log, read incrementally."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._day = ""
        self._offset = 0
        self._inode: int | None = None
        self._spend = 0.0
        self._requests: set[str] = set()
        self._partial = b""

    def today(self, now: datetime | None = None) -> tuple[float, int]:
        """(USD spent today, requests today) as the log says now."""
        day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
        with self._lock:
            if self.path is None:
                return 0.0, 0
            try:
                stat = os.stat(self.path)
            except OSError:
                return 0.0, 0
            if day != self._day or stat.st_ino != self._inode or stat.st_size < self._offset:
                self._restart(day, stat.st_ino)
            if stat.st_size > self._offset:
                self._read_from(self._offset, day)
            return self._spend, len(self._requests)

    def _restart(self, day: str, inode: int) -> None:
        self._day, self._inode = day, inode
        self._offset, self._spend, self._partial = 0, 0.0, b""
        self._requests = set()

    def _read_from(self, offset: int, day: str) -> None:
        assert self.path is not None
        try:
            with self.path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError as exc:
            logger.debug("cannot read usage log %s: %s", self.path, exc)
            return
        self._offset = offset + len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        for raw in lines:
            self._add(raw, day)

    def _add(self, raw: bytes, day: str) -> None:
        try:
            record = json.loads(raw)
        except ValueError:
            return
        if not isinstance(record, dict) or record.get("kind", "attempt") != "attempt":
            return
        if record.get("feature") == "probe":  # a breaker's ping, not a request
            return
        if not str(record.get("ts", "")).startswith(day):
            return
        cost = record.get("cost_usd")
        if isinstance(cost, int | float):
            self._spend += float(cost)
        request_id = record.get("request_id")
        if isinstance(request_id, str) and record.get("outcome") != "skipped":
            self._requests.add(request_id)
