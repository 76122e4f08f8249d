"""The ``propose_fix`` tool: how a model submits a fix, and the drafts' validation.

The model calls ``propose_fix(path, start_line, end_line, replacement,
explanation)``. The path must be the task's target file (inside the
workspace); the line range refers to the original text the engine gave; the
replacement is applied with `edits.splice` and the result checked by
`validate.validate_edit`. An accepted draft becomes `accepted`; a rejected one
comes back to the model as the call's result, with the reasons. Nothing is
written anywhere.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from lsp_server.agent.edits import ProposedEdit, splice
from lsp_server.agent.execution import EditAttempt, ExecutionContext
from lsp_server.agent.prompts import PROPOSE_FIX_DESCRIPTION
from lsp_server.agent.registry import Tool, object_schema
from lsp_server.agent.validate import validate_edit
from lsp_server.agent.workspace import ToolError, Workspace

logger = logging.getLogger(__name__)

PROPOSE_FIX = "propose_fix"
_NUMBERED = re.compile(r"^\s*\d+\| ")


def _looks_numbered(text: str) -> bool:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    return bool(lines) and all(_NUMBERED.match(ln) for ln in lines)


class FixSubmissions:
    """Validates the drafts of one fix run and remembers the first accepted one."""

    def __init__(
        self,
        workspace: Workspace,
        target_path: str,
        original_text: str,
        *,
        run_tests: bool,
        lint_timeout: float,
        test_timeout: float,
    ) -> None:
        self.workspace = workspace
        self.target_path = target_path
        self.original_text = original_text
        self.run_tests = run_tests
        self.lint_timeout = lint_timeout
        self.test_timeout = test_timeout
        self.accepted: ProposedEdit | None = None
        self.unavailable: str | None = None
        self.last_rejection: str | None = None

    def tool(self) -> Tool:
        """The ``propose_fix`` tool bound to this run."""
        line = {"type": "integer", "minimum": 0}
        schema = object_schema(
            {
                "path": {"type": "string", "minLength": 1, "maxLength": 500},
                "start_line": {**line, "minimum": 1, "description": "First replaced line."},
                "end_line": {**line, "description": "Last replaced line, inclusive."},
                "replacement": {"type": "string", "maxLength": 200_000},
                "explanation": {"type": "string", "maxLength": 4_000},
            },
            ["path", "start_line", "end_line", "replacement", "explanation"],
        )
        return Tool(
            PROPOSE_FIX,
            PROPOSE_FIX_DESCRIPTION,
            schema,
            self.submit,
            lambda a: f"Checking the proposed fix for {a['path']}",
            2 * self.lint_timeout + 90 + 2 * self.test_timeout,
        )

    async def submit(self, args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        """Handle one ``propose_fix`` call; the result or `ToolError` goes to the model."""
        ws, original = self.workspace, self.original_text
        target = ws.relative(ws.resolve(self.target_path))
        given = ws.relative(ws.resolve(args["path"]))
        if given != target:
            raise ToolError(
                "wrong_file",
                f"Fixes may only change {target}, not {given}.",
                hint=f"Call propose_fix with path '{target}'.",
            )
        if _looks_numbered(args["replacement"]):
            raise ToolError(
                "numbered_lines",
                "The replacement starts every line with a line number and '| '.",
                hint="Send the code only; the 'N| ' prefixes are not part of the file.",
            )
        start, end = args["start_line"], args["end_line"]
        spliced = splice(original, start, end, args["replacement"])
        if spliced.full_text == original:
            raise ToolError("no_change", "The replacement is identical to the current lines.")
        result = await validate_edit(
            original,
            spliced.full_text,
            target,
            spliced.changed,
            run_tests=self.run_tests,
            workspace=ws,
            lint_timeout=self.lint_timeout,
            test_timeout=self.test_timeout,
        )
        ctx.edits_drafted.append(EditAttempt(target, start, end, result.ok, tuple(result.reasons)))
        if any(c.name == "lint" for c in result.checks):
            ctx.lint_results.append(
                {
                    "path": target,
                    "check": PROPOSE_FIX,
                    "new_problems": [d.code for d in result.new_diagnostics],
                }
            )
        if result.tests is not None:
            ctx.test_results.append(
                {"targets": list(result.tests.targets), "passed": result.tests.passed}
            )
        if result.ok and self.accepted is None:
            self.accepted = ProposedEdit(
                path=target,
                start_line=start,
                end_line=end,
                new_text=spliced.new_text,
                full_new_file_text=spliced.full_text,
                explanation=args["explanation"],
                lsp_range=spliced.lsp_range,
            )
        elif not result.ok:
            self.last_rejection = "; ".join(result.reasons)
            if result.unavailable:
                self.unavailable = result.unavailable
        return result.to_tool_result()
