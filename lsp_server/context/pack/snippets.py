"""Cut the pieces of a pack out of chunked modules: target, definition, caller, test.

Each function takes a `ChunkedModule` (for labels and structure) plus the
module's text lines, and returns a `Candidate`: the piece in full, with the
skeleton and cutting rules `pieces.build_pack` may fall back to. A definition is the
chunk that encloses its line (a function, method or class), or for a name
bound by module-level code the one top-level statement that binds it.
"""

from __future__ import annotations

import ast
import logging
import warnings
from pathlib import PurePosixPath

from lsp_server.context.model import Definition
from lsp_server.context.pack.pieces import Candidate, Role, piece
from lsp_server.context.source.chunker import MODULE_QUALNAME, Chunk, ChunkedModule
from lsp_server.context.static.modules import Module
from lsp_server.context.static.names import NameUse

logger = logging.getLogger(__name__)

#: Lines either side of the cursor when the target is not a function or class.
WINDOW_LINES = 12
#: Lines either side of a use when its enclosing chunk is too long to show whole.
USE_LINES = 4
#: A caller's whole function is shown when it is at most this many lines.
USE_CHUNK_LINES = 40
#: Lines either side of a definition the chunker could not place (file does not parse).
DEF_WINDOW_LINES = 8


def _title(chunk: Chunk) -> str:
    return f"{chunk.kind.value} `{chunk.qualname}`"


def _span(lines: list[str], start: int, end: int) -> tuple[int, int, str]:
    start = max(1, start)
    end = min(len(lines), end)
    return start, end, "\n".join(lines[start - 1 : end])


def _smallest(module: ChunkedModule, start: int, end: int) -> Chunk | None:
    """The innermost real chunk (not a module run or window) holding lines start..end."""
    best: Chunk | None = None
    for c in module.chunks:
        if c.is_fallback or c.qualname == MODULE_QUALNAME:
            continue
        if (
            c.start_line <= start
            and end <= c.end_line
            and (best is None or c.end_line - c.start_line < best.end_line - best.start_line)
        ):
            best = c
    return best


def target_candidate(module: ChunkedModule, lines: list[str], start: int, end: int) -> Candidate:
    """The target: the chunk holding the range in full, else the range (a cursor: a window).

    When it does not fit, the lines around ``start`` that fit are kept.
    """
    path = module.path
    chunk = _smallest(module, start, end)
    if chunk is not None:
        p = piece(path, chunk.start_line, chunk.end_line, Role.TARGET, _title(chunk), chunk.source)
        return Candidate(p, Role.TARGET, focus_line=start)
    if start == end:
        a, b, text = _span(lines, start - WINDOW_LINES, start + WINDOW_LINES)
        title = "lines around the cursor"
        form = "window"
    else:
        a, b, text = _span(lines, start, end)
        title, form = "the selected lines", "full"
    if module.parse_error:
        title += " (file does not parse)"
    p = piece(path, a, b, Role.TARGET, title, text, form)
    return Candidate(p, Role.TARGET, focus_line=start)


def _parse(text: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError) as exc:
            logger.debug("module run does not parse alone: %s", exc)
            return None


def _statement(chunk: Chunk, line: int) -> tuple[int, int] | None:
    """The 1-based lines of the top-level statement of a module run that holds ``line``."""
    tree = _parse(chunk.source)
    if tree is None:
        return None
    rel = line - chunk.start_line + 1
    for stmt in tree.body:
        last = stmt.end_lineno or stmt.lineno
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        if first <= rel <= last:
            return first + chunk.start_line - 1, last + chunk.start_line - 1
    return None


def definition_candidate(
    module: ChunkedModule, lines: list[str], d: Definition, role: Role, full_share: float
) -> Candidate | None:
    """The code defining ``d`` in ``module``: its chunk, or the statement binding it."""
    path = module.path
    chunk = module.enclosing(d.line)
    if chunk is None:
        return None
    if chunk.is_fallback:
        a, b, text = _span(lines, d.line - DEF_WINDOW_LINES, d.line + DEF_WINDOW_LINES)
        p = piece(path, a, b, role, f"`{d.name}` (file does not parse)", text, "window")
        return Candidate(p, role, full_share=full_share, focus_line=d.line)
    if chunk.qualname == MODULE_QUALNAME:
        found = _statement(chunk, d.line)
        if found is None:
            return None
        a, b, text = _span(lines, *found)
        p = piece(path, a, b, role, f"`{d.name}`", text)
        first = lines[d.line - 1].strip() if 0 < d.line <= len(lines) else ""
        floor = (first[:160] + " ...") if b > a and first else None
        return Candidate(p, role, full_share=full_share, focus_line=d.line, floor=floor)
    p = piece(path, chunk.start_line, chunk.end_line, role, _title(chunk), chunk.source)
    return Candidate(
        p, role, skeleton=chunk.skeleton, full_share=full_share, floor=signature(chunk.skeleton)
    )


def signature(skeleton: str) -> str:
    """A def's or class's header (decorators included) followed by ``...``: no docstring."""
    tree = _parse(skeleton)
    node = tree.body[0] if tree is not None and tree.body else None
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
        header = skeleton.split("\n")[: node.body[0].lineno - 1]
        if header:
            return "\n".join(header) + " ..."
    return skeleton.split("\n", 1)[0] + " ..."


def use_candidate(
    module: ChunkedModule, lines: list[str], line: int, role: Role, name: str
) -> Candidate:
    """Where ``name`` is used at ``line``: the enclosing function if short, else a window."""
    chunk = _smallest(module, line, line)
    if chunk is not None and chunk.end_line - chunk.start_line < USE_CHUNK_LINES:
        title = f"`{chunk.qualname}` uses `{name}`"
        p = piece(module.path, chunk.start_line, chunk.end_line, role, title, chunk.source)
    else:
        a, b, text = _span(lines, line - USE_LINES, line + USE_LINES)
        where = f"`{chunk.qualname}`" if chunk is not None else "module code"
        p = piece(module.path, a, b, role, f"{where} uses `{name}`", text, "window")
    return Candidate(p, role, focus_line=line)


def is_test_path(path: str) -> bool:
    """Whether a workspace-relative path looks like a test module."""
    p = PurePosixPath(path)
    name = p.name
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(part in ("tests", "test", "testing") for part in p.parts[:-1])
    )


def class_and_imports(
    target: Module, enclosing: Chunk | None, uses: list[NameUse], display: str
) -> list[Candidate]:
    """The enclosing class's skeleton and the target's imports cut down to the names in use."""
    out: list[Candidate] = []
    if enclosing is not None and enclosing.parent is not None:
        owner = target.chunks.by_qualname(enclosing.parent)
        if owner is not None:
            p = piece(
                display,
                owner.start_line,
                owner.end_line,
                Role.CLASS,
                f"class `{owner.qualname}`",
                owner.skeleton,
                "skeleton",
            )
            out.append(Candidate(p, Role.CLASS))
    used = frozenset(u.text.split(".", 1)[0] for u in uses if not u.text.startswith("?"))
    statements = [(i, i.render(used)) for i in target.facts.imports]
    kept = [(i, text) for i, text in statements if text is not None]
    if kept:
        start, end = kept[0][0].start_line, kept[-1][0].end_line
        text = "\n".join(t for _, t in kept if t)
        p = piece(display, start, end, Role.IMPORTS, "the imports the target uses", text)
        out.append(Candidate(p, Role.IMPORTS))
    return out
