"""Bad input through the real server: every generated case answered with null or a static
answer within a bound, never a crash, a traceback or a stuck request.

The server runs offline (no key), so an answer is the static part of a hover; the cases
come from `bad_inputs.cases()` (over 200 of them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from tests.conftest import Session, copy_project, server_env, start_session
from tests.reliability.bad_inputs import Case, cases

pytestmark = pytest.mark.asyncio(loop_scope="module")

CASES = cases()
ANSWER_BOUND = 60.0  # seconds; generous for a busy machine, yet a stuck request fails


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def offline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("bad-input")
    session = await start_session(copy_project(tmp_path), tmp_path, env=server_env(tmp_path))
    (session.root / "bad").mkdir()
    for _ in range(60):  # jedi's first look can miss a hover's deadline on a busy machine
        if await session.hover("shop/basket.py", 18, 17) is not None:
            break
    yield session
    # after every case, hover on a good file still gives its static facts
    texts = [_text_of(await session.hover("shop/basket.py", 18, 17)) for _ in range(10)]
    assert any(t and "apply_discount" in t for t in texts), texts
    await session.stop()
    log = session.stderr_log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]


async def _request(session: Session, method: str, params: dict[str, Any], kind: type) -> Any:
    protocol = session.client.protocol
    typed = protocol._converter.structure(params, kind)
    return await asyncio.wait_for(protocol.send_request_async(method, typed), ANSWER_BOUND)


def _notify(session: Session, method: str, params: dict[str, Any], kind: type) -> None:
    protocol = session.client.protocol
    protocol.notify(method, protocol._converter.structure(params, kind))


def _text_of(hover: Any) -> str | None:
    if hover is None:
        return None
    if isinstance(hover, types.Hover):
        assert isinstance(hover.contents, types.MarkupContent), hover
        return hover.contents.value
    assert isinstance(hover, dict) and isinstance(hover["contents"]["value"], str), hover
    return str(hover["contents"]["value"])


GROUPS = sorted({c.group for c in CASES})
CONCURRENT = 8  # cases of a group in flight at once, as an editor with several buffers


@pytest.mark.parametrize("group", GROUPS)
async def test_bad_input_is_answered(offline: Session, group: str) -> None:
    """Every case of ``group``, several at a time; each failure is reported by case name."""
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(case: Case) -> str | None:
        async with gate:
            try:
                await _run_case(offline, case)
            except Exception as exc:  # collected: one case's failure must not hide the others
                return f"{case.name}: {type(exc).__name__}: {str(exc)[:300]}"
            return None

    cases = [c for c in CASES if c.group == group]
    failures = [f for f in await asyncio.gather(*(one(c) for c in cases)) if f]
    assert failures == [], "\n".join(failures)


async def _run_case(session: Session, case: Case) -> None:
    uri = case.uri if case.uri is not None else session.uri(f"bad/{case.name}.py")
    if case.disk is not None:
        (session.root / "bad" / f"{case.name}.py").write_bytes(case.disk)
    if case.text is not None:
        item = {"uri": uri, "languageId": "python", "version": 1, "text": case.text}
        _notify(
            session,
            types.TEXT_DOCUMENT_DID_OPEN,
            {"textDocument": item},
            types.DidOpenTextDocumentParams,
        )
    for change in case.changes:
        _notify(
            session,
            types.TEXT_DOCUMENT_DID_CHANGE,
            {
                "textDocument": {"uri": uri, "version": change["version"]},
                "contentChanges": change["changes"],
            },
            types.DidChangeTextDocumentParams,
        )
    doc = {"uri": uri}
    for line, character in case.positions:
        position = {"line": line, "character": character}
        value = _text_of(
            await _request(
                session,
                types.TEXT_DOCUMENT_HOVER,
                {"textDocument": doc, "position": position},
                types.HoverParams,
            )
        )
        assert value is None or ("Traceback" not in value and value.strip()), value
    listing = await _request(
        session,
        types.TEXT_DOCUMENT_CODE_ACTION,
        {
            "textDocument": doc,
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
            "context": {"diagnostics": []},
        },
        types.CodeActionParams,
    )
    assert listing is None or isinstance(listing, list | tuple)
    if case.text is not None:
        _notify(
            session,
            types.TEXT_DOCUMENT_DID_CLOSE,
            {"textDocument": doc},
            types.DidCloseTextDocumentParams,
        )
    # still serving: listing actions on a good file answers at once
    stats = session.uri("shop/stats.py")
    alive = await _request(
        session,
        types.TEXT_DOCUMENT_CODE_ACTION,
        {
            "textDocument": {"uri": stats},
            "range": {"start": {"line": 5, "character": 0}, "end": {"line": 6, "character": 0}},
            "context": {"diagnostics": []},
        },
        types.CodeActionParams,
    )
    assert alive, "the server stopped answering"


async def test_there_are_at_least_200_cases() -> None:
    assert len(CASES) >= 200
    assert len(GROUPS) >= 10
    assert len({c.name for c in CASES}) == len(CASES)
