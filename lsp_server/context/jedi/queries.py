"""The synchronous jedi side of `SymbolIndex`: jobs for its worker (a child process).

The job functions (`warm`, `symbol_at`, `definitions_batch`, `references`,
`callers`) take a `JobContext` and plain values (a workspace root, a buffer's
text, positions), call jedi, and return our own frozen dataclasses: never
jedi objects, which must not leave the worker; every result is picklable. One
`jedi.Project` per root lives in the worker (`project_for`). Jedi raises
assorted errors on odd code (half-typed buffers, syntax errors, unusual
imports); those mean "unknown" and are logged at debug level, never raised.
Long loops check ``ctx.stop`` between steps so an abandoned request stops soon
instead of holding the worker. jedi itself is imported only in the worker.
"""

from __future__ import annotations

import keyword
import logging
import threading
from pathlib import Path
from typing import Any

from lsp_server.context.jedi.child import JobContext
from lsp_server.context.jedi.safe_reads import guard_parso_reads
from lsp_server.context.model import Callers, Definition, Reference, SymbolInfo

logger = logging.getLogger(__name__)

#: What jedi raises on code it cannot make sense of.
JEDI_ERRORS = (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError)


_projects: dict[str, Any] = {}
_projects_lock = threading.Lock()


def project_for(root: Path | None) -> Any:
    """The worker's one `jedi.Project` for ``root`` (None: jedi's default project)."""
    if root is None:
        return None
    guard_parso_reads(root)
    import jedi  # only the worker needs jedi

    with _projects_lock:
        found = _projects.get(str(root))
        if found is None:
            found = _projects[str(root)] = jedi.Project(str(root))
        return found


def warm(ctx: JobContext, root: Path | None) -> None:
    """Import jedi, build the project and its environment, and load the builtins stub.

    What every first request needs, done when the worker starts; nothing more, so a
    request made right after start waits little behind it.
    """
    sc = script(project_for(root), "len\n", None)
    try:
        sc.infer(1, 1)
    except JEDI_ERRORS as exc:
        logger.debug("jedi warm-up failed: %s", exc)


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
    guard_parso_reads()
    import jedi

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
    ctx: JobContext,
    root: Path | None,
    source: str,
    path: Path | None,
    positions: list[tuple[int, int]],
    limit: int,
) -> None:
    """Resolve each position in turn, emitting ``(position, definitions)`` as each is known.

    One `jedi.Script` serves every position, so jedi's inference cache is shared.
    """
    try:
        sc = script(project_for(root), source, path)
    except JEDI_ERRORS as exc:
        logger.debug("jedi could not read %s: %s", path, exc)
        return
    for done, (line, column) in enumerate(positions):
        if ctx.stop.reached():
            logger.debug("definitions: deadline after %d of %d names", done, len(positions))
            return
        ctx.emit(((line, column), goto_one(sc, line, column, root, limit)))


def references(
    ctx: JobContext,
    root: Path | None,
    source: str,
    path: Path | None,
    line: int,
    column: int,
    limit: int,
) -> tuple[list[Reference], bool]:
    """Project-wide references to the name at (line, column), workspace only, capped."""
    try:
        found = script(project_for(root), source, path).get_references(
            line, column, scope="project"
        )
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
    ctx: JobContext,
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
        context = script(project_for(root), source, path).get_context(line, column)
    except JEDI_ERRORS as exc:
        logger.debug("jedi context failed at %s:%d:%d: %s", path, line, column, exc)
        return None
    if context is None or context.type != "function" or context.line is None:
        return None
    definition = _definition(context, root)
    if definition is None:
        return None
    refs, truncated = references(
        ctx, root, source, path, int(context.line), int(context.column or 0), limit + 8
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


def symbol_at(
    ctx: JobContext, root: Path | None, source: str, path: Path | None, line: int, column: int
) -> SymbolInfo | None:
    """Facts for the name at 1-based `line`, 0-based `column`; None if there is none."""
    lines = source.splitlines()
    if line < 1 or line > len(lines) or column < 0 or column > len(lines[line - 1]):
        return None
    sc = script(project_for(root), source, path)
    names = help_names(sc, line, column)
    if not names:
        return None
    word = names[0].name
    # `help` is `goto(follow_imports=True)` where that finds anything (keywords were
    # dropped above): asking goto again would redo the inference, uncached.
    definitions = names
    target: Any = definitions[0]
    signatures = _signatures(definitions)
    doc = _docstring(definitions)
    # Inference is the expensive part: ask for it only when the definition alone
    # does not say what the name is (a variable's type, a callable held in one).
    inferred: list[Any] = []
    if target.type not in ("function", "class", "module") or not signatures or not doc:
        inferred = _safe(sc.infer, line, column) or []
        signatures = signatures or _signatures(inferred)
        doc = doc or _docstring(inferred)
    type_names = tuple(dict.fromkeys(n.name for n in inferred if n.type in ("instance", "class")))
    module_path = getattr(target, "module_path", None)
    def_path = Path(module_path) if module_path else None
    return SymbolInfo(
        name=target.name or word,
        kind=str(target.type),
        full_name=target.full_name,
        signatures=tuple(signatures[:3]),
        doc_summary=first_paragraph(doc) if doc else None,
        type_names=type_names[:3],
        definition_path=def_path,
        definition_line=target.line,
        in_workspace=in_root(root, def_path),
    )


def first_paragraph(doc: str, limit: int = 600) -> str | None:
    """The first paragraph of a docstring, whitespace-normalised and capped."""
    lines: list[str] = []
    for line in doc.strip().splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
    text = " ".join(lines)
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _signatures(names: list[Any]) -> list[str]:
    """Signatures of the first of `names` that has any (deduplicated)."""
    for candidate in names:
        found: list[str] = []
        for sig in _safe(candidate.get_signatures) or ():
            text = sig.to_string()
            if text not in found:
                found.append(text)
        if found:
            return found
    return []


def _docstring(names: list[Any]) -> str:
    """The first non-empty raw docstring among `names`."""
    for candidate in names:
        doc = _safe(candidate.docstring, raw=True) or ""
        if doc.strip():
            return str(doc)
    return ""


def _safe(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a jedi method; jedi raises assorted errors on odd code, which mean 'unknown'."""
    try:
        return fn(*args, **kwargs)
    except JEDI_ERRORS as exc:
        logger.debug("jedi %s failed: %s", getattr(fn, "__name__", fn), exc)
        return None
