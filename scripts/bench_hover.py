"""Benchmark: hover speed against jedi-language-server, and hovered-definition recall.

For each package (its PyPI wheel unpacked under ``.bench/``: Django and three of
other styles by default), `bench_grounding.cross_file_sites` picks called names
whose definition (jedi's go-to-definition) is in another file of the package.
Three servers hover the same sites, each started fresh with an empty cache and
each site hovered twice (first contact in the file order, then warm):

- ``jls``: jedi-language-server, installed by this script into its own venv
  under ``.bench/jls-venv`` (the peer, static hover only);
- ``offline``: ``llm-lsp serve`` with the AI part off (static facts only);
- ``ai``: ``llm-lsp serve`` with the project's fake provider answering at 0 ms.

Every server starts with empty caches (ours under ``LLM_LSP_CACHE_DIR``, the
peer's jedi parse cache under ``XDG_CACHE_HOME``). Measured at the client:
start (process start to initialize's reply), the first hover after start,
p50/p95 of first-contact hovers and of warm hovers. Each configuration runs
``--runs`` times (interleaved, so all see the same load); the figures are
medians over the runs. From the AI runs' prompts (as the fake provider received
them): recall (definition header, its first body lines and the call-site line
all in the prompt), wrong-symbol definitions, and the pack's tokens against
its budget.

Run: ``.venv/bin/python scripts/bench_hover.py [--sites 30] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import BENCH_DIR, machine, percentile, wheel_project_for
from bench_grounding import Site, cross_file_sites, judge

from lsp_server.context.tokens import counter_for_model
from lsp_server.testing import jedi_peer
from lsp_server.testing.fake_provider import FakeProvider, Step

PACKAGES = ("django==6.1.3", "itsdangerous==2.2.0", "httpx==0.28.1", "requests==2.32.3")
BUDGET = 2000  # hoverContextTokens' default
CONFIGS = ("jls", "offline", "ai")
HOVER_LIMIT = 60.0  # seconds a hover (or start, or shutdown) may take before the bench moves on
START_ATTEMPTS = 3  # a server that does not answer initialize is started afresh


@dataclass
class Run:
    """One server's session over a package's sites."""

    start: float
    first: float
    contact: list[float]
    warm: list[float]
    prompts: list[str | None] = field(default_factory=list)


def jls_command() -> list[str]:
    """jedi-language-server in its own venv under .bench/ (installed on first use)."""
    return jedi_peer.jls_command(BENCH_DIR / "jls-venv")


async def _session(
    command: list[str],
    env: dict[str, str],
    root: Path,
    sites: list[Site],
    options: dict[str, object] | None,
    fake: FakeProvider | None,
) -> Run:
    for attempt in range(1, START_ATTEMPTS + 1):
        client = LanguageClient("bench", "0")
        started = time.perf_counter()
        await client.start_io(*command, env=env)
        drain = _drain(client)  # kept until the session ends
        client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda _params: None)
        initialize = client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(root.as_uri(), root.name)],
                initialization_options=options,
            )
        )
        try:  # (a server that does not answer is started afresh)
            await asyncio.wait_for(initialize, HOVER_LIMIT)
            break
        except TimeoutError:
            print(f"  {command[-1]}: no answer to initialize in {HOVER_LIMIT:g} s ({attempt})")
            await _kill(client)
    else:
        raise RuntimeError(f"{command[-1]} did not start in {START_ATTEMPTS} attempts")
    start = (time.perf_counter() - started) * 1000
    client.initialized(types.InitializedParams())
    opened: set[str] = set()
    times: list[float] = []
    prompts: list[str | None] = []
    for site in [*sites, *sites]:
        path = root / site.file
        if site.file not in opened:
            item = types.TextDocumentItem(path.as_uri(), "python", 1, path.read_text("utf-8"))
            client.text_document_did_open(types.DidOpenTextDocumentParams(item))
            opened.add(site.file)
        before = len(fake.requests) if fake is not None else 0
        t0 = time.perf_counter()
        hover = client.text_document_hover_async(
            types.HoverParams(
                types.TextDocumentIdentifier(path.as_uri()),
                types.Position(site.line, site.column),
            )
        )
        try:  # a server stuck on one hover counts it at the limit and goes on
            await asyncio.wait_for(hover, HOVER_LIMIT)
        except TimeoutError:
            print(f"  {command[-1]}: no hover within {HOVER_LIMIT:g} s at {site.file}:{site.line}")
        times.append((time.perf_counter() - t0) * 1000)
        if fake is not None and len(prompts) < len(sites):
            new = fake.requests[before:]
            prompts.append(str(new[-1].messages[-1]["content"]) if new else None)
    try:
        await asyncio.wait_for(client.shutdown_async(None), HOVER_LIMIT)
        client.exit(None)
    except TimeoutError:
        print(f"  {command[-1]}: no answer to shutdown; stopped")
        await _kill(client)
    try:
        await asyncio.wait_for(client.stop(), HOVER_LIMIT)
    except TimeoutError:
        print(f"  {command[-1]}: did not exit; killed")
        await _kill(client)
    if drain is not None:
        drain.cancel()
    n = len(sites)
    return Run(start, times[0], times[1:n], times[n:], prompts)


def _drain(client: LanguageClient) -> asyncio.Task[None] | None:
    """Read the server's stderr and drop it: pygls pipes it and never reads it, so a server
    that logs much (jedi-language-server reports each failed notification) fills the
    pipe and blocks in its logging call, at initialize or at exit (the "hangs" of the
    earlier runs)."""
    process = client._server  # pygls keeps the process here
    stream = process.stderr if process is not None else None
    if stream is None:
        return None

    async def run() -> None:
        while await stream.read(65536):
            pass

    return asyncio.ensure_future(run())


async def _kill(client: LanguageClient) -> None:
    """End a stuck server (`LanguageClient.stop` waits for the process to exit)."""
    process = client._server  # pygls keeps the process here
    if process is not None and process.returncode is None:
        process.kill()
    await client.stop()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _row(label: str, runs: list[Run]) -> str:
    def m(pick: object) -> float:
        return _median([pick(r) for r in runs])  # type: ignore[operator]

    return (
        f"| {label} | {m(lambda r: r.start):.0f} | {m(lambda r: r.first):.0f} "
        f"| {m(lambda r: _median(r.contact)):.0f} | {m(lambda r: percentile(r.contact, 95)):.0f} "
        f"| {m(lambda r: _median(r.warm)):.0f} | {m(lambda r: percentile(r.warm, 95)):.0f} |"
    )


def _ratio(a: list[Run], b: list[Run], pick: object) -> float:
    return _median([pick(r) for r in a]) / _median([pick(r) for r in b])  # type: ignore[operator]


async def main_async(args: argparse.Namespace) -> None:
    counter = counter_for_model("gpt-4o", BENCH_DIR / "tiktoken")
    state = Path(tempfile.mkdtemp(prefix="llm-lsp-bench-"))
    jls = jls_command() if "jls" in args.configs else []
    ours = [sys.executable, "-m", "lsp_server", "--log-level", "WARNING", "serve"]
    print(f"machine: {machine()} (shared with other work: compare ratios within one run)")
    with FakeProvider(default=Step(text="A short explanation.", usage=(900, 60))) as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
        env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake.base_url)
        for spec in args.packages:
            name, version = spec.split("==")
            root = wheel_project_for(name, version)
            sites = cross_file_sites(root, name, args.sites)
            results: dict[str, list[Run]] = {c: [] for c in args.configs}
            for i in range(args.runs):
                for config in args.configs:
                    cache = state / f"{name}-{config}-{i}"
                    run_env = {
                        **env,
                        "LLM_LSP_CACHE_DIR": str(cache),
                        "LLM_LSP_USAGE_LOG": str(cache / "usage.jsonl"),
                        # jedi's parse cache (~/.cache/jedi for the peer) starts empty for
                        # every server, as ours does under LLM_LSP_CACHE_DIR
                        "XDG_CACHE_HOME": str(cache / "xdg"),
                        # the whole AI hover, as the issue measures it (and each prompt
                        # judged with its hover): no answering past hoverWait
                        "LLM_LSP_HOVER_WAIT": "600",
                    }
                    command = jls if config == "jls" else ours
                    options = None if config == "jls" else {"llmLsp": {"aiHover": config == "ai"}}
                    spy = fake if config == "ai" else None
                    run = await _session(command, run_env, root, sites, options, spy)
                    results[config].append(run)
            _report(f"{name} {version}", sites, results, counter)


def _report(title: str, sites: list[Site], results: dict[str, list[Run]], counter: object) -> None:
    n = len(sites)
    print(f"\n### {title}: {n} cross-file call sites, each hovered twice (medians of runs)\n")
    print("| | start ms | first hover after start | first contact p50 | p95 | warm p50 | p95 |")
    print("|---|---|---|---|---|---|---|")
    for config, runs in results.items():
        print(_row(config, runs))
    if "jls" in results and "ai" in results and "offline" in results:
        ai, off, jls = results["ai"], results["offline"], results["jls"]

        def p50(r: Run) -> float:
            return _median(r.contact)

        def p95(r: Run) -> float:
            return percentile(r.contact, 95)

        print(
            f"\nAI/jls first contact p50 {_ratio(ai, jls, p50):.2f}x, "
            f"p95 {_ratio(ai, jls, p95):.2f}x; offline/jls p50 {_ratio(off, jls, p50):.2f}x; "
            f"first after start AI/jls {_ratio(ai, jls, lambda r: r.first):.2f}x; "
            f"AI overhead over offline p50 "
            f"{_median([p50(r) for r in ai]) - _median([p50(r) for r in off]):.0f} ms"
        )
    if "ai" in results:
        recalled = wrong = over = judged = missing = 0
        misses: list[str] = []
        for run in results["ai"]:
            for site, prompt in zip(sites, run.prompts, strict=False):
                if prompt is None:
                    missing += 1
                    continue
                verdict = judge(site, prompt)
                judged += 1
                recalled += verdict.recalled
                wrong += verdict.wrong_symbol
                over += counter.count(verdict.pack) > BUDGET  # type: ignore[attr-defined]
                if not verdict.recalled and len(misses) < 5:
                    misses.append(f"{site.file}:{site.line + 1} {site.name}")
        share = 100 * recalled / judged if judged else float("nan")
        print(
            f"\nrecall {recalled}/{judged} ({share:.1f} %), wrong-symbol definitions {wrong}, "
            f"packs over {BUDGET} tokens {over}, hovers without a provider call {missing}"
        )
        for miss in misses:
            print(f"  missed: {miss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
