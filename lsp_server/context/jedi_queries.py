"""The synchronous jedi side of `SymbolIndex`: runs only on its single worker thread.

Every function here takes a `jedi.Project` and plain values, calls jedi, and
returns our own frozen dataclasses (never jedi objects, which must not leave
the worker thread). Jedi raises assorted errors on odd code (half-typed
buffers, syntax errors, unusual imports); those mean "unknown" and are logged
at debug level, never raised. Long loops check a `Stop` between steps so an
abandoned request stops soon instead of holding the thread.
"""

from __future__ import annotations

import keyword
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jedi

logger = logging.getLogger(__name__)

#: What jedi raises on code it cannot make sense of.
JEDI_ERRORS = (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError)


@dataclass(frozen=True, slots=True)
class Definition:
    """Where a name is defined; ``line`` 1-based, ``column`` 0-based (jedi's)."""

    name: str
    full_name: str | None
    kind: str  # jedi's type: "function", "class", "statement", "param", "module", ...
    path: Path | None
    line: int
    column: int
    in_workspace: bool


@dataclass(frozen=True, slots=True)
class Reference:
    """One occurrence of a name; ``line`` 1-based, ``column`` 0-based."""

    path: Path
    line: int
    column: int
    code: str  # the stripped source line, capped
    is_definition: bool


@dataclass(frozen=True, slots=True)
class Callers:
    """The function enclosing a position, and the places that use it (definitions excluded)."""

    function: str  # its name; qualified when jedi knows it
    definition: Definition
    references: tuple[Reference, ...]
    truncated: bool  # the cap or the deadline cut the list short


class Stop:
    """A worker-side deadline plus a flag the event loop sets when it gives up."""

    def __init__(self, deadline: float) -> None:
        self.at = time.monotonic() + deadline
        self.cancelled = threading.Event()

    def reached(self) -> bool:
        return self.cancelled.is_set() or time.monotonic() >= self.at


def in_root(root: Path | None, path: Path | None) -> bool:
    """Whether ``path`` lies inside ``root`` (both resolved)."""
    if path is None or root is None:
        return False
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def script(project: Any, source: str | None, path: Path | None) -> Any:
    """A `jedi.Script` on ``source`` (the editor's text wins over the file on disk)."""
    return jedi.Script(source, path=str(path) if path else None, project=project)


def _definition(name: Any, root: Path | None) -> Definition | None:
    if name.line is None:
        return None  # builtins and compiled modules have no position
    module_path = getattr(name, "module_path", None)
    path = Path(module_path) if module_path else None
    return Definition(
        name=str(name.name),
        full_name=name.full_name,
        kind=str(name.type),
        path=path,
        line=int(name.line),
        column=int(name.column or 0),
        in_workspace=in_root(root, path),
    )


def goto_one(sc: Any, line: int, column: int, root: Path | None, limit: int) -> list[Definition]:
    """Definitions of the name at (line, column): goto following imports, else infer."""
    found: list[Any] = []
    for method, kwargs in ((sc.goto, {"follow_imports": True}), (sc.infer, {})):
        try:
            found = method(line, column, **kwargs)
        except JEDI_ERRORS as exc:
            logger.debug("jedi %s failed at %d:%d: %s", method.__name__, line, column, exc)
            found = []
        if found:
            break
    out: list[Definition] = []
    for name in found:
        d = _definition(name, root)
        if d is not None and d not in out:
            out.append(d)
        if len(out) >= limit:
            break
    return out


def definitions_batch(
    project: Any,
    root: Path | None,
    source: str,
    path: Path | None,
    positions: list[tuple[int, int]],
    limit: int,
    stop: Stop,
    out: Callable[[tuple[int, int], list[Definition]], None],
) -> None:
    """Resolve each position in turn, handing each result to ``out`` as soon as it is known.

    One `jedi.Script` serves every position, so jedi's inference cache is shared.
    """
    try:
        sc = script(project, source, path)
    except JEDI_ERRORS as exc:
        logger.debug("jedi could not read %s: %s", path, exc)
        return
    for done, (line, column) in enumerate(positions):
        if stop.reached():
            logger.debug("definitions: deadline after %d of %d names", done, len(positions))
            return
        out((line, column), goto_one(sc, line, column, root, limit))


def references(
    project: Any,
    root: Path | None,
    source: str,
    path: Path | None,
    line: int,
    column: int,
    limit: int,
) -> tuple[list[Reference], bool]:
    """Project-wide references to the name at (line, column), workspace only, capped."""
    try:
        found = script(project, source, path).get_references(line, column, scope="project")
    except JEDI_ERRORS as exc:
        logger.debug("jedi references failed at %s:%d:%d: %s", path, line, column, exc)
        return [], False
    refs: list[Reference] = []
    for name in found:
        module_path = getattr(name, "module_path", None)
        ref_path = Path(module_path) if module_path else None
        if ref_path is None or name.line is None or not in_root(root, ref_path):
            continue
        try:
            code = (name.get_line_code() or "").strip()[:200]
        except JEDI_ERRORS:
            code = ""
        refs.append(
            Reference(ref_path, int(name.line), int(name.column or 0), code, name.is_definition())
        )
    refs.sort(key=lambda r: (r.path.as_posix(), r.line, r.column))
    return refs[:limit], len(refs) > limit


def callers(
    project: Any,
    root: Path | None,
    source: str,
    path: Path | None,
    line: int,
    column: int,
    limit: int,
) -> Callers | None:
    """Uses of the function (or method) enclosing (line, column); None outside a function.

    A column inside the line's indentation moves to its first character (jedi
    places the indentation in the outer scope).
    """
    lines = source.split("\n")
    if 1 <= line <= len(lines):
        text = lines[line - 1]
        column = max(column, len(text) - len(text.lstrip()))
    try:
        context = script(project, source, path).get_context(line, column)
    except JEDI_ERRORS as exc:
        logger.debug("jedi context failed at %s:%d:%d: %s", path, line, column, exc)
        return None
    if context is None or context.type != "function" or context.line is None:
        return None
    definition = _definition(context, root)
    if definition is None:
        return None
    refs, truncated = references(
        project, root, source, path, int(context.line), int(context.column or 0), limit + 8
    )
    uses = [r for r in refs if not r.is_definition]
    name = context.full_name or str(context.name)
    return Callers(name, definition, tuple(uses[:limit]), truncated or len(uses) > limit)


def help_names(sc: Any, line: int, column: int) -> list[Any]:
    """jedi's help names at a position, keywords dropped; [] on odd code."""
    try:
        names = sc.help(line, column)
    except JEDI_ERRORS as exc:
        logger.debug("jedi help failed at %d:%d: %s", line, column, exc)
        return []
    names = [n for n in names if n.type != "keyword"]
    if names and keyword.iskeyword(names[0].name):
        return []
    return names
