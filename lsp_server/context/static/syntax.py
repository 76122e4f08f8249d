"""What one chunk's own syntax says, without following anything into other code.

The evident-types evaluator (`evident`) and the resolver ask these questions of
a chunk's source: its parsed tree (`chunk_tree`, dedented and cached), where the
function around a line binds a name (`local_binding`), the values a function
returns (`returns_of`), the arms of a conditional value (`branches`), and
whether a method is a property getter (`is_property`). Each is pure, cached
where it parses, and never raises on odd code: a chunk that does not parse
alone has no answers.
"""

from __future__ import annotations

import ast
import functools
import logging
import warnings

from lsp_server.context.model import Definition
from lsp_server.context.source.chunker import Chunk, ChunkKind
from lsp_server.context.static.modules import Module
from lsp_server.context.static.names import expression

logger = logging.getLogger(__name__)

_PROPERTIES = ("property", "cached_property", "functools.cached_property")


@functools.lru_cache(maxsize=2048)
def chunk_tree(source: str) -> ast.Module | None:
    """``source`` (a chunk, dedented by its first line's indentation) parsed, or None."""
    lines = source.split("\n")
    first = next((ln for ln in lines if ln.strip()), "")
    indent = len(first) - len(first.lstrip(" \t"))
    text = "\n".join(ln[indent:] if not ln[:indent].strip() else ln.lstrip() for ln in lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError) as exc:
            logger.debug("chunk does not parse alone: %s", exc)
            return None


def local_binding(module: Module, line: int, name: str) -> Definition | None:
    """Where the function enclosing ``line`` last binds ``name`` above it (parameter, assignment).

    For a name a cut target uses but does not bind: the lines that bind it are
    outside the target, in the function around it.
    """
    chunk = module.chunks.enclosing(line)
    if chunk is None or module.path is None:
        return None
    if chunk.kind not in (ChunkKind.FUNCTION, ChunkKind.METHOD):
        return None
    rel = line - chunk.start_line + 1
    before = [at for at in _bindings(chunk.source).get(name, ()) if at[0] <= rel]
    if not before:
        return None
    last = before[-1]  # the nearest binding above the use, as jedi's flow analysis picks
    found = chunk.start_line + last[0] - 1
    return Definition(name, None, "statement", module.path, found, last[1], True)


@functools.lru_cache(maxsize=1024)
def _bindings(source: str) -> dict[str, list[tuple[int, int]]]:
    """Each name a function's source binds: where, (line, column) in order."""
    tree = chunk_tree(source)
    out: dict[str, list[tuple[int, int]]] = {}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            name = node.id
        else:
            continue
        out.setdefault(name, []).append((node.lineno, node.col_offset))
    for places in out.values():
        places.sort()
    return out


def branches(node: ast.expr) -> list[str]:
    """The expressions a value may come from: both arms of ``a if c else b``, of ``a or b``."""
    if isinstance(node, ast.IfExp):
        return [*branches(node.body), *branches(node.orelse)]
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return [text for value in node.values for text in branches(value)]
    text = expression(node)
    return [] if "?" in text else [text]


def is_property(chunk: Chunk) -> bool:
    head = chunk.source.split("def ", 1)[0]
    return any(f"@{name}" in head for name in _PROPERTIES)


def returns_of(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """The values of ``return`` statements of the function itself (not nested defs)."""
    out: list[ast.expr] = []
    stack: list[ast.AST] = list(node.body)
    while stack:
        item = stack.pop(0)
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        value = item.value if isinstance(item, ast.Return) else None
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            out.append(value)
        stack.extend(ast.iter_child_nodes(item))
    return out
