"""Provider resilience through the real `llm-lsp serve` process: the right tier answers.

Three tiers: primary (gpt-4o) and cheap (gpt-4o-mini) on the shared fake provider with
one key (one account), and a local endpoint on a second fake provider. Each tier
answers "from <tier>", so the hover text shows which one answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
HOVER_DEADLINE = 6.0
SLACK = 2.0  # static analysis and the LSP round trip happen outside the model deadline
LOCAL_MODEL = "qwen2.5-coder"


@pytest.fixture(scope="module")
def local_provider() -> Iterator[FakeProvider]:
    with FakeProvider(models=(LOCAL_MODEL,)) as provider:
        yield provider


@pytest.fixture
def local(local_provider: FakeProvider) -> FakeProvider:
    local_provider.reset()
    local_provider.set_default(Step(text="from local"))
    return local_provider


def _env(tmp_path: Path, fake: FakeProvider, local: FakeProvider, **extra: str) -> dict[str, str]:
    return server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_LOCAL_BASE_URL=local.base_url,
        LLM_LOCAL_MODEL=LOCAL_MODEL,
        LLM_HOVER_DEADLINE=str(HOVER_DEADLINE),
        LLM_TIMEOUT="1.5",
        LLM_RETRY_INITIAL_BACKOFF="0.05",
        LLM_RETRY_MAX_BACKOFF="0.2",
        **extra,
    )


@pytest_asyncio.fixture
async def session(
    workspace: Path, tmp_path: Path, fake: FakeProvider, local: FakeProvider
) -> AsyncIterator[Session]:
    env = _env(tmp_path, fake, local)
    session = await start_session(workspace, tmp_path, client_name="visual-studio-code", env=env)
    yield session
    await session.client.shutdown_session()
    await session.client.stop()


def _value(hover: types.Hover | None) -> str:
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


async def _timed_hover(session: Session) -> tuple[str, float]:
    started = time.monotonic()
    value = _value(await session.hover(*APPLY_DISCOUNT))
    return value, time.monotonic() - started


def _chats(fake: FakeProvider, model: str | None = None) -> list[Any]:
    return [
        r
        for r in fake.requests
        if r.path == "/v1/chat/completions" and (model is None or r.model == model)
    ]


def _script(fake: FakeProvider, model: str, step: Step, times: int = 6) -> None:
    fake.script(*([step] * times), model=model)


CASES: dict[str, tuple[Step | None, Step | None, str]] = {
    # case: (primary's fault, cheap's fault, tier that answers)
    "primary 500": (Step(status=500), None, "cheap"),
    "primary 503": (Step(status=503), None, "cheap"),
    "primary timeout": (Step(delay=30.0), None, "cheap"),
    "primary 429 too-long retry-after": (Step(status=429, retry_after=120), None, "cheap"),
    "primary connection reset": (Step(reset=True), None, "cheap"),
    "primary and cheap malformed": (Step(malformed=True), Step(malformed=True), "local"),
    "primary ok, cheap down": (None, Step(status=500), "primary"),
    "primary bad key skips cheap (same key)": (Step(status=401), None, "local"),
    "primary quota skips cheap (same account)": (
        Step(status=429, error_code="insufficient_quota", error_type="insufficient_quota"),
        None,
        "local",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_fault_is_answered_by_the_right_tier_within_the_deadline(
    session: Session, fake: FakeProvider, local: FakeProvider, case: str
) -> None:
    primary_fault, cheap_fault, answerer = CASES[case]
    if primary_fault is not None:
        _script(fake, "gpt-4o", primary_fault)
    else:
        fake.script(Step(text="from primary"), model="gpt-4o")
    if cheap_fault is not None:
        _script(fake, "gpt-4o-mini", cheap_fault)
    fake.set_default(Step(text="from cheap"))

    value, elapsed = await _timed_hover(session)

    assert elapsed < HOVER_DEADLINE + SLACK
    assert "def apply_discount(total: float, percent: float) -> float" in value
    assert f"from {answerer}" in value
    answered = [r for r in session.usage() if r["outcome"] == "ok"]
    assert [r["tier"] for r in answered] == [answerer]
    assert all(r["route"].startswith("hover, ") for r in session.usage())
    if "same" in case:
        assert _chats(fake, "gpt-4o-mini") == []  # same account: not tried after 401/quota
        assert [r["error_class"] for r in session.usage() if r["outcome"] == "skipped"] == [
            "same_account"
        ]


async def test_short_retry_after_is_honoured_on_the_same_tier(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(Step(status=429, retry_after_ms=300), Step(text="from primary"), model="gpt-4o")
    value, _ = await _timed_hover(session)
    assert "from primary" in value
    first, second = _chats(fake, "gpt-4o")
    assert first.finished_at is not None
    assert second.started_at - first.finished_at >= 0.29
    assert _chats(fake, "gpt-4o-mini") == []


async def test_no_tier_answers_static_facts_and_a_notice_within_the_deadline(
    session: Session, fake: FakeProvider, local: FakeProvider
) -> None:
    fake.set_default(Step(status=503))
    local.set_default(Step(status=503))
    value, elapsed = await _timed_hover(session)
    assert elapsed < HOVER_DEADLINE + SLACK
    assert "def apply_discount(total: float, percent: float) -> float" in value
    assert "AI explanation unavailable" in value
    assert "gpt-4o: server error 503 after 3 attempts" in value
    assert "qwen2.5-coder: server error 503" in value


async def test_open_breaker_sends_nothing_and_probe_restores_the_tier(
    workspace: Path, tmp_path: Path, fake: FakeProvider, local: FakeProvider
) -> None:
    env = _env(
        tmp_path,
        fake,
        local,
        LLM_BREAKER_FAILURE_THRESHOLD="1",
        LLM_BREAKER_COOLDOWN="2",
        LLM_RETRY_MAX_ATTEMPTS="1",
    )
    session = await start_session(workspace, tmp_path, env=env)
    try:
        fake.script(Step(status=500), model="gpt-4o")
        fake.set_default(Step(text="from cheap"))
        value, _ = await _timed_hover(session)
        assert "from cheap" in value
        value, _ = await _timed_hover(session)
        assert "from cheap" in value
        assert len(_chats(fake, "gpt-4o")) == 1  # the open breaker sent nothing
        skipped = [r for r in session.usage() if r["outcome"] == "skipped"]
        assert [(r["provider"], r["error_class"]) for r in skipped] == [("primary", "circuit_open")]
        # after the cooldown a one-token "ping" probe closes the breaker
        probe = None
        until = time.monotonic() + 60.0  # the probe runs in the background: generous bound
        while probe is None and time.monotonic() < until:
            probes = [r for r in session.usage() if r["feature"] == "probe"]
            if probes:
                probe = probes[0]
                break
            await asyncio.sleep(0.05)
        assert probe is not None and probe["outcome"] == "ok"
        assert _chats(fake, "gpt-4o")[-1].messages == [{"role": "user", "content": "ping"}]
        fake.script(Step(text="from primary"), model="gpt-4o")
        value, _ = await _timed_hover(session)
        assert "from primary" in value
    finally:
        await session.client.shutdown_session()
        await session.client.stop()


async def test_hover_names_the_answering_tier_and_why(session: Session, fake: FakeProvider) -> None:
    """The notice above the footer says why, the footer ends with the tier that answered."""
    _script(fake, "gpt-4o", Step(status=500))
    fake.set_default(Step(text="from cheap"))
    value, _ = await _timed_hover(session)
    notice = "gpt-4o unavailable: server error 500 after 3 attempts; answered by cheap gpt-4o-mini"
    assert notice in value
    assert value.rstrip().endswith("· cheap_")


async def test_cancelled_hover_closes_the_request_and_never_trips_the_breaker(
    workspace: Path, tmp_path: Path, fake: FakeProvider, local: FakeProvider
) -> None:
    env = _env(tmp_path, fake, local, LLM_BREAKER_FAILURE_THRESHOLD="1")
    session = await start_session(workspace, tmp_path, env=env)
    try:
        fake.script(Step(text="too late", delay=30.0), model="gpt-4o")
        hung_up = await session.cancelled_hover(fake, APPLY_DISCOUNT, msg_id=777)
        assert hung_up.model == "gpt-4o"
        usage = await session.wait_for_usage()
        assert [(r["outcome"], r["tier"]) for r in usage] == [("cancelled", "primary")]
        # threshold 1: had the cancel counted, the next hover would skip the primary
        fake.script(Step(text="from primary"), model="gpt-4o")
        value, _ = await _timed_hover(session)
        assert "from primary" in value
        assert _chats(fake, "gpt-4o-mini") == []
    finally:
        await session.client.shutdown_session()
        await session.client.stop()
