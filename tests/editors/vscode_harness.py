"""code-server with the built extension, driven by Playwright: the VS Code editor tests' harness.

`scripts/install-editors` installs code-server (VS Code 1.139 in a browser) and the
extension's npm packages under `.cache/editors/`; `build_vsix` type-checks, lints,
unit-tests and packages the extension into a `.vsix`; `CodeServer` runs code-server on
127.0.0.1 (`--auth none`) with a private user-data and extensions directory, the `.vsix`
installed and the user settings given, the server started from this repository
(`llmLsp.serverCommand` = this interpreter `-m lsp_server`) and pointed at the fake
provider by the environment; `Workbench` is the few gestures the tests make.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page
from playwright.sync_api import expect as pw_expect

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
EDITORS = ROOT / ".cache" / "editors"
EXTENSION = ROOT / "editors" / "vscode"
CODE_SERVER = EDITORS / "code-server" / "node_modules" / ".bin" / "code-server"
#: Screenshots of each step, kept after the run (ignored by git).
ARTIFACTS = Path(os.environ.get("LLM_LSP_ARTIFACTS", ROOT / ".cache" / "artifacts")) / "vscode"


def node_env() -> dict[str, str]:
    """The environment with Node 24 (the venv's wheel) and the system npm first on PATH."""
    shims = EDITORS / "bin"
    if not (shims / "node").exists() or not CODE_SERVER.exists():
        raise RuntimeError("code-server is not installed: run scripts/install-editors")
    env = dict(os.environ)
    env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
    return env


def _npm(args: list[str], timeout: float) -> None:
    result = subprocess.run(
        ["npm", *args],
        cwd=EXTENSION,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = f"{result.stdout}\n{result.stderr}"[-3000:]
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{output}"


def build_vsix(out: Path) -> Path:
    """Type-check, lint, unit-test and package the extension; the `.vsix` path."""
    _npm(["run", "typecheck"], 180)
    _npm(["run", "lint"], 300)
    _npm(["test"], 180)
    target = out / "llm-lsp.vsix"
    _npm(
        [
            "exec",
            "--",
            "vsce",
            "package",
            "--no-dependencies",
            "--skip-license",
            "--out",
            str(target),
        ],
        300,
    )
    return target


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"code-server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"code-server did not answer {url} within {timeout} s")


@contextmanager
def code_server(
    tmp: Path, vsix: Path, settings: dict[str, Any], env: dict[str, str]
) -> Iterator[str]:
    """code-server on a free loopback port with the extension installed; yields its URL."""
    user_data, extensions = tmp / "user-data", tmp / "extensions"
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
    # machine-scoped settings (llmLsp.serverCommand) where a remote window reads them too
    (user_data / "Machine").mkdir(mode=0o700)
    machine = {k: v for k, v in settings.items() if k.startswith("llmLsp.")}
    (user_data / "Machine" / "settings.json").write_text(json.dumps(machine, indent=2))
    config = tmp / "code-server.yaml"
    config.write_text("")  # not the user's ~/.config/code-server/config.yaml
    base = [
        str(CODE_SERVER),
        "--config",
        str(config),
        "--user-data-dir",
        str(user_data),
        "--extensions-dir",
        str(extensions),
    ]
    full_env = {**node_env(), **env}
    full_env["PATH"] = f"{EDITORS / 'bin'}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"
    installed = subprocess.run(
        [*base, "--install-extension", str(vsix)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert installed.returncode == 0, (installed.stdout + installed.stderr)[-3000:]
    port = free_port()
    log = (tmp / "code-server.log").open("wb")
    process = subprocess.Popen(
        [
            *base,
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-getting-started-override",
            "--ignore-last-opened",
        ],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/healthz", process, 120)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
        log.close()


def user_settings(log_file: Path, *, trust: bool) -> dict[str, Any]:
    """VS Code user settings: quiet workbench, the repository's server, trust on or off."""
    return {
        "llmLsp.serverCommand": [
            sys.executable,
            "-P",
            "-m",
            "lsp_server",
            "--log-file",
            str(log_file),
            "serve",
        ],
        "security.workspace.trust.enabled": trust,
        "security.workspace.trust.startupPrompt": "never",
        "security.workspace.trust.banner": "always",
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.enableExperiments": False,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "extensions.ignoreRecommendations": True,
        "update.mode": "none",
        "chat.disableAIFeatures": True,
        "editor.hover.enabled": False,  # only the tests' own "Show or Focus Hover" asks
        "editor.minimap.enabled": False,
        "files.autoSave": "off",
        "git.enabled": False,
    }


class Workbench:
    """The gestures of a user in the VS Code workbench."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def open(self, url: str, folder: Path) -> None:
        self.page.goto(f"{url}/?folder={folder}", timeout=180_000)
        self.page.locator(".monaco-workbench").wait_for(timeout=120_000)
        self.page.locator(".explorer-folders-view, .explorer-viewlet").first.wait_for(
            timeout=120_000
        )

    def screenshot(self, step: str) -> Path:
        path = ARTIFACTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path))
        return path

    def open_file(self, *parts: str) -> None:
        """Open a file through the Explorer (no file search: code-server's ripgrep is optional)."""
        for part in parts[:-1]:
            row = self.tree_item(part)
            if row.get_attribute("aria-expanded") != "true":
                row.click()
        self.tree_item(parts[-1]).dblclick()
        tab = self.page.locator(".tabs-container .tab", has_text=parts[-1])
        tab.first.wait_for(timeout=60_000)
        self.editor_line("").first.wait_for(timeout=60_000)

    def wait_for_extension(self, timeout: float = 240_000) -> None:
        """Wait until the extension shows its status-bar item (it is active)."""
        item = self.page.locator("#llmLsp\\.status, .statusbar-item", has_text="llm-lsp")
        item.first.wait_for(timeout=timeout)

    def tree_item(self, label: str) -> Locator:
        row = self.page.get_by_role("treeitem", name=label, exact=True)
        row.first.wait_for(timeout=60_000)
        return row.first

    def editor_line(self, text: str) -> Locator:
        return self.page.locator(".editor-instance .view-line", has_text=text)

    def command(self, title: str) -> None:
        """Run a command from the command palette by its title."""
        self.page.keyboard.press("F1")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(timeout=30_000)
        box.fill(f">{title}")
        row = self.palette_row(title)
        row.wait_for(timeout=30_000)
        row.click()
        self.page.mouse.move(0, 0)  # park the pointer

    def palette_rows(self, title: str) -> Locator:
        return self.page.locator(".quick-input-widget .monaco-list-row", has_text=title)

    def palette_row(self, title: str) -> Locator:
        return self.palette_rows(title).first

    def palette_titles(self, query: str) -> list[str]:
        """The titles the palette lists for ``query`` (then closes it)."""
        self.page.keyboard.press("F1")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(timeout=30_000)
        box.fill(f">{query}")
        self.page.wait_for_timeout(1_000)  # the palette filters as one types; let it settle
        titles = self.page.locator(
            ".quick-input-widget .monaco-list-row .label-name"
        ).all_inner_texts()
        self.page.keyboard.press("Escape")
        return titles

    def go_to(self, line: int, column: int) -> None:
        self.page.keyboard.press("Control+G")
        box = self.page.locator(".quick-input-widget input")
        box.wait_for(timeout=30_000)
        box.fill(f":{line}:{column}")
        self.page.keyboard.press("Enter")

    def hover_until(self, line: int, column: int, text: str, timeout: float = 150.0) -> Locator:
        """Show the hover at line:column until it holds ``text`` (the server may still be
        starting, or answer with static facts only while jedi warms up)."""
        deadline = time.monotonic() + timeout
        hover = self.page.locator(".monaco-hover", has_text=text)
        while True:
            self.go_to(line, column)
            self.command("Show or Focus Hover")
            try:
                hover.first.wait_for(state="visible", timeout=10_000)
                return hover.first
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.page.keyboard.press("Escape")

    def expect_line(self, text: str, timeout: float = 120_000) -> None:
        pw_expect(self.editor_line(text).first).to_be_visible(timeout=timeout)
