"""The first hover after start: the tokenizer loads once, indexing waits for the hover."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import lsp_server.engine as engine_module
from lsp_server.context.tokens import TokenCounter
from lsp_server.engine import Engine
from lsp_server.pipeline.runtime import Document
from lsp_server.settings import build_settings

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "grounding"


def _engine(tmp_path: Path) -> Engine:
    env = {
        "LLM_LSP_CACHE_DIR": str(tmp_path / "cache"),
        "LLM_LSP_USAGE_LOG": str(tmp_path / "usage.jsonl"),
        "HOME": str(tmp_path),
    }
    settings, problems = build_settings(env=env, init_options={})
    assert problems == []
    return Engine(settings, FIXTURE)


async def test_concurrent_counter_requests_share_one_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    release = threading.Event()
    real = engine_module.counter_for_model

    def slow_load(model: str, cache: Path | None = None) -> TokenCounter:
        loads.append(model)
        release.wait(30)
        return real(model, cache)

    monkeypatch.setattr(engine_module, "counter_for_model", slow_load)
    engine = _engine(tmp_path)
    try:
        first = asyncio.ensure_future(engine.counter("gpt-4o"))  # the warm-up's
        second = asyncio.ensure_future(engine.counter("gpt-4o"))  # a hover's
        await asyncio.sleep(0.2)
        first.cancel()  # one waiter giving up does not cancel the load the other waits on
        release.set()
        counter = await second
        assert counter.count("hello world") == 2
        assert loads == ["gpt-4o"]
        assert await engine.counter("gpt-4o") is counter
    finally:
        await engine.aclose()


async def test_workspace_indexing_waits_for_the_first_hover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "INDEX_GRACE", 60.0)
    engine = _engine(tmp_path)
    started = asyncio.Event()

    async def warm_workspace(idle: object = None) -> int:
        started.set()
        return 0

    monkeypatch.setattr(engine.assembler, "warm_workspace", warm_workspace)
    await engine.counter(engine.settings.llm.model)  # loaded: only the wait is left
    warm = asyncio.ensure_future(engine.warm_up())
    try:
        await asyncio.sleep(1.0)
        assert not started.is_set()
        path = FIXTURE / "pkg" / "service.py"
        await engine.hover(Document(path, path.read_text(), 1), 0, 0)
        await asyncio.wait_for(started.wait(), 30)
        await asyncio.wait_for(warm, 30)
    finally:
        warm.cancel()
        await engine.aclose()
