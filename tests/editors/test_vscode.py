"""The VS Code extension in a real VS Code (code-server 4.139.1 = VS Code 1.139).

The built `.vsix` is installed into code-server, which opens a copy of the sample
project in headless Chromium (Playwright); the extension starts the server from this
repository, pointed at the fake provider. A user hovers a name and reads the fake's
answer, runs Explain from the command palette and reads the document opened beside,
runs Fix and sees the edited buffer; in Restricted Mode Fix is gone and the server is
told the workspace is untrusted. Screenshots of each step are kept under
`.cache/artifacts/vscode/` (or `$LLM_LSP_ARTIFACTS/vscode/`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from lsp_server.settings import SPECS
from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, copy_project
from tests.editors.vscode_harness import Workbench, build_vsix, code_server, user_settings
from tests.services import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
HOVER_ANSWER = "The fake provider says apply_discount takes the percentage off the total."
EXPLAIN_ANSWER = "The fake provider explains: total adds VAT to the subtotal, then discounts it."
GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension, type-checked, linted, unit-tested and packaged by the test run."""
    return build_vsix(tmp_path_factory.mktemp("vsix"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _server_env(tmp: Path, fake: FakeProvider) -> dict[str, str]:
    """code-server's environment, inherited by the extension host and so by the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_BASE_URL": fake.base_url,
            "LLM_LSP_CACHE_DIR": str(tmp / "cache"),
            "LLM_LSP_USAGE_LOG": str(tmp / "usage.jsonl"),
            "LLM_LSP_LOG_LEVEL": "DEBUG",
            "LLM_LSP_HOVER_WAIT": "600",  # the hover tests expect the explanation in the hover
        }
    )
    return env


def _propose_fix() -> dict[str, Any]:
    return {
        "name": "propose_fix",
        "arguments": {
            "path": "shop/stats.py",
            "start_line": 6,
            "end_line": 6,
            "replacement": GOOD_FIX,
            "explanation": "Return 0.0 for an empty list instead of dividing by zero.",
        },
    }


def test_hover_explain_and_fix_in_vscode(
    vsix: Path, browser: Browser, fake: FakeProvider, tmp_path: Path
) -> None:
    workspace = copy_project(tmp_path)
    server_log = tmp_path / "server.log"
    settings = user_settings(server_log, trust=False)  # trust off: every folder is trusted
    fake.set_default(Step(text=HOVER_ANSWER))
    with code_server(tmp_path, vsix, settings, _server_env(tmp_path, fake)) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        bench = Workbench(page, "trusted")
        try:
            bench.open(url, workspace)
            bench.open_file("shop", "basket.py")
            bench.wait_for_extension()
            # hover `apply_discount` in `return apply_discount(with_vat, discount)`
            hover = bench.hover_until(19, 20, "fake provider says")
            assert "apply_discount takes the percentage off the total" in hover.inner_text()
            bench.screenshot("1-hover")
            page.keyboard.press("Escape")

            fake.reset()
            fake.set_default(Step(text=EXPLAIN_ANSWER))
            bench.go_to(17, 9)
            bench.command("llm-lsp: Explain")
            bench.expect_line("The fake provider explains")
            groups = page.locator(".editor-group-container")
            assert groups.count() == 2, "the explanation opens beside the code"
            bench.screenshot("2-explain")

            fake.reset()
            fake.script(Step(tool_calls=[_propose_fix()]))
            bench.open_file("shop", "stats.py")
            bench.go_to(6, 5)
            bench.command("llm-lsp: Fix")
            bench.expect_line("if not values:")
            bench.expect_line("return 0.0")
            bench.screenshot("3-fix")
            # the edit is in the buffer, unsaved: the file on disk is the user's to save
            assert "if not values" not in (workspace / "shop" / "stats.py").read_text()
        except Exception:
            bench.screenshot("failure")
            raise
        finally:
            page.close()
    log = server_log.read_text()
    assert TEST_KEY not in log
    assert "(trusted workspace: True)" in log


def test_restricted_mode_turns_fix_off_and_tells_the_server(
    vsix: Path, browser: Browser, fake: FakeProvider, tmp_path: Path
) -> None:
    workspace = copy_project(tmp_path)
    server_log = tmp_path / "server.log"
    settings = user_settings(server_log, trust=True)  # a fresh folder is not trusted
    settings["llmLsp.runTests"] = True  # the user's own choice, yet off while untrusted
    fake.set_default(Step(text=HOVER_ANSWER))
    with code_server(tmp_path, vsix, settings, _server_env(tmp_path, fake)) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        bench = Workbench(page, "untrusted")
        try:
            bench.open(url, workspace)
            page.get_by_text("Restricted Mode").first.wait_for(timeout=60_000)
            bench.open_file("shop", "basket.py")
            bench.wait_for_extension()
            # the server runs: hover and Explain still work in Restricted Mode
            bench.hover_until(19, 20, "fake provider says")
            page.keyboard.press("Escape")
            titles = bench.palette_titles("llm-lsp:")
            assert "llm-lsp: Explain" in titles, titles
            assert "llm-lsp: Fix" not in titles, titles
            bench.screenshot("1-restricted")
        except Exception:
            bench.screenshot("failure")
            raise
        finally:
            page.close()
    log = server_log.read_text()
    assert "(trusted workspace: False)" in log
    assert "'agent.run_tests': 'False'" in log


SLOW_ANSWER = "The fake provider took 2 s to say apply_discount caps the percentage at 100."
SERVER_SIDE = "hoverWait" in {spec.declaration.key for spec in SPECS}


@pytest.mark.skipif(not SERVER_SIDE, reason="needs the server side of issue 16 (hoverWait)")
def test_the_hover_shows_the_explanation_when_it_is_ready(
    vsix: Path, browser: Browser, fake: FakeProvider, tmp_path: Path
) -> None:
    """Issue 16: the hover answers before the model with static facts and a note; when the
    explanation is ready the extension asks VS Code to show the hover again, without a
    gesture, and the server answers it from its cache (no second provider call)."""
    workspace = copy_project(tmp_path)
    settings = user_settings(tmp_path / "server.log", trust=False)
    fake.set_default(Step(text=SLOW_ANSWER, delay=2.0))
    env = {**_server_env(tmp_path, fake), "LLM_LSP_HOVER_WAIT": "0.5"}
    with code_server(tmp_path, vsix, settings, env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        bench = Workbench(page, "hover-ready")
        try:
            bench.open(url, workspace)
            bench.open_file("shop", "basket.py")
            bench.wait_for_extension()
            # warm the server on another name (its first hovers may come before jedi is up)
            bench.hover_until(6, 8, "Basket")
            page.keyboard.press("Escape")
            noted = bench.hover_until(19, 20, "on its way")
            assert SLOW_ANSWER not in noted.inner_text()
            calls = len(fake.requests)  # apply_discount's call is in flight behind the note
            bench.screenshot("1-noted")
            # no gesture: the explanation replaces the note in the hover
            explained = page.locator(".monaco-hover", has_text=SLOW_ANSWER)
            explained.first.wait_for(state="visible", timeout=60_000)
            assert "on its way" not in explained.first.inner_text()
            bench.screenshot("2-explained")
        except Exception:
            bench.screenshot("failure")
            raise
        finally:
            page.close()
    assert len(fake.requests) == calls, "the hover shown again is answered from the cache"
