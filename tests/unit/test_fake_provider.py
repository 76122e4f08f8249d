"""The fake provider speaks OpenAI well enough for the real client, and does as scripted."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from lsp_server.testing.fake_provider import (
    DEFAULT_TEXT,
    EMBEDDING_DIMS,
    FakeProvider,
    Step,
    fake_embedding,
)

ROOT = Path(__file__).resolve().parents[2]
USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "explain this function please"}
]
CHAT = "/v1/chat/completions"


@pytest.fixture
def fp() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
async def client(fp: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fp.base_url, api_key="sk-test", max_retries=0, timeout=5.0
    ) as c:
        yield c


def admin(fp: FakeProvider, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Talk to the admin endpoints the way another process would: plain HTTP."""
    conn = http.client.HTTPConnection(fp.host, fp.port, timeout=5)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


async def test_plain_answer_with_usage_and_recording(
    fp: FakeProvider, client: openai.AsyncOpenAI
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    completion = raw.parse()

    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4  # deterministic: words in the messages
    assert completion.usage.completion_tokens == len(DEFAULT_TEXT.split())
    assert completion.usage.total_tokens == 4 + len(DEFAULT_TEXT.split())

    (record,) = fp.wait_for_requests(1)
    assert raw.headers["x-request-id"] == record.request_id
    assert record.path == CHAT
    assert record.auth == "sk-test" and record.has_auth
    assert record.headers["authorization"] == "<redacted>"
    assert record.model == "gpt-4o"
    assert record.messages == USER
    assert record.stream is False
    assert record.status == 200
    assert record.client_disconnected is False
    assert record.duration is not None and record.duration >= 0


async def test_scripted_answer_usage_and_cached_tokens(
    fp: FakeProvider, client: openai.AsyncOpenAI
) -> None:
    fp.script(Step(text="hello world", usage=(120, 7), cached_tokens=100))
    completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == "hello world"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 7, 127)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100
    # The queue is empty again: the default answer is back.
    again = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert again.choices[0].message.content == DEFAULT_TEXT


async def test_streamed_answer_with_usage(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(text="one two  three\nfour", chunk_delay=0.01))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: str | None = None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == "one two  three\nfour"
    assert len([p for p in pieces if p]) == 4
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 4 and usage.prompt_tokens == 4
    (record,) = fp.wait_for_requests(1)
    assert record.stream is True and record.status == 200 and not record.client_disconnected


async def test_stream_without_include_usage_has_no_usage_chunk(
    client: openai.AsyncOpenAI,
) -> None:
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)


async def test_tool_call(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(
        Step(tool_calls=[{"name": "read_file", "arguments": {"path": "a.py"}}]),
        Step(tool_calls=[{"id": "call_x", "name": "grep", "arguments": '{"q": "def"}'}]),
    )
    first = await client.chat.completions.create(model="gpt-4o", messages=USER)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id
    assert call.function.name == "read_file"
    assert json.loads(call.function.arguments) == {"path": "a.py"}

    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    ids: set[str] = set()
    names: list[str] = []
    arguments = ""
    finish = None
    async for chunk in stream:
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for delta in c.delta.tool_calls or []:
                assert delta.index == 0
                if delta.id:
                    ids.add(delta.id)
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
    assert ids == {"call_x"}
    assert names == ["grep"]
    assert json.loads(arguments) == {"q": "def"}
    assert finish == "tool_calls"


async def test_rate_limited_with_retry_after(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(status=429, retry_after=2, retry_after_ms=1500))
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "1500"
    assert info.value.code == "rate_limit_exceeded"
    assert fp.wait_for_requests(1)[0].status == 429


async def test_insufficient_quota_body(client: openai.AsyncOpenAI, fp: FakeProvider) -> None:
    fp.script(Step(status=429, error_type="insufficient_quota", error_code="insufficient_quota"))
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert info.value.code == "insufficient_quota"
    assert info.value.type == "insufficient_quota"
    assert "quota" in info.value.message
    assert "retry-after" not in info.value.response.headers


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (401, openai.AuthenticationError),
        (400, openai.BadRequestError),
    ],
)
async def test_http_errors(
    fp: FakeProvider, client: openai.AsyncOpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    fp.script(Step(status=status, error_message="scripted failure"))
    with pytest.raises(error) as info:
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert info.value.status_code == status
    assert "scripted failure" in info.value.message


async def test_malformed_body(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(malformed=True))
    with pytest.raises(ValueError):  # the SDK lets json.JSONDecodeError through
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    fp.script(Step(malformed=True))
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    with pytest.raises(ValueError):
        async for _ in stream:
            pass


async def test_raw_body_is_sent_verbatim(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(raw_body='{"unexpected": true}'))
    completion = await client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=USER
    )
    assert json.loads(completion.content) == {"unexpected": True}


async def test_connection_reset(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(reset=True))
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    (record,) = fp.wait_for_requests(1)
    assert record.status is None
    # The server is fine afterwards.
    completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == DEFAULT_TEXT


async def test_reset_mid_stream(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(text="a b c d e f g h", reset_mid_stream=True))
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    text = "".join(received)
    assert text and "a b c d e f g h".startswith(text) and text != "a b c d e f g h"


async def test_per_model_script(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(status=503), model="gpt-4o")
    fp.script(Step(text="generic"))
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    mini = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert mini.choices[0].message.content == "generic"
    assert fp.pending(model="gpt-4o") == 0 and fp.pending() == 0
    again = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert again.choices[0].message.content == DEFAULT_TEXT


async def test_delay_is_applied(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    fp.script(Step(delay=0.2, text="late"))
    started = time.monotonic()
    completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert time.monotonic() - started >= 0.2
    assert completion.choices[0].message.content == "late"


async def test_client_timeout_is_recorded_as_disconnect(
    fp: FakeProvider, client: openai.AsyncOpenAI
) -> None:
    fp.script(Step(delay=10))
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="gpt-4o", messages=USER, timeout=0.3)
    record = await fp.wait_for_disconnect_async(30)
    assert record is not None
    assert record.client_disconnected is True
    assert record.status is None
    # well before the 10 s delay ends, with room for a busy machine's scheduling
    assert record.duration is not None and record.duration < 8


async def test_hang_up_during_stream_is_recorded(
    fp: FakeProvider, client: openai.AsyncOpenAI
) -> None:
    fp.script(Step(text=" ".join(["word"] * 50), chunk_delay=0.05))
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    async for _ in stream:
        break
    await stream.close()
    record = fp.wait_for_disconnect(3)
    assert record is not None and record.status == 200 and record.stream


async def test_embeddings_are_deterministic(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    first = await client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    second = await client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.index for d in first.data] == [0, 1]
    assert first.usage.prompt_tokens == 2
    for got, again, text in zip(first.data, second.data, ["alpha", "beta"], strict=True):
        assert len(got.embedding) == EMBEDDING_DIMS
        assert math.isclose(math.sqrt(sum(v * v for v in got.embedding)), 1.0, rel_tol=1e-5)
        assert got.embedding == pytest.approx(fake_embedding(text), abs=1e-6)  # base64 float32
        assert again.embedding == fake_embedding(text)  # floats
    assert first.data[0].embedding != first.data[1].embedding
    short = await client.embeddings.create(model="m", input="alpha", dimensions=8)
    assert len(short.data[0].embedding) == 8

    fp.script(Step(status=429, retry_after=1), endpoint="embeddings")
    with pytest.raises(openai.RateLimitError):
        await client.embeddings.create(model="m", input="alpha")


async def test_models(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == ["gpt-4o", "gpt-4o-mini"]
    model = await client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")
    # Listing models does not consume chat steps.
    fp.script(Step(text="kept"))
    await client.models.list()
    assert fp.pending() == 1


def test_unknown_path_is_404_with_openai_error(fp: FakeProvider) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{fp.base_url}/nope", timeout=5)
    with info.value as response:
        assert response.code == 404
        body = json.loads(response.read())
    assert body["error"]["type"] == "invalid_request_error"
    assert "/v1/nope" in body["error"]["message"]


async def test_admin_endpoints(fp: FakeProvider, client: openai.AsyncOpenAI) -> None:
    status, reply = admin(
        fp,
        "POST",
        "/_fake/script",
        {"steps": [{"status": 429, "retry_after": 1}, {"text": "from admin", "usage": [3, 2]}]},
    )
    assert (status, reply) == (200, {"queued": 2})
    status, _ = admin(fp, "POST", "/_fake/script", {"steps": [{"text": "mini"}], "model": "m2"})
    assert status == 200

    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == "from admin"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    other = await client.chat.completions.create(model="m2", messages=USER)
    assert other.choices[0].message.content == "mini"

    fp.wait_for_requests(3)
    status, reply = admin(fp, "GET", "/_fake/requests")
    assert status == 200
    records = reply["requests"]
    assert [r["status"] for r in records] == [429, 200, 200]
    assert records[0]["auth"] == "sk-test" and records[0]["has_auth"] is True
    assert records[0]["step"]["retry_after"] == 1
    assert records[2]["model"] == "m2"
    assert records[0]["client_disconnected"] is False
    assert records[0]["body"]["messages"] == USER

    status, _ = admin(fp, "POST", "/_fake/default", {"step": {"text": "new default"}})
    assert status == 200
    completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == "new default"

    assert admin(fp, "POST", "/_fake/reset")[0] == 200
    assert fp.requests == []
    assert admin(fp, "GET", "/_fake/requests") == (200, {"requests": []})
    completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == DEFAULT_TEXT

    status, reply = admin(fp, "POST", "/_fake/script", {"steps": [{"bogus": 1}]})
    assert status == 400 and "bogus" in reply["error"]["message"]
    assert admin(fp, "GET", "/_fake/nothing")[0] == 404


def test_step_json_round_trip() -> None:
    step = Step(text="x", tool_calls=[{"name": "f", "arguments": {}}], usage=(1, 2), delay=0.5)
    assert Step.from_dict(json.loads(json.dumps(step.to_dict()))) == step
    with pytest.raises(ValueError):
        Step.from_dict({"usage": [1]})


def test_reset_clears_script_and_recordings(fp: FakeProvider) -> None:
    fp.script(Step(status=500), Step(status=500))
    fp.set_default(Step(text="changed"))
    with urllib.request.urlopen(f"{fp.base_url}/models", timeout=5) as response:
        assert response.status == 200
    assert len(fp.wait_for_requests(1)) == 1
    fp.reset()
    assert fp.requests == [] and fp.pending() == 0
    with pytest.raises(TimeoutError):
        fp.wait_for_requests(1, timeout=0.05)


def test_stop_is_prompt_during_a_delay_and_leaks_no_threads() -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("fake-provider")}
    provider = FakeProvider(default=Step(delay=30)).start()
    outcome: list[BaseException | int] = []

    def call() -> None:
        request = urllib.request.Request(
            f"{provider.base_url}/chat/completions",
            data=json.dumps({"model": "gpt-4o", "messages": USER}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                outcome.append(response.status)
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    provider.wait_for_requests(1, 60, finished=False)
    started = time.monotonic()
    provider.stop()
    assert time.monotonic() - started < 10  # far below the 30 s delay, even on a busy machine
    caller.join(60)
    assert not caller.is_alive()
    assert outcome and not isinstance(outcome[0], int)
    (record,) = provider.requests
    assert record.finished and record.status is None and not record.client_disconnected
    after = {t for t in threading.enumerate() if t.name.startswith("fake-provider")}
    assert after <= before


#: What a non-interactive shell does to a job it starts in the background (`cmd &`).
IGNORE_SIGINT = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


@pytest.mark.parametrize(
    ("stop", "background"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["ctrl-c", "ctrl-c-in-a-background-job", "sigterm-in-a-background-job"],
)
def test_script_runs_from_the_command_line(stop: signal.Signals, background: bool) -> None:
    """Started by ``scripts/fake_provider``, it answers and exits 0 on SIGINT or SIGTERM,
    also when it inherits SIGINT ignored (the suite run in the background on a busy machine)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            *(IGNORE_SIGINT if background else []),
            str(ROOT / "scripts" / "fake_provider"),
            *("--port", "0", "--text", "cli answer"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"base_url (http://\S+/v1)", line)
        assert match, line
        request = urllib.request.Request(
            f"{match.group(1)}/chat/completions",
            data=json.dumps({"model": "gpt-4o", "messages": USER}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        assert body["choices"][0]["message"]["content"] == "cli answer"
        proc.send_signal(stop)
        assert proc.wait(timeout=60) == 0
        assert "fake provider: stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_module_main_rejects_a_busy_port(fp: FakeProvider) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server.testing.fake_provider", "--port", str(fp.port)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
