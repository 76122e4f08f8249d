"""Markdown shown to the user: static facts, notices and the answer footer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lsp_server.context.model import SymbolInfo
from lsp_server.llm.types import Completion
from lsp_server.safe_markdown import fence, sanitize

#: A hover past ``hoverWait``: for a client that will hear of the answer, and for others.
PENDING_NOTE = "_The AI explanation is on its way: hover again in a moment._"
PENDING_LIVE_NOTE = "_The AI explanation is on its way: it will appear here._"


def placeholder(word: str) -> str:
    """An in-place client's hover on the name ``word`` (an identifier) while its static
    facts are still coming: the one line the client replaces (it says the explanation
    is ``on its way``, as the notes do)."""
    return f"_Reading the definition of `{word}`; the AI explanation is on its way._"


#: ``aiHover: onRepeat``, a first hover.
REPEAT_NOTE = "_Hover again for the AI explanation (`aiHover`: `onRepeat`)._"


def static_markdown(symbol: SymbolInfo, display_path: Callable[[Path | None], str]) -> str:
    """What jedi knows, as hover markdown: signature, kind, where defined, docstring summary."""
    parts: list[str] = []
    if symbol.signatures:
        sig = symbol.signatures[0]
        prefix = "class " if symbol.kind == "class" else "def " if symbol.kind == "function" else ""
        parts.append(fence(f"{prefix}{sig}", "python"))
    head = f"**{symbol.kind}** `{symbol.full_name or symbol.name}`"
    if symbol.type_names and symbol.kind not in ("class", "function", "module"):
        head += ": " + ", ".join(f"`{t}`" for t in symbol.type_names)
    if symbol.definition_path is not None and symbol.definition_line is not None:
        head += f" — defined at `{display_path(symbol.definition_path)}:{symbol.definition_line}`"
    elif symbol.definition_path is None and symbol.kind != "module":
        head += " — built-in"
    parts.append(head)
    if symbol.doc_summary:
        parts.append(sanitize(symbol.doc_summary))  # workspace text: as untrusted
    return "\n\n".join(parts)


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 100 else f"{ms:.0f} ms"


def footer(completion: Completion, source: str, context_tokens: int | None = None) -> str:
    """One line: model, tokens in/out, cost, latency, where the answer came from."""
    usage = completion.usage
    tokens = f"{usage.prompt_tokens} in / {usage.completion_tokens} out tokens"
    if usage.cached_tokens:
        tokens += f" ({usage.cached_tokens} cached)"
    return (
        f"_{completion.model} · {tokens} · ${completion.cost_usd:.4f} · "
        f"{_seconds(completion.latency_ms)} · {source}_"
    )


def answer_notes(notice: str | None, breakers: dict[str, str]) -> list[str]:
    """Lines above the footer: why an earlier tier did not answer, breakers not closed."""
    lines: list[str] = []
    if notice:
        lines.append(f"_{notice}_")
    troubled = [f"{name} {state}" for name, state in sorted(breakers.items()) if state != "closed"]
    if troubled:
        lines.append("_circuit: " + "; ".join(troubled) + "_")
    return lines


def offline_notice() -> str:
    """Shown when no provider is configured."""
    return (
        "_AI explanation off (offline mode): set `OPENAI_API_KEY` (and `OPENAI_BASE_URL` "
        "for a compatible endpoint) or the `llmLsp.apiKey` setting to turn it on._"
    )


def unavailable_notice(model: str, kind: str, message: str) -> str:
    """Shown when the provider could not answer."""
    reason = kind.replace("_", " ")
    return (
        f"_AI explanation unavailable: {model} {reason} ({message}); showing static analysis only._"
    )
