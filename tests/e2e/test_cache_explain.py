"""Explain through the answer cache, through the real server (`llmLsp.explain`).

Same explain twice → one agent run; reformatting and comment edits → a hit; a
change to the explained function's body → a miss; identical concurrent explains
share one run (a cancelled waiter does not stop it); Regenerate skips and
refreshes; every provider down after a change → the earlier answer, marked
stale. Each test writes its own pair of modules (`test_cache.Pair`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import Session, copy_project, start_session
from tests.e2e.test_cache import CALL, USE, Pair, _log_count, cache_env, chats

pytestmark = pytest.mark.asyncio(loop_scope="module")

HIT = re.compile(
    r"· 0 in / 0 out tokens · saved \$\d+\.\d{4} · \d+ ms · cache, (just now|\d+ s old)_$"
)
BODY_COMMENT = "    # the order's total after its discount\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def explain_session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider
) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("explain-cache")
    root = copy_project(tmp_path)
    env = cache_env(
        tmp_path,
        fake_provider,
        LLM_TIMEOUT="20",
        LLM_RETRY_INITIAL_BACKOFF="0.05",
        LLM_RETRY_MAX_BACKOFF="0.2",
        # jedi places every name however busy the machine: the pack (and so the keys)
        # must not depend on how fast a run's inference was
        LLM_LSP_CONTEXT_DEADLINE="60",
    )
    session = await start_session(root, tmp_path, env=env)
    yield session
    await session.stop()


@pytest.fixture
def es(explain_session: Session, fake: FakeProvider) -> Session:
    return explain_session.begin()


def _span(pair: Pair) -> tuple[int, int]:
    """1-based lines of `order_total` now: from its `def` to its return."""
    lines = pair.use_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def order_total")) + 1
    end = next(i for i, line in enumerate(lines) if CALL in line) + 1
    return start, end


def _params(pair: Pair, **extra: Any) -> types.ExecuteCommandParams:
    start, end = _span(pair)
    args = {"uri": pair.session.uri(pair.use), "start": start, "end": end, **extra}
    return types.ExecuteCommandParams(command="llmLsp.explain", arguments=[args])


def _document(result: dict[str, Any]) -> str:
    assert result["ok"] is True, result
    return Path(unquote(urlparse(result["uri"]).path)).read_text().rstrip()


async def explain(pair: Pair, **extra: Any) -> tuple[dict[str, Any], str]:
    """Run `llmLsp.explain` on `order_total`; its answer and the document it opened."""
    result = await pair.session.client.workspace_execute_command_async(_params(pair, **extra))
    return result, _document(result)


async def summaries(session: Session, count: int) -> list[tuple[str, str]]:
    """(outcome, cache) of the explain request summaries since the test began."""
    records = await session.wait_for_lines(("request",), count)
    return [(r["outcome"], r["cache"]) for r in records if r["feature"] == "explain"]


async def test_same_explain_twice_runs_the_agent_once_and_says_cache_with_its_age(
    es: Session, fake: FakeProvider
) -> None:
    pair = Pair(es, "ex_twice")
    fake.script(Step(text="**Summary**: applies the capped rate.", usage=(300, 40)))
    first, shown = await explain(pair)
    assert "**Summary**: applies the capped rate." in shown
    assert "_gpt-4o · 300 in / 40 out tokens · $0.0011 · 1 step · " in shown
    assert shown.endswith(" s · primary_"), shown
    assert first["cache"] == "miss"
    second, shown = await explain(pair)
    assert "**Summary**: applies the capped rate." in shown
    assert shown.startswith(f"# Explanation of `{pair.use}:")
    assert HIT.search(shown), shown
    assert "saved $0.0011" in shown  # 300 * 2.5/M + 40 * 10/M
    assert second == {**second, "ok": True, "cache": "hit"}
    assert "from the cache" in second["message"]
    assert chats(fake) == 1
    [hit] = await es.wait_for_lines(("cache",))
    assert (hit["feature"], hit["cache"], hit["saved_usd"]) == (
        "explain",
        "hit:exact",
        pytest.approx(0.00115),
    )
    assert await summaries(es, 2) == [("ok", "miss"), ("cached", "hit")]


async def test_reformat_and_comment_edits_hit(es: Session, fake: FakeProvider) -> None:
    pair = Pair(es, "ex_reformat")
    fake.script(Step(text="Explained once."))
    await explain(pair)
    edited = (
        pair.use_text.replace(
            "def order_total(total: float, rate: float) -> float:",
            "def order_total(\n    total: float,\n    rate: float,\n) -> float:",
        )
        .replace("# the order's total after its discount", "# reworded comment")
        .replace('"""Uses."""', '"""Uses.\n\nA longer module docstring."""\n# a comment')
    )
    pair.edit(pair.use, edited)
    pair.edit(pair.defs, pair.defs_text.replace("    rate = min", "    # capped\n    rate = min"))
    result, shown = await explain(pair)
    assert "Explained once." in shown
    assert HIT.search(shown), shown
    assert result["cache"] == "hit"
    assert chats(fake) == 1
    [hit] = await es.wait_for_lines(("cache",))
    assert hit["cache"] == "hit:structural"


async def test_a_change_to_the_explained_body_or_a_definition_it_uses_misses(
    es: Session, fake: FakeProvider
) -> None:
    pair = Pair(es, "ex_change")
    fake.script(Step(text="First."), Step(text="Second."), Step(text="Third."))
    await explain(pair)
    pair.edit(pair.use, pair.use_text.replace(BODY_COMMENT, "    total = abs(total)\n"))
    result, shown = await explain(pair)
    assert "Second." in shown and "First." not in shown
    assert shown.endswith(" s · primary_") and result["cache"] == "miss"
    pair.edit(pair.defs, pair.defs_text.replace("min(rate, 1.0)", "min(rate, 0.9)"))
    _, shown = await explain(pair)
    assert "Third." in shown
    pair.edit(pair.defs, pair.defs_text.replace("min(rate, 0.9)", "min(rate, 1.0)"))
    pair.edit(pair.use, USE.format(name="ex_change"))  # back to the first version: a hit
    result, shown = await explain(pair)
    assert "First." in shown and result["cache"] == "hit"
    assert chats(fake) == 3


async def test_identical_concurrent_explains_share_one_run_and_a_cancelled_one_leaves_it(
    es: Session, fake: FakeProvider
) -> None:
    pair = Pair(es, "ex_shared")
    joined = es.stderr_log.read_text().count("sharing the call in flight")
    fake.script(Step(text="One run for all.", delay=6.0))
    protocol = es.client.protocol
    params = _params(pair)
    pending = {
        msg_id: asyncio.ensure_future(
            protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, params, msg_id=msg_id)
        )
        for msg_id in (9301, 9302, 9303)
    }
    await fake.wait_for_requests_async(1, 60.0, finished=False)
    await _log_count(es, "sharing the call in flight", joined + 2)
    protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=9301))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(pending[9301], 60)
    assert info.value.code == -32800
    answers = [await asyncio.wait_for(pending[i], 60) for i in (9302, 9303)]
    for answer in answers:
        assert "One run for all." in _document(answer)
    [call] = fake.requests
    assert not call.client_disconnected
    assert chats(fake) == 1
    outcomes = sorted(await summaries(es, 3))
    assert outcomes == [("cancelled", "miss"), ("ok", "miss"), ("ok", "miss")]


async def test_regenerate_skips_the_cache_and_refreshes_it(es: Session, fake: FakeProvider) -> None:
    pair = Pair(es, "ex_regen")
    fake.script(Step(text="The old explanation."), Step(text="The new explanation."))
    await explain(pair)
    result, shown = await explain(pair, regenerate=True)
    assert "The new explanation." in shown and result["cache"] == "bypass"
    result, shown = await explain(pair)
    assert "The new explanation." in shown and result["cache"] == "hit"
    assert chats(fake) == 2
    # the Regenerate command, given the explained range, does the same
    fake.script(Step(text="The third explanation."))
    params = _params(pair)
    params.command = "llmLsp.regenerate"
    result = await es.client.workspace_execute_command_async(params)
    assert "The third explanation." in _document(result) and result["cache"] == "bypass"
    _, shown = await explain(pair)
    assert "The third explanation." in shown
    assert chats(fake) == 3


async def test_all_providers_down_after_a_change_serves_the_earlier_explanation_marked_stale(
    es: Session, fake: FakeProvider
) -> None:
    """Last in the module: it leaves the breakers open."""
    pair = Pair(es, "ex_stale")
    fake.script(Step(text="Written for the first version."))
    await explain(pair)
    pair.edit(pair.use, pair.use_text.replace(BODY_COMMENT, "    total = abs(total)\n"))
    fake.set_default(Step(status=503))
    result, shown = await explain(pair)
    assert "Written for the first version." in shown
    assert "_Stale answer from the cache, written " in shown
    assert "the code changed since in target: " in shown
    assert "No live model answered: server error" in shown
    assert re.search(r"· cache, stale, (just now|\d+ s old)_$", shown), shown
    assert result["cache"] == "stale" and "stale answer from the cache" in result["message"]
    assert chats(fake) > 1  # the live tiers were tried first
    records = await es.wait_for_lines(("cache",))
    assert records[-1]["cache"] == "stale:latest" and records[-1]["saved_usd"] == 0.0
    assert (await summaries(es, 2))[-1] == ("fallback", "stale")
