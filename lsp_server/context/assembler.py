"""Assemble the code a model sees for a task, under an exact token budget.

A pack is a list of labelled pieces (`path:start-end`), highest priority
first: the code around the cursor, then the definition of the symbol (which
may live in another file). A piece that does not fit in full is replaced by
its skeleton (signature, docstring, member signatures), and failing that cut
on a line boundary. The rendered pack is counted once more at the end, so it
never exceeds its budget. Same inputs, byte-identical output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lsp_server.context.chunker import Chunk, ChunkedModule
from lsp_server.context.tokens import TokenCounter

logger = logging.getLogger(__name__)

_WINDOW_LINES = 12


@dataclass(frozen=True, slots=True)
class ContextPiece:
    """One labelled piece of code in a pack."""

    label: str  # "path:start-end"
    role: str  # "target" | "definition"
    title: str  # e.g. "function `Foo.run`"
    text: str
    form: str  # "full" | "skeleton" | "truncated" | "window"

    def render(self) -> str:
        """Markdown for the prompt."""
        note = "" if self.form == "full" else f", {self.form}"
        return f"### {self.label} ({self.role}: {self.title}{note})\n```python\n{self.text}\n```\n"


@dataclass(frozen=True, slots=True)
class ContextPack:
    """The pieces chosen for a task, with their exact token count."""

    pieces: tuple[ContextPiece, ...]
    tokens: int
    budget: int
    exact_count: bool

    def render(self) -> str:
        """All pieces as one markdown block."""
        return "\n".join(p.render() for p in self.pieces)


def _label(path: str, start: int, end: int) -> str:
    return f"{path}:{start}-{end}"


def _title(chunk: Chunk) -> str:
    return f"{chunk.kind.value} `{chunk.qualname}`"


def _line_window(source: str, path: str, line: int, span: int = _WINDOW_LINES) -> ContextPiece:
    lines = source.splitlines()
    start = max(1, line - span)
    end = min(len(lines), line + span)
    text = "\n".join(lines[start - 1 : end])
    return ContextPiece(
        _label(path, start, end), "target", "lines around the cursor", text, "window"
    )


def _target_piece(module: ChunkedModule, source: str, line: int) -> ContextPiece:
    chunk = module.enclosing(line)
    if chunk is None or chunk.is_fallback or chunk.qualname == "<module>":
        window = _line_window(source, module.path, line)
        if module.parse_error:
            return ContextPiece(
                window.label,
                window.role,
                "lines around the cursor (file does not parse)",
                window.text,
                "window",
            )
        return window
    return ContextPiece(
        _label(module.path, chunk.start_line, chunk.end_line),
        "target",
        _title(chunk),
        chunk.source,
        "full",
    )


def _fit(
    piece: ContextPiece, skeleton: str | None, counter: TokenCounter, room: int
) -> ContextPiece | None:
    """The piece in full, as a skeleton, or cut to `room` tokens; None if nothing fits."""
    if room <= 0:
        return None
    if counter.count(piece.render()) <= room:
        return piece
    if skeleton:
        slim = ContextPiece(piece.label, piece.role, piece.title, skeleton, "skeleton")
        if counter.count(slim.render()) <= room:
            return slim
    overhead = counter.count(
        ContextPiece(piece.label, piece.role, piece.title, "", "truncated").render()
    )
    if room - overhead < 16:
        return None
    cut = counter.truncate(piece.text, room - overhead)
    return ContextPiece(piece.label, piece.role, piece.title, cut, "truncated")


def assemble_hover(
    module: ChunkedModule,
    source: str,
    line: int,
    definition: tuple[ChunkedModule, int] | None,
    counter: TokenCounter,
    budget: int,
) -> ContextPack:
    """The pack for a hover at 1-based `line`: target code, then the symbol's definition.

    `definition` is the chunked module holding the definition and its 1-based line.
    """
    pieces: list[ContextPiece] = []
    target = _target_piece(module, source, line)
    enclosing = module.enclosing(line)
    skeleton = enclosing.skeleton if enclosing is not None and target.form == "full" else None
    fitted = _fit(target, skeleton, counter, budget)
    if fitted is not None:
        pieces.append(fitted)
    if definition is not None:
        def_module, def_line = definition
        chunk = def_module.enclosing(def_line)
        same = (
            chunk is not None
            and def_module.path == module.path
            and (enclosing is not None and chunk.qualname == enclosing.qualname)
        )
        if chunk is not None and not chunk.is_fallback and not same:
            piece = ContextPiece(
                _label(def_module.path, chunk.start_line, chunk.end_line),
                "definition",
                _title(chunk),
                chunk.source,
                "full",
            )
            used = counter.count("\n".join(p.render() for p in pieces)) if pieces else 0
            fitted_def = _fit(piece, chunk.skeleton, counter, budget - used - 1)
            if fitted_def is not None:
                pieces.append(fitted_def)
    # The final count is authoritative: drop from the end until it fits.
    while pieces:
        tokens = counter.count("\n".join(p.render() for p in pieces))
        if tokens <= budget:
            return ContextPack(tuple(pieces), tokens, budget, counter.exact)
        logger.debug("pack over budget (%d > %d): dropping %s", tokens, budget, pieces[-1].label)
        pieces.pop()
    return ContextPack((), 0, budget, counter.exact)
