"""Benchmark: callers from the identifier index against jedi's project-wide references.

On Django (from its PyPI wheel) it samples call sites inside functions and,
for the function enclosing each, measures in one process:

* the background warm-up (`Assembler.warm_workspace`: chunk + index every
  file), its time, the longest event-loop stall a 10 ms heartbeat saw while it
  ran, and the process RSS before and after;
* explain-pack assembly with callers on (3,000 tokens, 1 s jedi deadline),
  warm p50/p95, for the same positions through two assemblers, interleaved:
  one whose index is not built (callers from jedi, as before) and one whose
  index is built (callers from the index);
* the callers lookup alone: jedi (1 s deadline; how many ran out of time)
  and the index;
* precision and recall of the index's call sites against jedi's references
  (asked without a practical deadline) on a sample: all sites, and the ones
  a pack shows (the first 3 callers and 2 tests). Jedi's references include
  uses that are not calls (imports, a function passed as a value); recall is
  given over all of them and over the call-like ones (name followed by ``(``
  or used as a decorator).

Run: `.venv/bin/python scripts/bench_callers.py [--positions 100] [--truth 60] [--static]`
(``--static``: definitions from the import map only, as in `bench_context.py --static-only`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import call_positions, machine, rss_mb, summary, wheel_project_for

from lsp_server.context.index.callers import def_name
from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.pack.assembler import (
    MAX_CALLERS,
    MAX_TESTS,
    Assembler,
    ContextTask,
    TaskKind,
)
from lsp_server.context.pack.snippets import is_test_path
from lsp_server.context.source.chunker import Chunk, decode_source
from lsp_server.context.tokens import counter_for_model
from lsp_server.workspace import WorkspaceBoundary


async def _heartbeat(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        gaps.append((now - last - 0.01) * 1000)
        last = now


def _call_like(text: str, column: int, name: str) -> bool:
    after = text[column + len(name) :].lstrip()
    return after.startswith("(") or text[:column].lstrip().startswith("@")


async def main_async(args: argparse.Namespace) -> None:
    root = wheel_project_for("django", args.django)
    positions = call_positions(root, "django", args.positions)
    texts = {p: decode_source(p.read_bytes()) for p, _, _ in positions}
    counter = await asyncio.to_thread(counter_for_model, "gpt-4o")

    jedi_index, word_index = (
        SymbolIndex(WorkspaceBoundary(root)),
        SymbolIndex(WorkspaceBoundary(root)),
    )
    by_jedi, by_index = Assembler(jedi_index), Assembler(word_index)
    rss_before = rss_mb(os.getpid())
    gaps: list[float] = []
    stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(gaps, stop))
    t0 = time.perf_counter()
    files = await by_index.warm_workspace()
    warm_s = time.perf_counter() - t0
    stop.set()
    await beat
    rss_after = rss_mb(os.getpid())
    stats = by_index.words.stats()

    targets: list[tuple[Path, int, Chunk]] = []
    for path, line, _col in positions:
        module = await by_index.module(path, texts[path])
        chunk = module.chunks.enclosing(line + 1)
        if chunk is not None and chunk.kind.value in ("function", "method"):
            targets.append((path, line + 1, chunk))

    asm_jedi: list[float] = []
    asm_index: list[float] = []
    look_jedi: list[float] = []
    look_index: list[float] = []
    timeouts = 0
    for i, (path, line, chunk) in enumerate(targets):
        task = ContextTask(TaskKind.EXPLAIN, texts[path], path, line, line, infer=not args.static)
        order = [(by_jedi, asm_jedi), (by_index, asm_index)]
        for asm, out in order if i % 2 else reversed(order):
            t = time.perf_counter()
            await asm.assemble(task, counter, args.budget, deadline=args.deadline)
            if i:  # the first is cold (tokenizer, jedi's first parse)
                out.append((time.perf_counter() - t) * 1000)
        module = await by_index.module(path, texts[path])
        t = time.perf_counter()
        await asyncio.to_thread(by_index.finder.sites, module, chunk, (line, line))
        look_index.append((time.perf_counter() - t) * 1000)
        at = def_name(texts[path], chunk)
        t = time.perf_counter()
        try:
            await jedi_index.callers(texts[path], path, *at, deadline=args.deadline)
        except TimeoutError:
            timeouts += 1
        look_jedi.append((time.perf_counter() - t) * 1000)

    truth_index = SymbolIndex(WorkspaceBoundary(root))
    found = total = total_calls = found_calls = shown = shown_ok = ours_n = ours_ok = 0
    for path, _line_no, chunk in targets[: args.truth] if args.truth else []:
        text = texts[path]
        at = def_name(text, chunk)
        try:
            refs = await truth_index.callers(
                text, path, *at, deadline=args.truth_deadline, limit=500
            )
        except TimeoutError:
            continue
        if refs is None:
            continue
        name = chunk.qualname.rsplit(".", 1)[-1]
        truth = {(by_index.display_path(r.path), r.line) for r in refs.references}
        calls = {
            (by_index.display_path(r.path), r.line)
            for r in refs.references
            if _call_like(_line(r.path, r.line), r.column, name)
        }
        module = await by_index.module(path, text)
        sites = await asyncio.to_thread(by_index.finder.sites, module, chunk, (0, 0))
        mine = [(s.display, s.line) for s in sites]
        total, found = total + len(truth), found + len(truth & set(mine))
        total_calls, found_calls = total_calls + len(calls), found_calls + len(calls & set(mine))
        ours_n, ours_ok = ours_n + len(set(mine)), ours_ok + len(set(mine) & truth)
        callers = [m for m in mine if not is_test_path(m[0])][:MAX_CALLERS]
        tests = [m for m in mine if is_test_path(m[0])][:MAX_TESTS]
        shown, shown_ok = shown + len(callers + tests), shown_ok + len(set(callers + tests) & truth)
    for index in (jedi_index, word_index, truth_index):
        index.close()

    print(f"machine: {machine()}")
    print(
        f"project: Django {args.django} wheel; {len(targets)} functions enclosing sampled call "
        f"sites; budget {args.budget} tokens; jedi deadline {args.deadline:g} s; definitions: "
        f"{'import map only' if args.static else 'import map, then jedi'}"
    )
    print(
        f"warm-up (chunk + index {files} files): {warm_s:.1f} s; longest event-loop stall "
        f"{max(gaps):.0f} ms; RSS {rss_before:.0f} -> {rss_after:.0f} MiB; index: "
        f"{stats[1]} identifiers, {stats[2]} call sites"
    )
    print(f"assembly, callers from jedi:   {summary(asm_jedi)}")
    print(f"assembly, callers from index:  {summary(asm_index)}")
    print(f"callers lookup, jedi:  {summary(look_jedi)}  ({timeouts} ran out of time)")
    print(f"callers lookup, index: {summary(look_index)}")
    print(
        f"against jedi's references ({args.truth} functions, {args.truth_deadline:g} s each): "
        f"recall {found}/{total} = {found / max(total, 1):.1%} of all uses, "
        f"{found_calls}/{total_calls} = {found_calls / max(total_calls, 1):.1%} of call-like uses; "
        f"precision {ours_ok}/{ours_n} = {ours_ok / max(ours_n, 1):.1%}; "
        f"of the sites a pack shows {shown_ok}/{shown} = {shown_ok / max(shown, 1):.1%}"
    )


def _line(path: Path, line: int) -> str:
    lines = decode_source(path.read_bytes()).split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=100)
    parser.add_argument("--truth", type=int, default=60, help="functions checked against jedi")
    parser.add_argument("--truth-deadline", type=float, default=60.0)
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--deadline", type=float, default=1.0, help="jedi seconds per pack")
    parser.add_argument("--django", default="6.1.3")
    parser.add_argument(
        "--static", action="store_true", help="definitions from the import map only (no jedi)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
