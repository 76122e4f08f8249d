"""The JSONL usage log: one record per provider attempt, with tokens and cost.

Each record is written with a single `write(2)` on a file opened with
`O_APPEND`, so lines from several server processes (several editor windows)
never interleave and a crash can at worst lose the line being written, never
corrupt an earlier one. Readers skip a torn last line. The API key is never a
field, and messages are scrubbed by the client before they get here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsp_server.storage import private_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One provider attempt, as the team lead reads it later."""

    request_id: str
    feature: str
    provider: str
    model: str
    outcome: str  # "ok" | "error" | "cancelled"
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    error_class: str | None = None
    status: int | None = None
    attempt: int = 1
    tier: str = "primary"
    route: str = ""  # the router's decision and reason, e.g. "hover, ~850 tokens, ... -> primary"
    cache: str = ""  # answer cache: "hit:exact" | "hit:structural" | "stale:latest" ("" for calls)
    saved_usd: float = 0.0  # what a cache hit saved: the cached answer's original cost
    ts: str = dataclasses.field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
    )

    def to_json(self) -> str:
        """One line of JSON, keys in a stable order."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)


class UsageLog:
    """Appends usage records to a JSONL file; never raises into the request path."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._warned = False
        self._private = False

    def write(self, record: UsageRecord) -> None:
        """Append one record. A failure to write is logged once, never raised."""
        if self.path is None:
            return
        line = (record.to_json() + "\n").encode("utf-8")
        try:
            with self._lock:
                private_dir(self.path.parent, own=False)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if not self._private:  # a log from an older version may be 0644
                        self._private = True
                        with contextlib.suppress(OSError):
                            os.fchmod(fd, 0o600)
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError as exc:
            if not self._warned:
                logger.warning("cannot write usage log %s: %s", self.path, exc)
                self._warned = True

    def read(self) -> Iterator[dict[str, Any]]:
        """Every well-formed record in the file, skipping torn or foreign lines."""
        if self.path is None or not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for raw in handle:
                try:
                    value = json.loads(raw)
                except ValueError:
                    logger.debug("skipping unreadable usage line")
                    continue
                if isinstance(value, dict):
                    yield value
