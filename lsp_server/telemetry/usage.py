"""The JSONL usage log: one record per provider attempt, one summary per request.

Three kinds of line (the ``kind`` field; the schema is documented in the
README, section "Usage log"):

- ``attempt`` (`UsageRecord`): one provider attempt (or a tier skipped), with
  tokens, cost, latency, error class, tier and the router's reason;
- ``request`` (`RequestSummary`): one per hover, explain, fix or question, written
  when the request ends: feature, outcome, answering tier, cache outcome, the
  context pieces with their tokens, attempts, retries, fallbacks, total tokens and
  cost (summed from its attempts by `UsageLog`), prompt version and variant,
  answer length, quality signals, budget decisions, trace id;
- ``signal`` (`SignalRecord`): a quality signal learnt after the request ended
  (fix applied or discarded, explanation regenerated, hover repeated), pointing
  at the request it judges.

Each record is written with a single `write(2)` on a file opened with
`O_APPEND`, so lines from several server processes (several editor windows)
never interleave and a crash can at worst lose the line being written, never
corrupt an earlier one. A torn line (the process killed mid-write) is skipped
on read; the record the next writer appended to it is recovered (a writer cannot
tell a torn end from another process's write in progress, so the reader mends it).
The file is
rotated by size (`usage.jsonl` → `usage.jsonl.1` … `.3`, the oldest dropped)
under an advisory lock, so two processes never both rotate. The API key is never
a field, and messages are scrubbed by the client before they get here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsp_server.storage import private_dir

logger = logging.getLogger(__name__)

#: Rotate when the log reaches this size (the `usageLogMaxMb` setting's default, 20 MB).
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
#: Rotated files kept beside the live one (`usage.jsonl.1` is the newest).
BACKUPS = 3
#: Requests whose attempts are being summed at once (older ones are forgotten).
_OPEN_REQUESTS = 512


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _line(value: Any) -> str:
    return json.dumps(dataclasses.asdict(value), separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One provider attempt, as the team lead reads it later."""

    request_id: str
    feature: str
    provider: str
    model: str
    outcome: str  # "ok" | "error" | "cancelled" | "skipped"
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
    trace_id: str | None = None  # the OpenTelemetry trace of the request, when tracing is on
    price: str | None = None  # the price applied, e.g. "gpt-4o: $2.50/$10.00 per M, cached $1.25"
    cache: str = ""  # answer cache: "hit:exact" | "hit:structural" | "stale:latest" ("" for calls)
    saved_usd: float = 0.0  # what a cache hit saved: the cached answer's original cost
    kind: str = "attempt"
    ts: str = dataclasses.field(default_factory=_now)

    def to_json(self) -> str:
        """One line of JSON, keys in a stable order."""
        return _line(self)


@dataclass(frozen=True, slots=True)
class ContextUse:
    """One piece of a request's context pack and what it cost in tokens."""

    label: str  # "path:start-end"
    role: str  # "target" | "definition" | ...
    tokens: int


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One request (hover, explain, fix, ask) from start to answer."""

    request_id: str
    feature: str
    outcome: str  # "ok" | "fallback" | "no_answer" | "error" | "cancelled" | "cached"
    latency_ms: float
    tier: str | None = None  # the role that answered: "primary" | "cheap" | "local" | None
    provider: str | None = None
    model: str | None = None
    attempts: int = 0  # provider attempts made (skipped tiers not counted)
    retries: int = 0  # attempts after the first on the same tier
    fallbacks: int = 0  # tiers that failed or were skipped before the answer
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    cache: str = "off"  # "off" | "miss" | "hit" | "stale" (filled by the answer cache)
    context_tokens: int = 0
    context: tuple[ContextUse, ...] = ()
    prompt_version: str = ""  # e.g. "hover@2"
    variant: str = ""  # "a" | "b" (the `promptVariantShare` split)
    answer_chars: int = 0
    signals: dict[str, bool] = dataclasses.field(default_factory=dict)  # e.g. fix_validated
    breakers_open: tuple[str, ...] = ()  # providers whose breaker was open when it ended
    budget: tuple[str, ...] = ()  # budget and rate-limit decisions taken for it
    notice: str | None = None  # the one-line notice the user saw (fallback reasons)
    trace_id: str | None = None
    kind: str = "request"
    ts: str = dataclasses.field(default_factory=_now)

    def to_json(self) -> str:
        """One line of JSON, keys in a stable order."""
        return _line(self)


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A quality signal about an earlier request, learnt without asking the user."""

    request_id: str  # the request judged
    signal: str  # "fix_applied" | "fix_discarded" | "regenerated" | "hover_repeated"
    feature: str = ""
    kind: str = "signal"
    ts: str = dataclasses.field(default_factory=_now)

    def to_json(self) -> str:
        """One line of JSON, keys in a stable order."""
        return _line(self)


@dataclass(slots=True)
class _Tally:
    attempts: int = 0
    retries: int = 0
    skipped: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    provider: str | None = None
    model: str | None = None

    def add(self, record: UsageRecord) -> None:
        if record.outcome == "skipped":
            self.skipped += 1
            return
        self.attempts += 1
        self.retries += record.attempt > 1
        self.failed += record.outcome == "error"
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cached_tokens += record.cached_tokens
        self.cost_usd += record.cost_usd
        if record.outcome == "ok":
            self.provider, self.model = record.provider, record.model


class UsageLog:
    """Appends usage records to a JSONL file; never raises into the request path."""

    def __init__(self, path: Path | None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._warned = False
        self._private = False
        self._tallies: OrderedDict[str, _Tally] = OrderedDict()

    def write(self, record: UsageRecord) -> None:
        """Append one attempt record (and count it towards its request's summary)."""
        with self._lock:
            tally = self._tallies.get(record.request_id)
            if tally is None:
                tally = self._tallies[record.request_id] = _Tally()
                while len(self._tallies) > _OPEN_REQUESTS:
                    self._tallies.popitem(last=False)
            tally.add(record)
        self._append(record.to_json())

    def summarize(self, request_id: str, feature: str, **facts: Any) -> RequestSummary:
        """Write the request's summary: ``facts`` (`RequestSummary` fields) plus its
        attempts' totals; returns it. A wrong field is a bug, logged, never raised."""
        with self._lock:
            tally = self._tallies.pop(request_id, None) or _Tally()
        totals: dict[str, Any] = {
            "attempts": tally.attempts,
            "retries": tally.retries,
            "fallbacks": tally.skipped + tally.failed - tally.retries,
            "prompt_tokens": tally.prompt_tokens,
            "completion_tokens": tally.completion_tokens,
            "cached_tokens": tally.cached_tokens,
            "cost_usd": round(tally.cost_usd, 8),
            "provider": tally.provider,
            "model": tally.model,
        }
        totals["fallbacks"] = max(0, totals["fallbacks"])
        try:
            summary = RequestSummary(request_id=request_id, feature=feature, **{**totals, **facts})
        except TypeError as exc:
            logger.error("bad request summary for %s: %s", request_id, exc)
            summary = RequestSummary(request_id, feature, "error", 0.0, **totals)
        self._append(summary.to_json())
        return summary

    def signal(self, request_id: str, signal: str, feature: str = "") -> None:
        """Record a quality signal about an earlier request."""
        if request_id:
            self._append(SignalRecord(request_id, signal, feature).to_json())

    def _append(self, text: str) -> None:
        """One line in one write; a failure to write is logged once, never raised."""
        if self.path is None:
            return
        line = (text + "\n").encode("utf-8")
        try:
            with self._lock:
                private_dir(self.path.parent, own=False)
                fd = self._open()
                try:
                    if self._rotate_due(fd):
                        os.close(fd)
                        self._rotate()
                        fd = self._open()
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError as exc:
            if not self._warned:
                logger.warning("cannot write usage log %s: %s", self.path, exc)
                self._warned = True

    def _open(self) -> int:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if not self._private:  # a log from an older version may be 0644
            self._private = True
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)
        return fd

    def _rotate_due(self, fd: int) -> bool:
        return self.max_bytes > 0 and os.fstat(fd).st_size >= self.max_bytes

    def _rotate(self) -> None:
        """Shift ``usage.jsonl`` → ``.1`` → … → ``.BACKUPS`` under a lock file; the
        size is checked again under the lock so two processes never both rotate."""
        assert self.path is not None
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.path.stat().st_size < self.max_bytes:
                    return  # another process rotated it meanwhile
            except FileNotFoundError:
                return
            for n in range(BACKUPS, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
                with contextlib.suppress(FileNotFoundError):
                    os.replace(newer, older)
            logger.info("usage log rotated: %s", self.path)
        finally:
            os.close(lock)

    def files(self) -> list[Path]:
        """The log's files, oldest first (rotated ones, then the live one)."""
        if self.path is None:
            return []
        rotated = [self.path.with_name(f"{self.path.name}.{n}") for n in range(BACKUPS, 0, -1)]
        return [p for p in (*rotated, self.path) if p.exists()]

    def read(self) -> Iterator[dict[str, Any]]:
        """Every well-formed record in the files, oldest first, skipping torn or foreign lines."""
        for path in self.files():
            try:
                handle = path.open("rb")
            except OSError as exc:
                logger.warning("cannot read usage log %s: %s", path, exc)
                continue
            with handle:
                for raw in handle:
                    value = _parse(raw)
                    if value is None:
                        logger.debug("skipping unreadable usage line in %s", path)
                    else:
                        yield value


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The record on one line; after a torn line, the whole record appended to it."""
    start = 0
    while start >= 0:
        try:
            value = json.loads(raw[start:])
        except ValueError:
            start = raw.find(b'{"', start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None
