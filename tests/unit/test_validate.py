"""Tests for applying a fix's line range and the checks a fix must pass."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lsp_server.agent import parse_check
from lsp_server.agent.edits import splice
from lsp_server.agent.lint import Diagnostic
from lsp_server.agent.validate import (
    check_parse,
    find_tests,
    module_name,
    new_diagnostics,
    validate_edit,
)
from lsp_server.agent.workspace import ToolError, Workspace
from lsp_server.workspace import WorkspaceBoundary


@pytest.fixture
def fast_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child pytest runs skip plugin autoload: seconds faster, and our runner is what is tested."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


# -- splice ----------------------------------------------------------------------------


def test_splice_replaces_lines() -> None:
    result = splice("a\nb\nc\n", 2, 2, "B1\nB2\n")
    assert result.full_text == "a\nB1\nB2\nc\n"
    assert result.new_text == "B1\nB2\n"
    assert result.changed == (2, 3)
    assert result.lsp_range == ((1, 0), (2, 0))


def test_splice_insert_and_delete() -> None:
    inserted = splice("a\nb\n", 2, 1, "x")
    assert inserted.full_text == "a\nx\nb\n"
    assert inserted.lsp_range == ((1, 0), (1, 0))
    deleted = splice("a\nb\nc\n", 2, 2, "")
    assert deleted.full_text == "a\nc\n"
    assert deleted.changed == (2, 1)


def test_splice_keeps_crlf_and_missing_final_newline() -> None:
    result = splice("a\r\nb\r\nc", 3, 3, "C\nD\n")
    assert result.full_text == "a\r\nb\r\nC\r\nD"
    assert result.lsp_range == ((2, 0), (2, 1))
    appended = splice("a\nb", 3, 2, "c")
    assert appended.full_text == "a\nb\nc"
    assert (appended.lsp_range, appended.new_text) == (((1, 0), (1, 1)), "b\nc")


def test_splice_lsp_range_counts_utf16() -> None:
    assert splice("x = '😀'", 1, 1, "y = 1").lsp_range == ((0, 0), (0, 8))


@pytest.mark.parametrize(("start", "end"), [(0, 1), (5, 5), (2, 0), (1, 4)])
def test_splice_refuses_ranges_outside_the_file(start: int, end: int) -> None:
    with pytest.raises(ToolError) as info:
        splice("a\nb\nc\n", start, end, "x")
    assert info.value.type == "invalid_range"


# -- the lint rule ---------------------------------------------------------------------


def diag(code: str, line: int) -> Diagnostic:
    return Diagnostic(code, code, line, 1, line, 2)


def test_new_diagnostics_counts_codes_inside_region() -> None:
    before = [diag("F821", 5), diag("E711", 6)]
    after = [diag("F821", 5), diag("E711", 7)]
    assert new_diagnostics(before, after, (5, 8), 2) == []
    worse = [diag("F821", 5), diag("F821", 6), diag("E711", 7)]
    assert new_diagnostics(before, worse, (5, 8), 2) == [diag("F821", 6)]


def test_new_diagnostics_matches_shifted_lines_outside_region() -> None:
    before = [diag("F401", 1), diag("F841", 20)]
    after = [diag("F401", 1), diag("F841", 22)]
    assert new_diagnostics(before, after, (10, 13), 2) == []
    caused = [diag("F401", 1), diag("F401", 2), diag("F841", 22)]
    assert new_diagnostics(before, caused, (10, 13), 2) == [diag("F401", 2)]


# -- checks ----------------------------------------------------------------------------


async def test_check_parse_reports_position() -> None:
    error = await check_parse("x = 1\ndef f(:\n    pass\n")
    assert error is not None
    assert error.line in (2, 3)
    assert "expected" in error.message


async def test_parse_child_accepts_valid_code_and_non_ascii() -> None:
    assert await check_parse("x = 1\n") is None
    assert await check_parse("s = 'héllo 😀'\n") is None
    error = await check_parse("x = (\n")
    assert error is not None
    assert error.line >= 1


async def test_parse_runs_isolated_from_planted_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``libcst.py``/``json.py`` in the server's cwd or on PYTHONPATH never runs."""
    marker = tmp_path / "ran"
    for name in ("libcst", "json", "sitecustomize"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert await check_parse("x = 1\n") is None
    assert not marker.exists()


async def test_nested_lambdas_are_rejected_without_hurting_the_server() -> None:
    """40 KB of nested lambdas segfaulted libcst in the server process."""
    error = await check_parse("x = " + "lambda: " * 5_000 + "0\n")
    assert error is not None
    assert "the parser gave up" in error.message or "nested" in error.message


async def test_slow_expression_chain_is_stopped_by_the_cpu_budget() -> None:
    """A 7 KB ``1+1+...`` chain held the GIL for 12 s (3 s on a faster machine, right at the
    budget: a flaky test); parsing grows faster than the chain, 5,000 terms take 6.7 s here."""
    text = "x = " + "+".join(["1"] * 5_000) + "\n"
    assert parse_check.parse_cpu_budget(text) < 12
    error = await check_parse(text)
    assert error is not None
    assert "CPU time" in error.message or "longer than" in error.message


def snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def ws(workspace: Path) -> Workspace:
    return Workspace(WorkspaceBoundary(workspace))


async def test_edit_that_does_not_parse_is_rejected(ws: Workspace) -> None:
    original = (ws.root / "shop" / "pricing.py").read_text()
    edited = splice(original, 22, 22, "    percent = min(percent, 100.0").full_text
    result = await validate_edit(
        original, edited, "shop/pricing.py", (22, 22), run_tests=False, workspace=ws
    )
    assert not result.ok
    assert result.parse_error is not None
    out = result.to_tool_result()
    assert out["error"]["type"] == "validation_failed"
    assert out["error"]["parse_error"]["line"] >= 22
    assert [c["check"] for c in out["error"]["checks"]] == ["parse"]


async def test_edit_with_new_lint_problem_is_rejected(ws: Workspace) -> None:
    original = (ws.root / "shop" / "pricing.py").read_text()
    edited = splice(original, 22, 22, "    percent = min(percent, MAX_PERCENT)").full_text
    result = await validate_edit(
        original, edited, "shop/pricing.py", (22, 22), run_tests=False, workspace=ws
    )
    assert not result.ok
    assert [(d.code, d.line) for d in result.new_diagnostics] == [("F821", 22)]
    assert "F821 at line 22" in result.reasons[0]


async def test_existing_problems_do_not_block_a_fix(ws: Workspace, workspace: Path) -> None:
    original = "import os\n\n\ndef f(x):\n    return undefined_name + x\n"
    (workspace / "shop" / "old.py").write_text(original)
    edited = splice(original, 5, 5, "    y = undefined_name\n    return y + x\n").full_text
    result = await validate_edit(
        original, edited, "shop/old.py", (5, 6), run_tests=False, workspace=ws
    )
    assert result.ok, result.reasons
    assert [c.name for c in result.checks] == ["parse", "lint"]


async def test_removing_the_last_use_of_an_import_is_a_new_problem(
    ws: Workspace, workspace: Path
) -> None:
    original = "import os\n\n\ndef f():\n    return os.sep\n"
    (workspace / "shop" / "uses.py").write_text(original)
    edited = splice(original, 5, 5, "    return '/'").full_text
    result = await validate_edit(
        original, edited, "shop/uses.py", (5, 5), run_tests=False, workspace=ws
    )
    assert not result.ok
    assert [(d.code, d.line) for d in result.new_diagnostics] == [("F401", 1)]


async def test_validate_refuses_paths_outside_workspace(ws: Workspace) -> None:
    with pytest.raises(ToolError):
        await validate_edit("", "x = 1\n", "../x.py", (1, 1), run_tests=False, workspace=ws)


# -- tests on a copy -------------------------------------------------------------------


def add_tests(workspace: Path) -> None:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_pricing.py").write_text(
        "from shop.pricing import apply_discount\n\n\n"
        "def test_discount():\n    assert apply_discount(100.0, 10.0) == 90.0\n"
    )
    (workspace / "tests" / "test_other.py").write_text("def test_x():\n    assert True\n")


def test_module_name_and_find_tests(ws: Workspace, workspace: Path) -> None:
    add_tests(workspace)
    assert module_name("src/pkg/__init__.py") == "pkg"
    assert module_name("shop/pricing.py") == "shop.pricing"
    assert find_tests(ws, "shop/pricing.py") == ["tests/test_pricing.py"]
    assert find_tests(ws, "tests/test_other.py") == ["tests/test_other.py"]


async def test_tests_run_on_a_copy_and_catch_a_wrong_fix(
    ws: Workspace, workspace: Path, fast_pytest: None
) -> None:
    add_tests(workspace)
    before = snapshot(workspace)
    original = (workspace / "shop" / "pricing.py").read_text()
    wrong = splice(original, 23, 23, "    return round(total * (1 + percent / 100), 2)").full_text
    rejected = await validate_edit(
        original, wrong, "shop/pricing.py", (23, 23), run_tests=True, workspace=ws
    )
    assert not rejected.ok
    assert rejected.tests is not None
    assert "1 failed" in rejected.tests.summary
    fine = splice(original, 23, 23, "    return round(total * (100 - percent) / 100, 2)").full_text
    accepted = await validate_edit(
        original, fine, "shop/pricing.py", (23, 23), run_tests=True, workspace=ws
    )
    assert accepted.ok, accepted.reasons
    assert accepted.checks[-1].name == "tests"
    assert snapshot(workspace) == before


async def test_no_tests_means_the_test_check_is_skipped(ws: Workspace, fast_pytest: None) -> None:
    original = (ws.root / "shop" / "basket.py").read_text()
    edited = splice(original, 13, 13, "        # one line per sku").full_text
    result = await validate_edit(
        original, edited, "shop/basket.py", (13, 13), run_tests=True, workspace=ws
    )
    assert result.ok
    assert result.checks[-1].skipped
