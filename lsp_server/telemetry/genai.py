"""The provider attempt's span, by the OpenTelemetry GenAI semantic conventions.

Attribute names are those of the conventions as of semconv 1.37 (the
``opentelemetry-semantic-conventions`` 0.66b package lists them): the provider is
``gen_ai.provider.name`` (``gen_ai.system`` is deprecated), cached prompt tokens are
``gen_ai.usage.cache_read.input_tokens`` (included in ``gen_ai.usage.input_tokens``,
as OpenAI counts them), message text goes to ``gen_ai.input.messages`` /
``gen_ai.output.messages`` (JSON) and only when the user opted in. Our own
attributes: ``llm_lsp.cost_usd``, ``llm_lsp.tier``, ``llm_lsp.breaker_state``,
``llm_lsp.attempt``, ``llm_lsp.request_id``, ``llm_lsp.feature``.

`attempt_span` is used by `llm.client.ProviderClient` around one HTTP attempt;
`attempt_result` fills in what the answer said. The attempt's metrics are
recorded here too (`metrics.record_attempt`), from the same numbers.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from lsp_server.telemetry import metrics, tracing
from lsp_server.telemetry.tracing import SpanHandle

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
COST = "llm_lsp.cost_usd"
TIER = "llm_lsp.tier"
BREAKER = "llm_lsp.breaker_state"
CACHE = "llm_lsp.cache"


def _server(base_url: str | None) -> tuple[str | None, int | None]:
    if not base_url:
        return "api.openai.com", 443
    try:
        parts = urlsplit(base_url)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, None


class Attempt:
    """One provider attempt being traced and measured."""

    def __init__(self, handle: SpanHandle, operation: str, provider: str, model: str, tier: str):
        self.span = handle
        self.operation = operation
        self.provider = provider
        self.model = model
        self.tier = tier
        self.started = time.perf_counter()
        self.error_type: str | None = None


@contextlib.contextmanager
def attempt_span(
    *,
    operation: str,
    provider: str,
    model: str,
    base_url: str | None,
    tier: str,
    request_id: str,
    feature: str,
    attempt: int,
    max_tokens: int | None = None,
    temperature: float | None = None,
    messages: Sequence[dict[str, Any]] | None = None,
    scrub: Any = None,
) -> Iterator[Attempt]:
    """``{operation} {model}`` (kind CLIENT) around one attempt; metrics at its end.

    ``scrub(text) -> text`` removes secrets from message text (only used when the user
    opted in to content recording).
    """
    host, port = _server(base_url)
    attrs: dict[str, tracing.AttrValue | None] = {
        OPERATION: operation,
        PROVIDER: provider,
        REQUEST_MODEL: model or None,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.temperature": temperature,
        "server.address": host,
        "server.port": port,
        TIER: tier,
        "llm_lsp.request_id": request_id,
        "llm_lsp.feature": feature,
        "llm_lsp.attempt": attempt,
        **tracing.tags(),
    }
    if messages is not None and tracing.record_content():
        attrs[INPUT_MESSAGES] = _scrubbed(json.dumps(list(messages), default=str), scrub)
    tracing.add_to_request("llm_lsp.attempts", 1)
    with tracing.span(f"{operation} {model}".strip(), attrs, kind="client") as handle:
        state = Attempt(handle, operation, provider, model, tier)
        try:
            yield state
        except BaseException as exc:
            kind = getattr(getattr(exc, "kind", None), "value", None)
            state.error_type = kind if isinstance(kind, str) else type(exc).__qualname__
            raise
        finally:
            if metrics.enabled():
                metrics.record_duration(
                    time.perf_counter() - state.started,
                    operation=operation,
                    provider=provider,
                    model=model,
                    tier=tier,
                    error_type=state.error_type,
                )


def _scrubbed(text: str, scrub: Any) -> str:
    return str(scrub(text)) if callable(scrub) else text


def attempt_result(
    state: Attempt,
    *,
    response_model: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    cost_usd: float,
    finish_reason: str | None = None,
    answer: str | None = None,
    scrub: Any = None,
) -> None:
    """What the provider answered: tokens, cost, finish reason (and text, if opted in)."""
    state.span.update(
        {
            RESPONSE_MODEL: response_model,
            INPUT_TOKENS: input_tokens,
            OUTPUT_TOKENS: output_tokens,
            CACHED_TOKENS: cached_tokens,
            COST: cost_usd,
            FINISH_REASONS: [finish_reason] if finish_reason else None,
        }
    )
    tracing.add_to_request(COST, cost_usd)
    tracing.add_to_request("llm_lsp.input_tokens", input_tokens)
    tracing.add_to_request("llm_lsp.output_tokens", output_tokens)
    if answer is not None and tracing.record_content():
        output = [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
        state.span.set(OUTPUT_MESSAGES, _scrubbed(json.dumps(output), scrub))
    if metrics.enabled():
        metrics.record_tokens(
            input_tokens,
            output_tokens,
            operation=state.operation,
            provider=state.provider,
            model=response_model,
            tier=state.tier,
        )
        metrics.record_cost(
            cost_usd, provider=state.provider, model=response_model, tier=state.tier
        )


def tool_attributes(name: str, call_id: str, arguments: str) -> dict[str, tracing.AttrValue]:
    """An ``execute_tool {name}`` span's attributes (arguments only if opted in)."""
    attrs: dict[str, tracing.AttrValue] = {
        OPERATION: "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }
    if tracing.record_content():
        attrs["gen_ai.tool.call.arguments"] = arguments
    return attrs


class _Ended(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def stop(self) -> Enum: ...


R = TypeVar("R", bound=_Ended)


def agent_span(kind: str) -> contextlib.AbstractContextManager[SpanHandle]:
    """``invoke_agent {kind}`` around one agent run (explain, fix, ask)."""
    attrs = {OPERATION: "invoke_agent", "gen_ai.agent.name": kind}
    return tracing.span(f"invoke_agent {kind}", attrs)


def agent_ended(handle: SpanHandle, result: R) -> R:
    """Put how the run ended on its span; returns ``result``."""
    handle.update({"llm_lsp.agent.ok": result.ok, "llm_lsp.agent.stop": str(result.stop.value)})
    return result


def cache_span(feature: str) -> contextlib.AbstractContextManager[SpanHandle]:
    """``cache.lookup`` around one answer-cache lookup (for the cache to call)."""
    return tracing.span("cache.lookup", {"llm_lsp.feature": feature})


def cache_outcome(handle: SpanHandle, outcome: str, *, feature: str, layer: str = "") -> None:
    """Record a lookup's outcome (``hit``, ``miss``, ``stale``) on its span and in metrics."""
    handle.update({CACHE: outcome, "llm_lsp.cache.layer": layer or None})
    tracing.add_to_request(CACHE, outcome)
    metrics.record_cache(outcome, feature=feature)
