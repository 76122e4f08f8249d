"""Tests for the agent's workspace-confined tools, their schemas and dispatch."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_server import isolation
from lsp_server.agent.execution import ExecutionContext
from lsp_server.agent.lint import run_ruff
from lsp_server.agent.process import ProcessTimeout, run_process, safe_env
from lsp_server.agent.registry import Tool, ToolRegistry, check_arguments, object_schema
from lsp_server.agent.tools import ToolLimits, build_tools
from lsp_server.agent.workspace import ToolError, Workspace, glob_to_regex
from lsp_server.llm.types import ToolCall
from lsp_server.workspace import WorkspaceBoundary


@pytest.fixture
def fast_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child pytest runs skip plugin autoload: seconds faster, and our runner is what is tested."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture
def ws(workspace: Path) -> Workspace:
    return Workspace(WorkspaceBoundary(workspace))


@pytest.fixture
def tools(ws: Workspace) -> Iterator[ToolRegistry]:
    registry = build_tools(ws)
    yield registry
    registry.close()


async def call(registry: ToolRegistry, name: str, args: dict[str, Any] | str) -> dict[str, Any]:
    arguments = args if isinstance(args, str) else json.dumps(args)
    text = await registry.dispatch(ToolCall("c1", name, arguments), ExecutionContext())
    result: dict[str, Any] = json.loads(text)
    return result


# -- confinement -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("../../etc/passwd", "outside_workspace"),
        ("shop/../../outside.py", "outside_workspace"),
        ("/etc/passwd", "outside_workspace"),
        ("~/.ssh/id_rsa", "outside_workspace"),
        ("C:/Windows/win.ini", "outside_workspace"),
        ("shop/basket.py\x00.txt", "invalid_path"),
        ("", "invalid_path"),
        (".git/config", "forbidden"),
        (".env", "forbidden"),
    ],
)
def test_resolve_refuses_paths_outside_or_private(ws: Workspace, path: str, kind: str) -> None:
    with pytest.raises(ToolError) as info:
        ws.resolve(path)
    assert info.value.type == kind


def test_absolute_path_inside_workspace_is_refused_with_relative_hint(ws: Workspace) -> None:
    with pytest.raises(ToolError) as info:
        ws.resolve(str(ws.root / "shop" / "basket.py"))
    assert info.value.hint == "Use the workspace-relative path 'shop/basket.py'."


def test_symlink_leading_outside_is_refused(workspace: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (workspace / "link.txt").symlink_to(secret)
    (workspace / "linkdir").symlink_to(tmp_path)
    ws = Workspace(WorkspaceBoundary(workspace))
    for rel in ("link.txt", "linkdir/secret.txt"):
        with pytest.raises(ToolError) as info:
            ws.resolve(rel)
        assert info.value.type == "outside_workspace"
    assert "link.txt" not in list(ws.iter_files())


async def test_read_file_refuses_traversal_through_dispatch(tools: ToolRegistry) -> None:
    for path in ("../../etc/passwd", "/etc/passwd"):
        result = await call(tools, "read_file", {"path": path})
        assert result["error"]["type"] == "outside_workspace"
        assert "root:" not in json.dumps(result)


def test_glob_to_regex() -> None:
    assert glob_to_regex("**/*.py").fullmatch("a/b/c.py")
    assert glob_to_regex("**/*.py").fullmatch("c.py")
    assert not glob_to_regex("shop/*.py").fullmatch("shop/sub/x.py")
    assert glob_to_regex("shop/?asket.py").fullmatch("shop/basket.py")
    assert glob_to_regex("[!x]*.py").fullmatch("a.py")


# -- reading and listing -----------------------------------------------------------------


async def test_read_file_numbers_lines_and_caps(ws: Workspace) -> None:
    registry = build_tools(ws, limits=ToolLimits(max_lines=5))
    try:
        result = await call(registry, "read_file", {"path": "shop/basket.py", "start_line": 3})
    finally:
        registry.close()
    assert result["start_line"] == 3
    assert result["end_line"] == 7
    assert result["truncated"] is True
    assert result["next_start_line"] == 8
    assert (
        result["text"].splitlines()[0]
        == "3| from shop.pricing import VAT_RATE, LineItem, apply_discount"
    )


async def test_read_file_range_past_end_is_an_error(tools: ToolRegistry) -> None:
    result = await call(tools, "read_file", {"path": "shop/basket.py", "start_line": 999})
    assert result["error"]["type"] == "out_of_range"


async def test_missing_file_comes_back_with_nearest_paths(tools: ToolRegistry) -> None:
    result = await call(tools, "read_file", {"path": "shop/baskets.py"})
    assert result["error"]["type"] == "not_found"
    assert result["error"]["nearest"][0] == "shop/basket.py"
    assert "shop/basket.py" in result["error"]["hint"]


async def test_directory_is_not_a_file(tools: ToolRegistry) -> None:
    result = await call(tools, "read_file", {"path": "shop"})
    assert result["error"]["type"] == "not_a_file"
    below_a_file = await call(tools, "read_file", {"path": "shop/basket.py/x.py"})
    assert below_a_file["error"]["type"] == "not_found"


async def test_empty_file(workspace: Path, tools: ToolRegistry) -> None:
    (workspace / "shop" / "empty.py").write_text("")
    result = await call(tools, "read_file", {"path": "shop/empty.py"})
    assert (result["total_lines"], result["text"]) == (0, "")


async def test_open_buffer_wins_over_disk(workspace: Path) -> None:
    target = (workspace / "shop" / "pricing.py").resolve()
    buffers = {target: "UNSAVED = 1\n"}
    ws = Workspace(WorkspaceBoundary(workspace, buffers.get))
    registry = build_tools(ws)
    try:
        result = await call(registry, "read_file", {"path": "shop/pricing.py"})
    finally:
        registry.close()
    assert result["text"] == "1| UNSAVED = 1"
    assert result["total_lines"] == 1


async def test_list_files_skips_tool_directories(workspace: Path, tools: ToolRegistry) -> None:
    (workspace / ".venv" / "lib").mkdir(parents=True)
    (workspace / ".venv" / "lib" / "junk.py").write_text("x = 1\n")
    result = await call(tools, "list_files", {"pattern": "*.py"})
    assert result["files"] == [
        "shop/__init__.py",
        "shop/basket.py",
        "shop/broken.py",
        "shop/notes.py",
        "shop/pricing.py",
        "shop/stats.py",
    ]
    refused = await call(tools, "list_files", {"pattern": "../*"})
    assert refused["error"]["type"] == "invalid_pattern"


async def test_read_symbol(tools: ToolRegistry) -> None:
    ctx = ExecutionContext()
    args = json.dumps({"path": "shop/basket.py", "qualname": "Basket.total"})
    result = json.loads(await tools.dispatch(ToolCall("c", "read_symbol", args), ctx))
    assert result["kind"] == "method"
    assert result["start_line"] == 16
    assert "16|     def total(self, discount: float = 0.0) -> float:" in result["text"]
    assert ctx.files_read == ["shop/basket.py"]
    missing = await call(tools, "read_symbol", {"path": "shop/basket.py", "qualname": "Basket.tot"})
    assert missing["error"]["type"] == "symbol_not_found"
    assert "Basket.total" in missing["error"]["hint"]


# -- jedi ------------------------------------------------------------------------------


async def test_find_references_by_name(tools: ToolRegistry) -> None:
    result = await call(tools, "find_references", {"symbol": "apply_discount"})
    assert result["definition"]["path"] == "shop/pricing.py"
    assert result["definition"]["line"] == 17
    assert "(total: float, percent: float)" in result["definition"]["signature"]
    uses = {(r["path"], r["line"]) for r in result["references"]}
    assert {("shop/basket.py", 19), ("shop/broken.py", 7), ("shop/pricing.py", 17)} <= uses


async def test_find_definition_from_a_use_site(tools: ToolRegistry) -> None:
    args = {"symbol": "apply_discount", "path": "shop/basket.py", "line": 19}
    result = await call(tools, "find_definition", args)
    [definition] = result["definitions"]
    assert (definition["path"], definition["line"]) == ("shop/pricing.py", 17)
    assert definition["code"].startswith("def apply_discount")


async def test_find_definition_unknown_name(tools: ToolRegistry) -> None:
    result = await call(
        tools, "find_definition", {"symbol": "apply_discont", "path": "shop/basket.py"}
    )
    assert result["error"]["type"] == "symbol_not_found"
    assert "apply_discount" in result["error"]["hint"]


# -- lint ------------------------------------------------------------------------------


async def test_lint_reports_structured_ruff_diagnostics(
    workspace: Path, tools: ToolRegistry
) -> None:
    (workspace / "shop" / "bad.py").write_text("import os\n\n\ndef f():\n    return missing\n")
    ctx = ExecutionContext()
    text = await tools.dispatch(ToolCall("c", "lint", json.dumps({"path": "shop/bad.py"})), ctx)
    result = json.loads(text)
    codes = [(d["code"], d["line"]) for d in result["diagnostics"]]
    assert codes == [("F401", 1), ("F821", 5)]
    assert result["diagnostics"][0]["fixable"] is True
    assert ctx.lint_results == [{"path": "shop/bad.py", "count": 2, "codes": ["F401", "F821"]}]


# -- dispatch errors ---------------------------------------------------------------


async def test_invalid_json_arguments(tools: ToolRegistry) -> None:
    result = await call(tools, "read_file", '{"path": "shop/basket.py"')
    assert result["error"]["type"] == "invalid_json"
    assert "path: string" in result["error"]["hint"]


async def test_unknown_tool(tools: ToolRegistry) -> None:
    result = await call(tools, "read_fil", {"path": "x.py"})
    assert result["error"]["type"] == "unknown_tool"
    assert result["error"]["hint"].startswith("Did you mean read_file?")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "missing required argument 'path'"),
        ({"path": "a.py", "mode": "w"}, "unexpected argument 'mode'"),
        ({"path": 3}, "'path' must be of type string"),
        ({"path": "a.py", "start_line": True}, "'start_line' must be of type integer"),
        ({"path": "a.py", "start_line": 0}, "'start_line' must be at least 1"),
    ],
)
async def test_schema_violations(tools: ToolRegistry, args: dict[str, Any], problem: str) -> None:
    result = await call(tools, "read_file", args)
    assert result["error"]["type"] == "invalid_arguments"
    assert problem in result["error"]["message"].lower()


def test_check_arguments_accepts_null_optional_and_integral_floats() -> None:
    schema = object_schema({"a": {"type": "integer"}, "b": {"type": "string"}}, ["a"])
    assert check_arguments(schema, {"a": 2.0, "b": None}) == []
    assert check_arguments(schema, {"a": 2.5}) == ["'a' must be of type integer, got float"]


def test_openai_tools_are_closed_object_schemas(tools: ToolRegistry) -> None:
    specs = tools.openai_tools()
    names = [s["function"]["name"] for s in specs]
    assert names == [
        "find_references",
        "find_definition",
        "read_symbol",
        "read_file",
        "list_files",
        "lint",
    ]
    for spec in specs:
        params = spec["function"]["parameters"]
        assert params["type"] == "object"
        assert params["additionalProperties"] is False
        assert set(params["required"]) <= set(params["properties"])
        assert spec["function"]["description"]


async def test_handler_crash_and_timeout_become_structured_errors() -> None:
    async def crash(args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        raise RuntimeError("boom")

    async def slow(args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    registry = ToolRegistry(
        [
            Tool("crash", "d", object_schema({}), crash),
            Tool("slow", "d", object_schema({}), slow, timeout=0.05),
        ]
    )
    ctx = ExecutionContext()
    crashed = json.loads(await registry.dispatch(ToolCall("1", "crash", "{}"), ctx))
    assert crashed["error"]["type"] == "tool_failed"
    assert "RuntimeError: boom" in crashed["error"]["message"]
    timed_out = json.loads(await registry.dispatch(ToolCall("2", "slow", ""), ctx))
    assert timed_out["error"]["type"] == "timeout"
    assert [(r.name, r.ok, r.error_type) for r in ctx.tool_calls] == [
        ("crash", False, "tool_failed"),
        ("slow", False, "timeout"),
    ]
    assert len(ctx.failures) == 2


async def test_cancellation_propagates_out_of_dispatch() -> None:
    started = asyncio.Event()

    async def wait(args: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(10)
        return {}

    registry = ToolRegistry([Tool("wait", "d", object_schema({}), wait)])
    task = asyncio.create_task(registry.dispatch(ToolCall("1", "wait", "{}"), ExecutionContext()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- run_tests and subprocesses -----------------------------------------------------


async def test_run_tests_is_off_unless_enabled(
    ws: Workspace, workspace: Path, fast_pytest: None
) -> None:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    registry = build_tools(ws, run_tests_enabled=True)
    try:
        assert "run_tests" in registry
        result = await call(registry, "run_tests", {"target": "tests/test_ok.py"})
        refused = await call(registry, "run_tests", {"target": "../outside"})
        missing = await call(registry, "run_tests", {"target": "tests/test_nope.py"})
    finally:
        registry.close()
    assert result["passed"] is True
    assert "1 passed" in result["summary"]
    assert refused["error"]["type"] == "outside_workspace"
    assert missing["error"]["type"] == "not_found"
    assert not (workspace / ".pytest_cache").exists()


def test_run_tests_absent_by_default(tools: ToolRegistry) -> None:
    assert "run_tests" not in tools


async def test_run_process_kills_on_timeout(tmp_path: Path) -> None:
    with pytest.raises(ProcessTimeout) as info:
        await run_process(
            [sys.executable, "-c", "print('hi', flush=True); import time; time.sleep(30)"],
            cwd=tmp_path,
            time_limit=1.0,
        )
    assert "hi" in info.value.output


async def test_run_process_truncates_output(tmp_path: Path) -> None:
    result = await run_process(
        [sys.executable, "-c", "print('a' * 100_000)"], cwd=tmp_path, time_limit=10, max_output=1000
    )
    assert result.truncated
    assert len(result.stdout) < 1100
    assert "bytes omitted" in result.stdout


def test_safe_env_drops_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "t")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("GIT_ASKPASS", "/bin/echo")  # not on the allow-list
    env = safe_env()
    assert "OPENAI_API_KEY" not in env
    assert "MY_SERVICE_TOKEN" not in env
    assert "PYTHONPATH" not in env and "GIT_ASKPASS" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_ALL"] == "C.UTF-8"


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
@pytest.mark.parametrize("then", ["sleep 60", "exit 0"])
async def test_grandchildren_die_when_the_child_times_out(tmp_path: Path, then: str) -> None:
    """The grandchild holds the output pipe open; the child itself sleeps or has exited."""
    with pytest.raises(ProcessTimeout) as info:
        await run_process(["sh", "-c", f"sleep 60 & echo $!; {then}"], cwd=tmp_path, time_limit=1.0)
    grandchild = int(info.value.output.split()[0])
    assert await _until(lambda: _gone(grandchild))


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
async def test_grandchildren_die_when_the_child_exits_first(tmp_path: Path) -> None:
    result = await run_process(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], cwd=tmp_path, time_limit=20.0
    )
    grandchild = int(result.stdout.split()[0])
    assert await _until(lambda: _gone(grandchild))


async def _until(predicate: Any, seconds: float = 10.0) -> bool:
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_children_run_at_most_max_children_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f"echo s >> {log}; sleep 0.3; echo e >> {log}"
    await asyncio.gather(
        *(run_process(["sh", "-c", script], cwd=tmp_path, time_limit=60) for _ in range(12))
    )
    running = peak = 0
    for event in log.read_text().split():
        running += 1 if event == "s" else -1
        peak = max(peak, running)
    assert peak == isolation.MAX_CHILDREN


async def test_ruff_runs_as_its_binary_not_a_planted_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m ruff`` in the workspace imported the repository's ``ruff/__main__.py``."""
    marker = tmp_path / "ran"
    (tmp_path / "ruff").mkdir()
    for name in ("__init__", "__main__"):
        (tmp_path / "ruff" / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    found = await run_ruff("import os\n", tmp_path / "mod.py", cwd=tmp_path)
    assert [d.code for d in found] == ["F401"]
    assert not marker.exists()
