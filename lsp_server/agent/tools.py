"""The agent's workspace tools: schemas, descriptions, handlers, and `build_tools`.

Every tool reads only through `Workspace` (the workspace boundary, buffers
before disk; jedi's answers are filtered by it too) and returns a
JSON-serialisable dict with capped size. File text comes back with each line
prefixed by its 1-based number and ``| ``, so the model can cite and edit
exact lines. ``run_tests`` exists only when the user enabled it: it runs the
workspace's own tests, which is running code.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lsp_server.agent.execution import ExecutionContext
from lsp_server.agent.lint import LintUnavailable, run_ruff
from lsp_server.agent.navigate import JediNavigator
from lsp_server.agent.process import run_pytest
from lsp_server.agent.registry import Tool, ToolRegistry, object_schema
from lsp_server.agent.workspace import ToolError, Workspace
from lsp_server.context.jedi.by_name import Location
from lsp_server.context.source.chunker import MODULE_QUALNAME, chunk_module

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolLimits:
    """Caps on what one tool call may return or take."""

    max_references: int = 50
    max_lines: int = 400
    max_bytes: int = 32_000
    max_files: int = 200
    max_diagnostics: int = 100
    jedi_timeout: float = 15.0
    lint_timeout: float = 20.0
    test_timeout: float = 120.0
    max_test_output: int = 12_000


_PATH = {
    "type": "string",
    "minLength": 1,
    "maxLength": 500,
    "description": "File path relative to the workspace root, e.g. 'pkg/module.py'.",
}
_SYMBOL = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "description": "A name as written in code: 'parse', 'Basket.total' or 'pkg.mod.parse'.",
}
_LINE = {"type": "integer", "minimum": 1, "description": "1-based line number."}
_NAV_PROPS = {
    "symbol": _SYMBOL,
    "path": {**_PATH, "description": "Optional file where the name occurs (narrows the search)."},
    "line": {**_LINE, "description": "Optional 1-based line in 'path' where the name occurs."},
}


def number_lines(lines: list[str], first: int) -> str:
    """``lines`` with each prefixed by its 1-based number and ``| ``."""
    return "\n".join(f"{first + i}| {line}" for i, line in enumerate(lines))


def _cap_lines(lines: list[str], max_lines: int, max_bytes: int) -> tuple[list[str], bool]:
    kept: list[str] = []
    size = 0
    for line in lines[:max_lines]:
        size += len(line.encode("utf-8")) + 1
        if size > max_bytes and kept:
            return kept, True
        kept.append(line)
    return kept, len(kept) < len(lines)


class _Handlers:
    def __init__(self, workspace: Workspace, navigator: JediNavigator, limits: ToolLimits) -> None:
        self.ws = workspace
        self.nav = navigator
        self.limits = limits

    async def _source(self, args: dict[str, Any]) -> tuple[Path | None, str | None]:
        rel = args.get("path")
        if rel is None:
            return None, None
        shown, text = await self.ws.read(rel)
        return self.ws.resolve(shown), text

    def _visible(self, loc: Location) -> Location | None:
        """``loc`` if the boundary lets its file through; a place in a refused file is
        dropped (jedi reads files the boundary does not allow)."""
        if loc.path is None:
            return loc
        try:
            self.ws.resolve(loc.path)
        except ToolError:
            return None
        return loc

    async def find_references(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        path, text = await self._source(args)
        found, all_refs = await self.nav.references(args["symbol"], path, text, args.get("line"))
        refs = [r for r in all_refs if self._visible(r) is not None]
        definition = self._visible(found) or replace(
            found, path=None, code="", signature=None, module=None
        )
        cap = self.limits.max_references
        return {
            "symbol": args["symbol"],
            "definition": definition.to_dict(),
            "references": [r.to_dict() for r in refs[:cap]],
            "total": len(refs),
            "truncated": len(refs) > cap,
        }

    async def find_definition(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        path, text = await self._source(args)
        found = await self.nav.definitions(args["symbol"], path, text, args.get("line"))
        shown = [d for d in found if self._visible(d) is not None]
        if found and not shown:
            raise ToolError(
                "forbidden",
                f"'{args['symbol']}' is defined in a file that may not be read.",
                hint="Continue with what you have.",
            )
        return {"symbol": args["symbol"], "definitions": [d.to_dict() for d in shown[:10]]}

    async def read_symbol(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        shown, text = await self.ws.read(args["path"])
        module = await asyncio.to_thread(chunk_module, text, shown)
        chunk = module.by_qualname(args["qualname"])
        if chunk is None:
            names = [c.qualname for c in module.chunks if c.qualname != MODULE_QUALNAME]
            close = difflib.get_close_matches(args["qualname"], names, n=5, cutoff=0.4)
            if module.parse_error:
                hint = f"The file does not parse ({module.parse_error}); use read_file."
            else:
                hint = "Names defined there: " + ", ".join(close or names[:20])
            raise ToolError(
                "symbol_not_found",
                f"{shown} defines no '{args['qualname']}'.",
                hint=hint,
            )
        lines, truncated = _cap_lines(
            chunk.source.split("\n"), self.limits.max_lines, self.limits.max_bytes
        )
        ctx.note_file_read(shown)
        return {
            "path": shown,
            "qualname": chunk.qualname,
            "kind": str(chunk.kind),
            "start_line": chunk.start_line,
            "end_line": chunk.start_line + len(lines) - 1,
            "text": number_lines(lines, chunk.start_line),
            "truncated": truncated,
        }

    async def read_file(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        shown, text = await self.ws.read(args["path"])
        all_lines = text.split("\n")
        if all_lines and all_lines[-1] == "":
            all_lines.pop()
        total = len(all_lines)
        start = args.get("start_line", 1)
        if total == 0:
            ctx.note_file_read(shown)
            return {"path": shown, "start_line": 1, "end_line": 0, "total_lines": 0, "text": ""}
        if start > max(total, 1):
            raise ToolError(
                "out_of_range",
                f"{shown} has {total} lines; start_line {start} is past the end.",
                hint=f"Use a start_line between 1 and {max(total, 1)}.",
            )
        end = min(args.get("end_line", total), total)
        if end < start:
            raise ToolError("invalid_arguments", "end_line must not be before start_line.")
        lines, truncated = _cap_lines(
            all_lines[start - 1 : end], self.limits.max_lines, self.limits.max_bytes
        )
        last = start + len(lines) - 1
        ctx.note_file_read(shown)
        result: dict[str, Any] = {
            "path": shown,
            "start_line": start,
            "end_line": last,
            "total_lines": total,
            "text": number_lines(lines, start),
            "truncated": truncated,
        }
        if truncated:
            result["next_start_line"] = last + 1
        return result

    async def list_files(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        pattern = args.get("pattern", "**/*.py")
        files, truncated = await self.ws.glob(pattern, limit=self.limits.max_files)
        result: dict[str, Any] = {"pattern": pattern, "files": files, "truncated": truncated}
        if not files:
            result["hint"] = "Nothing matched; '*.py' matches Python files at any depth."
        return result

    async def lint(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        shown, text = await self.ws.read(args["path"])
        try:
            diagnostics = await run_ruff(
                text, self.ws.resolve(shown), cwd=self.ws.root, time_limit=self.limits.lint_timeout
            )
        except LintUnavailable as exc:
            raise ToolError("lint_unavailable", str(exc), hint="Continue without lint.") from exc
        lo, hi = args.get("start_line", 1), args.get("end_line", 10**9)
        found = [d for d in diagnostics if lo <= d.line <= hi]
        cap = self.limits.max_diagnostics
        ctx.lint_results.append(
            {"path": shown, "count": len(found), "codes": sorted({d.code for d in found})}
        )
        return {
            "path": shown,
            "diagnostics": [d.to_dict() for d in found[:cap]],
            "count": len(found),
            "truncated": len(found) > cap,
        }

    async def run_tests(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        target: str = args["target"]
        file_part, sep, node = target.partition("::")
        path = self.ws.resolve(file_part)
        if not (path.is_file() or path.is_dir()):
            nearest = await self.ws.nearest(file_part)
            raise ToolError(
                "not_found",
                f"{file_part} is neither a test file nor a directory.",
                hint=("Did you mean one of: " + ", ".join(nearest) + "?")
                if nearest
                else "Give a test file such as 'tests/test_x.py' or a node id 'file::name'.",
                details={"nearest": nearest},
            )
        shown = self.ws.relative(path)
        run = await run_pytest(
            [shown + sep + node],
            cwd=self.ws.root,
            time_limit=self.limits.test_timeout,
            keyword=args.get("keyword"),
            max_output=self.limits.max_test_output,
        )
        ctx.test_results.append(
            {"targets": list(run.targets), "passed": run.passed, "summary": run.summary}
        )
        return run.to_dict()


def _range(args: dict[str, Any]) -> str:
    if "start_line" in args or "end_line" in args:
        return f":{args.get('start_line', 1)}-{args.get('end_line', 'end')}"
    return ""


def build_tools(
    workspace: Workspace,
    navigator: JediNavigator | None = None,
    *,
    run_tests_enabled: bool = False,
    limits: ToolLimits | None = None,
) -> ToolRegistry:
    """The registry of workspace tools; ``run_tests`` only when ``run_tests_enabled`` and
    the workspace has a root (not in single-file mode).

    Without ``navigator`` a `JediNavigator` with its own thread is created;
    `ToolRegistry.close` stops it.
    """
    limits = limits or ToolLimits()
    run_tests_enabled = run_tests_enabled and not workspace.boundary.single  # no project
    nav = navigator or JediNavigator(workspace.root)
    h = _Handlers(workspace, nav, limits)
    tools = [
        Tool(
            "find_references",
            "Find every place in the workspace that uses a function, class, method or "
            "variable, plus where it is defined. Returns paths, 1-based lines and the "
            f"line of code (at most {limits.max_references}).",
            object_schema(_NAV_PROPS, ["symbol"]),
            h.find_references,
            lambda a: f"Finding references of `{a['symbol']}`",
            limits.jedi_timeout,
        ),
        Tool(
            "find_definition",
            "Find where a name is defined (following imports), with its signature. "
            "Definitions outside the workspace are given by module name only.",
            object_schema(_NAV_PROPS, ["symbol"]),
            h.find_definition,
            lambda a: f"Finding the definition of `{a['symbol']}`",
            limits.jedi_timeout,
        ),
        Tool(
            "read_symbol",
            "Read the full source of one top-level function, class or method of a file, "
            "by qualified name ('parse' or 'Basket.total'). Lines come numbered 'N| '.",
            object_schema(
                {
                    "path": _PATH,
                    "qualname": {**_SYMBOL, "description": "Qualified name: 'Class.method'."},
                },
                ["path", "qualname"],
            ),
            h.read_symbol,
            lambda a: f"Reading `{a['qualname']}` in {a['path']}",
        ),
        Tool(
            "read_file",
            f"Read lines of a file (at most {limits.max_lines} lines / {limits.max_bytes} "
            "bytes per call; continue from 'next_start_line'). Lines come numbered 'N| '; "
            "the numbers are not part of the file.",
            object_schema(
                {
                    "path": _PATH,
                    "start_line": {**_LINE, "description": "First line to read (default 1)."},
                    "end_line": {**_LINE, "description": "Last line to read, inclusive."},
                },
                ["path"],
            ),
            h.read_file,
            lambda a: f"Reading {a['path']}{_range(a)}",
        ),
        Tool(
            "list_files",
            "List workspace files matching a glob. '*' and '?' stay within one directory, "
            "'**' spans directories; a pattern without '/' matches file names at any depth.",
            object_schema(
                {
                    "pattern": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "description": "Glob such as '**/*.py' (the default) or 'shop/*.py'.",
                    }
                }
            ),
            h.list_files,
            lambda a: f"Listing files matching `{a.get('pattern', '**/*.py')}`",
        ),
        Tool(
            "lint",
            "Run the ruff linter (with the project's configuration) on a file as the editor "
            "has it. Returns diagnostics with rule code, message and 1-based positions.",
            object_schema(
                {
                    "path": _PATH,
                    "start_line": {**_LINE, "description": "Only report from this line on."},
                    "end_line": {**_LINE, "description": "Only report up to this line."},
                },
                ["path"],
            ),
            h.lint,
            lambda a: f"Running the linter on {a['path']}",
            limits.lint_timeout + 5,
        ),
    ]
    if run_tests_enabled:
        tools.append(
            Tool(
                "run_tests",
                "Run the project's tests with pytest (-x -q) on a test file, a directory or a "
                "node id 'tests/test_x.py::test_name'. Output is truncated; slow runs are "
                f"stopped after {limits.test_timeout:g} s.",
                object_schema(
                    {
                        "target": {**_PATH, "description": "Test file, directory or node id."},
                        "keyword": {
                            "type": "string",
                            "maxLength": 200,
                            "description": "Optional pytest -k expression.",
                        },
                    },
                    ["target"],
                ),
                h.run_tests,
                lambda a: f"Running tests: {a['target']}",
                limits.test_timeout + 10,
            )
        )
    registry = ToolRegistry(
        tools,
        workspace=workspace,
        run_tests_enabled=run_tests_enabled,
        lint_timeout=limits.lint_timeout,
        test_timeout=limits.test_timeout,
    )
    if navigator is None:
        registry.add_closer(nav.close)
    registry.add_closer(workspace.close)
    return registry
