"""The self-contained HTML dashboard of `llm-lsp report`.

Charts are SVG drawn by pygal (pure Python, on PyPI) and inlined in the page, so
the file needs no network and no JavaScript library: it opens offline, from an
e-mail attachment or a CI artifact. pygal's own tooltip script is a link to a
CDN, so it is turned off (``js=[]``); values are in each chart's table below it
and in the SVG's titles. Every text from the log is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pygal
from pygal.style import Style

from lsp_server.report.data import Figures, Request

_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#777",
    colors=("#3b6fb6", "#e07b39", "#4e9a51", "#b8473d", "#7d5ba6", "#8c8c8c"),
    font_family="sans-serif",
)
_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1em; }
.chart { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em; }
.chart svg { width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.kpi { display: inline-block; margin-right: 2em; } .kpi b { font-size: 1.4em; display: block; }
details { margin: 0.5em 0; } summary { cursor: pointer; }
"""

# A link to a breakdown opens it (the page's only script of its own; inline).
_OPEN_TARGET = """
function openTarget() {
  const el = location.hash && document.getElementById(location.hash.slice(1));
  if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
openTarget();
"""


def _chart(kind: type[Any], title: str, labels: Sequence[str], series: Mapping[str, Any]) -> str:
    chart = kind(
        style=_STYLE,
        js=[],
        disable_xml_declaration=True,
        width=560,
        height=300,
        explicit_size=False,
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        x_label_rotation=30 if len(labels) > 6 else 0,
        print_values=False,
        no_data_text="no data in this period",
    )
    chart.title = title
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, values)
    svg: str = chart.render(is_unicode=True)
    return f'<div class="chart" data-chart="{html.escape(title)}">{svg}</div>'


def _pie(title: str, parts: Mapping[str, float]) -> str:
    chart = pygal.Pie(
        style=_STYLE,
        js=[],
        disable_xml_declaration=True,
        width=560,
        height=300,
        explicit_size=False,
        inner_radius=0.4,
        legend_at_bottom=True,
        no_data_text="no data in this period",
    )
    chart.title = title
    for name, value in parts.items():
        chart.add(name, round(value, 6))
    svg: str = chart.render(is_unicode=True)
    return f'<div class="chart" data-chart="{html.escape(title)}">{svg}</div>'


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    numeric = [
        all(isinstance(r[i], int | float) for r in rows) if rows else False
        for i in range(len(head))
    ]
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        cells = (
            f'<td class="n">{_e(v)}</td>' if numeric[i] else f"<td>{v}</td>"
            for i, v in enumerate(row)
        )
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _usd(value: float) -> str:
    return f"${value:.4f}"


def _breakdown(request: Request) -> str:
    """A request's attempts and context pieces, the target of the top-10 links."""
    s = request.summary or {}
    facts = [
        ("feature", request.feature),
        ("when", request.when.isoformat(timespec="seconds")),
        ("outcome", s.get("outcome", "?")),
        ("answered by", request.tier),
        ("model", request.model),
        ("cache", s.get("cache", "n/a")),
        ("prompt", s.get("prompt_version", "")),
        ("budget", ", ".join(request.budget) or "no decision recorded"),
        ("signals", ", ".join(request.signals) or "none"),
        ("trace id", s.get("trace_id") or "n/a"),
    ]
    attempts = [
        [
            _e(a.get("provider")),
            _e(a.get("model")),
            _e(a.get("tier")),
            a.get("attempt", 1),
            _e(a.get("outcome")) + (f" ({_e(a['error_class'])})" if a.get("error_class") else ""),
            a.get("latency_ms", 0),
            a.get("prompt_tokens", 0),
            a.get("cached_tokens", 0),
            a.get("completion_tokens", 0),
            _usd(float(a.get("cost_usd") or 0)),
        ]
        for a in request.attempts
    ]
    pieces = [
        [_e(p.get("label")), _e(p.get("role")), p.get("tokens", 0)]
        for p in s.get("context") or ()
        if isinstance(p, dict)
    ]
    return (
        f'<details id="req-{_e(request.request_id)}"><summary><code>{_e(request.request_id)}'
        f"</code> · {_e(request.feature)} · {_usd(request.cost)}</summary>"
        + _table(["", ""], [[_e(k), _e(v)] for k, v in facts])
        + _table(
            ["provider", "model", "tier", "#", "outcome", "ms", "in", "cached", "out", "cost"],
            attempts,
        )
        + (_table(["context piece", "role", "tokens"], pieces) if pieces else "")
        + f"<p>Terminal: <code>llm-lsp cost {_e(request.request_id)}</code></p></details>"
    )


def render(figures: Figures, generated: datetime | None = None) -> str:
    """The whole page."""
    f = figures
    generated = generated or datetime.now(UTC)
    days = list(f.cost_by_day)
    lat_tiers = list(f.latency_by_tier)
    activity_days = sorted(set(f.fallbacks_by_day) | set(f.breaker_openings_by_day))
    charts = [
        _chart(pygal.Bar, "Cost per day (USD)", days, {"cost": list(f.cost_by_day.values())}),
        _pie("Cost per model (USD)", f.cost_by_model),
        _chart(
            pygal.HorizontalBar,
            "Cost per feature (USD)",
            list(f.cost_by_feature),
            {"cost": list(f.cost_by_feature.values())},
        ),
        _chart(
            pygal.Bar,
            "Latency per tier (ms)",
            lat_tiers,
            {
                "p50": [v[0] for v in f.latency_by_tier.values()],
                "p95": [v[1] for v in f.latency_by_tier.values()],
            },
        ),
        _pie(
            "Cache hit rate",
            {"hits": f.cache_hits, "misses": f.cache_lookups - f.cache_hits}
            if f.cache_lookups
            else {},
        ),
        _chart(
            pygal.Line,
            "Fallbacks and breaker openings per day",
            activity_days,
            {
                "requests that fell back": [f.fallbacks_by_day.get(d, 0) for d in activity_days],
                "breaker openings": [f.breaker_openings_by_day.get(d, 0) for d in activity_days],
            },
        ),
    ]
    rate = f.cache_hit_rate
    kpis = [
        ("total cost", _usd(f.total_cost)),
        ("requests", len(f.requests)),
        ("provider attempts", f.attempts),
        ("cache hit rate", f"{rate:.0%}" if rate is not None else "n/a"),
    ]
    top = [
        [
            f'<a href="#req-{_e(r.request_id)}"><code>{_e(r.request_id)}</code></a>',
            _e(r.when.strftime("%Y-%m-%d %H:%M")),
            _e(r.feature),
            _e(r.model),
            _e(r.tier),
            round(r.cost, 6),
        ]
        for r in f.top
    ]
    variants = [
        [
            _e(v.variant),
            v.requests,
            round(v.cost_per_request, 6),
            round(v.p50_ms, 1),
            round(v.answer_chars),
            _e(", ".join(f"{k}: {n}" for k, n in v.signals.items()) or "none"),
        ]
        for v in f.variants
    ]
    latency = [
        [_e(t), round(p50, 1), round(p95, 1), n] for t, (p50, p95, n) in f.latency_by_tier.items()
    ]
    period = f"since {f.since:%Y-%m-%d %H:%M} UTC" if f.since else "all records"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>llm-lsp usage report</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>llm-lsp usage report</h1>",
            f"<p>{_e(period)} · generated {generated:%Y-%m-%d %H:%M} UTC</p>",
            "<div>"
            + "".join(f'<span class="kpi"><b>{_e(v)}</b>{_e(k)}</span>' for k, v in kpis)
            + "</div>",
            '<div class="grid">',
            *charts,
            "</div>",
            "<h2>Latency per tier</h2>",
            _table(["tier", "p50 ms", "p95 ms", "requests"], latency),
            "<h2>The ten most expensive requests</h2>",
            _table(["request", "when", "feature", "model", "answered by", "cost USD"], top),
            "<h2>Prompt variants</h2>",
            _table(
                ["prompt", "requests", "cost/request USD", "p50 ms", "answer chars", "signals"],
                variants,
            )
            if variants
            else "<p>No request recorded a prompt variant in this period.</p>",
            "<h2>Breakdowns</h2>",
            *(_breakdown(r) for r in f.top),
            f"<script>{_OPEN_TARGET}</script>",
            "</body></html>",
        ]
    )
