"""Classify every provider exception into a typed `ProviderFailure`.

The SDK raises a zoo of exceptions; the rest of the server reasons about six
kinds of failure (see `ErrorKind`). `classify` is the only place that knows the
mapping, so the usage log, the retry policy and the circuit breaker all agree.
`asyncio.CancelledError` is never classified: it is not a failure.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from lsp_server.llm.retry import parse_retry_after
from lsp_server.llm.types import ErrorKind, ProviderFailure

if TYPE_CHECKING:
    import openai

_KEY_PATTERN = re.compile(r"(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+|(Bearer\s+)\S+")
_MAX_MESSAGE = 200


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove API keys (given ones, and anything shaped like one) from `text`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return _KEY_PATTERN.sub(lambda m: (m.group(1) or m.group(2) or "") + "<redacted>", text)


def _short(text: str, secrets: tuple[str, ...]) -> str:
    text = redact(" ".join(text.split()), secrets)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        return inner if isinstance(inner, dict) else {}
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return _error_body_from(parsed)
    return {}


def _error_body_from(parsed: Any) -> dict[str, Any]:
    if isinstance(parsed, dict):
        inner = parsed.get("error", parsed)
        return inner if isinstance(inner, dict) else {}
    return {}


def _status_kind(status: int, code: str) -> ErrorKind:
    if status == 402 or code in ("insufficient_quota", "billing_hard_limit_reached"):
        return ErrorKind.QUOTA_EXCEEDED
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status in (401, 403):
        return ErrorKind.AUTH_ERROR
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    return ErrorKind.CLIENT_ERROR


def classify(
    exc: BaseException, *, provider: str = "", model: str = "", secrets: tuple[str, ...] = ()
) -> ProviderFailure:
    """Map an exception raised while calling a provider onto a `ProviderFailure`.

    Messages are shortened and scrubbed of anything that looks like a key.
    """
    if isinstance(exc, ProviderFailure):
        return exc
    import openai

    kind: ErrorKind
    status: int | None = None
    retry_after: float | None = None
    if isinstance(exc, openai.APITimeoutError):
        kind, message = ErrorKind.TIMEOUT, "request timed out"
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        kind, message = ErrorKind.CONNECTION_ERROR, f"connection failed{detail}"
    elif isinstance(exc, openai.APIResponseValidationError):
        kind, message = ErrorKind.MALFORMED_RESPONSE, "response did not match the API schema"
    elif isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = _error_body(exc)
        code = str(body.get("code") or body.get("type") or "")
        kind = _status_kind(status, code)
        retry_after = parse_retry_after(exc.response.headers)
        text = str(body.get("message") or exc.message or "")
        message = f"HTTP {status}" + (f" {code}" if code else "") + (f": {text}" if text else "")
    elif isinstance(exc, (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError)):
        kind, message = ErrorKind.MALFORMED_RESPONSE, f"unreadable response: {type(exc).__name__}"
    elif isinstance(exc, openai.OpenAIError):
        kind, message = ErrorKind.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, (ConnectionError, OSError)):
        kind, message = ErrorKind.CONNECTION_ERROR, f"connection failed: {type(exc).__name__}"
    else:
        kind, message = ErrorKind.MALFORMED_RESPONSE, f"unexpected {type(exc).__name__}"
    return ProviderFailure(
        kind,
        _short(message, secrets),
        status=status,
        retry_after=retry_after,
        provider=provider,
        model=model,
    )
