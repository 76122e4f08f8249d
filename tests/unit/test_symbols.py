"""SymbolIndex: definitions, references, callers, deadlines, caching, buffers, shared worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lsp_server.agent.navigate import JediNavigator
from lsp_server.context.jedi import queries as jedi_queries
from lsp_server.context.jedi.child import JobContext, Stop
from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.model import Definition
from lsp_server.workspace import WorkspaceBoundary

DEADLINE = 30.0


@pytest_asyncio.fixture
async def index(root: Path) -> AsyncIterator[SymbolIndex]:
    found = SymbolIndex(WorkspaceBoundary(root))  # jedi in a child process, as in the server
    yield found
    found.close()


@pytest_asyncio.fixture
async def threaded(root: Path) -> AsyncIterator[SymbolIndex]:
    """jedi on a thread of this process, so tests can patch the job functions."""
    found = SymbolIndex(WorkspaceBoundary(root), isolate=False)
    yield found
    found.close()


def slow_batch(
    ctx: JobContext,
    root: Path | None,
    source: str,
    path: Path | None,
    positions: list[tuple[int, int]],
    limit: int,
) -> None:
    """`definitions_batch` at 0.4 s a name, run in the jedi child (imported by reference)."""
    for position in positions:
        if ctx.stop.reached():
            return
        time.sleep(0.4)
        one = JobContext(Stop(None), ctx.emit)
        jedi_queries.definitions_batch(one, root, source, path, [position], limit)


async def _definitions(
    index: SymbolIndex, text: str, path: Path, line: int, column: int, *, deadline: float
) -> list[Definition]:
    """One name's definitions through the assembler's path (a batch of one, no partial)."""
    found = await index.definitions_batch(
        text, path, [(line, column)], deadline=deadline, partial=False
    )
    return found.get((line, column), [])


def _position(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and 0-based column of the ``nth`` occurrence of ``needle``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1)


async def test_cross_file_definition(index: SymbolIndex, root: Path) -> None:
    path = root / "app/service.py"
    text = path.read_text()
    line, col = _position(text, "apply_tax(subtotal)")
    [found] = await _definitions(index, text, path, line, col, deadline=DEADLINE)
    assert found.path == root / "app/pricing.py"
    assert (found.line, found.kind, found.in_workspace) == (16, "function", True)
    assert found.full_name == "app.pricing.apply_tax"


async def test_method_far_from_the_cursor(index: SymbolIndex, root: Path) -> None:
    path = root / "app/models.py"
    text = path.read_text()
    line, col = _position(text, "total()")
    [found] = await _definitions(index, text, path, line, col, deadline=DEADLINE)
    assert (found.path, found.line, found.name) == (path, 253, "total")


async def test_locally_shadowed_name_resolves_to_the_local(index: SymbolIndex, root: Path) -> None:
    path = root / "app/service.py"
    text = path.read_text()
    line, col = _position(text, "apply_tax(subtotal)", nth=1)
    [found] = await _definitions(index, text, path, line, col, deadline=DEADLINE)
    assert found.path == path
    assert found.line == line - 1  # the lambda assignment, not app.pricing


async def test_syntax_error_file_still_resolves(index: SymbolIndex, root: Path) -> None:
    path = root / "app/broken.py"
    text = path.read_text()
    line, col = _position(text, "apply_tax(amount)")
    [found] = await _definitions(index, text, path, line, col, deadline=DEADLINE)
    assert found.path == root / "app/pricing.py"
    assert await _definitions(index, text, path, 10, 20, deadline=DEADLINE) == []


async def test_batch_resolves_several_names_in_one_job(index: SymbolIndex, root: Path) -> None:
    path = root / "app/service.py"
    text = path.read_text()
    positions = [_position(text, "apply_tax(subtotal)"), _position(text, "Money(int")]
    found = await index.definitions_batch(text, path, positions, deadline=DEADLINE)
    assert [found[p][0].path for p in positions] == [root / "app/pricing.py"] * 2


async def test_project_wide_references_capped(index: SymbolIndex, root: Path) -> None:
    path = root / "app/pricing.py"
    text = path.read_text()
    line, col = _position(text, "apply_tax")
    job = (root, text, path, line, col)
    refs, truncated = await index.worker.run(jedi_queries.references, *job, 50, deadline=DEADLINE)
    where = {(r.path.relative_to(root).as_posix(), r.is_definition) for r in refs}
    assert ("app/pricing.py", True) in where
    assert ("app/service.py", False) in where
    assert ("app/broken.py", False) in where
    assert not truncated
    few, truncated = await index.worker.run(jedi_queries.references, *job, 1, deadline=DEADLINE)
    assert len(few) == 1 and truncated


async def test_callers_of_the_enclosing_function(index: SymbolIndex, root: Path) -> None:
    path = root / "app/service.py"
    text = path.read_text()
    line, _ = _position(text, "taxed = apply_tax")
    found = await index.callers(text, path, line, deadline=DEADLINE)
    assert found is not None
    assert found.function == "app.service.checkout"
    uses = {(r.path.relative_to(root).as_posix(), r.line) for r in found.references}
    assert ("tests/test_service.py", 5) in uses
    assert ("app/service.py", 18) in uses
    assert all(not r.is_definition for r in found.references)
    assert await index.callers(text, path, 1, deadline=DEADLINE) is None  # module level


async def test_deadline_partial_batch_and_timeout(
    threaded: SymbolIndex, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = jedi_queries.goto_one

    def slow(*args: object) -> object:
        time.sleep(0.4)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(jedi_queries, "goto_one", slow)
    path = root / "app/service.py"
    text = path.read_text()
    first = _position(text, "apply_tax(subtotal)")
    second = _position(text, "Money(int")
    started = time.monotonic()
    assert await threaded.definitions_batch(text, path, [first, second], deadline=0.2) == {}
    assert time.monotonic() - started < 0.4  # the caller does not wait for jedi
    with pytest.raises(TimeoutError):
        await _definitions(threaded, text, path, *second, deadline=0.0)
    # the name in flight at the deadline is cached when the worker finishes it;
    # the next one is not started
    for _ in range(100):
        if await threaded.definitions_batch(text, path, [first], deadline=0.0):
            break
        await asyncio.sleep(0.05)
    expected = await _definitions(threaded, text, path, *first, deadline=DEADLINE)
    found = await threaded.definitions_batch(text, path, [first, second], deadline=0.0)
    assert found == {first: expected}


async def test_child_streams_names_resolved_after_the_caller_gave_up(
    index: SymbolIndex, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "app/service.py"
    text = path.read_text()
    first = _position(text, "apply_tax(subtotal)")
    second = _position(text, "Money(int")
    expected: list[Definition] = await _definitions(index, text, path, *first, deadline=DEADLINE)
    index.invalidate()
    # the child imports this module on first use: do that before the clock matters
    await index.worker.run(slow_batch, root, text, path, [], 1, deadline=DEADLINE)
    monkeypatch.setattr(jedi_queries, "definitions_batch", slow_batch)
    started = time.monotonic()
    assert await index.definitions_batch(text, path, [first, second], deadline=0.2) == {}
    assert time.monotonic() - started < 0.4
    for _ in range(100):  # the child finishes the name in flight and sends it anyway
        if await index.definitions_batch(text, path, [first], deadline=0.0):
            break
        await asyncio.sleep(0.05)
    found = await index.definitions_batch(text, path, [first, second], deadline=0.0)
    assert found == {first: expected}  # the second name was never started


async def test_cache_per_text_and_invalidate(
    threaded: SymbolIndex, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = jedi_queries.goto_one

    def counting(sc: object, line: int, column: int, *args: object) -> object:
        calls.append((line, column))
        return real(sc, line, column, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(jedi_queries, "goto_one", counting)
    path = root / "app/service.py"
    text = path.read_text()
    position = _position(text, "apply_tax(subtotal)")
    first = await _definitions(threaded, text, path, *position, deadline=DEADLINE)
    assert await _definitions(threaded, text, path, *position, deadline=DEADLINE) == first
    assert len(calls) == 1
    edited = text.replace("taxed = apply_tax", "taxed  = apply_tax")
    moved = _position(edited, "apply_tax(subtotal)")
    await _definitions(threaded, edited, path, *moved, deadline=DEADLINE)  # a new version
    assert len(calls) == 2
    threaded.invalidate(root / "app/pricing.py")  # the definition's file changed
    await _definitions(threaded, text, path, *position, deadline=DEADLINE)
    assert len(calls) == 3


async def test_open_buffer_wins_over_disk(root: Path) -> None:
    buffers = {root / "app/pricing.py": "RATE = 0.5\n"}
    index = SymbolIndex(WorkspaceBoundary(root, buffers.get))
    try:
        assert await index.read(root / "app/pricing.py") == "RATE = 0.5\n"
        disk = await index.read(root / "app/retry.py")
        assert disk is not None and "with_retries" in disk
        assert await index.read(root / "missing.py") is None
    finally:
        index.close()


async def test_agent_navigator_shares_the_jedi_worker(index: SymbolIndex, root: Path) -> None:
    navigator = JediNavigator(root, index.worker)
    [found] = await navigator.definitions("apply_tax", root / "app/service.py", None, None)
    assert found.path == "app/pricing.py"
    navigator.close()  # does not close the shared worker
    assert await _definitions(
        index,
        (root / "app/service.py").read_text(),
        root / "app/service.py",
        8,
        12,
        deadline=DEADLINE,
    )
