"""A hostile repository through the real server: none of its code runs, hostile drafts and
sources neither crash nor freeze the server, and a corrupt jedi cache heals itself.

The server runs with the hostile folder as BOTH its working directory and its workspace
root (like an editor started in a freshly cloned repository), as ``python -P`` so the
server's own imports come from its installation, as with the ``llm-lsp`` script.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import FIXTURES, TEST_KEY, Session, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Modules a repository could plant to run code in our children; each writes a marker.
PLANTED = ("json", "libcst", "sitecustomize", "jedi", "parso", "ruff/__init__", "ruff/__main__")
APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
PRIMARY, CHEAP = "gpt-4o", "gpt-4o-mini"
STATS = "shop/stats.py"
GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"
EXPLANATION = "Caps the percentage at 100 and rounds the discounted total to cents."


def _hostile(tmp_path: Path) -> tuple[Path, Path]:
    root, markers = tmp_path / "repo", tmp_path / "markers"
    shutil.copytree(FIXTURES / "project", root)
    markers.mkdir()
    for name in PLANTED:
        module = root / f"{name}.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        marker = markers / name.replace("/", ".")
        module.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (root / "shop" / "deep.py").write_text("x = " + "not " * 10_000 + "1\n")
    return root, markers


def _propose(replacement: str) -> dict[str, Any]:
    arguments = {
        "path": STATS,
        "start_line": 6,
        "end_line": 6,
        "replacement": replacement,
        "explanation": "Return 0.0 for an empty list.",
    }
    return {"name": "propose_fix", "arguments": arguments}


def _value(hover: types.Hover | None) -> str:
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


async def _fix(session: Session) -> asyncio.Task[types.CodeAction]:
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=session.uri(STATS)),
            range=types.Range(types.Position(5, 0), types.Position(6, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None
    fix = next(a for a in actions if isinstance(a, types.CodeAction) and a.title.startswith("Fix"))
    return asyncio.ensure_future(session.client.code_action_resolve_async(fix))


async def _explain(session: Session) -> Any:
    return await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="llmLsp.explain",
            arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
        )
    )


async def _first_hover(session: Session, at: tuple[str, int, int]) -> str:
    """The first hover's text: a fresh jedi cache makes the first lookups slow on a busy
    machine, and a hover whose static part misses its deadline answers null (no model call)."""
    for _ in range(6):
        hover = await session.hover(*at)
        if hover is not None:
            return _value(hover)
    raise AssertionError("no hover answer in 6 tries")


def _tool_results(fake: FakeProvider, model: str) -> list[dict[str, Any]]:
    """The tool results in the last request for ``model``."""
    last = [r for r in fake.requests if r.model == model][-1]
    return [json.loads(m["content"]) for m in last.messages if m.get("role") == "tool"]


async def test_no_workspace_code_runs_and_hostile_drafts_are_rejected(
    tmp_path: Path, fake: FakeProvider
) -> None:
    root, markers = _hostile(tmp_path)
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        # hovers on the cheap model, so a hover during the fix uses none of the fix's steps
        LLM_LSP_ROUTING_RULES=json.dumps([{"kind": ["hover"], "tier": "cheap"}]),
    )
    session = await start_session(root, tmp_path, env=env, cwd=root)
    try:
        fake.script(Step(text=EXPLANATION), model=CHEAP)
        value = await _first_hover(session, APPLY_DISCOUNT)
        assert "defined at `shop/pricing.py:17`" in value and EXPLANATION in value

        fake.script(
            Step(tool_calls=[{"name": "lint", "arguments": {"path": STATS}}]),
            Step(text="Averages the values."),
            model=PRIMARY,
        )
        assert (await _explain(session))["ok"] is True
        [lint] = _tool_results(fake, PRIMARY)
        assert "diagnostics" in lint, lint  # ruff (the binary) ran

        fake.reset()
        lambdas = "    return " + "lambda: " * 5_000 + "0\n"
        # past the parse child's 3 s CPU budget (3,500 terms took 3.1 s here; 5,000 take 6.7 s)
        chain = "    return " + "+".join(["1"] * 5_000) + "\n"
        fake.script(
            Step(tool_calls=[_propose(lambdas)]),
            Step(tool_calls=[_propose(chain)]),
            Step(tool_calls=[_propose(GOOD_FIX)]),
            model=PRIMARY,
        )
        pending = await _fix(session)
        await fake.wait_for_requests_async(1, 60.0)
        # while the draft is parsed, hovers are answered
        again = await asyncio.wait_for(session.hover("shop/basket.py", 18, 18), 30.0)
        assert "defined at `shop/pricing.py:17`" in _value(again)
        resolved = await asyncio.wait_for(pending, 240.0)
        assert resolved.edit is not None  # the third draft, after two rejections
        # each rejection went back to the model (one per later request)
        fix_requests = [r for r in fake.requests if r.model == PRIMARY]
        assert len(fix_requests) == 3
        for request in fix_requests[1:]:
            last = json.dumps(request.messages[-1])
            assert "the parser gave up" in last, last[:500]
        assert "defined at" in _value(await session.hover(*APPLY_DISCOUNT))
    finally:
        await session.stop()
    assert sorted(p.name for p in markers.iterdir()) == []
    assert "Traceback" not in (tmp_path / "server-stderr.log").read_text()


async def test_truncated_jedi_cache_does_not_break_hover_or_explain(
    tmp_path: Path, fake: FakeProvider
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "project", root)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    first = await start_session(root, tmp_path, env=env)
    try:
        fake.script(Step(text=EXPLANATION))
        assert "defined at `shop/pricing.py:17`" in await _first_hover(first, APPLY_DISCOUNT)
    finally:
        await first.stop()
    pickles = list((tmp_path / "cache" / "jedi").rglob("*.pkl"))
    assert pickles, "jedi's cache is not under the cache directory"
    for pickle_file in pickles:  # what a kill during parso's write leaves behind
        pickle_file.write_bytes(pickle_file.read_bytes()[:20])
    fake.reset()
    second = await start_session(root, tmp_path, env=env)
    try:
        fake.script(Step(text="Fresh explanation."))
        value = await _first_hover(second, ("shop/basket.py", 18, 18))  # not the cached answer
        assert "defined at `shop/pricing.py:17`" in value
        fake.script(Step(text="Adds VAT, then the discount."))
        assert (await _explain(second))["ok"] is True
    finally:
        await second.stop()
    assert "parse cache is corrupt" in (tmp_path / "server-stderr.log").read_text()
