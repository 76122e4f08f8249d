"""Definitions and references by symbol name, run where jedi runs (the agent's navigation).

The model knows names, not cursor positions, so a query is a name (``total``,
``Basket.total``, ``shop.pricing.apply_discount``), optionally with the file
and line where it appears. With a file, the name's occurrence in that file is
the starting point (the one on ``line`` if given, else its definition); without
one, ``jedi.Project.search`` finds it. Only locations inside the workspace root
are reported with a path; definitions elsewhere (stdlib, site-packages) carry
their module name only.

`navigate_job` is a job for a `JediWorker` (the jedi child process or a
thread): it returns `Location` values, or a `LookupFailed` (picklable) that
`agent.navigate.JediNavigator` turns into the tool error the model sees.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.context.jedi.child import JobContext
from lsp_server.context.jedi.queries import JEDI_ERRORS, project_for, script
from lsp_server.workspace import is_library

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a name is defined or used; ``path`` is workspace-relative or None.

    ``line`` and ``column`` are 1-based, as in the other tools' output.
    """

    path: str | None
    module: str | None
    line: int
    column: int
    kind: str
    full_name: str | None
    code: str
    is_definition: bool
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "column": self.column, "code": self.code}
        if self.path is not None:
            out = {"path": self.path, **out}
        else:
            out = {"module": self.module, "in_workspace": False, **out}
        out["kind"] = self.kind
        if self.full_name:
            out["full_name"] = self.full_name
        if self.signature:
            out["signature"] = self.signature
        out["is_definition"] = self.is_definition
        return out


@dataclass(frozen=True, slots=True)
class LookupFailed:
    """Why a lookup found nothing, as a picklable value (the agent's `ToolError` fields)."""

    type: str
    message: str
    hint: str | None


class NavigationError(Exception):
    """Raised inside the job; `navigate_job` returns it as a `LookupFailed`."""

    def __init__(self, type_: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.hint = hint


def navigate_job(
    ctx: JobContext,
    root: Path,
    op: str,
    symbol: str,
    path: Path | None,
    source: str | None,
    line: int | None,
) -> list[Location] | tuple[Location, list[Location]] | LookupFailed:
    """``op`` "definitions" or "references" of ``symbol``; a failure becomes `LookupFailed`."""
    try:
        if op == "references":
            return _references(root, symbol, path, source, line)
        return _definitions(root, symbol, path, source, line)
    except NavigationError as exc:
        return LookupFailed(exc.type, exc.message, exc.hint)


def _definitions(
    root: Path, symbol: str, path: Path | None, source: str | None, line: int | None
) -> list[Location]:
    start = _start(root, symbol, path, source, line)
    targets: list[Any] = [start]
    if path is not None:
        try:
            found = script(project_for(root), source, path).goto(
                start.line, start.column, follow_imports=True
            )
            targets = found or [start]
        except JEDI_ERRORS as exc:
            logger.debug("jedi goto failed for %r: %s", symbol, exc)
    return [_location(root, n, with_signature=True) for n in targets]


def _references(
    root: Path, symbol: str, path: Path | None, source: str | None, line: int | None
) -> tuple[Location, list[Location]]:
    start = _start(root, symbol, path, source, line)
    origin = Path(start.module_path) if start.module_path else path
    if origin is None:
        raise NavigationError("symbol_not_found", f"'{symbol}' has no source file to search from.")
    sc = script(project_for(root), source if origin == path else None, origin)
    try:
        refs = sc.get_references(start.line, start.column, scope="project")
    except JEDI_ERRORS as exc:
        raise NavigationError("analysis_failed", f"jedi could not find references: {exc}") from exc
    definition = start
    if not start.is_definition():
        definition = next((r for r in refs if r.is_definition()), start)
    found = [_location(root, r) for r in refs if _inside(root, r.module_path)]
    found.sort(key=lambda loc: (loc.path or "", loc.line, loc.column))
    return _location(root, definition, with_signature=True), found


def _start(root: Path, symbol: str, path: Path | None, source: str | None, line: int | None) -> Any:
    """The jedi Name to start from; `NavigationError` when there is none."""
    last = symbol.rsplit(".", 1)[-1]
    if path is not None:
        sc = script(project_for(root), source, path)
        try:
            names = sc.get_names(all_scopes=True, definitions=True, references=True)
        except JEDI_ERRORS as exc:
            raise NavigationError(
                "analysis_failed", f"jedi could not read the file: {exc}"
            ) from exc
        matches = [n for n in names if n.name == last]
        if not matches:
            close = difflib.get_close_matches(last, sorted({n.name for n in names}), n=5)
            raise NavigationError(
                "symbol_not_found",
                f"'{last}' does not occur in {_rel(root, path)}.",
                hint=("Similar names there: " + ", ".join(close)) if close else None,
            )
        if line is not None:
            return min(matches, key=lambda n: (abs(n.line - line), not n.is_definition()))
        return next((n for n in matches if n.is_definition()), matches[0])
    found = [n for n in _search(root, symbol) if _inside(root, n.module_path)]
    if not found:
        raise NavigationError(
            "symbol_not_found",
            f"No definition of '{symbol}' was found in the workspace.",
            hint="Pass the path of a file where the name is used, or check the spelling.",
        )
    return found[0]


def _search(root: Path, symbol: str) -> list[Any]:
    project = project_for(root)
    try:
        found = list(project.search(symbol))
        if not found and "." not in symbol:
            found = list(project.search(symbol, all_scopes=True))
    except JEDI_ERRORS as exc:
        logger.debug("jedi search for %r failed: %s", symbol, exc)
        return []
    return [n for n in found if n.type != "module" or "." in symbol]


def _inside(root: Path, module_path: Any) -> bool:
    if not module_path:
        return False
    try:
        Path(module_path).resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.name


def _location(root: Path, name: Any, *, with_signature: bool = False) -> Location:
    inside = _inside(root, name.module_path)
    signature = None
    # Outside the root only a library's signature is quoted: jedi reads files beside the
    # workspace (a symlink's target, a single file's neighbours) that may hold secrets.
    quotable = inside or not name.module_path or is_library(Path(name.module_path))
    if with_signature and quotable:
        try:
            sigs = name.get_signatures()
            signature = sigs[0].to_string() if sigs else None
        except JEDI_ERRORS as exc:
            logger.debug("no signature for %s: %s", name.name, exc)
    try:
        code = (name.get_line_code() or "").strip()[:200] if inside else ""
    except JEDI_ERRORS:
        code = ""
    return Location(
        path=_rel(root, Path(name.module_path)) if inside else None,
        module=name.module_name,
        line=int(name.line or 0),
        column=int(name.column or 0) + 1,
        kind=str(name.type),
        full_name=name.full_name,
        code=code,
        is_definition=bool(name.is_definition()),
        signature=signature,
    )
