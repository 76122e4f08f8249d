"""Benchmark: workspace questions (`llm-lsp ask`) on Django, in process, fake provider.

Unpacks Django from its PyPI wheel (about 900 modules) and asks it questions
whose answer is a known file, through the real `Asker` with the project's
fake provider serving chat and ``/v1/embeddings`` on 127.0.0.1. Reports:

* the first question: indexing (chunking every file), embedding every chunk
  (texts, requests) and the whole answer, in seconds;
* a restarted engine on the same cache directory: the index is reused (files
  only stat'ed) and only the question is embedded;
* the longest event-loop stall during the first question and after the
  restart (a 5 ms ticker's worst lateness: what an editor request would wait),
  against the same ticker on an idle loop (the machine's own noise);
* keyword ranking latency p50/p95 over the questions (BM25 over the corpus);
* keyword recall@5: the share of questions whose known file is among the
  five files the keyword ranking picks. (The fake's vectors are hashes, so the
  hybrid ranking is not measured here: a real embedding model is needed.)

Run: `.venv/bin/python scripts/bench_ask.py [--django 6.1.3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine, percentile, wheel_project_for

from lsp_server.context.retrieval.hybrid import select
from lsp_server.engine import Engine
from lsp_server.settings import build_settings
from lsp_server.testing.fake_provider import FakeProvider

QUESTIONS = {
    "Where are CSRF tokens checked?": "django/middleware/csrf.py",
    "How are passwords hashed?": "django/contrib/auth/hashers.py",
    "Where is a database transaction committed or rolled back atomically?": (
        "django/db/transaction.py"
    ),
    "How does the paginator split a list into pages?": "django/core/paginator.py",
    "Where are signed cookies and signatures verified?": "django/core/signing.py",
    "How are URL patterns resolved to views?": "django/urls/resolvers.py",
    "Where is the cache key made for a cached page?": "django/utils/cache.py",
    "How are uploaded files stored on the file system?": "django/core/files/storage/filesystem.py",
    "Where are email messages sent over SMTP?": "django/core/mail/backends/smtp.py",
    "How does the template engine parse variables and filters?": "django/template/base.py",
    "Where are model field validators for email addresses?": "django/core/validators.py",
    "How are migrations applied to the database?": "django/db/migrations/executor.py",
}


async def _engine(root: Path, cache: Path, fake: FakeProvider) -> Engine:
    env = {
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": fake.base_url,
        "LLM_LSP_CACHE_DIR": str(cache),
        "LLM_LSP_USAGE_LOG": str(cache / "usage.jsonl"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    settings, problems = build_settings(env=env)
    assert not problems, problems
    return Engine(settings, root)


class Stalls:
    """The worst lateness of a 5 ms ticker on the event loop, while running."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - before - 0.005)

    def __enter__(self) -> Stalls:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def _embedded(fake: FakeProvider) -> tuple[int, int]:
    inputs = [r.body["input"] for r in fake.requests if r.path == "/v1/embeddings"]
    return sum(len(i) for i in inputs), len(inputs)


async def main(args: argparse.Namespace) -> None:
    root = wheel_project_for("django", args.django)
    question = next(iter(QUESTIONS))
    with tempfile.TemporaryDirectory() as tmp, FakeProvider() as fake:
        cache = Path(tmp)
        engine = await _engine(root, cache, fake)
        started = time.perf_counter()
        with Stalls() as stalls:
            outcome = await engine.asker().ask(question)
        cold = time.perf_counter() - started
        corpus = engine.asker().retriever().corpus
        files, chunks = len(corpus.files), corpus.chunk_count
        texts, requests = _embedded(fake)
        await engine.aclose()
        with Stalls() as idle:
            await asyncio.sleep(cold / 2)
        print(f"machine: {machine()}")
        print(f"idle baseline: longest loop stall {idle.worst * 1000:.0f} ms in {cold / 2:.0f} s")
        print(f"Django {args.django}: {files} files, {chunks} chunks")
        print(
            f"first question: {cold:.1f} s in all; {texts} texts embedded in {requests} "
            f"requests; answer from {len(outcome.sources)} pieces, {outcome.prompt_tokens} tokens; "
            f"longest loop stall {stalls.worst * 1000:.0f} ms"
        )
        fake.reset()
        engine = await _engine(root, cache, fake)
        started = time.perf_counter()
        with Stalls() as stalls:
            await engine.asker().ask(question)
        warm = time.perf_counter() - started
        texts, requests = _embedded(fake)
        print(
            f"after a restart: {warm:.2f} s in all; {texts} text embedded ({requests} request); "
            f"longest loop stall {stalls.worst * 1000:.0f} ms"
        )
        retriever = engine.asker().retriever()
        timings: list[float] = []
        found = 0
        for text, expected in QUESTIONS.items():
            t0 = time.perf_counter()
            hits = select(await retriever.lexical(text), None)
            timings.append((time.perf_counter() - t0) * 1000)
            paths = list(dict.fromkeys(h.path for h in hits))
            found += expected in paths
            mark = "ok  " if expected in paths else "MISS"
            print(f"  {mark} {text} -> {', '.join(paths[:3])}")
        await engine.aclose()
        print(
            f"keyword ranking: p50 {percentile(timings, 50):.1f} ms, "
            f"p95 {percentile(timings, 95):.1f} ms; recall@5 files {found}/{len(QUESTIONS)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--django", default="6.1.3")
    asyncio.run(main(parser.parse_args()))
