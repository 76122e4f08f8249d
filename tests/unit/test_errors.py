"""Every provider failure is classified; messages never carry a key."""

from __future__ import annotations

import httpx2
import openai
import pytest

from lsp_server.llm.errors import classify, redact
from lsp_server.llm.types import ErrorKind

REQ = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def _status(status: int, body: object, headers: dict[str, str] | None = None) -> Exception:
    response = httpx2.Response(status, request=REQ, headers=headers or {}, json=body)
    cls = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        402: openai.APIStatusError,
        404: openai.NotFoundError,
        408: openai.APIStatusError,
        409: openai.ConflictError,
        429: openai.RateLimitError,
        500: openai.InternalServerError,
        503: openai.InternalServerError,
    }[status]
    err = body.get("error", {}) if isinstance(body, dict) else {}
    return cls(str(err.get("message", "")), response=response, body=err)


@pytest.mark.parametrize(
    ("status", "code", "kind", "retryable"),
    [
        (429, "rate_limit_exceeded", ErrorKind.RATE_LIMITED, True),
        (429, "insufficient_quota", ErrorKind.QUOTA_EXCEEDED, False),
        (402, None, ErrorKind.QUOTA_EXCEEDED, False),
        (401, "invalid_api_key", ErrorKind.AUTH_ERROR, False),
        (400, None, ErrorKind.CLIENT_ERROR, False),
        (404, "model_not_found", ErrorKind.CLIENT_ERROR, False),
        (408, None, ErrorKind.CLIENT_ERROR, True),
        (409, None, ErrorKind.CLIENT_ERROR, True),
        (500, None, ErrorKind.SERVER_ERROR, True),
        (503, None, ErrorKind.SERVER_ERROR, True),
    ],
)
def test_status_errors(status: int, code: str | None, kind: ErrorKind, retryable: bool) -> None:
    body = {"error": {"message": "nope", "type": "x", "code": code}}
    failure = classify(_status(status, body), provider="p", model="m")
    assert failure.kind is kind
    assert failure.status == status
    assert failure.retryable is retryable
    assert (failure.provider, failure.model) == ("p", "m")
    assert failure.message.startswith(f"HTTP {status}")


def test_retry_after_headers_are_parsed() -> None:
    failure = classify(_status(429, {"error": {}}, {"retry-after": "7"}))
    assert failure.retry_after == 7.0
    failure = classify(_status(429, {"error": {}}, {"retry-after-ms": "1500", "retry-after": "9"}))
    assert failure.retry_after == 1.5


def test_transport_failures() -> None:
    assert classify(openai.APITimeoutError(request=REQ)).kind is ErrorKind.TIMEOUT
    conn = openai.APIConnectionError(request=REQ)
    assert classify(conn).kind is ErrorKind.CONNECTION_ERROR
    assert classify(ConnectionResetError()).kind is ErrorKind.CONNECTION_ERROR
    bad = openai.APIResponseValidationError(httpx2.Response(200, request=REQ), body=None)
    assert classify(bad).kind is ErrorKind.MALFORMED_RESPONSE
    assert classify(KeyError("choices")).kind is ErrorKind.MALFORMED_RESPONSE


def test_key_is_scrubbed_from_messages() -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz"
    body = {"error": {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"}}
    failure = classify(_status(401, body), secrets=(key,))
    assert key not in failure.message
    assert "abcdefghijklmnop" not in failure.message
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer <redacted>"
    assert redact("key sk-live-1234567890") == "key sk-live<redacted>"
