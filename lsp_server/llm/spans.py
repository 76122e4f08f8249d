"""The provider attempt as a span: what `ProviderClient` hands to `telemetry.genai`.

Kept out of `client.py` so the client stays one HTTP attempt and its usage record.
Text goes on a span only when the user opted in (`telemetry.tracing.record_content`),
and then without keys: ours by value, anything shaped like a key by pattern
(`errors.redact`, the same scrubbing every provider error message gets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from lsp_server.llm.errors import redact
from lsp_server.llm.types import ChatRequest, Usage
from lsp_server.telemetry import genai


@dataclass(frozen=True, slots=True)
class Where:
    """Which provider an attempt goes to."""

    provider: str
    base_url: str | None
    tier: str


class AttemptInfo(Protocol):
    """What is known of an attempt before it is sent (`client._Attempt`)."""

    @property
    def feature(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def request_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...


@contextlib.contextmanager
def attempt_span(
    where: Where,
    operation: str,
    what: AttemptInfo,
    secrets: tuple[str, ...],
    request: ChatRequest | None = None,
) -> Iterator[genai.Attempt]:
    """``{operation} {model}`` (kind CLIENT) around one attempt (`genai.attempt_span`)."""
    with genai.attempt_span(
        operation=operation,
        provider=where.provider,
        model=what.model,
        base_url=where.base_url,
        tier=where.tier,
        request_id=what.request_id,
        feature=what.feature,
        attempt=what.attempt,
        max_tokens=request.max_tokens if request else None,
        temperature=request.temperature if request else None,
        messages=request.messages if request else None,
        scrub=lambda text: redact(text, secrets),
    ) as state:
        yield state


def attempt_result(
    state: genai.Attempt,
    secrets: tuple[str, ...],
    model: str,
    usage: Usage,
    cost: float,
    finish: str | None = None,
    text: str | None = None,
) -> None:
    """Tokens, cost and finish reason (and the answer, if opted in) on the attempt's span."""
    genai.attempt_result(
        state,
        response_model=model,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cost_usd=cost,
        finish_reason=finish,
        answer=text,
        scrub=lambda t: redact(t, secrets),
    )
