"""Definitions and references by symbol name, with jedi, for the agent's tools.

The model knows names, not cursor positions, so a query is a name (``total``,
``Basket.total``, ``shop.pricing.apply_discount``), optionally with the file
and line where it appears. With a file, the name's occurrence in that file is
the starting point (the one on ``line`` if given, else its definition); without
one, ``jedi.Project.search`` finds it. Only locations inside the workspace root
are reported with a path; definitions elsewhere (stdlib, site-packages) carry
their module name only.

Jedi is synchronous and not thread-safe: every call runs on one worker thread,
by default a private one. Pass the executor `context.symbols.SymbolIndex` uses
to share its thread (jedi's caches are process-global).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jedi

from lsp_server.agent.workspace import ToolError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_JEDI_ERRORS = (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError)


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


class JediNavigator:
    """Find definitions and references in one workspace with jedi, off the event loop."""

    def __init__(self, root: Path, executor: concurrent.futures.Executor | None = None) -> None:
        self.root = root.resolve()
        self._project = jedi.Project(str(self.root))
        self._own = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="agent-jedi"
        )

    def close(self) -> None:
        """Stop the private worker thread, if this navigator owns it."""
        if self._own:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def definitions(
        self, symbol: str, path: Path | None, source: str | None, line: int | None
    ) -> list[Location]:
        """Where ``symbol`` is defined (following imports)."""
        return await self._run(self._definitions_sync, symbol, path, source, line)

    async def references(
        self, symbol: str, path: Path | None, source: str | None, line: int | None
    ) -> tuple[Location, list[Location]]:
        """The definition ``symbol`` resolves to, and every reference to it in the workspace."""
        return await self._run(self._references_sync, symbol, path, source, line)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # -- worker-thread side -----------------------------------------------------

    def _script(self, path: Path, source: str | None) -> Any:
        return jedi.Script(source, path=str(path), project=self._project)

    def _start(self, symbol: str, path: Path | None, source: str | None, line: int | None) -> Any:
        """The jedi Name to start from; `ToolError` when there is none."""
        last = symbol.rsplit(".", 1)[-1]
        if path is not None:
            script = self._script(path, source)
            try:
                names = script.get_names(all_scopes=True, definitions=True, references=True)
            except _JEDI_ERRORS as exc:
                raise ToolError("analysis_failed", f"jedi could not read the file: {exc}") from exc
            matches = [n for n in names if n.name == last]
            if not matches:
                close = difflib.get_close_matches(last, sorted({n.name for n in names}), n=5)
                raise ToolError(
                    "symbol_not_found",
                    f"'{last}' does not occur in {self._rel(path)}.",
                    hint=("Similar names there: " + ", ".join(close)) if close else None,
                )
            if line is not None:
                return min(matches, key=lambda n: (abs(n.line - line), not n.is_definition()))
            return next((n for n in matches if n.is_definition()), matches[0])
        found = [n for n in self._search(symbol) if self._inside(n.module_path)]
        if not found:
            raise ToolError(
                "symbol_not_found",
                f"No definition of '{symbol}' was found in the workspace.",
                hint="Pass the path of a file where the name is used, or check the spelling.",
            )
        return found[0]

    def _search(self, symbol: str) -> list[Any]:
        try:
            found = list(self._project.search(symbol))
            if not found and "." not in symbol:
                found = list(self._project.search(symbol, all_scopes=True))
        except _JEDI_ERRORS as exc:
            logger.debug("jedi search for %r failed: %s", symbol, exc)
            return []
        return [n for n in found if n.type != "module" or "." in symbol]

    def _definitions_sync(
        self, symbol: str, path: Path | None, source: str | None, line: int | None
    ) -> list[Location]:
        start = self._start(symbol, path, source, line)
        targets: list[Any] = [start]
        if path is not None:
            script = self._script(path, source)
            try:
                targets = script.goto(start.line, start.column, follow_imports=True) or [start]
            except _JEDI_ERRORS as exc:
                logger.debug("jedi goto failed for %r: %s", symbol, exc)
        return [self._location(n, with_signature=True) for n in targets]

    def _references_sync(
        self, symbol: str, path: Path | None, source: str | None, line: int | None
    ) -> tuple[Location, list[Location]]:
        start = self._start(symbol, path, source, line)
        origin = Path(start.module_path) if start.module_path else path
        if origin is None:
            raise ToolError("symbol_not_found", f"'{symbol}' has no source file to search from.")
        script = self._script(origin, source if origin == path else None)
        try:
            refs = script.get_references(start.line, start.column, scope="project")
        except _JEDI_ERRORS as exc:
            raise ToolError("analysis_failed", f"jedi could not find references: {exc}") from exc
        definition = start
        if not start.is_definition():
            definition = next((r for r in refs if r.is_definition()), start)
        found = [self._location(r) for r in refs if self._inside(r.module_path)]
        found.sort(key=lambda loc: (loc.path or "", loc.line, loc.column))
        return self._location(definition, with_signature=True), found

    def _inside(self, module_path: Any) -> bool:
        if not module_path:
            return False
        try:
            Path(module_path).resolve().relative_to(self.root)
        except ValueError:
            return False
        return True

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def _location(self, name: Any, *, with_signature: bool = False) -> Location:
        inside = self._inside(name.module_path)
        signature = None
        if with_signature:
            try:
                sigs = name.get_signatures()
                signature = sigs[0].to_string() if sigs else None
            except _JEDI_ERRORS as exc:
                logger.debug("no signature for %s: %s", name.name, exc)
        try:
            code = (name.get_line_code() or "").strip()[:200] if inside else ""
        except _JEDI_ERRORS:
            code = ""
        return Location(
            path=self._rel(Path(name.module_path)) if inside else None,
            module=name.module_name,
            line=int(name.line or 0),
            column=int(name.column or 0) + 1,
            kind=str(name.type),
            full_name=name.full_name,
            code=code,
            is_definition=bool(name.is_definition()),
            signature=signature,
        )
