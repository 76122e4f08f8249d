"""A hover's pack leads with the hovered name's own definition, whole when it fits.

Measured on four packages (``scripts/bench_hover.py --recall``), the model got
a same-named symbol of another class, a skeleton of a ten-line function, or
nothing, when the hovered name's definition competed with the other names of
the target for room under the general rule (each definition at most a quarter
of the room left). For a hover the priorities are fixed instead:

1. the hovered name's definition, as jedi's go-to-definition placed it (imports
   followed first), in full when it fits the budget less the few lines around
   the cursor, else its first lines (header, docstring, first body lines; a
   class: its skeleton);
2. for a method, its class's skeleton, in at most `CLASS_SHARE` of what is left;
3. the enclosing function around the cursor, cut to the lines near the cursor
   when long (always at least `CURSOR_LINES` either side of the cursor line);
4. then (by the assembler) the other names on the hovered line, then the rest.

The resolution the import map gives for the hovered use itself is dropped:
jedi's answer is the only one for that name. A name whose definition cannot
be placed (outside the workspace, unreadable, too big for the budget) is said
so in a note at the head of the pack instead of being guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lsp_server.context.model import Definition, SymbolInfo
from lsp_server.context.pack.pieces import JOIN_SLACK, Candidate, ContextPiece, Role, fit, piece
from lsp_server.context.pack.snippets import definition_candidate
from lsp_server.context.source.chunker import ChunkKind
from lsp_server.context.source.focus import focus_skeleton
from lsp_server.context.static.modules import Module
from lsp_server.context.static.names import NameUse
from lsp_server.context.tokens import TokenCounter

logger = logging.getLogger(__name__)

#: Lines either side of the cursor the target always keeps.
CURSOR_LINES = 2
#: The hovered method's class skeleton takes at most this share of the room left.
CLASS_SHARE = 0.34
#: The target takes at most this share of the room left after the definition.
TARGET_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class Grounding:
    """The hover's leading pieces, in priority order, and what the prompt must be told."""

    lead: list[Candidate]  # the definition, its class skeleton
    target: Candidate  # fitted to the room the lead leaves
    placed: Definition | None  # the definition shown first, if any
    notes: tuple[str, ...]


def focus_of(symbol: SymbolInfo) -> Definition | None:
    """Where jedi's go-to-definition placed the hovered ``symbol``, if anywhere."""
    if symbol.definition_path is None or symbol.definition_line is None:
        return None
    return Definition(
        symbol.name,
        symbol.full_name,
        symbol.kind,
        symbol.definition_path,
        symbol.definition_line,
        0,
        symbol.in_workspace,
    )


def hovered_use(uses: list[NameUse], line: int, column: int | None) -> NameUse | None:
    """The use whose last component spans ``column`` on ``line`` (the hovered name)."""
    if column is None:
        return None
    for use in uses:
        last = use.text.rsplit(".", 1)[-1]
        if use.line == line and use.column <= column <= use.column + len(last):
            return use
    return None


def line_first(uses: list[NameUse], line: int) -> list[NameUse]:
    """``uses`` with those on ``line`` first (stable otherwise)."""
    return sorted(uses, key=lambda u: u.line != line)


def _cursor_window(target: ContextPiece, line: int) -> ContextPiece:
    lines = target.text.split("\n")
    at = min(max(line - target.start_line, 0), len(lines) - 1)
    a, b = max(0, at - CURSOR_LINES), min(len(lines), at + CURSOR_LINES + 1)
    start, end = target.start_line + a, target.start_line + b - 1
    return replace(
        target,
        label=f"{target.path}:{start}-{end}",
        text="\n".join(lines[a:b]),
        form="window" if (start, end) != (target.start_line, target.end_line) else target.form,
        start_line=start,
        end_line=end,
    )


def _cost(p: ContextPiece, counter: TokenCounter) -> int:
    return counter.count(p.render()) + JOIN_SLACK


def unplaced_note(name: str, why: str) -> str:
    """The prompt's note for a hovered name whose definition is not shown."""
    return (
        f"Note: the definition of the hovered name `{name}` is not shown ({why}); "
        "do not take a same-named symbol below for it."
    )


def ground(
    target_module: Module,
    first: Candidate,
    focus: Definition | None,
    name: str,
    home: Callable[[Path], Module | None],
    counter: TokenCounter,
    budget: int,
) -> Grounding:
    """The leading pieces of a hover on ``name`` at ``first.focus_line`` (see the docstring).

    ``focus`` is jedi's definition of the hovered name (None: jedi found none);
    ``home`` gives the module of a workspace file (None when it may not be read).
    """
    line = first.focus_line or first.piece.start_line
    floor = _cursor_window(first.piece, line)
    left = budget - _cost(floor, counter) - JOIN_SLACK
    lead: list[Candidate] = []
    notes: list[str] = []
    placed: Definition | None = None
    found = _focus_candidate(target_module, first, focus, name, home, notes)
    if found is not None:
        fc, owner = found
        fitted = fit(fc, counter, left - JOIN_SLACK)
        if fitted is None:
            notes.append(unplaced_note(name, "it does not fit the context budget"))
        else:
            lead.append(replace(fc, piece=fitted, skeleton=None))
            placed = focus
            left -= _cost(fitted, counter)
            if owner is not None:
                cls = fit(owner, counter, int(left * CLASS_SHARE))
                if cls is not None:
                    lead.append(replace(owner, piece=cls))
                    left -= _cost(cls, counter)
    room = max(int(left * TARGET_SHARE), 0) + _cost(floor, counter)
    cut = fit(first, counter, room)
    if cut is None or not cut.start_line <= line <= cut.end_line:
        cut = floor
    return Grounding(lead, replace(first, piece=cut), placed, tuple(notes))


def _focus_candidate(
    target_module: Module,
    first: Candidate,
    focus: Definition | None,
    name: str,
    home: Callable[[Path], Module | None],
    notes: list[str],
) -> tuple[Candidate, Candidate | None] | None:
    """The definition's candidate and, for a method, its class skeleton's; None to skip."""
    if focus is None or focus.path is None:
        notes.append(unplaced_note(name, "static analysis found no definition"))
        return None
    if focus.kind == "module":
        return None
    if not focus.in_workspace or focus.path.suffix != ".py":
        where = focus.full_name or name
        notes.append(unplaced_note(name, f"`{where}` is defined outside the workspace"))
        return None
    module = home(focus.path)
    if module is None:
        notes.append(unplaced_note(name, "its file may not be read"))
        return None
    same_file = module.display == target_module.display
    t = first.piece
    if same_file and _within(module, focus.line, t.start_line, t.end_line):
        return None  # defined in the target itself (a parameter, a local, the function)
    role = Role.FOCUS
    candidate = definition_candidate(module.chunks, module.lines, focus, role, 1.0)
    if candidate is None:
        notes.append(unplaced_note(name, "its definition could not be cut out of its file"))
        return None
    chunk = module.chunks.enclosing(focus.line)
    if chunk is not None and chunk.kind in (ChunkKind.FUNCTION, ChunkKind.METHOD):
        # Its first lines (header, docstring, first body lines) rather than a skeleton.
        candidate = replace(candidate, skeleton=None)
    elif chunk is not None and chunk.kind is ChunkKind.CLASS and candidate.skeleton:
        # A class too large to show whole: its skeleton, with its own attributes whole.
        candidate = replace(candidate, skeleton=focus_skeleton(chunk.source) or chunk.skeleton)
    owner: Candidate | None = None
    if chunk is not None and chunk.parent is not None:
        cls = module.chunks.by_qualname(chunk.parent)
        if cls is not None:
            title = f"class `{cls.qualname}` of the hovered method"
            args = (cls.start_line, cls.end_line, Role.FOCUS, title, cls.skeleton, "skeleton")
            owner = Candidate(piece(module.display, *args), Role.FOCUS)
    return candidate, owner


def _within(module: Module, line: int, start: int, end: int) -> bool:
    """Whether the definition at ``line`` lies in ``start..end`` (the target's chunk)."""
    chunk = module.chunks.enclosing(line)
    if chunk is None or chunk.kind in (ChunkKind.MODULE, ChunkKind.WINDOW):
        return start <= line <= end
    return start <= chunk.start_line and chunk.end_line <= end
