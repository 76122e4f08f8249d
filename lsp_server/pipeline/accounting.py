"""The request summary line of the usage log, from what a pipeline knows at the end.

The pipelines (hover, explain, fix) call `summarize` once per request, whatever
its outcome; `UsageLog.summarize` adds the totals of the request's provider
attempts. This module turns a context pack into its pieces with their token
counts (the pack's exact count shared out by characters) and collects the rest
(tier, variant, prompt version, answer length, signals, the breakers left open)
so the pipelines need one call each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from lsp_server.context.pack.pieces import ContextPack
from lsp_server.llm.types import Completion
from lsp_server.telemetry.tracing import trace_id
from lsp_server.telemetry.usage import ContextUse, UsageLog

logger = logging.getLogger(__name__)


def context_uses(pack: ContextPack | None) -> tuple[ContextUse, ...]:
    """Each piece of ``pack`` with its share of the pack's exact token count.

    The share is by characters of each piece's rendering: counting every piece again
    cost ~2 ms a piece on a busy machine, on the event loop of every hover."""
    if pack is None or not pack.pieces:
        return ()
    if all(p.tokens for p in pack.pieces):  # counted exactly when the pack was fitted
        return tuple(ContextUse(p.label, p.role, p.tokens) for p in pack.pieces)
    sizes = [len(p.render()) for p in pack.pieces]
    total = sum(sizes) or 1
    return tuple(
        ContextUse(p.label, p.role, round(pack.tokens * size / total))
        for p, size in zip(pack.pieces, sizes, strict=True)
    )


def summarize(
    log: UsageLog,
    request_id: str,
    feature: str,
    started: float,
    outcome: str,
    *,
    completion: Completion | None = None,
    pack: ContextPack | None = None,
    breakers: Mapping[str, str] | None = None,
    **facts: Any,
) -> None:
    """Write the summary of one request that began at ``started`` (monotonic)."""
    try:
        if completion is not None:
            facts.setdefault("tier", completion.tier)
            facts.setdefault("notice", completion.notice)
            facts.setdefault("answer_chars", len(completion.text))
        if pack is not None:
            facts.setdefault("context_tokens", pack.tokens)
            facts.setdefault("context", context_uses(pack))
        if breakers:
            facts["breakers_open"] = tuple(
                name for name, state in breakers.items() if state.startswith("open")
            )
        facts.setdefault("trace_id", trace_id())
        latency = round((time.monotonic() - started) * 1000, 1)
        log.summarize(request_id, feature, outcome=outcome, latency_ms=latency, **facts)
    except Exception:  # accounting never breaks an answer
        logger.exception("cannot summarize request %s", request_id)
