"""Benchmark: what the answer cache saves on a scripted editing session, and whether it lies.

Starts the real `llm-lsp serve` over stdio (answer cache on, an empty diskcache)
against the project's fake provider, opens a few modules of a real project
(itsdangerous by default, or Django; unpacked from the PyPI wheel) and replays a seeded
editing session:
hovers over call sites and explains of whole functions (the `llmLsp.explain`
command, as the "Explain this code" action runs it) interleaved with edits sent
as `didChange`:

* repeated hovers (people hover the same names again) and first hovers;
* explains of a function, again later (people reopen an explanation) or for the
  first time;
* reformatting a whole file (`ruff format --line-length 60`: lines split and joined);
* comment edits (a comment inserted next to a hovered call);
* real changes (a statement inserted just before a hovered call's statement);
* unrelated changes (a statement inserted in a function nobody hovers).

Every provider call answers a unique text ("Answer #n"), so each answer shown is
traced back to the code it was written for: a *false hit* is an answer served
from the cache for a hover or explain whose function had a real change since
that answer was written, or that was written for another function or feature
(must be 0). Reported for hovers, for explains and in total: provider calls
avoided (against one call per AI answer without a cache; the fake answers an
explain in one agent step), tokens and USD saved (the fake reports 900 prompt +
60 completion tokens per call, priced as gpt-4o), and client-measured latency
p50/p95 of cache hits and of misses (the fake answers at once, so a miss is the
server's own work plus one local HTTP call). A request's latency includes its
static analysis (jedi) and context pack, which come before the cache lookup
(an explain's pack places names with jedi within `contextDeadline`); the
pipeline of a hit is in the usage log (`latency_ms` of records with ``tier``
"cache"; see the printout).

One function per measured part (`measure_cache`), so other parts (budgets)
can add theirs. Run: `.venv/bin/python scripts/bench_cost.py [--operations 500]`.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import builtins
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, percentile, wheel_project_for

from lsp_server.llm.pricing import cost_usd
from lsp_server.testing.fake_provider import FakeProvider, Step

USAGE = (900, 60)
MODEL = "gpt-4o"
ANSWER = re.compile(r"Answer #(\d+)\.")
#: Real projects from PyPI wheels: (name, version, the modules the session edits).
PROJECTS = {
    "itsdangerous": (
        "itsdangerous",
        "2.2.0",
        (
            "itsdangerous/serializer.py",
            "itsdangerous/signer.py",
            "itsdangerous/timed.py",
            "itsdangerous/url_safe.py",
            "itsdangerous/encoding.py",
        ),
    ),
    "django": (
        "django",
        "6.1.3",
        (
            "django/utils/text.py",
            "django/utils/html.py",
            "django/utils/http.py",
            "django/utils/dateformat.py",
            "django/utils/functional.py",
            "django/utils/crypto.py",
        ),
    ),
}
BUILTINS = frozenset(dir(builtins))
RUFF = Path(sys.executable).with_name("ruff")


@dataclass(frozen=True)
class Target:
    """A hovered call: the k-th call of `callee` inside function `function` of `path`."""

    path: str
    function: str
    callee: str
    index: int


@dataclass
class Project:
    """The edited buffers, and per function how many real changes it has had."""

    root: Path
    texts: dict[str, str]
    versions: dict[str, int] = field(default_factory=dict)
    real: dict[tuple[str, str], int] = field(default_factory=dict)

    def functions(self, path: str) -> dict[str, ast.FunctionDef]:
        """Top-level functions and methods, each once (nested defs belong to their owner)."""
        tree = ast.parse(self.texts[path])
        out: dict[str, ast.FunctionDef] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                out[node.name] = node
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        out[f"{node.name}.{item.name}"] = item
        return out


def _calls(func: ast.FunctionDef, callee: str) -> list[ast.Call]:
    found = []
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if isinstance(node.func, ast.Attribute):
                name = node.func.attr
            if name == callee and node.func.end_lineno == node.func.lineno:
                found.append(node)
    return sorted(found, key=lambda c: (c.lineno, c.col_offset))


def _statement(func: ast.FunctionDef, call: ast.Call) -> ast.stmt | None:
    """The innermost statement of ``func``'s body holding ``call``."""
    best: ast.stmt | None = None
    for node in ast.walk(func):
        if node is func or not isinstance(node, ast.stmt):
            continue
        end = node.end_lineno or node.lineno
        inside = node.lineno <= call.lineno <= end
        if inside and (best is None or node.lineno >= best.lineno):
            best = node
    return best


def locate(project: Project, target: Target) -> tuple[int, int, ast.stmt] | None:
    """0-based line and column of the target's call now, and its statement."""
    func = project.functions(target.path).get(target.function)
    if func is None:
        return None
    calls = _calls(func, target.callee)
    if target.index >= len(calls):
        return None
    call = calls[target.index]
    stmt = _statement(func, call)
    if stmt is None or isinstance(stmt, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
        return None
    line = project.texts[target.path].splitlines()[stmt.lineno - 1]
    if line.lstrip().startswith(("elif", "else", "except", "finally", "@")):
        return None
    func_node = call.func
    col = func_node.end_col_offset - len(target.callee) if func_node.end_col_offset else 0
    return call.lineno - 1, col, stmt


def targets(project: Project, rng: random.Random, count: int) -> list[Target]:
    """Up to ``count`` hoverable calls, spread over the files."""
    out: list[Target] = []
    for path in project.texts:
        for name, func in project.functions(path).items():
            seen: dict[str, int] = {}
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                callee = node.func.id if isinstance(node.func, ast.Name) else None
                if isinstance(node.func, ast.Attribute):
                    callee = node.func.attr
                if callee is None or node.func.end_lineno != node.func.lineno:
                    continue
                if callee in BUILTINS:  # jedi infers these from typeshed: slow, and not ours
                    continue
                index = seen.get(callee, 0)
                seen[callee] = index + 1
                target = Target(path, name, callee, index)
                if index == 0 and locate(project, target) is not None:
                    out.append(target)
    rng.shuffle(out)
    return out[:count]


def insert_line(project: Project, target: Target, text: str) -> bool:
    """Insert ``text`` as a line before the target call's statement (same indentation)."""
    found = locate(project, target)
    if found is None:
        return False
    _, _, stmt = found
    lines = project.texts[target.path].splitlines(keepends=True)
    indent = " " * stmt.col_offset
    lines.insert(stmt.lineno - 1, f"{indent}{text}\n")
    new = "".join(lines)
    try:
        ast.parse(new)
    except SyntaxError:
        return False
    project.texts[target.path] = new
    return True


def reformat(project: Project, path: str) -> bool:
    """`ruff format --line-length 60` of one buffer: the same code, other lines."""
    result = subprocess.run(
        [str(RUFF), "format", "--line-length", "60", "--stdin-filename", "x.py", "-"],
        input=project.texts[path],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or result.stdout == project.texts[path]:
        return False
    project.texts[path] = result.stdout
    return True


@dataclass
class Seen:
    """What one feature's requests saw."""

    requests: int = 0
    null: int = 0
    ai_answers: int = 0
    hits: int = 0
    stale: int = 0
    false_hits: int = 0
    #: misses for code that already had an answer (no real change to the function since):
    #: a definition in its pack changed, or the pack came out otherwise (jedi's deadline)
    repeat_misses: int = 0
    hit_ms: list[float] = field(default_factory=list)
    miss_ms: list[float] = field(default_factory=list)


@dataclass
class Tally:
    """What the session saw, per feature."""

    hover: Seen = field(default_factory=Seen)
    explain: Seen = field(default_factory=Seen)
    edits: dict[str, int] = field(default_factory=dict)
    #: answer number -> (feature, file, function (and the hovered call), its real changes
    #: when written)
    written_for: dict[int, tuple[str, str, str, int]] = field(default_factory=dict)

    def answered(
        self, feature: str, value: str, elapsed: float, path: str, function: str, now: int
    ) -> None:
        """Classify one answer shown to the user (see the module docstring)."""
        seen = self.explain if feature == "explain" else self.hover
        match = ANSWER.search(value)
        if match is None:
            return
        seen.ai_answers += 1
        answer = int(match.group(1))
        if "· cache, stale" in value:
            seen.stale += 1  # no live answer in time: the fallback tier, marked stale
        elif "· cache, " in value:
            seen.hits += 1
            seen.hit_ms.append(elapsed)
            if self.written_for.get(answer) != (feature, path, function, now):
                seen.false_hits += 1
                if os.environ.get("BENCH_DEBUG"):
                    print(
                        "false hit:",
                        feature,
                        path,
                        function,
                        now,
                        "written for",
                        self.written_for.get(answer),
                        file=sys.stderr,
                    )
        else:
            seen.miss_ms.append(elapsed)
            written = (feature, path, function, now)
            if written in self.written_for.values():
                seen.repeat_misses += 1
            self.written_for[answer] = written


async def _hover(client: LanguageClient, project: Project, target: Target, tally: Tally) -> None:
    found = locate(project, target)
    if found is None:
        return
    line, col, _ = found
    uri = (project.root / target.path).as_uri()
    started = time.perf_counter()
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line, col))
    )
    elapsed = (time.perf_counter() - started) * 1000
    tally.hover.requests += 1
    if hover is None or not isinstance(hover.contents, types.MarkupContent):
        tally.hover.null += 1
        if os.environ.get("BENCH_DEBUG"):
            print("null hover:", target, line, col, file=sys.stderr)
        return
    now = project.real.get((target.path, target.function), 0)
    what = f"{target.function}: {target.callee}"  # the hovered call, in its function
    tally.answered("hover", hover.contents.value, elapsed, target.path, what, now)


def function_lines(project: Project, path: str, name: str) -> tuple[int, int] | None:
    """1-based lines of function ``name`` now, decorators included (what a user selects)."""
    func = project.functions(path).get(name)
    if func is None or func.end_lineno is None:
        return None
    start = min([func.lineno, *(d.lineno for d in func.decorator_list)])
    return start, func.end_lineno


async def _explain(
    client: LanguageClient, project: Project, path: str, name: str, tally: Tally
) -> None:
    found = function_lines(project, path, name)
    if found is None:
        return
    start, end = found
    args = {"uri": (project.root / path).as_uri(), "start": start, "end": end}
    started = time.perf_counter()
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llmLsp.explain", arguments=[args])
    )
    elapsed = (time.perf_counter() - started) * 1000
    tally.explain.requests += 1
    if not isinstance(result, dict) or not result.get("ok"):
        tally.explain.null += 1
        if os.environ.get("BENCH_DEBUG"):
            print("no explanation:", path, name, result, file=sys.stderr)
        return
    shown = Path(unquote(urlparse(result["uri"]).path))
    value = (await asyncio.to_thread(shown.read_text, "utf-8")).rstrip()
    now = project.real.get((path, name), 0)
    tally.answered("explain", value, elapsed, path, name, now)


def _send(client: LanguageClient, project: Project, path: str) -> None:
    project.versions[path] = project.versions.get(path, 1) + 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=(project.root / path).as_uri(), version=project.versions[path]
            ),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(text=project.texts[path])
            ],
        )
    )


async def session(
    client: LanguageClient, project: Project, operations: int, rng: random.Random
) -> Tally:
    """Replay the editing session; see the module docstring."""
    tally = Tally()
    pool = targets(project, rng, 60)
    hovered = {t.path for t in pool}
    quiet = [
        (path, name)
        for path in project.texts
        for name in project.functions(path)
        if (path, name) not in {(t.path, t.function) for t in pool}
    ]
    recent: list[Target] = []
    explained: list[tuple[str, str]] = []
    serial = 0
    for _ in range(operations):
        roll = rng.random()
        if roll < 0.45 and recent:
            await _hover(client, project, rng.choice(recent[-15:]), tally)
        elif roll < 0.62:
            target = rng.choice(pool)
            recent.append(target)
            await _hover(client, project, target, tally)
        elif roll < 0.70 and explained:
            await _explain(client, project, *rng.choice(explained[-10:]), tally)
        elif roll < 0.75:
            target = rng.choice(recent[-15:] or pool)
            explained.append((target.path, target.function))
            await _explain(client, project, target.path, target.function, tally)
        elif roll < 0.81:
            path = rng.choice(sorted(hovered))
            if reformat(project, path):
                tally.edits["reformat"] = tally.edits.get("reformat", 0) + 1
                _send(client, project, path)
        elif roll < 0.88 and recent:
            target = rng.choice(recent[-15:])
            serial += 1
            if insert_line(project, target, f"# bench note {serial}"):
                tally.edits["comment"] = tally.edits.get("comment", 0) + 1
                _send(client, project, target.path)
        elif roll < 0.93 and recent:
            target = rng.choice(recent[-15:])
            serial += 1
            if insert_line(project, target, f"_bench_{serial} = {serial}"):
                key = (target.path, target.function)
                project.real[key] = project.real.get(key, 0) + 1
                tally.edits["real change"] = tally.edits.get("real change", 0) + 1
                _send(client, project, target.path)
        elif quiet:
            path, name = rng.choice(quiet)
            func = project.functions(path).get(name)
            if func is None or not func.body or func.body[0].lineno == func.lineno:
                continue
            first = func.body[0]
            lines = project.texts[path].splitlines(keepends=True)
            serial += 1
            lines.insert(first.lineno - 1, f"{' ' * first.col_offset}_bench_{serial} = 0\n")
            new = "".join(lines)
            try:
                ast.parse(new)
            except SyntaxError:
                continue
            project.texts[path] = new
            tally.edits["unrelated change"] = tally.edits.get("unrelated change", 0) + 1
            _send(client, project, path)
    return tally


async def measure_cache(
    root: Path,
    files: tuple[str, ...],
    state: Path,
    operations: int,
    seed: int,
    ai_hover: str = "always",
) -> dict[str, object]:
    """The answer cache's part: calls avoided, tokens/USD saved, hit latency, false hits.

    ``ai_hover``: the `aiHover` mode; with ``onRepeat`` a first hover on a name is
    static facts only (no AI answer, no call). Hovers wait for their answer
    (``hoverWait`` past the deadline): the cache is measured, not the wait."""
    steps = [Step(text=f"Answer #{i}.", usage=USAGE) for i in range(operations + 10)]
    with FakeProvider(default=Step(text="Unscripted.", usage=USAGE)) as fake:
        fake.script(*steps)
        env = dict(os.environ)
        env.update(
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=fake.base_url,
            LLM_LSP_USAGE_LOG=str(state / "usage.jsonl"),
            LLM_LSP_CACHE_DIR=str(state / "cache"),
            LLM_LSP_ANSWER_CACHE="1",
            LLM_HOVER_DEADLINE="60",
            LLM_LSP_HOVER_WAIT="600",
            LLM_LSP_AI_HOVER=ai_hover,
        )
        client = LanguageClient("bench", "0")

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def _shown(params: types.ShowMessageParams) -> None:
            """Explains tell where their document is (this client shows none)."""

        await client.start_io(
            sys.executable,
            "-m",
            "lsp_server",
            "--log-level",
            "WARNING",
            "--log-file",
            str(state / "server.log"),
            "serve",
            env=env,
        )
        await client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=root.as_uri())
        )
        client.initialized(types.InitializedParams())
        project = Project(root, {p: (root / p).read_text("utf-8") for p in files})
        for path, text in project.texts.items():
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    types.TextDocumentItem((root / path).as_uri(), "python", 1, text)
                )
            )
        tally = await session(client, project, operations, random.Random(seed))
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        calls = len([r for r in fake.requests if r.path == "/v1/chat/completions"])
    records = [json.loads(line) for line in (state / "usage.jsonl").read_text().splitlines()]
    per_call = cost_usd(MODEL, *USAGE)
    result: dict[str, object] = {"edits": tally.edits, "provider_calls": calls}
    parts = {"hover": tally.hover, "explain": tally.explain}
    for feature, seen in parts.items():
        attempts = [
            r
            for r in records
            if r.get("kind", "attempt") == "attempt" and r.get("feature") == feature
        ]
        result[feature] = _part(seen, len(attempts), per_call, records, feature)
    total = Seen(
        requests=tally.hover.requests + tally.explain.requests,
        null=tally.hover.null + tally.explain.null,
        ai_answers=tally.hover.ai_answers + tally.explain.ai_answers,
        hits=tally.hover.hits + tally.explain.hits,
        stale=tally.hover.stale + tally.explain.stale,
        false_hits=tally.hover.false_hits + tally.explain.false_hits,
        repeat_misses=tally.hover.repeat_misses + tally.explain.repeat_misses,
        hit_ms=tally.hover.hit_ms + tally.explain.hit_ms,
        miss_ms=tally.hover.miss_ms + tally.explain.miss_ms,
    )
    result["total"] = _part(total, calls, per_call, records, None)
    return result


def _part(
    seen: Seen, calls: int, per_call: float, records: list[dict[str, object]], feature: str | None
) -> dict[str, object]:
    """One feature's figures (``feature`` None: every feature)."""
    mine = [r for r in records if feature is None or r.get("feature") == feature]
    # the cache's own records (request summaries of hits say tier "cache" too)
    lookups = [float(r["latency_ms"]) for r in mine if r.get("kind") == "cache"]  # type: ignore[arg-type]
    avoided = seen.ai_answers - calls
    return {
        "requests": seen.requests,
        "null": seen.null,
        "ai_answers": seen.ai_answers,
        "provider_calls": calls,
        "calls_avoided_pct": 100.0 * avoided / max(1, seen.ai_answers),
        "tokens_saved": avoided * sum(USAGE),
        "usd_saved": avoided * per_call,
        "usd_spent": calls * per_call,
        "saved_usd_logged": sum(float(r.get("saved_usd", 0.0) or 0.0) for r in mine),  # type: ignore[arg-type]
        "hits": seen.hits,
        "false_hits": seen.false_hits,
        "stale": seen.stale,
        "repeat_misses": seen.repeat_misses,
        "hit_ms": seen.hit_ms,
        "miss_ms": seen.miss_ms,
        "hit_pipeline_ms": lookups,
    }


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {statistics.median(values):6.1f} ms  p95 {percentile(values, 95):6.1f} ms "
        f"(n={len(values)})"
    )


def report_cache(result: dict[str, object]) -> None:
    """Print the cache part: hovers, explains, and both together."""
    print(f"edits: {result['edits']}")
    for name in ("hover", "explain", "total"):
        r = result[name]
        assert isinstance(r, dict)
        print(f"-- {name}")
        print(
            f"requests: {r['requests']} (null/failed: {r['null']}), "
            f"with an AI answer: {r['ai_answers']}"
        )
        print(
            f"provider calls: {r['provider_calls']} (without a cache: {r['ai_answers']}); "
            f"calls avoided: {r['calls_avoided_pct']:.1f} %"
        )
        print(
            f"tokens saved: {r['tokens_saved']}; USD saved: ${r['usd_saved']:.4f} "
            f"(spent ${r['usd_spent']:.4f}; the usage log's saved_usd: "
            f"${r['saved_usd_logged']:.4f})"
        )
        print(f"cache hits: {r['hits']}; false hits: {r['false_hits']}; stale: {r['stale']}")
        print(
            f"misses for code already answered (a pack piece changed, or the pack differed): "
            f"{r['repeat_misses']}"
        )
        print(f"latency over stdio, cache hits:   {_ms(r['hit_ms'])}")
        print(f"latency over stdio, misses:       {_ms(r['miss_ms'])}")
        print(f"server pipeline of a hit (usage log): {_ms(r['hit_pipeline_ms'])}")


async def main_async(args: argparse.Namespace) -> None:
    name, version, files = PROJECTS[args.project]
    root = wheel_project_for(name, version)
    state = Path(tempfile.mkdtemp(prefix="llm-lsp-bench-cost-"))
    print(f"machine: {machine()}")
    print(
        f"project: {name} {version} wheel, {len(files)} modules; "
        f"{args.operations} operations, seed {args.seed}"
    )
    print(f"aiHover: {args.ai_hover}")
    result = await measure_cache(root, files, state, args.operations, args.seed, args.ai_hover)
    report_cache(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--project", choices=sorted(PROJECTS), default="itsdangerous")
    parser.add_argument("--ai-hover", choices=("always", "onRepeat"), default="always")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
