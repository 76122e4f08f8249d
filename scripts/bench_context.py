"""Benchmark: the context engine on a real large codebase, in process (no LSP).

Unpacks Django from its PyPI wheel (about 900 modules), samples call sites
inside functions, and for each assembles the pack for an "explain this line"
task (target chunk, definitions of the names it uses, class skeleton,
imports, callers and related tests) under a 3,000-token budget, counting in
gpt-4o's o200k encoding. Reports:

* assembly time: the first request after start (cold: jedi, the tokenizer and
  every cache empty), then p50/p95 over the other positions (warm process,
  each position visited for the first time), then the same positions again
  (repeat: the caches of the current file hit);
* prompt tokens against two baselines built in the same run: the whole
  current file plus every definition file in full (naive), and a 1,024-token
  window around the cursor (lsp-ai's approach);
* definition recall: of the workspace definitions jedi resolves (without a
  deadline) for the names the target uses, the share the pack contains
  (a piece whose `path:start-end` covers the definition's line);
* over-budget packs (must be zero), counting the rendered pack once more.

Run: `.venv/bin/python scripts/bench_context.py [--positions 200] [--budget 3000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import call_positions, machine, percentile, summary, wheel_project_for

from lsp_server.context.assembler import Assembler, ContextTask, TaskKind
from lsp_server.context.chunker import decode_source
from lsp_server.context.names import used_names
from lsp_server.context.pack import ContextPack
from lsp_server.context.symbols import Definition, SymbolIndex
from lsp_server.context.tokens import TokenCounter, counter_for_model

WINDOW_TOKENS = 1024


def _window_tokens(counter: TokenCounter, lines: list[str], line: int) -> int:
    """Tokens of the largest line window around ``line`` within WINDOW_TOKENS (lsp-ai)."""
    lo, hi, best = 0, len(lines), 0
    while lo <= hi:
        radius = (lo + hi) // 2
        text = "\n".join(lines[max(0, line - 1 - radius) : line + radius])
        tokens = counter.count(text)
        if tokens <= WINDOW_TOKENS:
            best, lo = tokens, radius + 1
        else:
            hi = radius - 1
    return best


async def _truth(
    index: SymbolIndex, asm: Assembler, path: Path, text: str, pack: ContextPack, line: int
) -> tuple[list[tuple[str, int]], set[Path]]:
    """Workspace definitions jedi resolves for the target's names, without a deadline."""
    display = asm.display_path(path)
    module = await asm.module(path, text)
    target = next(p for p in pack.pieces if p.role == "target") if pack.pieces else None
    region = (target.start_line, target.end_line) if target else (line, line)
    uses = used_names(module.lines, *region, module.facts.bound, limit=40)
    positions = [(u.line, u.column) for u in uses]
    found = await index.definitions_batch(text, path, positions, deadline=120.0, partial=False)
    truth: list[tuple[str, int]] = []
    files: set[Path] = set()
    for position in positions:
        for d in found.get(position, []):
            if not _counts(d):
                continue
            assert d.path is not None
            where = asm.display_path(d.path)
            if where == display and region[0] <= d.line <= region[1]:
                continue
            files.add(d.path)
            if (where, d.line) not in truth:
                truth.append((where, d.line))
    return truth, files


def _counts(d: Definition) -> bool:
    return d.path is not None and d.in_workspace and d.kind != "module" and d.path.suffix == ".py"


async def main_async(args: argparse.Namespace) -> None:
    root = wheel_project_for("django", args.django)
    files = len(list((root / "django").rglob("*.py")))
    positions = call_positions(root, "django", args.positions)
    texts = {p: decode_source(p.read_bytes()) for p, _, _ in positions}

    started = time.perf_counter()
    counter = await asyncio.to_thread(counter_for_model, "gpt-4o")
    index = SymbolIndex(root)
    asm = Assembler(index)
    packs: list[ContextPack] = []
    first_visit: list[float] = []
    warm_ms = 0.0
    for i, (path, line, _col) in enumerate(positions):
        if i == 1 and args.warm:  # what the engine does in the background after start
            t0 = time.perf_counter()
            await asm.warm(sorted((root / "django").rglob("*.py")))
            warm_ms = (time.perf_counter() - t0) * 1000
        task = ContextTask(
            TaskKind.EXPLAIN,
            texts[path],
            path,
            line + 1,
            line + 1,
            callers=args.callers,
            infer=not args.static_only,
        )
        t0 = time.perf_counter()
        pack = await asm.assemble(task, counter, args.budget, deadline=args.deadline)
        first_visit.append((time.perf_counter() - t0) * 1000)
        packs.append(pack)
    cold = first_visit[0]
    cold_total = (time.perf_counter() - started) * 1000 - sum(first_visit[1:]) - warm_ms
    repeat: list[float] = []
    for path, line, _col in positions:
        task = ContextTask(
            TaskKind.EXPLAIN,
            texts[path],
            path,
            line + 1,
            line + 1,
            callers=args.callers,
            infer=not args.static_only,
        )
        t0 = time.perf_counter()
        await asm.assemble(task, counter, args.budget, deadline=args.deadline)
        repeat.append((time.perf_counter() - t0) * 1000)
    index.close()

    truth_index = SymbolIndex(root)
    found = total = perfect = over = 0
    pack_tokens: list[int] = []
    naive_tokens: list[int] = []
    window_tokens: list[int] = []
    ratios: list[float] = []
    file_tokens: dict[Path, int] = {}
    for (path, line, _col), pack in zip(positions, packs, strict=True):
        rendered = counter.count(pack.render())
        over += rendered > args.budget
        truth, def_files = await _truth(truth_index, asm, path, texts[path], pack, line + 1)
        hit = sum(any(p.covers(where, ln) for p in pack.pieces) for where, ln in truth)
        found, total = found + hit, total + len(truth)
        perfect += hit == len(truth)
        for f in {path, *def_files}:
            if f not in file_tokens:
                text = texts.get(f) or decode_source(f.read_bytes())
                file_tokens[f] = counter.count(text)
        naive = sum(file_tokens[f] for f in {path, *def_files})
        pack_tokens.append(rendered)
        naive_tokens.append(naive)
        window_tokens.append(_window_tokens(counter, texts[path].split("\n"), line + 1))
        ratios.append(rendered / naive if naive else 0.0)
    truth_index.close()

    print(f"machine: {machine()}")
    print(
        f"project: Django {args.django} wheel, {files} .py files; {len(positions)} positions; "
        f"budget {args.budget} tokens (o200k, exact={counter.exact}); jedi deadline "
        f"{args.deadline:g} s; callers {'on' if args.callers else 'off'}; "
        f"{'import map only' if args.static_only else 'import map, then jedi'}"
    )
    print(f"cold (first request): {cold:.0f} ms (with tokenizer load: {cold_total:.0f} ms)")
    if args.warm:
        print(f"background chunking of the workspace: {warm_ms / 1000:.1f} s")
    print(f"warm, first visit:    {summary(first_visit[1:])}")
    print(f"warm, repeat:         {summary(repeat)}")
    print(
        f"tokens: pack median {statistics.median(pack_tokens):.0f} (max {max(pack_tokens)}); "
        f"naive median {statistics.median(naive_tokens):.0f}; "
        f"1,024-token window median {statistics.median(window_tokens):.0f}"
    )
    print(
        f"pack/naive: median {statistics.median(ratios):.1%}, p95 {percentile(ratios, 95):.1%}, "
        f"pooled {sum(pack_tokens) / sum(naive_tokens):.1%}"
    )
    print(
        f"definition recall: {found}/{total} = {found / max(total, 1):.1%} pooled; "
        f"{perfect}/{len(positions)} targets complete"
    )
    print(f"over budget: {over}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--deadline", type=float, default=1.0, help="jedi seconds per pack")
    parser.add_argument("--django", default="6.1.3")
    parser.add_argument(
        "--callers", action=argparse.BooleanOptionalAction, default=True, help="callers and tests"
    )
    parser.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="chunk the workspace after the first request, as the engine does in the background",
    )
    parser.add_argument(
        "--static-only", action="store_true", help="the import map only, no jedi for the rest"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
