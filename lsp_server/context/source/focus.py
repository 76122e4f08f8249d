"""The skeleton of the class a hover is about: what its chunk's skeleton elides, kept.

A class too large to quote whole goes into a pack as its skeleton (`chunker`:
attributes of more than a few lines become ``name = ...``, every method its
header). For the hovered class itself that drops what the hover is about: its
fields (``__attrs__``, a dataclass's field list, a table of constants) and its
constructor, since a class is mostly hovered where it is called. `focus_skeleton`
keeps attributes up to `ATTR_LINES` lines and a constructor up to `INIT_LINES`.
"""

from __future__ import annotations

import ast
import functools
import textwrap

from lsp_server.context.source.chunker import _Builder, _dedent
from lsp_server.context.source.pysource import SourceText, normalise_text

#: A hovered class's attributes are shown whole up to this many lines.
ATTR_LINES = 24
#: Its constructor is shown whole up to this many lines.
INIT_LINES = 60
CONSTRUCTORS = frozenset({"__init__", "__new__", "__post_init__"})


class _FocusBuilder(_Builder):
    attr_lines = ATTR_LINES

    def _method(self, stmt: ast.FunctionDef | ast.AsyncFunctionDef, off: int) -> str:
        start = stmt.decorator_list[0].lineno if stmt.decorator_list else stmt.lineno
        end = stmt.end_lineno or stmt.lineno
        if stmt.name not in CONSTRUCTORS or end - start + 1 > INIT_LINES:
            return super()._method(stmt, off)
        indent = self._indent_of(stmt, off)
        return _dedent(self.text.span(start + off, end + off)[len(indent) :], indent)


@functools.lru_cache(maxsize=64)
def focus_skeleton(source: str) -> str | None:
    """The hovered class's skeleton (``source``: its chunk's); None when ``source`` is not
    one class that parses alone."""
    text = SourceText(normalise_text(textwrap.dedent(source)))
    try:
        tree = ast.parse("\n".join(text.lines))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.ClassDef):
        return None
    return _FocusBuilder(text, "")._class_skeleton(tree.body[0], 0)
