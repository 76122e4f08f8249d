"""What an Explain or Fix run hands back to the editor, and the one-line summary of a run.

Shared by `actions` (Explain and Fix) and `explain` (Explain through the answer
cache), so neither imports the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server.agent import AgentResult, ProposedEdit


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What an explain or fix run produced, ready to show."""

    ok: bool
    message: str  # one line for the user: what happened
    markdown: str | None = None  # explain: the document to show
    edit: ProposedEdit | None = None  # fix: the validated edit
    summary: str = ""  # model · tokens · cost · steps · time
    request_id: str = ""  # of the run, in the usage log (quality signals point at it)
    cache: str = "off"  # explain: what the answer cache did (hit/miss/stale/bypass/off)


def numbered(text: str, start: int, end: int) -> str:
    """Lines ``start``..``end`` (1-based) of ``text``, each prefixed with its number."""
    lines = text.splitlines()
    width = len(str(end))
    return "\n".join(
        f"{n:>{width}}| {lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1)
    )


def run_summary(result: AgentResult, seconds: float) -> str:
    """models · tokens in/out · cost · steps · seconds · tier, for the answer's footer."""
    ctx = result.context
    models = ", ".join(dict.fromkeys(ctx.models)) or "no model"
    completion = result.completion
    tier = f" · {completion.tier}" if completion is not None else ""
    return (
        f"{models} · {ctx.prompt_tokens} in / {ctx.completion_tokens} out tokens · "
        f"${ctx.cost_usd:.4f} · {ctx.steps} step{'s' if ctx.steps != 1 else ''} · "
        f"{seconds:.1f} s{tier}"
    )
