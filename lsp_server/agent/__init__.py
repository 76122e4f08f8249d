"""The bounded agent: workspace-confined tools and the loop that lets a model use them.

Start with `build_tools` (the tools for one workspace) and `run_agent` (one
explain or fix run under `AgentBounds`). Modules: `workspace` (path
confinement), `registry` (schemas and dispatch), `tools` (the tool handlers),
`navigate` (jedi by symbol name), `lint` (ruff), `process` (bounded
subprocesses, pytest), `validate` (checks a fix must pass), `edits` (applying
a line-range replacement), `fix` (the ``propose_fix`` tool), `execution`
(what a run did), `prompts`, `loop`.
"""

from __future__ import annotations

from lsp_server.agent.edits import ProposedEdit
from lsp_server.agent.execution import EditAttempt, ExecutionContext, ToolCallRecord
from lsp_server.agent.fix import PROPOSE_FIX
from lsp_server.agent.loop import (
    AgentBounds,
    AgentResult,
    AgentTask,
    StopReason,
    run_agent,
)
from lsp_server.agent.navigate import JediNavigator
from lsp_server.agent.prompts import EXPLAIN_SYSTEM, FIX_SYSTEM, UNTRUSTED_DATA
from lsp_server.agent.registry import Tool, ToolRegistry
from lsp_server.agent.tools import ToolLimits, build_tools
from lsp_server.agent.validate import ValidationResult, validate_edit
from lsp_server.agent.workspace import ToolError, Workspace

__all__ = [
    "EXPLAIN_SYSTEM",
    "FIX_SYSTEM",
    "PROPOSE_FIX",
    "UNTRUSTED_DATA",
    "AgentBounds",
    "AgentResult",
    "AgentTask",
    "EditAttempt",
    "ExecutionContext",
    "JediNavigator",
    "ProposedEdit",
    "StopReason",
    "Tool",
    "ToolCallRecord",
    "ToolError",
    "ToolLimits",
    "ToolRegistry",
    "ValidationResult",
    "Workspace",
    "build_tools",
    "run_agent",
    "validate_edit",
]
