"""Typed values that cross the provider boundary: messages, completions and failures.

Nothing here knows about HTTP or the OpenAI SDK; `llm.errors` maps SDK exceptions
onto `ProviderFailure`, and everything above the client reasons only in these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ErrorKind(enum.StrEnum):
    """Why a provider attempt failed. The value is what the usage log records."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    AUTH_ERROR = "auth_error"
    MALFORMED_RESPONSE = "malformed_response"
    CONNECTION_ERROR = "connection_error"

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again later."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ErrorKind.TIMEOUT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.CONNECTION_ERROR,
        ErrorKind.MALFORMED_RESPONSE,
    }
)


class ProviderFailure(Exception):
    """A classified failure of one provider attempt.

    `message` is safe to show to a user: it never contains the API key or the
    request body, only the provider's own short error text.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        provider: str = "",
        model: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.provider = provider
        self.model = model

    @property
    def retryable(self) -> bool:
        """Whether retrying may help. 408/409 count as retryable client errors."""
        if self.kind is ErrorKind.CLIENT_ERROR:
            return self.status in (408, 409)
        return self.kind.retryable

    def __repr__(self) -> str:
        return (
            f"ProviderFailure(kind={self.kind.value!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r}, message={self.message!r})"
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them in the response's `usage`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Completion:
    """A successful chat completion."""

    text: str
    model: str
    provider: str
    usage: Usage
    latency_ms: float
    cost_usd: float
    request_id: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    tier: str = "primary"
    """The role of the provider that answered: "primary", "cheap" or "local"."""
    notice: str | None = None
    """Why an earlier tier did not answer, e.g. "gpt-4o unavailable: circuit open for
    42 s; answered by local gemma3"; None when the first tier answered."""
    route_reason: str = ""
    """The router's decision and its reason (also in the usage log)."""


@dataclass(slots=True)
class ChatRequest:
    """What the engine asks a provider for: messages plus generation limits."""

    messages: list[dict[str, Any]]
    feature: str
    max_tokens: int = 512
    temperature: float = 0.2
    tools: list[dict[str, Any]] | None = None
    stream: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
