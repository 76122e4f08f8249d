"""Definitions and references by symbol name, with jedi, for the agent's tools.

`JediNavigator` runs `context.jedi.by_name.navigate_job` (how a name becomes
locations: see there) on a `JediWorker`, off the event loop. Jedi is
synchronous and not thread-safe: every call is a job for the worker, by
default a private thread; the server passes `SymbolIndex.worker`, so the
agent's queries run in the same jedi child process as the index's. A lookup
that fails comes back as a `LookupFailed` value and is raised here as the
`ToolError` the model sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsp_server.agent.workspace import ToolError
from lsp_server.context.jedi.by_name import Location, LookupFailed, navigate_job
from lsp_server.context.jedi.worker import JediCrashed, JediWorker, ThreadWorker

#: Seconds a query may take; the registry's own tool limit (15 s) usually comes first.
DEADLINE = 15.0


class JediNavigator:
    """Find definitions and references in one workspace with jedi, off the event loop."""

    def __init__(
        self, root: Path, worker: JediWorker | None = None, *, deadline: float = DEADLINE
    ) -> None:
        self.root = root.resolve()
        self.deadline = deadline
        self._own = worker is None
        self._worker = worker or ThreadWorker("agent-jedi")

    def close(self) -> None:
        """Stop the private worker, if this navigator owns it."""
        if self._own:
            self._worker.close()

    async def definitions(
        self, symbol: str, path: Path | None, source: str | None, line: int | None
    ) -> list[Location]:
        """Where ``symbol`` is defined (following imports)."""
        found: list[Location] = await self._run("definitions", symbol, path, source, line)
        return found

    async def references(
        self, symbol: str, path: Path | None, source: str | None, line: int | None
    ) -> tuple[Location, list[Location]]:
        """The definition ``symbol`` resolves to, and every reference to it in the workspace."""
        found: tuple[Location, list[Location]] = await self._run(
            "references", symbol, path, source, line
        )
        return found

    async def _run(self, op: str, *args: Any) -> Any:
        try:
            found = await self._worker.run(
                navigate_job, self.root, op, *args, deadline=self.deadline
            )
        except JediCrashed as exc:
            raise ToolError(
                "analysis_failed",
                f"The code analysis worker stopped before answering ({exc}).",
                hint="Try again; the worker restarts on the next request.",
            ) from exc
        if isinstance(found, LookupFailed):
            raise ToolError(found.type, found.message, hint=found.hint)
        return found
