"""The bodies the fake provider sends: completions, SSE events, embeddings, models, errors.

Pure functions of the recorded request and the step to play; the request handler
(`lsp_server.testing.fake_provider.handler`) decides when to send them and writes them out.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from lsp_server.testing.fake_provider.steps import (
    DEFAULT_TEXT,
    EMBEDDING_DIMS,
    RecordedRequest,
    Step,
)

MALFORMED_JSON = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{'
"""The body of a ``malformed`` step: cut off, so not valid JSON."""

_MALFORMED_EVENT = '{"id": "chatcmpl-broken", "choices": [{"delta": '
_DEFAULT_ERROR: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    429: ("requests", "rate_limit_exceeded"),
}


def fake_embedding(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """The deterministic unit vector the fake provider returns for ``text``."""
    values: list[float] = []
    for counter in itertools.count():
        if len(values) >= dims:
            break
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            values.append(int.from_bytes(digest[i : i + 4], "little") / 2**31 - 1.0)
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def count_words(value: Any) -> int:
    """A deterministic stand-in for a token count: whitespace-separated words."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(item) for item in value)
    if isinstance(value, dict):
        if "text" in value:
            return count_words(value["text"])
        if "content" in value:
            return count_words(value["content"])
    return 0


# -- chat completions ----------------------------------------------------------------


@dataclass(slots=True)
class ChatAnswer:
    """One chat answer, shared by its plain and its streamed (SSE) form."""

    head: dict[str, Any]
    """``id``, ``created``, ``model`` and ``system_fingerprint`` of every body or chunk."""
    text: str | None
    tool_calls: list[dict[str, Any]]
    finish: str
    usage: dict[str, Any]


def chat_answer(record: RecordedRequest, step: Step, default_text: str | None) -> ChatAnswer:
    """What ``step`` answers to ``record``; ``default_text`` is the default step's text."""
    model = record.model or "gpt-4o"
    text = step.text
    if text is None and not step.tool_calls:
        text = default_text or DEFAULT_TEXT
    tool_calls = [
        _tool_call(tc, i, record.request_id) for i, tc in enumerate(step.tool_calls or [])
    ]
    finish = step.finish_reason or ("tool_calls" if tool_calls else "stop")
    if step.usage is not None:
        prompt_tokens, completion_tokens = step.usage
    else:
        prompt_tokens = count_words(record.messages)
        completion_tokens = count_words(text or "") + sum(
            count_words(tc["function"]["arguments"]) for tc in tool_calls
        )
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": step.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    head = {
        "id": f"chatcmpl-{record.request_id}",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    return ChatAnswer(head, text, tool_calls, finish, usage)


def completion_body(answer: ChatAnswer) -> dict[str, Any]:
    """The ``chat.completion`` object of a plain (not streamed) answer."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return {
        **answer.head,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish}
        ],
        "usage": answer.usage,
    }


def stream_events(record: RecordedRequest, step: Step, answer: ChatAnswer) -> list[str]:
    """The ``data:`` payloads of a streamed answer, ending with ``[DONE]``."""
    head = answer.head

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return json.dumps({**head, "object": "chat.completion.chunk", "choices": [choice]})

    text = answer.text
    events: list[str] = [chunk({"role": "assistant", "content": "" if text else None})]
    if step.malformed:
        events.append(_MALFORMED_EVENT)
    events.extend(chunk({"content": piece}) for piece in re.findall(r"\S+\s*|\s+", text or ""))
    for i, tc in enumerate(answer.tool_calls):
        first = {**tc, "index": i, "function": {"name": tc["function"]["name"]}}
        first["function"]["arguments"] = ""
        events.append(chunk({"tool_calls": [first]}))
        args: str = tc["function"]["arguments"]
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            if piece:
                delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                events.append(chunk(delta))
    events.append(chunk({}, answer.finish))
    options = record.body.get("stream_options") if isinstance(record.body, dict) else None
    if isinstance(options, dict) and options.get("include_usage"):
        events.append(
            json.dumps(
                {**head, "object": "chat.completion.chunk", "choices": [], "usage": answer.usage}
            )
        )
    events.append("[DONE]")
    return events


def _tool_call(spec: Mapping[str, Any], index: int, request_id: str) -> dict[str, Any]:
    arguments = spec.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": spec.get("id") or f"call_{request_id}_{index}",
        "type": "function",
        "function": {"name": str(spec["name"]), "arguments": arguments},
    }


# -- embeddings and models -----------------------------------------------------------


def embeddings_body(record: RecordedRequest, step: Step) -> dict[str, Any]:
    """The embeddings list for a request whose body is an object with an ``input``."""
    body = record.body
    raw_input = body["input"]
    if isinstance(raw_input, str) or (
        isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], int)
    ):
        raw_input = [raw_input]
    inputs = [i if isinstance(i, str) else json.dumps(i) for i in raw_input]
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and dims > 0 else EMBEDDING_DIMS
    as_base64 = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    for index, text in enumerate(inputs):
        vector = fake_embedding(text, dims)
        embedding: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = step.usage[0] if step.usage is not None else count_words(inputs)
    return {
        "object": "list",
        "data": data,
        "model": record.model or "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def model_list(models: Sequence[str]) -> list[dict[str, Any]]:
    """The ``data`` of ``GET /v1/models``."""
    return [{"id": m, "object": "model", "created": 0, "owned_by": "fake-provider"} for m in models]


# -- errors --------------------------------------------------------------------------


def error_body(
    message: str, error_type: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    """An OpenAI error object."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def step_error_body(step: Step) -> dict[str, Any]:
    """The error body of a step with ``status >= 400``: its fields, else OpenAI-like defaults."""
    default_type, default_code = _DEFAULT_ERROR.get(
        step.status, ("server_error" if step.status >= 500 else "invalid_request_error", None)
    )
    message = step.error_message or _default_message(step)
    return error_body(
        message,
        step.error_type or default_type,
        step.error_code if step.error_code is not None else default_code,
    )


def _default_message(step: Step) -> str:
    if step.error_code == "insufficient_quota" or step.status == 402:
        return "You exceeded your current quota, please check your plan and billing details."
    if step.status == 429:
        return "Rate limit reached for requests (fake provider)."
    try:
        return f"{HTTPStatus(step.status).phrase} (fake provider)."
    except ValueError:
        return f"HTTP {step.status} (fake provider)."
