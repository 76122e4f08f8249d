"""The usage log read back: requests with their attempts, and the figures of the report.

`load(records, since)` groups the log's lines (`telemetry/usage.py`) by request:
each `Request` has its summary (absent for calls made outside a pipeline, e.g.
embeddings or `llm-lsp doctor`, or written by an older version), its attempts
and the quality signals pointing at it. `Figures.build` computes everything the
dashboard and the terminal table show. Money is always summed from the attempt
records (the provider's bill), latency from the summaries (what the user waited).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_SINCE = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_NEVER = datetime.min.replace(tzinfo=UTC)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m`` or an ISO date/time, as a UTC instant."""
    now = now or datetime.now(UTC)
    match = _SINCE.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected 7d, 12h, 30m or an ISO date, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _when(record: Mapping[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(record.get("ts", "")))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _num(record: Mapping[str, Any], key: str) -> float:
    value = record.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass
class Request:
    """One request id: its summary (if written), attempts and later signals."""

    request_id: str
    summary: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # budget / rate-limit decisions, as said
    when: datetime = _NEVER  # its first record's time (set by `load`)

    @property
    def budget(self) -> list[str]:
        """The budget and rate-limit decisions on this request, as the user was told."""
        said = list((self.summary or {}).get("budget") or ())
        return said + [text for text in self.limits if text not in said]

    @property
    def feature(self) -> str:
        source = self.summary or (self.attempts[0] if self.attempts else {})
        return str(source.get("feature") or "?")

    @property
    def cost(self) -> float:
        return sum(_num(a, "cost_usd") for a in self.attempts)

    @property
    def model(self) -> str:
        if self.summary and self.summary.get("model"):
            return str(self.summary["model"])
        ok = [a for a in self.attempts if a.get("outcome") == "ok"]
        return str((ok or self.attempts or [{}])[-1].get("model") or "?")

    @property
    def tier(self) -> str:
        """Who answered: a provider role, "cache", "static" (fallback) or "none"."""
        s = self.summary
        if s is not None:
            if s.get("cache") in ("hit", "stale") and not s.get("attempts"):
                return "cache"
            if s.get("outcome") == "fallback":
                return "static"
            return str(s.get("tier") or "none")
        ok = [a for a in self.attempts if a.get("outcome") == "ok"]
        return str(ok[-1].get("tier") or "primary") if ok else "none"

    @property
    def latency_ms(self) -> float:
        if self.summary is not None:
            return _num(self.summary, "latency_ms")
        return sum(_num(a, "latency_ms") for a in self.attempts)


def load(records: Iterable[Mapping[str, Any]], since: datetime | None = None) -> list[Request]:
    """Requests from the log's lines at or after ``since``, oldest first."""
    requests: dict[str, Request] = {}
    signals: list[Mapping[str, Any]] = []
    for record in records:
        request_id = record.get("request_id")
        if not isinstance(request_id, str):
            continue
        kind = record.get("kind", "attempt")
        if kind == "signal":
            signals.append(record)
            continue
        when = _when(record)
        if since is not None and (when is None or when < since):
            continue
        request = requests.get(request_id)
        if request is None:
            request = requests[request_id] = Request(request_id)
            if when is not None:
                request.when = when
        if kind == "request":
            request.summary = dict(record)
        elif kind == "attempt":
            request.attempts.append(dict(record))
        elif kind == "limit":
            request.limits.append(str(record.get("route") or record.get("error_class") or ""))
    for signal in signals:
        target = requests.get(str(signal["request_id"]))
        if target is not None and isinstance(signal.get("signal"), str):
            target.signals.append(signal["signal"])
    return sorted(requests.values(), key=lambda r: r.when)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0..100) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class VariantRow:
    """One prompt variant's figures, for the comparison table."""

    variant: str  # the prompt's tag, e.g. "hover@2b"
    requests: int
    cost_per_request: float
    p50_ms: float
    answer_chars: float
    signals: dict[str, int]


@dataclass
class Figures:
    """Everything the dashboard shows, computed once."""

    since: datetime | None
    requests: list[Request]
    cost_by_day: dict[str, float]
    cost_by_model: dict[str, float]
    cost_by_feature: dict[str, float]
    latency_by_tier: dict[str, tuple[float, float, int]]  # p50, p95, count
    cache_hits: int
    cache_lookups: int
    fallbacks_by_day: dict[str, int]
    breaker_openings_by_day: dict[str, int]
    top: list[Request]
    variants: list[VariantRow]

    @property
    def total_cost(self) -> float:
        return sum(self.cost_by_day.values())

    @property
    def attempts(self) -> int:
        return sum(len(r.attempts) for r in self.requests)

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None

    @classmethod
    def build(cls, requests: list[Request], since: datetime | None = None) -> Figures:
        """The figures of ``requests`` (from `load`)."""
        by_day: dict[str, float] = defaultdict(float)
        by_model: dict[str, float] = defaultdict(float)
        by_feature: dict[str, float] = defaultdict(float)
        for request in requests:
            for a in request.attempts:
                cost = _num(a, "cost_usd")
                by_day[str(a.get("ts", ""))[:10] or request.when.date().isoformat()] += cost
                by_model[str(a.get("model") or "?")] += cost
                by_feature[str(a.get("feature") or "?")] += cost
        latencies: dict[str, list[float]] = defaultdict(list)
        for request in requests:
            if request.summary is None or request.summary.get("outcome") != "cancelled":
                latencies[request.tier].append(request.latency_ms)
        summaries = [r.summary for r in requests if r.summary is not None]
        lookups = [s for s in summaries if s.get("cache", "off") != "off"]
        hits = sum(1 for s in lookups if s.get("cache") in ("hit", "stale"))
        fallbacks: Counter[str] = Counter()
        for request in requests:
            fell_back = any(
                a.get("outcome") == "skipped" or a.get("error_class") for a in request.attempts
            ) or (request.summary is not None and request.summary.get("outcome") == "fallback")
            if fell_back:
                fallbacks[request.when.date().isoformat()] += 1
        return cls(
            since=since,
            requests=requests,
            cost_by_day=dict(sorted(by_day.items())),
            cost_by_model=dict(sorted(by_model.items(), key=lambda kv: -kv[1])),
            cost_by_feature=dict(sorted(by_feature.items(), key=lambda kv: -kv[1])),
            latency_by_tier={
                tier: (percentile(v, 50), percentile(v, 95), len(v))
                for tier, v in sorted(latencies.items())
            },
            cache_hits=hits,
            cache_lookups=len(lookups),
            fallbacks_by_day=dict(sorted(fallbacks.items())),
            breaker_openings_by_day=_breaker_openings(requests),
            top=sorted(requests, key=lambda r: -r.cost)[:10],
            variants=_variants(requests),
        )


def _breaker_openings(requests: list[Request]) -> dict[str, int]:
    """Per day, how often a provider's breaker was seen to go from closed to open.

    A breaker is seen open by a request that skipped it (``circuit_open``) or whose
    summary lists it in ``breakers_open``; an opening is the first such sighting
    after one that saw it closed (a request that reached the provider)."""
    open_now: set[str] = set()
    openings: Counter[str] = Counter()
    for request in requests:
        day = request.when.date().isoformat()
        seen_open = {
            str(a.get("provider"))
            for a in request.attempts
            if a.get("error_class") == "circuit_open"
        }
        if request.summary is not None:
            seen_open.update(str(p) for p in request.summary.get("breakers_open") or ())
        reached = {
            str(a.get("provider")) for a in request.attempts if a.get("outcome") != "skipped"
        }
        if seen_open - open_now:
            openings[day] += len(seen_open - open_now)
        open_now = (open_now | seen_open) - (reached - seen_open)
    return dict(sorted(openings.items()))


def _variants(requests: list[Request]) -> list[VariantRow]:
    groups: dict[str, list[Request]] = defaultdict(list)
    for request in requests:
        summary = request.summary
        if summary is not None and (summary.get("prompt_version") or summary.get("variant")):
            groups[str(summary.get("prompt_version") or summary["variant"])].append(request)
    rows = []
    for variant, group in sorted(groups.items()):
        signals: Counter[str] = Counter()
        for request in group:
            signals.update(request.signals)
            for name, value in (request.summary or {}).get("signals", {}).items():
                if value is True:
                    signals[name] += 1
        answered = [_num(r.summary or {}, "answer_chars") for r in group]
        rows.append(
            VariantRow(
                variant=variant,
                requests=len(group),
                cost_per_request=sum(r.cost for r in group) / len(group),
                p50_ms=percentile([r.latency_ms for r in group], 50),
                answer_chars=statistics.fmean(answered) if answered else 0.0,
                signals=dict(sorted(signals.items())),
            )
        )
    return rows
