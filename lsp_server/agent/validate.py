"""Checks a drafted fix must pass before it is offered: it parses, lints no worse, tests pass.

1. **Parse**: the edited module must parse with libcst, in a limited child
   process (`parse_check`); the error's line and column go back to the model.
2. **Lint** (ruff, the project's configuration): no new problems. The edit is
   one contiguous replacement: lines ``changed = (start, end)`` of the edited
   text replace lines ``(start, end - delta)`` of the original, ``delta`` being
   the change in line count. Inside that region, for every rule code the edited
   text may not have more diagnostics than the original region had (a count
   per code, since lines inside a rewrite cannot be matched one to one).
   Outside it, diagnostics are matched by (code, line), lines after the region
   shifted by ``delta``; an unmatched one (an import the edit left unused, a
   redefinition) is new as well.
3. **Tests** (only with ``run_tests``): the workspace is copied to a temporary
   directory (without the directories the workspace boundary skips), the
   edited file written there, and pytest runs the test files that import the
   edited module (by dotted name or stem; the file itself when it is a test).
   No such tests: the check is skipped.

A check that cannot run at all (ruff missing, workspace too big to copy) sets
``unavailable``: that is not the model's fault and the loop stops instead of
asking for another draft.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_server.agent.edits import count_lines
from lsp_server.agent.lint import Diagnostic, LintUnavailable, run_ruff
from lsp_server.agent.parse_check import CheckUnavailable, ParseError, check_parse
from lsp_server.agent.process import TestRun, run_pytest
from lsp_server.agent.workspace import ToolError, Workspace
from lsp_server.workspace import skipped_dir_name

logger = logging.getLogger(__name__)

__all__ = [
    "CheckResult",
    "CheckUnavailable",
    "ParseError",
    "ValidationResult",
    "check_parse",
    "find_tests",
    "module_name",
    "new_diagnostics",
    "validate_edit",
]

MAX_COPY_BYTES = 200_000_000
MAX_TEST_FILES = 20


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict; ``skipped`` checks count as passed."""

    name: str
    passed: bool
    detail: str
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """All checks of one draft; ``ok`` only when every check passed."""

    ok: bool
    checks: tuple[CheckResult, ...]
    parse_error: ParseError | None = None
    new_diagnostics: tuple[Diagnostic, ...] = ()
    tests: TestRun | None = None
    unavailable: str | None = None

    @property
    def reasons(self) -> list[str]:
        """Why the draft was rejected, one line per failed check."""
        return [c.detail for c in self.checks if not c.passed]

    def to_tool_result(self) -> dict[str, Any]:
        """What the model sees as the result of its ``propose_fix`` call."""
        checks = [
            {"check": c.name, "passed": c.passed, "skipped": c.skipped, "detail": c.detail}
            for c in self.checks
        ]
        if self.ok:
            return {"status": "accepted", "checks": checks}
        details: dict[str, Any] = {"checks": checks}
        if self.parse_error is not None:
            details["parse_error"] = self.parse_error.to_dict()
        if self.new_diagnostics:
            details["new_diagnostics"] = [d.to_dict() for d in self.new_diagnostics]
        if self.tests is not None:
            details["tests"] = self.tests.to_dict()
        return ToolError(
            "validation_failed",
            "The fix was rejected: " + "; ".join(self.reasons),
            hint="Correct it and call propose_fix again with the complete replacement text.",
            details=details,
        ).to_dict()


# -- checks ------------------------------------------------------------------------


def new_diagnostics(
    before: Sequence[Diagnostic], after: Sequence[Diagnostic], changed: tuple[int, int], delta: int
) -> list[Diagnostic]:
    """Diagnostics of the edited text that the original did not have (module docstring rule)."""
    start, end = changed
    orig_end = end - delta
    region_before: Counter[str] = Counter()
    outside_before: Counter[tuple[str, int]] = Counter()
    for d in before:
        if d.line < start:
            outside_before[(d.code, d.line)] += 1
        elif d.line > orig_end:
            outside_before[(d.code, d.line + delta)] += 1
        else:
            region_before[d.code] += 1
    region_after: dict[str, list[Diagnostic]] = {}
    found: list[Diagnostic] = []
    for d in after:
        if start <= d.line <= end:
            region_after.setdefault(d.code, []).append(d)
        elif outside_before[(d.code, d.line)] > 0:
            outside_before[(d.code, d.line)] -= 1
        else:
            found.append(d)
    for code, diags in region_after.items():
        if len(diags) > region_before[code]:
            found.extend(diags[region_before[code] :])
    return sorted(found, key=lambda d: (d.line, d.column, d.code))


def module_name(rel: str) -> str:
    """Dotted module name of a workspace-relative path (a leading ``src/`` dropped)."""
    parts = list(PurePosixPath(rel).with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_test_file(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def find_tests(workspace: Workspace, rel: str) -> list[str]:
    """Test files that import module ``rel`` (blocking; at most `MAX_TEST_FILES`)."""
    dotted = module_name(rel)
    stem = dotted.rsplit(".", 1)[-1]
    if not stem:
        return []
    by_name = re.compile(rf"\b{re.escape(dotted)}\b")
    by_stem = re.compile(rf"^\s*(?:from|import)\s[^\n]*\b{re.escape(stem)}\b", re.MULTILINE)
    found = [rel] if _is_test_file(rel) else []
    for candidate in workspace.iter_files():
        if candidate == rel or not _is_test_file(candidate):
            continue
        try:
            path = workspace.resolve(candidate)
        except ToolError:
            continue
        text = workspace.boundary.read_text(path, max_bytes=1_000_000)
        if text is None:
            continue
        if by_name.search(text) or by_stem.search(text):
            found.append(candidate)
        if len(found) >= MAX_TEST_FILES:
            break
    return found


class _Stopped(Exception):
    """The copy was abandoned because validation was cancelled."""


def _copy_tree(src: Path, dest: Path, stop: threading.Event, done: threading.Event) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        if stop.is_set():
            raise _Stopped
        return {n for n in names if _skipped_dir(Path(directory, n))}

    def copy(source: str, target: str) -> object:
        if stop.is_set():
            raise _Stopped
        return shutil.copy2(source, target)

    try:
        shutil.copytree(src, dest, ignore=ignore, copy_function=copy, symlinks=True)
    finally:
        done.set()


def _skipped_dir(path: Path) -> bool:
    """A directory the workspace boundary skips (by name, or a virtualenv by ``pyvenv.cfg``)."""
    return path.is_dir() and (skipped_dir_name(path.name) or (path / "pyvenv.cfg").exists())


def _remove(path: Path, done: threading.Event) -> None:
    done.wait(timeout=60)
    shutil.rmtree(path, ignore_errors=True)


def _workspace_size(workspace: Workspace) -> int | None:
    total = 0
    for count, rel in enumerate(workspace.iter_files(), start=1):
        try:
            total += (workspace.root / rel).lstat().st_size
        except OSError:
            continue
        if total > MAX_COPY_BYTES or count >= 20_000:
            return None
    return total


async def run_tests_on_copy(
    workspace: Workspace, rel: str, edited: str, targets: Sequence[str], *, time_limit: float
) -> TestRun:
    """Run pytest on ``targets`` in a temporary copy of the workspace with ``rel`` edited."""
    if await asyncio.to_thread(_workspace_size, workspace) is None:
        raise CheckUnavailable("the workspace is too large to copy for a test run")
    tmp = Path(tempfile.mkdtemp(prefix="llm-lsp-validate-"))
    copy_root = tmp / "ws"
    stop, done = threading.Event(), threading.Event()
    try:
        try:
            await asyncio.to_thread(_copy_tree, workspace.root, copy_root, stop, done)
        except OSError as exc:
            raise CheckUnavailable(f"the workspace could not be copied: {exc}") from exc
        target = copy_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(edited, encoding="utf-8")
        return await run_pytest(list(targets), cwd=copy_root, time_limit=time_limit)
    finally:
        stop.set()
        await asyncio.to_thread(_remove, tmp, done)


async def validate_edit(
    original: str,
    edited: str,
    path: str,
    changed: tuple[int, int],
    *,
    run_tests: bool,
    workspace: Workspace,
    lint_timeout: float = 20.0,
    test_timeout: float = 120.0,
    test_targets: Sequence[str] | None = None,
) -> ValidationResult:
    """Check a draft: ``edited`` replaces ``original`` of workspace file ``path``.

    ``changed`` is the replaced range in ``edited`` (1-based, inclusive; empty
    when ``end < start``). See the module docstring for the rules. Never
    raises for a bad draft; `ToolError` only for a path outside the workspace.
    """
    resolved = workspace.resolve(path)
    rel = workspace.relative(resolved)
    checks: list[CheckResult] = []
    try:
        parse_error = await check_parse(edited)
    except CheckUnavailable as exc:
        return _unavailable(checks, "parse", str(exc))
    if parse_error is not None:
        detail = (
            f"the edited file does not parse: {parse_error.message} "
            f"(line {parse_error.line}, column {parse_error.column})"
        )
        checks.append(CheckResult("parse", False, detail))
        return ValidationResult(False, tuple(checks), parse_error=parse_error)
    checks.append(CheckResult("parse", True, "the edited file parses"))

    try:
        before, after = await asyncio.gather(
            run_ruff(original, resolved, cwd=workspace.root, time_limit=lint_timeout),
            run_ruff(edited, resolved, cwd=workspace.root, time_limit=lint_timeout),
        )
    except LintUnavailable as exc:
        return _unavailable(checks, "lint", str(exc))
    delta = count_lines(edited) - count_lines(original)
    fresh = new_diagnostics(before, after, changed, delta)
    if fresh:
        listed = ", ".join(f"{d.code} at line {d.line}: {d.message}" for d in fresh[:10])
        checks.append(CheckResult("lint", False, f"ruff reports new problems: {listed}"))
        return ValidationResult(False, tuple(checks), new_diagnostics=tuple(fresh))
    checks.append(CheckResult("lint", True, "ruff reports no new problems"))

    if not run_tests:
        return ValidationResult(True, tuple(checks))
    targets = list(test_targets) if test_targets is not None else None
    if targets is None:
        targets = await asyncio.to_thread(find_tests, workspace, rel)
    if not targets:
        checks.append(CheckResult("tests", True, f"no tests import {module_name(rel)}", True))
        return ValidationResult(True, tuple(checks))
    try:
        run = await run_tests_on_copy(workspace, rel, edited, targets, time_limit=test_timeout)
    except CheckUnavailable as exc:
        return _unavailable(checks, "tests", str(exc))
    if not run.passed:
        checks.append(CheckResult("tests", False, f"tests fail with the edit: {run.summary}"))
        return ValidationResult(False, tuple(checks), tests=run)
    checks.append(CheckResult("tests", True, f"tests pass: {run.summary}"))
    return ValidationResult(True, tuple(checks), tests=run)


def _unavailable(checks: list[CheckResult], name: str, why: str) -> ValidationResult:
    logger.warning("validation check %s could not run: %s", name, why)
    checks.append(CheckResult(name, False, f"the {name} check could not run: {why}"))
    return ValidationResult(False, tuple(checks), unavailable=why)
