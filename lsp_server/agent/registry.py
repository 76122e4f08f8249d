"""Tool definitions and dispatch: JSON schemas out, JSON results back, never an exception.

A `Tool` is a name, a description, a JSON schema for its arguments, an async
handler and a progress line. `ToolRegistry.dispatch` turns one model tool call
into the JSON string of the ``tool`` message: invalid JSON, an unknown tool,
arguments that do not fit the schema, a timeout or a crash of the handler all
become ``{"error": {"type", "message", "hint"}}`` the model can act on.
`asyncio.CancelledError` is the one thing that propagates.

Arguments are checked by hand against the subset of JSON Schema the tools use:
``type`` (string, integer, number, boolean, array, object), ``enum``,
``minimum``/``maximum``, ``minLength``/``maxLength``, ``items.type``,
``required`` and ``additionalProperties: false``. ``null`` for an optional
property counts as leaving it out (models often send it).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsp_server.agent.execution import ExecutionContext, ToolCallRecord
from lsp_server.agent.workspace import ToolError
from lsp_server.llm.types import ToolCall
from lsp_server.telemetry import genai, tracing

if TYPE_CHECKING:
    from lsp_server.agent.workspace import Workspace

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], ExecutionContext], Awaitable[dict[str, Any]]]
Progress = Callable[[dict[str, Any]], str]

#: A tool result longer than this (as JSON) is replaced by an error.
MAX_RESULT_CHARS = 48_000

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def object_schema(properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    """A closed object schema: only ``properties``, ``required`` ones mandatory."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True)
class Tool:
    """One function the model may call."""

    name: str
    description: str
    parameters: dict[str, Any]
    handler: Handler
    progress: Progress | None = None
    timeout: float = 30.0

    def openai_schema(self) -> dict[str, Any]:
        """The entry for the ``tools=`` parameter of a chat completion."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def describe(self, args: dict[str, Any]) -> str:
        """The progress line shown while this call runs."""
        if self.progress is not None:
            try:
                return self.progress(args)
            except (KeyError, TypeError, ValueError):
                logger.debug("progress text for %s failed on %r", self.name, args)
        return f"Running {self.name}"


def _type_ok(value: Any, expected: str) -> bool:
    kinds = _TYPES.get(expected)
    if kinds is None:
        return True
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, kinds)


def check_arguments(schema: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Problems with ``args`` under ``schema`` (empty when they fit)."""
    problems: list[str] = []
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if args.get(name) is None:
            problems.append(f"missing required argument '{name}'")
    if schema.get("additionalProperties") is False:
        for name in args:
            if name not in properties:
                problems.append(f"unexpected argument '{name}'")
    for name, value in args.items():
        spec = properties.get(name)
        if spec is None or value is None:
            continue
        expected = spec.get("type")
        if isinstance(expected, str) and not _type_ok(value, expected):
            problems.append(f"'{name}' must be of type {expected}, got {type(value).__name__}")
            continue
        if "enum" in spec and value not in spec["enum"]:
            problems.append(f"'{name}' must be one of {spec['enum']}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in spec and value < spec["minimum"]:
                problems.append(f"'{name}' must be at least {spec['minimum']}")
            if "maximum" in spec and value > spec["maximum"]:
                problems.append(f"'{name}' must be at most {spec['maximum']}")
        if isinstance(value, str):
            if "minLength" in spec and len(value) < spec["minLength"]:
                problems.append(f"'{name}' must have at least {spec['minLength']} characters")
            if "maxLength" in spec and len(value) > spec["maxLength"]:
                problems.append(f"'{name}' must have at most {spec['maxLength']} characters")
        item_type = spec.get("items", {}).get("type") if isinstance(value, list) else None
        if isinstance(item_type, str) and not all(_type_ok(v, item_type) for v in value):
            problems.append(f"every item of '{name}' must be of type {item_type}")
    return problems


def _coerce(schema: dict[str, Any], name: str, value: Any) -> Any:
    """Integral floats (``3.0``) for integer properties become ints."""
    spec = schema.get("properties", {}).get(name, {})
    if spec.get("type") == "integer" and isinstance(value, float):
        return int(value)
    return value


def _signature(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    parts = [
        f"{name}: {spec.get('type', 'any')}{'' if name in required else ' (optional)'}"
        for name, spec in schema.get("properties", {}).items()
    ]
    return "{" + ", ".join(parts) + "}"


def canonical_call(call: ToolCall) -> str:
    """A key equal for calls with the same name and the same arguments (key order ignored)."""
    try:
        args = json.loads(call.arguments or "{}")
        text = json.dumps(args, sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError, MemoryError):  # not JSON, or nested absurdly deep
        text = call.arguments
    return f"{call.name}\x00{text}"


class ToolRegistry:
    """The tools offered to the model, and the workspace they are confined to."""

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        *,
        workspace: Workspace | None = None,
        run_tests_enabled: bool = False,
        lint_timeout: float = 20.0,
        test_timeout: float = 120.0,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._closers: list[Callable[[], None]] = []
        self.workspace = workspace
        self.run_tests_enabled = run_tests_enabled
        self.lint_timeout = lint_timeout
        self.test_timeout = test_timeout
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``; a second tool with the same name replaces the first."""
        self._tools[tool.name] = tool

    def add_closer(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` on `close` (resources the registry's tools own)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Release what the tools own (e.g. a jedi worker thread)."""
        for closer in self._closers:
            closer()
        self._closers.clear()

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def openai_tools(self) -> list[dict[str, Any]]:
        """The ``tools=`` parameter for the chat completion."""
        return [tool.openai_schema() for tool in self._tools.values()]

    def describe(self, call: ToolCall) -> str:
        """A progress line for ``call`` ("Reading shop/basket.py:10-40")."""
        tool = self._tools.get(call.name)
        if tool is None:
            return f"Ignoring unknown tool {call.name}"
        try:
            args = json.loads(call.arguments or "{}")
        except (ValueError, RecursionError, MemoryError):
            args = None
        return tool.describe(args if isinstance(args, dict) else {})

    def parse(self, call: ToolCall) -> tuple[Tool, dict[str, Any]]:
        """The tool and its checked arguments; `ToolError` when either is wrong."""
        tool = self._tools.get(call.name)
        if tool is None:
            close = difflib.get_close_matches(call.name, self.names, n=1)
            hint = f"Did you mean {close[0]}? " if close else ""
            raise ToolError(
                "unknown_tool",
                f"There is no tool named '{call.name}'.",
                hint=hint + "Available tools: " + ", ".join(self.names) + ".",
            )
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolError(
                "invalid_json",
                f"The arguments are not valid JSON ({exc.msg} at character {exc.pos}).",
                hint=f"Send one JSON object: {_signature(tool.parameters)}.",
            ) from None
        except (RecursionError, MemoryError):
            raise ToolError(
                "invalid_arguments",
                "The arguments are nested too deeply to read.",
                hint=f"Send one flat JSON object: {_signature(tool.parameters)}.",
            ) from None
        if not isinstance(args, dict):
            raise ToolError(
                "invalid_arguments",
                f"The arguments must be a JSON object, not {type(args).__name__}.",
                hint=f"Send one JSON object: {_signature(tool.parameters)}.",
            )
        problems = check_arguments(tool.parameters, args)
        if problems:
            raise ToolError(
                "invalid_arguments",
                "; ".join(problems).capitalize() + ".",
                hint=f"{tool.name} takes {_signature(tool.parameters)}.",
            )
        return tool, {k: _coerce(tool.parameters, k, v) for k, v in args.items() if v is not None}

    async def run(self, call: ToolCall, ctx: ExecutionContext, *, step: int = 0) -> dict[str, Any]:
        """Run ``call`` and return its result or error envelope as a dict."""
        started = time.monotonic()
        try:
            tool, args = self.parse(call)
            async with asyncio.timeout(tool.timeout):
                result = await tool.handler(args, ctx)
        except ToolError as exc:
            result = exc.to_dict()
        except TimeoutError:
            result = ToolError(
                "timeout",
                f"{call.name} took longer than its time limit and was stopped.",
                hint="Try a narrower request.",
            ).to_dict()
        except Exception as exc:  # a bug or an environment problem: report, log, carry on
            logger.exception("tool %s crashed", call.name)
            result = ToolError(
                "tool_failed",
                f"{call.name} failed: {type(exc).__name__}: {str(exc)[:300]}",
                hint="This is a problem of the tool, not of your request; try another approach.",
            ).to_dict()
        error = result.get("error") if isinstance(result.get("error"), dict) else None
        if error is not None:
            ctx.note_failure(f"{call.name}: {error.get('type')}: {error.get('message')}")
        ctx.tool_calls.append(
            ToolCallRecord(
                step=step,
                name=call.name,
                arguments=call.arguments[:2000],
                ok=error is None,
                duration_ms=(time.monotonic() - started) * 1000,
                error_type=str(error.get("type")) if error is not None else None,
            )
        )
        return result

    async def dispatch(self, call: ToolCall, ctx: ExecutionContext, *, step: int = 0) -> str:
        """The JSON content of the ``tool`` message answering ``call`` (an ``execute_tool``
        span around the call)."""
        attrs = genai.tool_attributes(call.name, call.id, call.arguments)
        with tracing.span(f"execute_tool {call.name}", attrs) as traced:
            result = await self.run(call, ctx, step=step)
            error = result.get("error")
            if isinstance(error, dict):
                traced.fail(str(error.get("type", "tool_error")))
            return to_json(result)


def to_json(result: dict[str, Any]) -> str:
    """Serialise a tool result, replacing oversized ones by an error."""
    text = json.dumps(result, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        return json.dumps(
            ToolError(
                "result_too_large",
                f"The result had {len(text)} characters; the limit is {MAX_RESULT_CHARS}.",
                hint="Ask for less: a narrower line range, pattern or symbol.",
            ).to_dict()
        )
    return text
