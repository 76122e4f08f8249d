"""Secrets are never read: every secret pattern, through the tools the model calls.

The names come from two places: a fixed floor of today's secret files (so a
pattern dropped from the list is noticed), and one concrete file name generated
from every pattern of the live list (so the test keeps covering the list as it
grows). Each file holds a sentinel; the model must get ``forbidden`` for it from
``read_file``, and must not see it listed by ``list_files``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_server.agent.execution import ExecutionContext
from lsp_server.agent.registry import ToolRegistry
from lsp_server.agent.tools import build_tools
from lsp_server.agent.workspace import Workspace
from lsp_server.llm.types import ToolCall
from lsp_server.workspace import WorkspaceBoundary
from lsp_server.workspace.rules import SECRET_DIR_PAIRS, SECRET_DIRS, SECRET_FILES

#: Secret files as of today's list; never to become readable.
FLOOR = (
    ".env",
    ".env.local",
    ".env.production",
    "deploy/server.pem",
    "certs/private.key",
    ".netrc",
    ".pypirc",
    "id_rsa",
    "id_rsa.pub",
    "keys/id_ed25519",
    "id_ed25519.pub",
    ".git/config",
    ".hg/hgrc",
    ".svn/entries",
    "vendor/lib/.git/HEAD",
)


def concrete_name(pattern: str) -> str:
    """One file name that ``pattern`` (an fnmatch pattern) matches."""
    out = []
    for part in re.findall(r"\[!?[^\]]*\]|\*|\?|[^[*?]+", pattern):
        if part == "*":
            out.append("x1")
        elif part == "?":
            out.append("x")
        elif part.startswith("[!"):
            out.append(next(c for c in "xyz019_" if c not in part[2:-1]))
        elif part.startswith("["):
            out.append(part[1])
        else:
            out.append(part)
    name = "".join(out)
    assert fnmatch.fnmatchcase(name, pattern), (name, pattern)
    return name


def secret_paths() -> list[str]:
    """The floor, plus a concrete name per file pattern and a file inside each secret dir."""
    generated = [concrete_name(p) for p in SECRET_FILES]
    generated += [f"{d}/config" for d in sorted(SECRET_DIRS)]
    generated += [f"sub/dir/{concrete_name(p)}" for p in SECRET_FILES]
    generated += [f"{a}/{b}/hosts.yml" for a, b in sorted(SECRET_DIR_PAIRS)]
    # The rules are case-insensitive (``.ENV``, ``ID_RSA`` on a case-insensitive disk).
    generated += [concrete_name(p).upper() for p in SECRET_FILES]
    return list(dict.fromkeys([*FLOOR, *generated]))


def test_every_pattern_of_the_list_gets_a_name() -> None:
    names = secret_paths()
    for pattern in SECRET_FILES:
        assert any(fnmatch.fnmatchcase(Path(n).name, pattern) for n in names), pattern
    for directory in SECRET_DIRS:
        assert any(directory in Path(n).parts for n in names), directory


@pytest.fixture
def tools(workspace: Path) -> Iterator[ToolRegistry]:
    registry = build_tools(Workspace(WorkspaceBoundary(workspace)))
    yield registry
    registry.close()


async def _call(registry: ToolRegistry, name: str, args: dict[str, Any]) -> dict[str, Any]:
    text = await registry.dispatch(ToolCall("c1", name, json.dumps(args)), ExecutionContext())
    result: dict[str, Any] = json.loads(text)
    return result


def _plant(root: Path, rel: str) -> str:
    sentinel = f"SENTINEL-{rel}-sk-live-0123456789"
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"API_KEY={sentinel}\n")
    return sentinel


@pytest.mark.parametrize("rel", secret_paths())
async def test_secret_file_is_never_read_nor_listed(
    tools: ToolRegistry, workspace: Path, rel: str
) -> None:
    sentinel = _plant(workspace, rel)
    result = await _call(tools, "read_file", {"path": rel})
    assert result["error"]["type"] == "forbidden", result
    assert sentinel not in json.dumps(result)
    listed = await _call(tools, "list_files", {"pattern": "**/*"})
    assert rel not in json.dumps(listed)
    assert "shop/basket.py" in json.dumps(listed)  # the listing itself works
