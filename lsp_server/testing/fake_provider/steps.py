"""What a test scripts and what the fake provider records: `Step`, `RecordedRequest`.

Also the constants shared by the other modules of the package: the default answer text,
the embedding length, the endpoints that consume steps and the server's polling intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

DEFAULT_TEXT = "This is a fake answer."
"""The assistant content when neither the step nor the default gives one."""

EMBEDDING_DIMS = 64
"""Length of the fake embedding vectors unless the request asks for ``dimensions``."""

Endpoint = Literal["chat", "embeddings"]
"""Which endpoint a scripted step is meant for."""

ENDPOINTS: tuple[Endpoint, ...] = ("chat", "embeddings")
"""Every `Endpoint`: the endpoints that consume scripted steps."""

POLL_INTERVAL = 0.02
"""Seconds between checks while waiting (client hang-ups, async waits)."""

RESET_GRACE = 0.1
"""Seconds the client gets to read a partial stream before a mid-stream reset."""


@dataclass(slots=True)
class Step:
    """What the fake provider does for one request.

    With all defaults it answers `DEFAULT_TEXT` with status 200. Fields that make no
    sense for an endpoint are ignored there (e.g. ``text`` for embeddings).
    """

    text: str | None = None
    """Assistant content. None means `DEFAULT_TEXT`, or no content when ``tool_calls``."""
    tool_calls: list[dict[str, Any]] | None = None
    """``[{"name": ..., "arguments": {...} or "json", "id": optional}]``."""
    status: int = 200
    """HTTP status; >= 400 sends an OpenAI error body instead of a completion."""
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    """``error.code`` in the body, e.g. ``"insufficient_quota"`` with status 429."""
    retry_after: float | None = None
    """Seconds for the ``Retry-After`` header (any status)."""
    retry_after_ms: int | None = None
    """Milliseconds for the ``retry-after-ms`` header (any status)."""
    delay: float = 0.0
    """Seconds to wait before responding; a client hang-up meanwhile is noticed."""
    malformed: bool = False
    """Answer 200 with a body that is not valid JSON (or a broken SSE event)."""
    raw_body: str | None = None
    """Send exactly this body (with ``status``) instead of a generated one."""
    reset: bool = False
    """Abort the TCP connection (RST) without sending any response."""
    reset_mid_stream: bool = False
    """For streamed requests: send about half the chunks, then abort the connection."""
    truncate_stream: bool = False
    """Cut the answer short but end the connection cleanly: a streamed answer stops after
    about half its events (no ``finish_reason``, no ``[DONE]``); a plain one sends half
    its body (fewer bytes than its ``Content-Length``) and closes."""
    usage: tuple[int, int] | None = None
    """(prompt_tokens, completion_tokens) to report; default: word counts."""
    cached_tokens: int = 0
    """``usage.prompt_tokens_details.cached_tokens``."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks."""
    finish_reason: str | None = None
    """Override ``finish_reason`` (default ``"stop"`` or ``"tool_calls"``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        """Build a step from its JSON form (the admin endpoint's format)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Step field(s): {', '.join(unknown)}")
        values = dict(data)
        usage = values.get("usage")
        if usage is not None:
            if not isinstance(usage, list | tuple) or len(usage) != 2:
                raise ValueError("usage must be [prompt_tokens, completion_tokens]")
            values["usage"] = (int(usage[0]), int(usage[1]))
        if values.get("headers") is None:
            values.pop("headers", None)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this step (inverse of `from_dict`)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.usage is not None:
            out["usage"] = list(self.usage)
        out["headers"] = dict(self.headers)
        return out


@dataclass(slots=True)
class RecordedRequest:
    """One request the fake provider received, and what became of it.

    The fields after ``started_at`` are updated by the server thread while the request
    is in flight; `FakeProvider.wait_for_requests` waits until they are final.
    """

    index: int
    request_id: str
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names; ``authorization`` is redacted (see ``auth``)."""
    auth: str | None
    """The bearer token (API key) the client sent, if any."""
    body: Any
    """The parsed JSON body, or None when absent or not JSON."""
    started_at: float
    """`time.monotonic()` when the request was read."""
    finished_at: float | None = None
    client_disconnected: bool = False
    """True when the client hung up before the server finished responding."""
    status: int | None = None
    """Status sent; None when none was (reset, hang-up, server stopping)."""
    step: Step | None = None

    @property
    def has_auth(self) -> bool:
        return self.auth is not None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def model(self) -> str | None:
        value = self.body.get("model") if isinstance(self.body, dict) else None
        return value if isinstance(value, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        value = self.body.get("messages") if isinstance(self.body, dict) else None
        return cast(list[dict[str, Any]], value) if isinstance(value, list) else []

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as ``GET /_fake/requests`` returns it."""
        return {
            "index": self.index,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "auth": self.auth,
            "has_auth": self.has_auth,
            "body": self.body,
            "model": self.model,
            "stream": self.stream,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "client_disconnected": self.client_disconnected,
            "status": self.status,
            "step": None if self.step is None else self.step.to_dict(),
        }
