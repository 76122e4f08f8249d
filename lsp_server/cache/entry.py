"""What the answer cache stores: the answer and its metadata, never the request.

A `CachedAnswer` holds the model's text, who wrote it (model, provider, tier),
what it cost, when, for which scope, and the fingerprints of the code it was
written for. Request messages are never stored (they hold the user's code, and
could hold a secret-looking string the workspace rules did not catch); API keys
are never part of an answer. Entries travel as JSON, not pickle: a shared
Redis must not be able to run code in the server by what it hands back.

`CacheOutcome` and `CacheLookup` are what a lookup says, for the pipeline's
footer, traces (attribute ``llm_lsp.cache``) and the usage log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lsp_server.llm.types import Completion, Usage


class CacheOutcome(StrEnum):
    """What the cache did for a request (the ``llm_lsp.cache`` attribute's value)."""

    HIT = "hit"
    MISS = "miss"
    STALE = "stale"
    BYPASS = "bypass"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One cached answer (see the module docstring)."""

    text: str
    model: str
    provider: str
    tier: str
    feature: str
    created: float  # time.time() when the answer was written
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    scope_label: str = ""
    pieces: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_completion(
        cls, completion: Completion, feature: str, scope_label: str, pieces: Mapping[str, str]
    ) -> CachedAnswer:
        """The cacheable part of ``completion`` (text, who, cost), stamped now."""
        usage = completion.usage
        return cls(
            text=completion.text,
            model=completion.model,
            provider=completion.provider,
            tier=completion.tier,
            feature=feature,
            created=time.time(),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=completion.cost_usd,
            latency_ms=completion.latency_ms,
            scope_label=scope_label,
            pieces=dict(pieces),
        )

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedAnswer:
        """An entry from its stored form; ValueError when it is not one."""
        try:
            data = json.loads(raw)
        except (TypeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a cache entry: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a cache entry")
        try:
            entry = cls(**data)
        except TypeError as exc:
            raise ValueError(f"not a cache entry: {exc}") from None
        _check(entry)
        return entry

    def age(self, now: float | None = None) -> float:
        """Seconds since the answer was written (never negative)."""
        return max(0.0, (time.time() if now is None else now) - self.created)

    def completion(self, request_id: str, latency_ms: float) -> Completion:
        """The answer as a `Completion` that cost nothing now (the saving is `cost_usd`)."""
        return Completion(
            text=self.text,
            model=self.model,
            provider="cache",
            usage=Usage(),
            latency_ms=latency_ms,
            cost_usd=0.0,
            request_id=request_id,
            tier="cache",
        )


def _check(entry: CachedAnswer) -> None:
    strings: dict[str, Any] = {
        "text": entry.text,
        "model": entry.model,
        "provider": entry.provider,
        "tier": entry.tier,
        "feature": entry.feature,
        "scope_label": entry.scope_label,
    }
    for name, value in strings.items():
        if not isinstance(value, str):
            raise ValueError(f"not a cache entry: {name} is not text")
    numbers = (entry.created, entry.cost_usd, entry.latency_ms, entry.prompt_tokens)
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        raise ValueError("not a cache entry: bad numbers")
    if not isinstance(entry.pieces, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in entry.pieces.items()
    ):
        raise ValueError("not a cache entry: bad fingerprints")


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """What a lookup found: the outcome, the layer that answered and the entry."""

    outcome: CacheOutcome
    layer: str = ""  # "exact" | "structural" | "semantic" | "latest"
    entry: CachedAnswer | None = None
    changed: tuple[str, ...] = ()  # for a stale answer: pieces whose code changed since
    elapsed_ms: float = 0.0

    @property
    def age(self) -> float:
        """Seconds since the entry was written (0 without one)."""
        return self.entry.age() if self.entry is not None else 0.0
