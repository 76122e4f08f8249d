"""Benchmark: server-side overhead of an AI hover, excluding provider time.

Starts the real `llm-lsp serve` over stdio against the project's fake
provider answering with no delay, opens files of a real project (Django,
unpacked from its PyPI wheel) and hovers 200 sampled call sites. Measures,
at the client: the first hover after start (cold), then p50/p95 of warm
hovers; as a baseline in the same run, the same positions with the AI part
turned off (static facts only, `aiHover: false`); and the server's RSS.

Run: `.venv/bin/python scripts/bench_hover.py [--positions 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import call_positions, machine, rss_mb, summary, wheel_project_for

from lsp_server.testing.fake_provider import FakeProvider, Step


def _children_rss(pid: int) -> float:
    """RSS of the server's descendants (jedi's worker and environment processes) in MiB."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child)) + _children_rss(int(child))
    return total


async def _session(
    root: Path, env: dict[str, str], positions: list[tuple[Path, int, int]], ai: bool
) -> tuple[float, list[float], tuple[float, float], int]:
    client = LanguageClient("bench", "0")
    await client.start_io(
        sys.executable, "-m", "lsp_server", "--log-level", "WARNING", "serve", env=env
    )
    pid = client._server.pid if client._server else 0
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=root.as_uri(),
            initialization_options={"llmLsp": {"aiHover": ai}},
        )
    )
    client.initialized(types.InitializedParams())
    opened: set[Path] = set()
    times: list[float] = []
    answered = 0
    first = 0.0
    # Pass 1 meets each file for the first time; pass 2 hovers the same positions again.
    for i, (path, line, col) in enumerate([*positions, *positions]):
        if path not in opened:
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    types.TextDocumentItem(path.as_uri(), "python", 1, path.read_text("utf-8"))
                )
            )
            opened.add(path)
        started = time.perf_counter()
        hover = await client.text_document_hover_async(
            types.HoverParams(
                types.TextDocumentIdentifier(path.as_uri()), types.Position(line, col)
            )
        )
        elapsed = (time.perf_counter() - started) * 1000
        if hover is not None and i >= len(positions):
            answered += 1
        if i == 0:
            first = elapsed
        else:
            times.append(elapsed)
    rss = (rss_mb(pid), _children_rss(pid))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return first, times, rss, answered


def _report(
    label: str, result: tuple[float, list[float], tuple[float, float], int], n: int
) -> None:
    first, times, (rss, child_rss), answered = result
    print(
        f"{label}: first hover after start {first:.0f} ms; RSS server {rss:.0f} MiB "
        f"+ children {child_rss:.0f} MiB; {answered} answered"
    )
    print(f"  first hover in each file: {summary(times[: n - 1])}")
    print(f"  warm (same positions):    {summary(times[n - 1 :])}")


async def main_async(args: argparse.Namespace) -> None:
    root = wheel_project_for("django", args.django)
    files = len(list((root / "django").rglob("*.py")))
    positions = call_positions(root, "django", args.positions)
    state = Path(tempfile.mkdtemp(prefix="llm-lsp-bench-"))
    with FakeProvider(default=Step(text="A short explanation.", usage=(900, 60))) as fake:
        env = dict(os.environ)
        env.update(
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=fake.base_url,
            LLM_LSP_USAGE_LOG=str(state / "usage.jsonl"),
        )
        # Each configuration starts with its own empty cache directory (jedi's parse
        # cache lives there): both meet the project for the first time, as a user does.
        static = await _session(
            root, {**env, "LLM_LSP_CACHE_DIR": str(state / "s")}, positions, False
        )
        ai = await _session(root, {**env, "LLM_LSP_CACHE_DIR": str(state / "a")}, positions, True)
        provider_calls = len(fake.requests)
    n = len(positions)
    print(f"machine: {machine()}")
    print(
        f"project: Django {args.django} wheel, {files} .py files; {n} positions, each hovered twice"
    )
    _report("static only (baseline)", static, n)
    _report("AI hover (fake provider, 0 ms)", ai, n)
    print(f"provider calls: {provider_calls}")
    for name, lo, hi in (("first-in-file", 0, n - 1), ("warm", n - 1, None)):
        ratio = statistics.median(ai[1][lo:hi]) / statistics.median(static[1][lo:hi])
        print(f"AI/static median ratio, {name}: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--django", default="6.1.3")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
