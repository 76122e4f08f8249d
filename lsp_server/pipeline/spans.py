"""The context-assembly span the pipelines put around building a pack.

``context.assemble`` carries the task kind, the budget, the pack's total tokens and,
per piece, its role, label, form and token count. The counts are those the
assembler made while fitting the pieces (`ContextPiece.tokens`): counting them again
here cost ~10 ms a hover on a busy 2-core machine, far over the tracing budget of
1 ms. A piece the assembler did not count gets its share of the pack's exact total
by rendered length. The pieces are parallel string and integer arrays
(``llm_lsp.context.pieces`` and ``llm_lsp.context.piece_tokens``), as span
attributes cannot nest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lsp_server.context.pack.pieces import ContextPack
from lsp_server.telemetry.tracing import SpanHandle, span


@contextlib.contextmanager
def pack_span(kind: str, budget: int) -> Iterator[SpanHandle]:
    """``context.assemble`` around the assembly of one pack."""
    with span("context.assemble", {"llm_lsp.task": kind, "llm_lsp.context.budget": budget}) as h:
        yield h


def piece_tokens(pack: ContextPack) -> list[int]:
    """Each piece's tokens: as the assembler counted it, else its share by length."""
    lengths = [len(p.render()) for p in pack.pieces]
    total = sum(lengths) or 1
    return [
        p.tokens or round(pack.tokens * n / total)
        for p, n in zip(pack.pieces, lengths, strict=True)
    ]


def describe_pack(handle: SpanHandle, pack: ContextPack) -> None:
    """The pack's pieces and token counts on ``handle`` (nothing when not recorded)."""
    if not handle.recording:
        return
    handle.update(
        {
            "llm_lsp.context.tokens": pack.tokens,
            "llm_lsp.context.pieces": [f"{p.role} {p.label} ({p.form})" for p in pack.pieces],
            "llm_lsp.context.piece_tokens": piece_tokens(pack),
            "llm_lsp.context.dropped": list(pack.dropped),
        }
    )
