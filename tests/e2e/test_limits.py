"""Budgets and rate limits through the real server, with the fake provider on 127.0.0.1.

Hovers ask for up to 40,000 tokens (`LLM_LSP_HOVER_MAX_TOKENS`) and the fake reports
40,000 completion tokens, so one gpt-4o hover costs $0.40 (plus one prompt token) and
is estimated at $0.40 plus its prompt: budgets of a few dollars then allow a known
number of hovers whatever the prompt's exact size.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session
from tests.services import free_port

pytestmark = pytest.mark.asyncio(loop_scope="function")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
ANSWER = "Caps the percentage at 100 and rounds the discounted total to cents."
ANSWER_TOKENS = 40_000
HOVER_USD = 1 * 2.50 / 1e6 + ANSWER_TOKENS * 10.0 / 1e6  # gpt-4o: 1 prompt token + answer
CHEAP_USD = 1 * 0.15 / 1e6 + ANSWER_TOKENS * 0.60 / 1e6  # gpt-4o-mini


def _env(tmp_path: Path, fake: FakeProvider, **extra: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "OPENAI_API_KEY": TEST_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "LLM_LSP_HOVER_MAX_TOKENS": str(ANSWER_TOKENS),
        "LLM_HOVER_DEADLINE": "120",
        "LLM_LSP_USER": f"tester-{uuid.uuid4().hex[:8]}",
        "LLM_LSP_RATE_LIMITS": "{}",  # 40,000-token hovers would meet the default token limit
    }
    values.update(extra)
    return server_env(tmp_path, **values)


async def _start(tmp_path: Path, env: dict[str, str], root: Path | None = None) -> Session:
    root = root or copy_project(tmp_path)
    session = await start_session(root, tmp_path, env=env)
    return session


def _value(hover: types.Hover | None) -> str:
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


async def _hover(session: Session) -> str:
    """A hover once static analysis is warm (a cold jedi may answer null at first)."""
    for _ in range(60):
        hover = await session.hover(*APPLY_DISCOUNT)
        if hover is not None:
            return _value(hover)
        await asyncio.sleep(0.5)
    raise AssertionError("no hover")


def _chats(fake: FakeProvider) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/chat/completions"]


def _spent(session: Session) -> float:
    return sum(r["cost_usd"] for r in session.usage() if r["outcome"] == "ok")


def _alerts(session: Session) -> list[str]:
    return [m.message for m in session.client.messages if "budget of user" in m.message]


async def _messages(session: Session, needle: str, count: int) -> list[str]:
    for _ in range(200):
        found = [m.message for m in session.client.messages if needle in m.message]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return [m.message for m in session.client.messages if needle in m.message]


async def test_concurrent_hovers_never_spend_past_the_budget(
    tmp_path: Path, fake: FakeProvider
) -> None:
    # One hover warms static analysis, then ten more fit ($0.40 each, estimated at
    # $0.40 plus the prompt, at most ~$0.41) and an eleventh does not.
    # (The cheap tier is gpt-4o too: no cheaper model to fall back on.)
    budget = 4.6
    fake.set_default(Step(text=ANSWER, usage=(1, ANSWER_TOKENS)))
    env = _env(
        tmp_path,
        fake,
        LLM_LSP_BUDGETS=json.dumps({"user": {"dailyUsd": budget}}),
        LLM_CHEAP_MODEL="gpt-4o",
    )
    session = await _start(tmp_path, env)
    try:
        assert ANSWER in await _hover(session)
        # slow answers: all 32 hovers are in flight before the first is settled
        fake.set_default(Step(text=ANSWER, usage=(1, ANSWER_TOKENS), delay=1.0))
        values = await asyncio.gather(*(session.hover(*APPLY_DISCOUNT) for _ in range(32)))
        answered = [_value(v) for v in values if v is not None]
        await session.wait_for_usage(11)
        spent = _spent(session)
        chats = _chats(fake)
        alerts = await _messages(session, "budget of user", 3)
    finally:
        await session.stop()
    assert len(chats) == 11, f"{len(chats)} provider calls for a budget of 1 + 10"
    assert spent <= budget
    assert spent == pytest.approx(11 * HOVER_USD)
    with_answer = [v for v in answered if ANSWER in v]
    refused = [v for v in answered if "budget of user" in v]
    assert len(with_answer) == 10
    assert len(refused) == len(answered) - 10 >= 20
    assert all("showing static analysis only" in v for v in refused)
    # 50 %, 80 % and 100 % (the first refusal) were each raised once
    assert [a.split(" at ")[1].split(" ")[0] for a in alerts] == ["50", "80", "100"]


async def test_soft_limit_cheaper_model_then_hard_limit_static_and_alerts_once(
    tmp_path: Path, fake: FakeProvider
) -> None:
    fake.set_default(Step(text=ANSWER, usage=(1, ANSWER_TOKENS)))
    env = _env(
        tmp_path,
        fake,
        LLM_LSP_BUDGETS=json.dumps({"user": {"dailyUsd": 0.44}}),
        LLM_LSP_BUDGET_SOFT_LIMIT="0.5",
    )
    session = await _start(tmp_path, env)
    try:
        first = await _hover(session)
        second = await _hover(session)
        third = await _hover(session)
        fourth = await _hover(session)
        records = session.usage()
        limits = session.records("limit")
        messages = await _messages(session, "budget of user", 3)
    finally:
        await session.stop()
    assert ANSWER in first and first.rstrip().endswith("· primary_")
    assert ANSWER in second and "_gpt-4o-mini · " in second and second.rstrip().endswith("cheap_")
    assert "cheaper model" in second
    assert [c.model for c in _chats(fake)] == ["gpt-4o", "gpt-4o-mini"]
    for refused in (third, fourth):
        assert ANSWER not in refused
        assert "def apply_discount(total: float, percent: float) -> float" in refused
        assert "daily USD budget of user tester-" in refused
        assert "showing static analysis only" in refused
    # each threshold once, though two hovers were refused
    assert len(messages) == 3
    assert " at 50 %" in messages[0] and " at 80 %" in messages[1]
    assert " at 100 %" in messages[2] and "paid models are off" in messages[2]
    alerts = [r for r in limits if r["outcome"] == "alert"]
    assert [r["error_class"] for r in alerts] == ["budget_50", "budget_80", "budget_100"]
    spent = sum(r["cost_usd"] for r in records if r["outcome"] == "ok")
    assert spent == pytest.approx(HOVER_USD + CHEAP_USD)


async def test_rate_limit_degrades_to_static_with_a_note(
    tmp_path: Path, fake: FakeProvider
) -> None:
    fake.set_default(Step(text=ANSWER))
    limits = {"user": {"hover": {"requests": 2}}}
    env = _env(
        tmp_path, fake, LLM_LSP_RATE_LIMITS=json.dumps(limits), LLM_LSP_RATE_LIMIT_WINDOW="600"
    )
    session = await _start(tmp_path, env)
    try:
        answers = [await _hover(session) for _ in range(3)]
    finally:
        await session.stop()
    assert all(ANSWER in a for a in answers[:2])
    assert ANSWER not in answers[2]
    assert "rate limit for hover of user tester-" in answers[2]
    assert "(2 requests per 600 s)" in answers[2]
    assert len(_chats(fake)) == 2


async def test_two_servers_share_the_local_store(tmp_path: Path, fake: FakeProvider) -> None:
    """Two editor windows of one user: one cache dir, one budget, one rate limit."""
    fake.set_default(Step(text=ANSWER, usage=(1, ANSWER_TOKENS)))
    env = _env(
        tmp_path,
        fake,
        LLM_LSP_BUDGETS=json.dumps({"user": {"dailyUsd": 0.6}}),
        LLM_LSP_RATE_LIMITS=json.dumps({"user": {"hover": {"requests": 3}}}),
        LLM_LSP_RATE_LIMIT_WINDOW="600",
    )
    root = copy_project(tmp_path)
    (tmp_path / "b").mkdir()
    a = await _start(tmp_path, env, root)
    b = await start_session(root, tmp_path / "b", env=env)
    try:
        from_a = await _hover(a)
        from_b = await _hover(b)
        again_b = await _hover(b)
        limited_a = await _hover(a)
    finally:
        await asyncio.gather(a.stop(), b.stop())
    assert ANSWER in from_a and from_a.rstrip().endswith("· primary_")
    # b sees a's spend: gpt-4o would pass the budget, so the cheaper model answers
    assert ANSWER in from_b and "_gpt-4o-mini · " in from_b
    assert ANSWER in again_b
    # the fourth hover across both windows meets the shared rate limit of three
    assert ANSWER not in limited_a and "rate limit for hover" in limited_a
    assert [c.model for c in _chats(fake)] == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]


async def test_redis_shared_by_two_servers(
    tmp_path: Path, fake: FakeProvider, redis_url: str
) -> None:
    """A team on Redis: two servers with their own cache dirs share budget and rate limit."""
    fake.set_default(Step(text=ANSWER, usage=(1, ANSWER_TOKENS)))
    user = f"team-member-{uuid.uuid4().hex[:8]}"
    shared = {
        "LLM_LSP_REDIS_URL": redis_url,
        "LLM_LSP_USER": user,
        "LLM_LSP_BUDGETS": json.dumps({"user": {"dailyUsd": 0.6}}),
        "LLM_LSP_RATE_LIMITS": json.dumps({"user": {"hover": {"requests": 3}}}),
        "LLM_LSP_RATE_LIMIT_WINDOW": "600",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env_a = _env(tmp_path / "a", fake, **shared)
    env_b = _env(tmp_path / "b", fake, **shared)
    root = copy_project(tmp_path)
    a = await start_session(root, tmp_path / "a", env=env_a)
    b = await start_session(root, tmp_path / "b", env=env_b)
    try:
        from_a = await _hover(a)
        from_b = await _hover(b)
        again_b = await _hover(b)
        limited_a = await _hover(a)
        said = [m.message for m in (*a.client.messages, *b.client.messages)]
    finally:
        await asyncio.gather(a.stop(), b.stop())
    assert ANSWER in from_a and "_gpt-4o · " in from_a
    assert ANSWER in from_b and "_gpt-4o-mini · " in from_b
    assert ANSWER in again_b
    assert "rate limit for hover" in limited_a and ANSWER not in limited_a
    assert not any("Redis" in m for m in said)
    assert not (tmp_path / "a" / "cache" / "limits").exists()  # nothing counted locally


async def test_redis_unreachable_falls_back_to_local_said_once(
    tmp_path: Path, fake: FakeProvider
) -> None:
    fake.set_default(Step(text=ANSWER))
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    env = _env(
        tmp_path,
        fake,
        LLM_LSP_REDIS_URL=url,
        LLM_LSP_RATE_LIMITS=json.dumps({"user": {"hover": {"requests": 2}}}),
        LLM_LSP_RATE_LIMIT_WINDOW="600",
    )
    session = await _start(tmp_path, env)
    try:
        answers = [await _hover(session) for _ in range(3)]
        said = await _messages(session, "Redis", 1)
        stderr = session.stderr_log.read_text()
    finally:
        await session.stop()
    assert all(ANSWER in a for a in answers[:2])
    assert "rate limit for hover" in answers[2]  # counted locally instead
    assert len(said) == 1
    assert "unreachable" in said[0] and "counted locally" in said[0]
    assert "hunter2-secret" not in said[0] and "hunter2-secret" not in stderr
    assert (tmp_path / "cache" / "limits" / "limits.sqlite3").exists()


async def test_explain_shows_its_estimate_before_it_runs(
    tmp_path: Path, fake: FakeProvider
) -> None:
    fake.set_default(Step(text="It totals the basket, then applies the discount."))
    session = await _start(tmp_path, _env(tmp_path, fake))
    try:
        await _hover(session)
        result = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.explain",
                arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
            )
        )
        begins = [
            p
            for reports in session.client.progress_reports.values()
            for p in reports
            if isinstance(p, types.WorkDoneProgressBegin)
        ]
    finally:
        await session.stop()
    assert result["ok"] is True
    [begin] = begins
    match = re.fullmatch(r"llm-lsp: Explain \(≈ \$(\d+\.\d{3})\)", begin.title)
    assert match is not None, begin.title
    # 3,000 tokens of context budget and 1,500 of answer at gpt-4o: about two cents
    assert 0.02 <= float(match.group(1)) <= 0.03
