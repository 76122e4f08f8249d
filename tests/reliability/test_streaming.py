"""Streaming faults: a reset or a cut-short answer ends in a fallback, never a partial answer.

The editor features ask for whole answers (``stream=False``); the client can stream
(`ProviderClient._call_streamed`, used by `llm-lsp doctor` and any streamed request).
Both ways are driven through `LlmService` against the fake provider: the primary tier
misbehaves, the cheap tier (a second fake) answers whole; the answer must be the cheap
tier's, and the primary attempt's usage record an error, not an ``ok`` with half a text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai  # noqa: F401 - imported before the short attempt timeouts below
import pytest

from lsp_server.llm.chain import AllTiersFailed
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest
from lsp_server.settings import build_settings
from lsp_server.telemetry.usage import UsageLog
from lsp_server.testing.fake_provider import FakeProvider, Step

LONG = " ".join(f"word{i}" for i in range(40))
WHOLE = "The cheap tier's whole answer."


@pytest.fixture(scope="module")
def cheap_fake() -> Iterator[FakeProvider]:
    with FakeProvider(models=("gpt-4o-mini",)) as provider:
        yield provider


def _service(primary: FakeProvider, cheap: FakeProvider, tmp_path: Path) -> LlmService:
    providers = [
        {
            "name": "openai",
            "role": "primary",
            "baseUrl": primary.base_url,
            "apiKeyEnv": "PRIMARY_KEY",
            "models": ["gpt-4o"],
        },
        {
            "name": "openai-cheap",
            "role": "cheap",
            "baseUrl": cheap.base_url,
            "apiKeyEnv": "CHEAP_KEY",
            "models": ["gpt-4o-mini"],
        },
    ]
    workspace = {
        "providers": providers,
        "timeout": 5.0,
        "retryInitialBackoff": 0.01,
        "retryMaxBackoff": 0.05,
    }
    env = {"PRIMARY_KEY": "sk-primary-1", "CHEAP_KEY": "sk-cheap-2", "HOME": str(tmp_path)}
    settings, problems = build_settings(env=env, init_options=workspace)
    assert problems == []
    return LlmService(settings.llm, UsageLog(tmp_path / "usage.jsonl"))


def _usage(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "usage.jsonl").read_text().splitlines()]


def _request(stream: bool) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": "Explain apply_discount."}],
        feature="explain",
        max_tokens=80,
        stream=stream,
    )


FAULTS = {
    "reset mid-stream": (Step(text=LONG, reset_mid_stream=True), True),
    "truncated stream": (Step(text=LONG, truncate_stream=True), True),
    "truncated body": (Step(text=LONG, truncate_stream=True), False),
    "reset before the answer": (Step(reset=True), False),
    "broken event": (Step(text=LONG, malformed=True), True),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_broken_stream_falls_back_to_a_whole_answer(
    fault: str, fake: FakeProvider, cheap_fake: FakeProvider, tmp_path: Path
) -> None:
    step, stream = FAULTS[fault]
    fake.set_default(step)
    cheap_fake.reset()
    cheap_fake.set_default(Step(text=WHOLE))
    service = _service(fake, cheap_fake, tmp_path)
    try:
        completion = await service.complete(
            _request(stream), deadline=time.monotonic() + 60, request_id="req-stream"
        )
    finally:
        await service.aclose()
    assert completion.text == WHOLE
    assert completion.model == "gpt-4o-mini"
    assert fake.requests, "the primary tier was not tried"
    records = _usage(tmp_path)
    primary = [r for r in records if r["model"] == "gpt-4o"]
    assert primary and all(r["outcome"] == "error" for r in primary), primary
    assert [r["outcome"] for r in records if r["model"] == "gpt-4o-mini"] == ["ok"]


async def test_a_truncated_stream_everywhere_is_a_clean_failure(
    fake: FakeProvider, cheap_fake: FakeProvider, tmp_path: Path
) -> None:
    fake.set_default(Step(text=LONG, truncate_stream=True))
    cheap_fake.reset()
    cheap_fake.set_default(Step(text=LONG, truncate_stream=True))
    service = _service(fake, cheap_fake, tmp_path)
    try:
        with pytest.raises(AllTiersFailed) as info:
            await service.complete(
                _request(True), deadline=time.monotonic() + 60, request_id="req-cut"
            )
    finally:
        await service.aclose()
    assert "stream ended before its finish reason" in info.value.summary
    assert "word1" not in info.value.summary
    assert {r["outcome"] for r in _usage(tmp_path)} == {"error"}
