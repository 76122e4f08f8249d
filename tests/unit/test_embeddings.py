"""`LlmService.embed` against the fake provider: batches, usage records, retry, breaker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lsp_server.llm.pricing import cost_usd
from lsp_server.llm.service import EMBED_BATCH, LlmService
from lsp_server.llm.types import ErrorKind, ProviderFailure
from lsp_server.settings import build_settings
from lsp_server.telemetry.usage import UsageLog
from lsp_server.testing.fake_provider import FakeProvider, Step, fake_embedding

KEY = "sk-test-embed-5555555555555555"
MODEL = "text-embedding-3-small"


def make_service(
    fake: FakeProvider, tmp_path: Path, local_url: str | None = None, **config: Any
) -> LlmService:
    providers = [
        {
            "name": "openai",
            "role": "primary",
            "baseUrl": fake.base_url,
            "apiKeyEnv": "KEY",
            "models": ["gpt-4o"],
        },
        {
            "name": "openai-cheap",
            "role": "cheap",
            "baseUrl": fake.base_url,
            "apiKeyEnv": "KEY",
            "models": ["gpt-4o-mini"],
        },
        {"name": "local", "role": "local", "baseUrl": local_url or fake.base_url + "/"},
    ]
    workspace = {
        "providers": providers,
        "timeout": 2.0,
        "retryInitialBackoff": 0.01,
        "retryMaxBackoff": 0.05,
        **config,
    }
    settings, problems = build_settings(env={"KEY": KEY}, init_options=workspace)
    assert problems == []
    return LlmService(settings.llm, UsageLog(tmp_path / "usage.jsonl"))


async def embed_one(service: LlmService, provider: str = "openai") -> list[list[float]]:
    deadline = time.monotonic() + 10
    result = await service.embed(
        ["x"], model=MODEL, provider=provider, deadline=deadline, request_id="one"
    )
    return result.vectors


def records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "usage.jsonl").read_text().splitlines()]


async def test_one_provider_per_endpoint_primary_first(fake: FakeProvider, tmp_path: Path) -> None:
    service = make_service(fake, tmp_path)
    try:
        # the cheap tier shares the primary's endpoint; the local one is another endpoint
        # in principle, but here the same URL (with a slash): one provider per endpoint
        assert service.embedding_providers() == ["openai"]
    finally:
        await service.aclose()
    local = fake.base_url.replace("127.0.0.1", "localhost")
    service = make_service(fake, tmp_path, local_url=local)
    try:
        assert service.embedding_providers() == ["openai", "local"]
    finally:
        await service.aclose()


async def test_embeds_in_batches_with_one_usage_record_each(
    fake: FakeProvider, tmp_path: Path
) -> None:
    service = make_service(fake, tmp_path)
    texts = [f"def f{i}(): ..." for i in range(EMBED_BATCH + 10)]
    try:
        result = await service.embed(
            texts,
            model=MODEL,
            provider="openai",
            deadline=time.monotonic() + 10,
            request_id="r1",
            dimensions=16,
        )
    finally:
        await service.aclose()
    assert len(result.vectors) == len(texts)
    assert result.vectors[3] == pytest.approx(fake_embedding(texts[3], 16), abs=1e-6)
    sizes = [len(r.body["input"]) for r in fake.requests]
    assert sizes == [EMBED_BATCH, 10]
    assert all(r.body["dimensions"] == 16 and r.auth == KEY for r in fake.requests)
    logged = records(tmp_path)
    assert [(r["feature"], r["outcome"], r["request_id"]) for r in logged] == [
        ("embed", "ok", "r1"),
        ("embed", "ok", "r1"),
    ]
    words = 3 * len(texts)  # the fake counts words as tokens
    assert result.usage.prompt_tokens == words == sum(r["prompt_tokens"] for r in logged)
    assert result.cost_usd == pytest.approx(cost_usd(MODEL, words, 0))
    assert result.cost_usd > 0
    assert "embed, 266 inputs -> primary openai" in logged[0]["route"]
    assert KEY not in (tmp_path / "usage.jsonl").read_text()


async def test_retries_then_answers(fake: FakeProvider, tmp_path: Path) -> None:
    fake.script(Step(status=500), Step(status=429, retry_after=0.01), endpoint="embeddings")
    service = make_service(fake, tmp_path)
    try:
        vectors = await embed_one(service)
    finally:
        await service.aclose()
    assert len(vectors) == 1
    assert [r["outcome"] for r in records(tmp_path)] == ["error", "error", "ok"]
    assert [r["error_class"] for r in records(tmp_path)][:2] == ["server_error", "rate_limited"]


async def test_failure_is_readable_and_the_open_breaker_answers_at_once(
    fake: FakeProvider, tmp_path: Path
) -> None:
    service = make_service(fake, tmp_path, breakerFailureThreshold=2, retryMaxAttempts=2)
    fake.set_default(Step(status=503))
    try:
        with pytest.raises(ProviderFailure) as failed:
            await embed_one(service)
        assert failed.value.kind is ErrorKind.SERVER_ERROR
        assert failed.value.message.startswith("openai text-embedding-3-small: server error 503")
        assert not service.viable("openai")
        sent = len(fake.requests)
        with pytest.raises(ProviderFailure, match="openai circuit open for"):
            await embed_one(service)
        assert len(fake.requests) == sent  # not even tried
        with pytest.raises(ProviderFailure, match="no provider 'nope'"):
            await embed_one(service, "nope")
    finally:
        await service.aclose()
    assert KEY not in (tmp_path / "usage.jsonl").read_text()
