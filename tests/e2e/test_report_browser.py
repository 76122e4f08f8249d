"""The `llm-lsp report` page in a real headless Chromium (Debian's, driven by Playwright).

The page must load from a file with the network closed, without console errors, and
every chart must be drawn (an SVG with marks in it). A screenshot is kept under the
test's tmp dir and copied to ``artifacts/report.png`` (ignored by git).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from tests.services import CHROMIUM, CHROMIUM_ARGS
from tests.usage_samples import write_sample_log

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHARTS = {
    "Cost per day (USD)",
    "Cost per model (USD)",
    "Cost per feature (USD)",
    "Latency per tier (ms)",
    "Cache hit rate",
    "Fallbacks and breaker openings per day",
}


def test_report_renders_every_chart_offline_in_chromium(tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    write_sample_log(log, days=4)
    out = tmp_path / "report.html"
    command = ["report", "--since", "7d", "--out", str(out), "--usage-log", str(log)]
    made = subprocess.run(
        [sys.executable, "-m", "lsp_server", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "24 requests, 28 provider attempts" in made.stdout

    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: None if r.url.startswith("file:") else outside.append(r.url),
            )
            page.goto(out.as_uri(), wait_until="load")
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('.chart')].map(c => {
                    const svg = c.querySelector('svg');
                    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                    const marks = svg ? svg.querySelectorAll(
                        '.rect, .slice, .line, .dot, .reactive').length : 0;
                    return [c.dataset.chart, box.width, box.height, marks];
                })"""
            )
            # A link in the top-ten table opens that request's breakdown.
            page.click("table a >> nth=0")
            # (the page's script opens it on the hash change: wait for it, on a busy machine
            # evaluating at once raced it)
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_selector("details[open]", timeout=10_000)
            opened = page.evaluate("() => document.querySelectorAll('details[open]').length")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")

    assert errors == [] and outside == []
    assert {name for name, *_ in drawn} == CHARTS
    for name, width, height, marks in drawn:
        assert width > 200 and height > 100, name
        assert marks > 0, f"{name}: nothing drawn"
    assert opened == 1
