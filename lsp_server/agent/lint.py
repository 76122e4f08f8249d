"""Ruff as a library of structured diagnostics: source in, `Diagnostic`s out.

Ruff runs as its own binary (``ruff.find_ruff_bin()``: never ``python -m
ruff``, which would import a ``ruff`` package from the workspace) as ``ruff
check --output-format=json`` on text piped to its stdin, with
``--stdin-filename`` set to the file's real path and the workspace root as
working directory, so the user's own ruff configuration applies and unsaved
editor text is linted. Ruff is a Rust binary: its configuration is data, not
code, so the workspace directory is safe for it. It never fixes, never writes
a cache.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.agent.process import ProcessTimeout, run_process

logger = logging.getLogger(__name__)

#: The code given to syntax errors ruff reports without a rule code.
SYNTAX_CODE = "invalid-syntax"


class LintUnavailable(Exception):
    """Ruff could not run or produced output that is not its JSON report."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One ruff finding; lines are 1-based, columns 1-based as ruff reports them."""

    code: str
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    fixable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fixable": self.fixable,
        }


def parse_report(raw: str) -> list[Diagnostic]:
    """Diagnostics from ruff's ``--output-format=json`` text; `LintUnavailable` if malformed."""
    try:
        items = json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise LintUnavailable(f"ruff printed something that is not JSON: {raw[:200]!r}") from exc
    if not isinstance(items, list):
        raise LintUnavailable("ruff's JSON report is not a list")
    found: list[Diagnostic] = []
    for item in items:
        try:
            start, end = item["location"], item.get("end_location") or item["location"]
            found.append(
                Diagnostic(
                    code=str(item.get("code") or SYNTAX_CODE),
                    message=str(item.get("message", "")),
                    line=int(start["row"]),
                    column=int(start["column"]),
                    end_line=int(end["row"]),
                    end_column=int(end["column"]),
                    fixable=item.get("fix") is not None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LintUnavailable(f"unexpected item in ruff's report: {exc!r}") from exc
    found.sort(key=lambda d: (d.line, d.column, d.code))
    return found


@functools.cache
def _find_ruff() -> str:
    from ruff import find_ruff_bin  # type: ignore[import-untyped]  # the binary's locator

    return str(find_ruff_bin())


def ruff_binary() -> str:
    """The path of the ruff executable; `LintUnavailable` when ruff is not installed."""
    try:
        return _find_ruff()
    except (ImportError, FileNotFoundError) as exc:
        raise LintUnavailable(f"the ruff binary is not installed: {exc}") from exc


async def run_ruff(
    source: str, path: Path, *, cwd: Path, time_limit: float = 20.0
) -> list[Diagnostic]:
    """Lint ``source`` as if it were the file at ``path`` (absolute, inside ``cwd``).

    Raises `LintUnavailable` when ruff is missing, fails or times out.
    """
    args = [
        ruff_binary(),
        "check",
        "--output-format=json",
        "--no-cache",
        "--no-fix",
        "--exit-zero",
        "--stdin-filename",
        str(path),
        "-",
    ]
    try:
        result = await run_process(
            args, cwd=cwd, time_limit=time_limit, stdin=source.encode("utf-8"), max_output=4_000_000
        )
    except ProcessTimeout as exc:
        raise LintUnavailable(f"ruff timed out after {time_limit:g} s") from exc
    except OSError as exc:
        raise LintUnavailable(f"ruff could not be started: {exc}") from exc
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no error output"]
        logger.warning("ruff exited with %d: %s", result.returncode, detail[0])
        raise LintUnavailable(f"ruff failed (exit {result.returncode}): {detail[0]}")
    if result.truncated:
        raise LintUnavailable("ruff's report was too large")
    return parse_report(result.stdout)
