"""The provider chain against three FakeProviders: fault matrix, breakers, cancellation."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The server imports the SDK lazily, inside the first attempt; imported here, the 0.5 s
# attempt timeouts below never include that import (seconds on a busy machine).
import openai  # noqa: F401
import pytest

from lsp_server.llm.chain import AllTiersFailed
from lsp_server.llm.doctor import format_report, run_doctor
from lsp_server.llm.queue import RequestQueue, worth_queueing
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind
from lsp_server.settings import build_settings
from lsp_server.telemetry.usage import UsageLog
from lsp_server.testing.fake_provider import FakeProvider, Step

PRIMARY_KEY = "sk-test-primary-000000000000"
CHEAP_KEY = "sk-test-cheap-1111111111111"
ROLES = ("primary", "cheap", "local")
MODELS = {"primary": "gpt-4o", "cheap": "gpt-4o-mini", "local": "qwen2.5-coder"}
DEADLINE = 3.0


@dataclass
class Fakes:
    primary: FakeProvider
    cheap: FakeProvider
    local: FakeProvider

    def __getitem__(self, role: str) -> FakeProvider:
        return {"primary": self.primary, "cheap": self.cheap, "local": self.local}[role]

    def answer_with_role(self) -> None:
        for role in ROLES:
            self[role].set_default(Step(text=f"from {role}"))


@pytest.fixture(scope="module")
def fakes_session() -> Iterator[Fakes]:
    with (
        FakeProvider(models=("gpt-4o",)) as primary,
        FakeProvider(models=("gpt-4o-mini",)) as cheap,
        FakeProvider(models=("qwen2.5-coder",)) as local,
    ):
        yield Fakes(primary, cheap, local)


@pytest.fixture
def fakes(fakes_session: Fakes) -> Fakes:
    for role in ROLES:
        fakes_session[role].reset()
    fakes_session.answer_with_role()
    return fakes_session


def make_service(
    fakes: Fakes, tmp_path: Path, *, shared_account: bool = False, **config: Any
) -> LlmService:
    """Three tiers on three fakes; the local one discovers its model."""
    cheap_fake = fakes.primary if shared_account else fakes.cheap
    providers = [
        {
            "name": "openai",
            "role": "primary",
            "baseUrl": fakes.primary.base_url,
            "apiKeyEnv": "PRIMARY_KEY",
            "models": ["gpt-4o"],
        },
        {
            "name": "openai-cheap",
            "role": "cheap",
            "baseUrl": cheap_fake.base_url,
            "apiKeyEnv": "PRIMARY_KEY" if shared_account else "CHEAP_KEY",
            "models": ["gpt-4o-mini"],
        },
        {"name": "local", "role": "local", "baseUrl": fakes.local.base_url},
    ]
    workspace = {
        "providers": providers,
        "timeout": 0.5,
        "retryInitialBackoff": 0.01,
        "retryMaxBackoff": 0.05,
        **config,
    }
    env = {"PRIMARY_KEY": PRIMARY_KEY, "CHEAP_KEY": CHEAP_KEY, "HOME": str(tmp_path)}
    settings, problems = build_settings(env=env, init_options=workspace)
    assert problems == []
    return LlmService(settings.llm, UsageLog(tmp_path / "usage.jsonl"))


def request(feature: str = "hover", *, stream: bool = False) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": "Explain apply_discount."}],
        feature=feature,
        max_tokens=50,
        stream=stream,
    )


async def ask(
    service: LlmService, req: ChatRequest | None = None, deadline: float = DEADLINE
) -> tuple[Completion, float]:
    started = time.monotonic()
    completion = await service.complete(
        req or request(), deadline=started + deadline, request_id="req-1"
    )
    return completion, time.monotonic() - started


def usage(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "usage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def chats(fake: FakeProvider) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/chat/completions"]


# -- fault matrix ----------------------------------------------------------------------

FAULTS: dict[str, tuple[Step, bool, str]] = {
    # name: (step repeated at the faulty tier, streamed request, who answers)
    "timeout": (Step(delay=10.0), False, "next"),
    "429 short retry-after": (Step(status=429, retry_after_ms=200), False, "same"),
    "429 too-long retry-after": (Step(status=429, retry_after=60), False, "next"),
    "500": (Step(status=500), False, "next"),
    "503": (Step(status=503), False, "next"),
    "malformed body": (Step(malformed=True), False, "next"),
    "connection reset": (Step(reset=True), False, "next"),
    "mid-stream reset": (Step(reset_mid_stream=True, text="one two three four five"), True, "next"),
    "insufficient_quota": (
        Step(status=429, error_code="insufficient_quota", error_type="insufficient_quota"),
        False,
        "next",
    ),
    "bad key": (Step(status=401), False, "next"),
}


@pytest.mark.parametrize("position", [0, 1, 2], ids=ROLES)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_matrix(fakes: Fakes, tmp_path: Path, fault: str, position: int) -> None:
    step, stream, who = FAULTS[fault]
    faulty = ROLES[position]
    for role in ROLES[:position]:  # the tiers before are down: they reject the key
        fakes[role].set_default(Step(status=401))
    if who == "same":
        fakes[faulty].script(step)  # fails once, then answers
    else:
        fakes[faulty].set_default(step)
    service = make_service(fakes, tmp_path)
    try:
        if who == "next" and position == 2:
            started = time.monotonic()
            with pytest.raises(AllTiersFailed) as info:
                await ask(service, request(stream=stream))
            assert time.monotonic() - started < DEADLINE
            assert "qwen2.5-coder: " in info.value.summary
            return
        completion, elapsed = await ask(service, request(stream=stream))
    finally:
        await service.aclose()
    answerer = faulty if who == "same" else ROLES[position + 1]
    assert elapsed < DEADLINE
    assert completion.tier == answerer
    assert completion.text == f"from {answerer}"
    assert completion.route_reason.startswith("hover, ")
    if answerer != "primary":
        assert completion.notice is not None
        assert completion.notice.endswith(f"answered by {answerer} {MODELS[answerer]}")
        assert f"{MODELS[faulty]} unavailable: " in completion.notice or who == "same"
    faulty_requests = chats(fakes[faulty])
    if who == "same":
        first, second = faulty_requests
        assert first.finished_at is not None
        assert second.started_at - first.finished_at >= 0.19  # retry-after-ms honoured
    elif fault in ("429 too-long retry-after", "insufficient_quota", "bad key"):
        # not retried: skipped to the next tier at once (the bound on `elapsed` above is
        # the deadline; a wall-clock bound tighter than that fails on a busy machine)
        assert len(faulty_requests) == 1
    else:
        assert len(faulty_requests) == 3  # retried up to max_attempts
    records = usage(tmp_path)
    assert records[-1]["outcome"] == "ok" and records[-1]["tier"] == answerer
    assert all(r["route"] for r in records)
    if fault == "insufficient_quota":
        assert service.breaker_states()[_name(faulty)].startswith("open ")


def _name(role: str) -> str:
    return {"primary": "openai", "cheap": "openai-cheap", "local": "local"}[role]


async def test_bad_key_skips_later_tiers_on_the_same_account(fakes: Fakes, tmp_path: Path) -> None:
    fakes.primary.set_default(Step(status=401))
    service = make_service(fakes, tmp_path, shared_account=True)
    try:
        completion, _ = await ask(service)
    finally:
        await service.aclose()
    assert completion.tier == "local"
    assert len(chats(fakes.primary)) == 1  # gpt-4o-mini on the same key was not tried
    assert completion.notice == (
        "gpt-4o unavailable: auth error 401; "
        "gpt-4o-mini unavailable: same account as gpt-4o (auth error 401); "
        "answered by local qwen2.5-coder"
    )
    skipped = [r for r in usage(tmp_path) if r["outcome"] == "skipped"]
    assert [(r["provider"], r["error_class"]) for r in skipped] == [
        ("openai-cheap", "same_account")
    ]


async def test_hanging_primary_leaves_time_for_the_next_tier(fakes: Fakes, tmp_path: Path) -> None:
    fakes.primary.set_default(Step(delay=30.0))
    service = make_service(fakes, tmp_path, timeout=30)
    try:
        completion, elapsed = await ask(service, deadline=2.0)
    finally:
        await service.aclose()
    assert completion.tier == "cheap"
    assert elapsed < 2.0
    assert completion.notice is not None and completion.notice.startswith(
        "gpt-4o unavailable: timeout"
    )
    hung = await fakes.primary.wait_for_disconnect_async(2.0)
    assert hung is not None  # the hanging request was closed, not left streaming


async def test_all_tiers_failed_summarises_each_tier(fakes: Fakes, tmp_path: Path) -> None:
    for role in ROLES:
        fakes[role].set_default(Step(status=400, error_message="bad request"))
    service = make_service(fakes, tmp_path)
    try:
        with pytest.raises(AllTiersFailed) as info:
            await ask(service)
    finally:
        await service.aclose()
    failure = info.value
    assert failure.kind is ErrorKind.CLIENT_ERROR
    assert [o.label for o in failure.outcomes] == ["gpt-4o", "gpt-4o-mini", "qwen2.5-coder"]
    assert failure.summary.startswith("gpt-4o: client error 400 (HTTP 400")
    assert failure.message == failure.summary


# -- breaker ---------------------------------------------------------------------------


def transitions(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    pattern = re.compile(rf"breaker {re.escape(name)}: (\w+) -> (\w+)")
    found = (pattern.search(r.getMessage()) for r in caplog.records)
    return [f"{m.group(1)}->{m.group(2)}" for m in found if m]


async def wait_until(predicate: Any, limit: float = 5.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def test_breaker_trips_skips_probes_and_closes(
    fakes: Fakes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lsp_server.llm.breaker")
    fakes.primary.set_default(Step(status=500))
    service = make_service(
        fakes, tmp_path, retryMaxAttempts=1, breakerFailureThreshold=2, breakerCooldown=0.5
    )
    try:
        for _ in range(2):
            completion, _ = await ask(service)
            assert completion.tier == "cheap"
        assert service.breaker_states()["openai"].startswith("open 1 s: 2 consecutive failures")
        completion, elapsed = await ask(service)
        assert len(chats(fakes.primary)) == 2  # the open breaker sent nothing
        assert elapsed < 0.3
        assert completion.notice == (
            "gpt-4o unavailable: circuit open for 1 s; answered by cheap gpt-4o-mini"
        )
        assert [r["error_class"] for r in usage(tmp_path) if r["outcome"] == "skipped"] == [
            "circuit_open"
        ]
        # cooldown ends: one "ping" probe (not a user's request) closes the breaker
        fakes.primary.set_default(Step(text="pong"))
        await wait_until(lambda: service.breaker_states()["openai"] == "closed")
        probe = chats(fakes.primary)[-1]
        assert len(chats(fakes.primary)) == 3
        assert probe.messages == [{"role": "user", "content": "ping"}]
        assert probe.body["max_tokens"] == 1
        fakes.primary.set_default(Step(text="from primary"))
        completion, _ = await ask(service)
        assert (completion.tier, completion.notice) == ("primary", None)
    finally:
        await service.aclose()
    assert transitions(caplog, "openai") == ["closed->open", "open->half_open", "half_open->closed"]


async def test_failed_probe_reopens_with_a_fresh_cooldown(
    fakes: Fakes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lsp_server.llm.breaker")
    fakes.primary.set_default(Step(status=503))
    service = make_service(
        fakes, tmp_path, retryMaxAttempts=1, breakerFailureThreshold=1, breakerCooldown=0.3
    )
    try:
        await ask(service)
        await wait_until(lambda: len(transitions(caplog, "openai")) >= 3)
        assert service.breaker_states()["openai"].startswith("open ")
        assert "probe failed (server_error 503)" in service.breaker_states()["openai"]
        fakes.primary.set_default(Step(text="from primary"))
        await wait_until(lambda: service.breaker_states()["openai"] == "closed")
    finally:
        await service.aclose()
    assert transitions(caplog, "openai") == [
        "closed->open",
        "open->half_open",
        "half_open->open",
        "open->half_open",
        "half_open->closed",
    ]


async def test_ten_callers_in_half_open_one_request_reaches_the_provider(
    fakes: Fakes, tmp_path: Path
) -> None:
    fakes.primary.set_default(Step(status=500))
    service = make_service(  # a timeout the slow probe below stays within
        fakes,
        tmp_path,
        retryMaxAttempts=1,
        breakerFailureThreshold=1,
        breakerCooldown=0.3,
        timeout=30,
    )
    try:
        await ask(service)
        assert len(chats(fakes.primary)) == 1
        fakes.primary.set_default(Step(text="pong", delay=5.0))  # a slow probe
        await wait_until(lambda: service.breaker_states()["openai"].startswith("half-open"))
        results = await asyncio.gather(*(ask(service) for _ in range(10)))
        assert len(chats(fakes.primary)) == 2  # the first failure, then exactly one probe
        assert chats(fakes.primary)[-1].messages[0]["content"] == "ping"
        for completion, elapsed in results:
            assert completion.tier == "cheap"
            assert elapsed < 2.5  # nobody waited for the probe (it takes 5 s)
            assert completion.notice is not None
            assert completion.notice.startswith("gpt-4o unavailable: circuit half-open")
        await wait_until(lambda: service.breaker_states()["openai"] == "closed", limit=30.0)
    finally:
        await service.aclose()


async def test_cancellation_neither_trips_nor_resets_a_breaker(
    fakes: Fakes, tmp_path: Path
) -> None:
    service = make_service(fakes, tmp_path, retryMaxAttempts=1, breakerFailureThreshold=2)
    try:
        fakes.primary.script(Step(status=500))
        await ask(service)  # one counted failure
        fakes.primary.script(Step(delay=10.0))
        task = asyncio.create_task(ask(service, deadline=20.0))
        await fakes.primary.wait_for_requests_async(2, finished=False)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hung = await fakes.primary.wait_for_disconnect_async(5.0)
        assert hung is not None and hung.client_disconnected
        assert service.breaker_states()["openai"] == "closed"  # not tripped
        assert usage(tmp_path)[-1]["outcome"] == "cancelled"
        assert usage(tmp_path)[-1]["error_class"] is None
        assert len(chats(fakes.cheap)) == 1  # only the first request fell back
        fakes.primary.script(Step(status=500))
        await ask(service)  # second counted failure: the cancel did not reset the count
        assert service.breaker_states()["openai"].startswith("open ")
    finally:
        await service.aclose()


async def test_cancelled_probe_is_neutral(fakes: Fakes, tmp_path: Path) -> None:
    fakes.primary.set_default(Step(status=500))
    service = make_service(  # the probe's own timeout must not end it before aclose does
        fakes,
        tmp_path,
        retryMaxAttempts=1,
        breakerFailureThreshold=1,
        breakerCooldown=0.2,
        timeout=30,
    )
    await ask(service)
    fakes.primary.set_default(Step(delay=10.0))
    await fakes.primary.wait_for_requests_async(2, finished=False)  # the probe is in flight
    tier = service.tiers["openai"]
    await service.aclose()  # cancels the probe
    assert tier.breaker.state.value == "half_open"


# -- settings and availability ----------------------------------------------------------


async def test_unset_key_variable_leaves_the_tier_out(fakes: Fakes, tmp_path: Path) -> None:
    settings, _ = build_settings(
        env={"HOME": str(tmp_path)},
        init_options={
            "providers": [
                {"name": "a", "role": "primary", "apiKeyEnv": "NOPE_KEY", "models": ["gpt-4o"]},
                {"name": "l", "role": "local", "baseUrl": fakes.local.base_url},
            ]
        },
    )
    service = LlmService(settings.llm, UsageLog(None))
    try:
        assert [s.unavailable for s in service.specs] == ["NOPE_KEY is not set", None]
        assert service.available and list(service.tiers) == ["l"]
        completion, _ = await ask(service)
        assert (completion.tier, completion.model, completion.notice) == (
            "local",
            "qwen2.5-coder",
            None,
        )
    finally:
        await service.aclose()
    empty = LlmService(build_settings(env={})[0].llm, UsageLog(None))
    assert not empty.available
    with pytest.raises(AllTiersFailed, match="no provider configured"):
        await ask(empty)
    await empty.aclose()


async def test_keys_never_reach_logs(
    fakes: Fakes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fakes.primary.set_default(Step(status=401, error_message=f"Incorrect API key {PRIMARY_KEY}"))
    service = make_service(fakes, tmp_path)
    try:
        completion, _ = await ask(service)
    finally:
        await service.aclose()
    assert fakes.cheap.requests[0].auth == CHEAP_KEY
    for text in (caplog.text, (tmp_path / "usage.jsonl").read_text(), repr(completion)):
        assert PRIMARY_KEY not in text and CHEAP_KEY not in text


# -- doctor ------------------------------------------------------------------------------


async def test_doctor_checks_every_provider_with_a_tiny_prompt(
    fakes: Fakes, tmp_path: Path
) -> None:
    fakes.local.set_default(Step(status=503))
    fakes.cheap.set_default(Step(status=401, error_message=f"bad key {CHEAP_KEY}"))
    service = make_service(fakes, tmp_path, breakerFailureThreshold=1, retryMaxAttempts=1)
    fakes.primary.script(Step(status=500))
    try:
        with pytest.raises(AllTiersFailed):
            await ask(service)  # opens the primary's breaker: the doctor shows the live state
        report = await run_doctor(
            service.settings, service=service, usage_log=UsageLog(tmp_path / "doctor.jsonl")
        )
    finally:
        await service.aclose()
    primary, cheap, local = report.checks
    assert (report.ok, report.exit_code) == (True, 0)
    assert primary.ok and primary.model == "gpt-4o" and primary.models == ("gpt-4o",)
    assert primary.latency_ms is not None and primary.ttft_ms is not None
    assert primary.ttft_ms <= primary.latency_ms
    assert (primary.prompt_tokens, primary.completion_tokens) == (6, 2)
    assert primary.breaker.startswith("open ")
    assert not cheap.ok and cheap.error is not None and cheap.error.startswith("auth_error")
    assert not local.ok and local.model == "qwen2.5-coder"  # discovered
    doctor_prompt = chats(fakes.primary)[-1]
    assert doctor_prompt.stream and doctor_prompt.body["max_tokens"] == 5
    text = format_report(report)
    assert "first token" in text and "ok: 1 of 3 providers answered" in text
    assert CHEAP_KEY not in text
    records = [json.loads(x) for x in (tmp_path / "doctor.jsonl").read_text().splitlines()]
    assert sorted((r["provider"], r["feature"], r["outcome"]) for r in records) == [
        ("local", "doctor", "error"),
        ("openai", "doctor", "ok"),
        ("openai-cheap", "doctor", "error"),
    ]


async def test_doctor_fails_when_no_tier_can_answer(fakes: Fakes, tmp_path: Path) -> None:
    for role in ROLES:
        fakes[role].set_default(Step(status=503))
    settings, _ = build_settings(
        env={"HOME": str(tmp_path)},
        init_options={
            "timeout": 2,
            "providers": [
                {"name": "a", "role": "primary", "apiKeyEnv": "NOPE_KEY", "models": ["gpt-4o"]},
                {"name": "l", "role": "local", "baseUrl": fakes.local.base_url},
            ],
        },
    )
    report = await run_doctor(settings.llm)
    assert report.exit_code == 1
    assert report.checks[0].error == "not configured: NOPE_KEY is not set"
    assert fakes.primary.requests == []
    assert report.checks[1].error is not None and "503" in report.checks[1].error
    assert format_report(report).endswith("NO TIER CAN ANSWER: 0 of 2 providers answered")


# -- queue -------------------------------------------------------------------------------


async def test_queued_explain_completes_when_a_tier_returns(fakes: Fakes, tmp_path: Path) -> None:
    for role in ROLES:
        fakes[role].set_default(Step(status=503))
    service = make_service(fakes, tmp_path, retryMaxAttempts=1)
    queue = RequestQueue(lambda: service, attempt_deadline=2.0, retry_interval=0.2, max_wait=10)
    seen: list[str] = []
    try:
        with pytest.raises(AllTiersFailed) as info:
            await ask(service, request("explain"))
        assert worth_queueing(info.value)
        job = queue.submit(
            request("explain"),
            request_id="req-q",
            reason=info.value.summary,
            on_progress=lambda j: seen.append(j.state.value),
        )
        await wait_until(lambda: job.attempts >= 1)
        assert not job.result.done()
        fakes.primary.set_default(Step(text="from primary"))
        completion = await asyncio.wait_for(job.result, 60.0)
    finally:
        await queue.aclose()
        await service.aclose()
    assert (completion.tier, completion.text) == ("primary", "from primary")
    assert job.state.value == "done" and job.message == "answered by primary gpt-4o"
    assert seen[0] == "waiting" and "running" in seen and seen[-1] == "done"
    assert queue.jobs == []


async def test_queued_job_can_be_cancelled_and_hovers_are_never_queued(
    fakes: Fakes, tmp_path: Path
) -> None:
    for role in ROLES:
        fakes[role].set_default(Step(status=503))
    service = make_service(fakes, tmp_path, retryMaxAttempts=1)
    queue = RequestQueue(lambda: service, attempt_deadline=2.0, retry_interval=0.2, max_wait=10)
    try:
        with pytest.raises(ValueError, match="hover requests are never queued"):
            queue.submit(request("hover"), request_id="h")
        job = queue.submit(request("fix"), request_id="req-c")
        await wait_until(lambda: job.attempts >= 1)
        assert queue.cancel(job.id)
        with pytest.raises(asyncio.CancelledError):
            await job.result
        await wait_until(lambda: queue.jobs == [])
        sent = len(chats(fakes.primary))
        await asyncio.sleep(0.5)
        assert len(chats(fakes.primary)) == sent  # nothing more after the cancel
        assert job.state.value == "cancelled"
        assert not queue.cancel(job.id)
    finally:
        await queue.aclose()
        await service.aclose()


async def test_failures_that_waiting_cannot_heal_are_not_worth_queueing(
    fakes: Fakes, tmp_path: Path
) -> None:
    for role in ROLES:
        fakes[role].set_default(Step(status=401 if role != "local" else 400))
    service = make_service(fakes, tmp_path)
    try:
        with pytest.raises(AllTiersFailed) as info:
            await ask(service, request("explain"))
    finally:
        await service.aclose()
    assert not worth_queueing(info.value)
