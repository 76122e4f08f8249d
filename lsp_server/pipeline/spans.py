"""The context-assembly span the pipelines put around building a pack.

``context.assemble`` carries the task kind, the budget, the pack's total tokens and,
per piece, its role, label, form and token count (counted only when the span is
recorded: a server that exports nothing does not count them twice). The pieces are
parallel string and integer arrays (``llm_lsp.context.pieces`` and
``llm_lsp.context.piece_tokens``), as span attributes cannot nest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lsp_server.context.pack.pieces import ContextPack
from lsp_server.context.tokens import TokenCounter
from lsp_server.telemetry.tracing import SpanHandle, span


@contextlib.contextmanager
def pack_span(kind: str, budget: int) -> Iterator[SpanHandle]:
    """``context.assemble`` around the assembly of one pack."""
    with span("context.assemble", {"llm_lsp.task": kind, "llm_lsp.context.budget": budget}) as h:
        yield h


def describe_pack(handle: SpanHandle, pack: ContextPack, counter: TokenCounter) -> None:
    """The pack's pieces and token counts on ``handle`` (nothing when not recorded)."""
    if not handle.recording:
        return
    handle.update(
        {
            "llm_lsp.context.tokens": pack.tokens,
            "llm_lsp.context.pieces": [f"{p.role} {p.label} ({p.form})" for p in pack.pieces],
            "llm_lsp.context.piece_tokens": [counter.count(p.render()) for p in pack.pieces],
            "llm_lsp.context.dropped": list(pack.dropped),
        }
    )
