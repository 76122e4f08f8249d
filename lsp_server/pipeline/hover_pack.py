"""A hover's context pack: its first steps started while jedi answers, then the pack.

Only the import map places the other names (no jedi inference, no callers, no
naming-convention guesses): a hover must stay fast; Explain and Fix get the full
search (`pipeline.actions`).
"""

from __future__ import annotations

import asyncio
import logging

from lsp_server.context.model import SymbolInfo
from lsp_server.context.pack.assembler import ContextPack, ContextTask, TaskKind
from lsp_server.context.pack.grounding import focus_of
from lsp_server.pipeline.runtime import Document, HoverRuntime
from lsp_server.pipeline.spans import describe_pack, pack_span

logger = logging.getLogger(__name__)


def prefetch_pack(rt: HoverRuntime, doc: Document, line: int) -> asyncio.Task[None] | None:
    """Chunk the hovered file and the modules its 1-based ``line`` imports from, and load
    the tokenizer (all cached) while jedi answers, when the hover will want a pack; a
    failure here is left to the pack to meet."""
    if not (rt.settings.hover.enabled and rt.llm.available and rt.may_send(doc.path)):
        return None

    async def run() -> None:
        try:
            await asyncio.gather(
                rt.assembler.prepare_line(doc.path, doc.text, line),
                rt.counter(rt.settings.llm.model),
            )
        except Exception as exc:  # the pack meets it again and says so
            logger.debug("hover prefetch failed: %s", exc)

    return asyncio.ensure_future(run())


def hover_task(doc: Document, line: int, column: int, symbol: SymbolInfo) -> ContextTask:
    """What a hover's pack is for: the symbol's definition first and whole, the hovered
    line's chunk, what it uses (`context.pack.grounding`).

    Only the import map places the other names (no jedi inference, no callers, no
    naming-convention guesses): a hover must stay fast; Explain and Fix get the full
    search.
    """
    return ContextTask(
        TaskKind.HOVER,
        doc.text,
        doc.path,
        line,
        line,
        focus=focus_of(symbol),
        name=symbol.name,
        column=column,
        callers=False,
        infer=False,
        # a guess parses every candidate class's module: ~90 ms of a first-contact
        # hover in Django (bench_hover), for names other than the hovered one
        guess=False,
    )


async def hover_pack(
    rt: HoverRuntime, doc: Document, line: int, column: int, symbol: SymbolInfo
) -> ContextPack:
    """The pack of `hover_task` within ``hoverContextTokens``."""
    settings = rt.settings
    counter = await rt.counter(settings.llm.model)
    task = hover_task(doc, line, column, symbol)
    with pack_span(task.kind.value, settings.hover.context_tokens) as traced:
        pack = await rt.assembler.assemble(
            task, counter, settings.hover.context_tokens, deadline=0.0
        )
        describe_pack(traced, pack)
        return pack
