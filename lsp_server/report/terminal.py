"""Plain-text views of the usage log: the report's summary table and `llm-lsp cost`.

`summary_table` is the compact table `llm-lsp report` prints beside the HTML
file; `cost_breakdown` answers "why did this request cost what it did": each
attempt with its model, tier, tokens (cached ones apart) and the price applied,
the context pieces with their tokens, and the cache and budget decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsp_server.report.data import Figures, Request


def _rows(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(c) for c in head], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i and _numeric(c) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return [line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])]


def _numeric(text: str) -> bool:
    return text.lstrip("$").replace(".", "", 1).replace("%", "").isdigit()


def summary_table(figures: Figures) -> str:
    """A dozen lines: totals, cost per feature and model, latency per tier, top requests."""
    f = figures
    rate = f.cache_hit_rate
    period = f"since {f.since:%Y-%m-%d %H:%M} UTC" if f.since else "all records"
    out = [
        f"llm-lsp usage {period}: {len(f.requests)} requests, {f.attempts} provider attempts, "
        f"${f.total_cost:.4f}, cache hit rate {f'{rate:.0%}' if rate is not None else 'n/a'}, "
        f"{sum(f.fallbacks_by_day.values())} fell back, "
        f"{sum(f.breaker_openings_by_day.values())} breaker openings",
        "",
    ]
    out += _rows(["feature", "cost USD"], [[k, f"{v:.4f}"] for k, v in f.cost_by_feature.items()])
    out.append("")
    out += _rows(["model", "cost USD"], [[k, f"{v:.4f}"] for k, v in f.cost_by_model.items()])
    out.append("")
    out += _rows(
        ["tier", "p50 ms", "p95 ms", "requests"],
        [[t, f"{a:.0f}", f"{b:.0f}", n] for t, (a, b, n) in f.latency_by_tier.items()],
    )
    if f.top:
        out.append("")
        out += _rows(
            ["most expensive", "feature", "model", "cost USD"],
            [[r.request_id, r.feature, r.model, f"{r.cost:.6f}"] for r in f.top[:3]],
        )
    return "\n".join(out)


def find(requests: Sequence[Request], request_id: str) -> list[Request]:
    """Requests whose id is ``request_id`` or starts with it."""
    exact = [r for r in requests if r.request_id == request_id]
    return exact or [r for r in requests if r.request_id.startswith(request_id)]


def cost_breakdown(request: Request) -> str:
    """Why ``request`` cost what it did."""
    s = request.summary or {}
    attempts = request.attempts
    retries = sum(1 for a in attempts if int(a.get("attempt") or 1) > 1)
    out = [
        f"request {request.request_id}: {request.feature}, "
        f"{request.when:%Y-%m-%d %H:%M:%S} UTC, outcome {s.get('outcome', 'not summarized')}",
        f"  answered by: {request.tier} ({request.model})",
        f"  total: ${request.cost:.6f} over {len(attempts)} attempt record(s), "
        f"{retries} retr{'y' if retries == 1 else 'ies'}"
        + (f", latency {float(s['latency_ms']):.0f} ms" if "latency_ms" in s else ""),
        f"  cache: {s.get('cache', 'n/a')}",
        f"  budget: {', '.join(request.budget) or 'no budget decision recorded'}",
    ]
    if s.get("prompt_version") or s.get("variant"):
        out.append(f"  prompt: {s.get('prompt_version', '')} (variant {s.get('variant', '?')})")
    signals = [k for k, v in (s.get("signals") or {}).items() if v is True]
    signals += request.signals
    if signals or s.get("answer_chars"):
        out.append(
            f"  signals: {', '.join(signals) or 'none'}; answer {s.get('answer_chars', 0)} chars"
        )
    if s.get("notice"):
        out.append(f"  notice: {s['notice']}")
    if s.get("trace_id"):
        out.append(f"  trace id: {s['trace_id']}")
    out += ["", "attempts:"]
    out += [
        "  " + line
        for line in _rows(
            ["#", "provider", "model", "tier", "outcome", "ms", "in", "cached", "out", "cost USD"],
            [
                [
                    a.get("attempt", 1),
                    a.get("provider"),
                    a.get("model"),
                    a.get("tier"),
                    str(a.get("outcome"))
                    + (f" ({a['error_class']})" if a.get("error_class") else ""),
                    f"{float(a.get('latency_ms') or 0):.0f}",
                    a.get("prompt_tokens", 0),
                    a.get("cached_tokens", 0),
                    a.get("completion_tokens", 0),
                    f"{float(a.get('cost_usd') or 0):.6f}",
                ]
                for a in attempts
            ],
        )
    ]
    prices = dict.fromkeys(f"{a.get('model')}: {a['price']}" for a in attempts if a.get("price"))
    if prices:
        out += ["", "price applied:", *(f"  {p}" for p in prices)]
    pieces = [p for p in s.get("context") or () if isinstance(p, dict)]
    if pieces:
        out += ["", f"context ({s.get('context_tokens', 0)} tokens in the prompt):"]
        out += [
            "  " + line
            for line in _rows(
                ["piece", "role", "tokens"],
                [[p.get("label"), p.get("role"), p.get("tokens", 0)] for p in pieces],
            )
        ]
    return "\n".join(out)
