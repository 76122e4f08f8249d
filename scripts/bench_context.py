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
import hashlib
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import BENCH_DIR, call_positions, machine, percentile, summary, wheel_project_for

from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.model import Definition
from lsp_server.context.pack.assembler import Assembler, ContextTask, TaskKind
from lsp_server.context.pack.pieces import ContextPack
from lsp_server.context.source.chunker import decode_source
from lsp_server.context.static.names import used_names
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.workspace import WorkspaceBoundary

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


@dataclass(frozen=True, slots=True)
class Truth:
    """One workspace definition jedi resolves for a name the target uses."""

    use: str  # the name's dotted text, "self.save"
    line: int  # of the use
    column: int
    where: str  # display path of the definition
    def_line: int


async def _truth(
    index: SymbolIndex,
    asm: Assembler,
    path: Path,
    text: str,
    pack: ContextPack,
    line: int,
    cache: dict[str, list[list[str | int]]],
) -> tuple[list[Truth], set[Path]]:
    """Workspace definitions jedi resolves for the target's names, without a deadline.

    Cached in ``cache`` by file, target region and text hash (jedi takes minutes here).
    """
    display = asm.display_path(path)
    module = await asm.module(path, text)
    target = next(p for p in pack.pieces if p.role == "target") if pack.pieces else None
    region = (target.start_line, target.end_line) if target else (line, line)
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
    key = f"{display}:{region[0]}-{region[1]}:{digest}"
    if key not in cache:
        uses = used_names(module.lines, *region, module.facts.bound, limit=40)
        positions = [(u.line, u.column) for u in uses]
        found = await index.definitions_batch(text, path, positions, deadline=120.0, partial=False)
        rows: list[list[str | int]] = []
        for use in uses:
            for d in found.get((use.line, use.column), []):
                if not _counts(d):
                    continue
                assert d.path is not None
                where = asm.display_path(d.path)
                if where == display and region[0] <= d.line <= region[1]:
                    continue
                rows.append([use.text, use.line, use.column, where, d.line])
        cache[key] = rows
    truth: list[Truth] = []
    seen: set[tuple[str, int]] = set()
    for row in cache[key]:
        t = Truth(str(row[0]), int(row[1]), int(row[2]), str(row[3]), int(row[4]))
        if (t.where, t.def_line) not in seen:
            seen.add((t.where, t.def_line))
            truth.append(t)
    files = {asm.symbols.root / t.where for t in truth} if asm.symbols.root else set()
    return truth, files


def _load_cache(path: Path) -> dict[str, list[list[str | int]]]:
    if not path.is_file():
        return {}
    found: dict[str, list[list[str | int]]] = json.loads(path.read_text())
    return found


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _shape(use: str) -> str:
    """The form of a name use: ``name``, ``self.x``, ``super().x``, ``a.x``, ``a.b.x``..."""
    parts = use.split(".")
    if len(parts) == 1:
        return "name"
    head = parts[0] if parts[0] in ("self", "cls", "super()", "?") else "a"
    return ".".join([head, *(["b"] * (len(parts) - 2)), "x"])


def _row(
    why: str, use: str, at: str, lines: list[str], line: int, truth: str, static: str
) -> dict[str, str | int]:
    """One line of the ``--misses`` file."""
    code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    shape = _shape(use) if why != "extra" else ""
    row: dict[str, str | int] = {"why": why, "shape": shape, "use": use, "at": at}
    return row | {"code": code, "truth": truth, "static": static}


def _misses(
    asm: Assembler,
    path: Path,
    text: str,
    pack: ContextPack,
    truth: list[Truth],
    static: dict[tuple[int, int], list[Definition]],
) -> list[dict[str, str | int]]:
    """Each definition of ``truth`` the pack misses, and why (by what the import map did);
    then the import map's definitions in pieces jedi does not give (``why`` "extra")."""
    out: list[dict[str, str | int]] = []
    lines = text.split("\n")
    for t in truth:
        if any(p.covers(t.where, t.def_line) for p in pack.pieces):
            continue
        placed = [
            f"{asm.display_path(d.path)}:{d.line}"
            for d in static.get((t.line, t.column), ())
            if d.path is not None
        ]
        if not placed:
            why = "unresolved"
        elif f"{t.where}:{t.def_line}" in placed:
            why = "dropped"
        else:
            why = "wrong"
        static_at = " ".join(placed)
        where = f"{asm.display_path(path)}:{t.line}"
        out.append(_row(why, t.use, where, lines, t.line, f"{t.where}:{t.def_line}", static_at))
    # then each definition piece holding no definition jedi gives (a precision loss), with
    # the import map's answers it holds and what jedi says for those names (why=extra)
    for piece in pack.pieces:
        if piece.role != "definition" or any(piece.covers(t.where, t.def_line) for t in truth):
            continue
        for (line, column), d in ((p, d) for p, ds in sorted(static.items()) for d in ds):
            where = asm.display_path(d.path) if d.path is not None else ""
            if not piece.covers(where, d.line):
                continue
            at = (line, column)
            jedi = [f"{t.where}:{t.def_line}" for t in truth if (t.line, t.column) == at]
            at_use, put = f"{asm.display_path(path)}:{line}", f"{where}:{d.line}"
            out.append(_row("extra", d.name, at_use, lines, line, " ".join(jedi), put))
    return out


def _counts(d: Definition) -> bool:
    return d.path is not None and d.in_workspace and d.kind != "module" and d.path.suffix == ".py"


async def main_async(args: argparse.Namespace) -> None:
    root = wheel_project_for("django", args.django)
    files = len(list((root / "django").rglob("*.py")))
    positions = call_positions(root, "django", args.positions)
    texts = {p: decode_source(p.read_bytes()) for p, _, _ in positions}

    started = time.perf_counter()
    counter = await asyncio.to_thread(counter_for_model, "gpt-4o")
    index = SymbolIndex(WorkspaceBoundary(root))
    asm = Assembler(index)

    def task_for(path: Path, line: int) -> ContextTask:
        """An "explain this line" task at 0-based ``line`` of ``path``."""
        return ContextTask(
            TaskKind.EXPLAIN,
            texts[path],
            path,
            line + 1,
            line + 1,
            callers=args.callers,
            infer=not args.static_only,
        )

    packs: list[ContextPack] = []
    statics: list[dict[tuple[int, int], list[Definition]]] = []
    first_visit: list[float] = []
    warm_ms = 0.0
    for i, (path, line, _col) in enumerate(positions):
        if i == 1 and args.warm:  # what the engine does in the background after start
            t0 = time.perf_counter()
            await asm.warm(sorted((root / "django").rglob("*.py")))
            warm_ms = (time.perf_counter() - t0) * 1000
        task = task_for(path, line)
        t0 = time.perf_counter()
        pack = await asm.assemble(task, counter, args.budget, deadline=args.deadline)
        first_visit.append((time.perf_counter() - t0) * 1000)
        packs.append(pack)
        if args.misses is not None:  # what the import map placed, for the miss analysis
            statics.append((await asyncio.to_thread(asm._static, task, counter, args.budget))[3])
    cold = first_visit[0]
    cold_total = (time.perf_counter() - started) * 1000 - sum(first_visit[1:]) - warm_ms
    repeat: list[float] = []
    for path, line, _col in positions:
        task = task_for(path, line)
        t0 = time.perf_counter()
        await asm.assemble(task, counter, args.budget, deadline=args.deadline)
        repeat.append((time.perf_counter() - t0) * 1000)
    index.close()

    truth_index = SymbolIndex(WorkspaceBoundary(root))
    cache_file: Path = args.truth_cache or BENCH_DIR / f"truth-django-{args.django}.json"
    cache = _load_cache(cache_file)
    found = total = perfect = over = 0
    def_pieces = def_right = 0
    misses: list[dict[str, str | int]] = []
    extras: list[dict[str, str | int]] = []
    pack_tokens: list[int] = []
    naive_tokens: list[int] = []
    window_tokens: list[int] = []
    ratios: list[float] = []
    file_tokens: dict[Path, int] = {}
    for i, ((path, line, _col), pack) in enumerate(zip(positions, packs, strict=True)):
        rendered = counter.count(pack.render())
        over += rendered > args.budget
        truth, def_files = await _truth(truth_index, asm, path, texts[path], pack, line + 1, cache)
        hit = sum(any(p.covers(t.where, t.def_line) for p in pack.pieces) for t in truth)
        found, total = found + hit, total + len(truth)
        pieces = [p for p in pack.pieces if p.role == "definition"]
        def_pieces += len(pieces)
        def_right += sum(any(p.covers(t.where, t.def_line) for t in truth) for p in pieces)
        if statics:
            for row in _misses(asm, path, texts[path], pack, truth, statics[i]):
                (extras if row["why"] == "extra" else misses).append(row)
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
    _save(cache_file, json.dumps(cache, sort_keys=True))

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
    print(
        f"definition precision: {def_right}/{def_pieces} = {def_right / max(def_pieces, 1):.1%} "
        "of definition pieces hold a definition jedi gives"
    )
    print(f"over budget: {over}")
    if args.misses is not None:
        listed = [*misses, *extras]
        _save(args.misses, "".join(json.dumps(m, sort_keys=True) + "\n" for m in listed))
        why = Counter(str(m["why"]) for m in misses)
        shapes = Counter(f"{m['why']} {m['shape']}" for m in misses)
        print(
            f"misses ({len(misses)}, in {args.misses}): "
            + ", ".join(f"{k} {n}" for k, n in why.most_common())
        )
        for k, n in shapes.most_common():
            print(f"  {n:4d}  {k}")
        print(f"definitions placed in pieces jedi does not give (why=extra): {len(extras)}")


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
    parser.add_argument(
        "--misses",
        type=Path,
        help="write each missed definition and why (JSON lines) here, and each definition "
        "the import map placed in a piece jedi does not give (why=extra)",
    )
    parser.add_argument(
        "--truth-cache",
        type=Path,
        help="jedi's answers, kept between runs (default .bench/truth-django-VERSION.json)",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
