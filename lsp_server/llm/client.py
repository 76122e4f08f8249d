"""One OpenAI-compatible provider endpoint: a single attempt, classified and logged.

`ProviderClient.complete` makes exactly one HTTP attempt (the SDK's own
retries are off; retrying is the job of one layer above) and either returns a
`Completion` or raises a `ProviderFailure`; `embed` does the same for
``/v1/embeddings``. Every attempt, including a
cancelled one, leaves one record in the usage log. `asyncio.CancelledError`
propagates untouched so the HTTP request is closed and no tokens keep
streaming; it is logged as `cancelled`, never as a provider failure.

The same code path serves the primary provider, a cheaper model on it, and a
local endpoint (Ollama, llama.cpp server, vLLM): they differ only in config.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lsp_server.llm import spans
from lsp_server.llm.errors import classify
from lsp_server.llm.pricing import cost_usd, describe_price
from lsp_server.llm.types import (
    ChatRequest,
    Completion,
    ErrorKind,
    ProviderFailure,
    ToolCall,
    Usage,
)
from lsp_server.settings_values import Secret
from lsp_server.telemetry.tracing import trace_id
from lsp_server.telemetry.usage import UsageLog, UsageRecord

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Key sent to endpoints that need none (local servers); never a real secret.
NO_KEY = "no-key-required"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Where a provider is and how long one attempt may take."""

    name: str
    base_url: str | None
    api_key: Secret | None
    timeout: float = 30.0
    tier: str = "primary"


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors for a list of texts (one per text, in order) and what they cost."""

    vectors: list[list[float]]
    model: str
    provider: str
    usage: Usage
    cost_usd: float


def _vector(raw: Any) -> list[float]:
    """One embedding: base64 little-endian float32 (as we ask for), or a list of floats."""
    if isinstance(raw, str):
        return array.array("f", base64.b64decode(raw)).tolist()
    return [float(v) for v in raw]


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one attempt is, for its log line and usage record."""

    feature: str
    model: str
    request_id: str
    attempt: int
    route: str = ""


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    details = getattr(raw, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", 0) if details is not None else 0
    return Usage(
        prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
        cached_tokens=int(cached or 0),
    )


class ProviderClient:
    """Calls one OpenAI-compatible endpoint through `openai.AsyncOpenAI`."""

    def __init__(self, config: ProviderConfig, usage_log: UsageLog) -> None:
        self.config = config
        self._usage_log = usage_log
        key = config.api_key.reveal() if config.api_key else NO_KEY
        self._secrets = (key,) if config.api_key else ()
        self._key = key
        self._sdk: openai.AsyncOpenAI | None = None
        self._where = spans.Where(config.name, config.base_url, config.tier)

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The SDK client, made on first use: ``import openai`` alone takes about 2 s,
        which the server's start (and the editor's ``initialize``) should not wait for."""
        if self._sdk is None:
            import openai

            self._sdk = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                max_retries=0,
            )
        return self._sdk

    def prepare(self) -> None:
        """Make the SDK client and import the chat resource (worker thread, at start):
        otherwise the first call pays ~40 ms for the client and ~40 ms of lazy imports."""
        _ = self._client.chat.completions

    @property
    def name(self) -> str:
        """The provider's configured name."""
        return self.config.name

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._sdk is not None:
            await self._sdk.close()

    async def complete(
        self,
        request: ChatRequest,
        model: str,
        *,
        request_id: str,
        attempt_timeout: float | None = None,
        attempt: int = 1,
        route: str = "",
    ) -> Completion:
        """One attempt; returns a Completion or raises ProviderFailure (or CancelledError).

        ``route`` (the router's decision) is stamped on the attempt's usage record.
        """
        timeout = self._timeout(attempt_timeout)
        what = _Attempt(request.feature, model, request_id, attempt, route)
        with spans.attempt_span(self._where, "chat", what, self._secrets, request) as span:
            (text, tool_calls, finish), usage, latency_ms, cost = await self._attempt(
                lambda: self._call(request, model, timeout), what
            )
            spans.attempt_result(span, self._secrets, model, usage, cost, finish, text)
        return Completion(
            text=text,
            model=model,
            provider=self.name,
            usage=usage,
            latency_ms=latency_ms,
            cost_usd=cost,
            request_id=request_id,
            tool_calls=tool_calls,
            finish_reason=finish,
        )

    async def embed(
        self,
        texts: list[str],
        model: str,
        *,
        request_id: str,
        dimensions: int | None = None,
        attempt_timeout: float | None = None,
        attempt: int = 1,
        feature: str = "embed",
        route: str = "",
    ) -> Embeddings:
        """One ``/v1/embeddings`` attempt for ``texts``: a vector per text, in order.

        Logged like a completion (feature ``embed``, input tokens, cost); raises
        `ProviderFailure` (or `CancelledError`).
        """
        timeout = self._timeout(attempt_timeout)
        what = _Attempt(feature, model, request_id, attempt, route)
        with spans.attempt_span(self._where, "embeddings", what, self._secrets) as span:
            vectors, usage, _, cost = await self._attempt(
                lambda: self._embed_call(texts, model, dimensions, timeout), what
            )
            spans.attempt_result(span, self._secrets, model, usage, cost)
        return Embeddings(vectors, model, self.name, usage, cost)

    def _timeout(self, attempt_timeout: float | None) -> float:
        if attempt_timeout:
            return min(attempt_timeout, self.config.timeout)
        return self.config.timeout

    async def _attempt(
        self, call: Callable[[], Awaitable[tuple[T, Usage]]], what: _Attempt
    ) -> tuple[T, Usage, float, float]:
        """Run one attempt: (result, usage, latency ms, cost), one usage record either way.

        Every failure is classified into a `ProviderFailure`; cancellation is recorded
        as ``cancelled`` and propagates.
        """
        started = time.perf_counter()
        outcome = "error"
        failure: ProviderFailure | None = None
        usage = Usage()
        try:
            result, usage = await call()
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:  # classified below: every failure becomes a ProviderFailure
            failure = classify(exc, provider=self.name, model=what.model, secrets=self._secrets)
            logger.info(
                "provider %s model %s (%s) attempt %d failed: %s",
                self.name,
                what.model,
                what.feature,
                what.attempt,
                failure.message,
            )
            raise failure from None
        finally:
            latency_ms = (time.perf_counter() - started) * 1000
            cost = self._record(what, outcome, latency_ms, usage, failure)
        return result, usage, latency_ms, cost

    def _record(
        self,
        what: _Attempt,
        outcome: str,
        latency_ms: float,
        usage: Usage,
        failure: ProviderFailure | None,
    ) -> float:
        """Write the attempt's usage record; returns its cost (0.0 on a local endpoint)."""
        cost = cost_usd(
            what.model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
        )
        if self.config.tier == "local":
            cost = 0.0
        self._usage_log.write(
            UsageRecord(
                request_id=what.request_id,
                feature=what.feature,
                provider=self.name,
                model=what.model,
                outcome=outcome,
                latency_ms=round(latency_ms, 1),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost_usd=cost,
                error_class=failure.kind.value if failure else None,
                status=failure.status if failure else None,
                attempt=what.attempt,
                tier=self.config.tier,
                route=what.route,
                trace_id=trace_id(),
                price=describe_price(what.model, local=self.config.tier == "local"),
            )
        )
        return cost

    async def _embed_call(
        self, texts: list[str], model: str, dimensions: int | None, attempt_timeout: float
    ) -> tuple[list[list[float]], Usage]:
        # base64 decoded here: left to the SDK, it imports numpy on the event loop (300 ms).
        kwargs: dict[str, Any] = {
            "model": model,
            "input": texts,
            "timeout": attempt_timeout,
            "encoding_format": "base64",
        }
        if dimensions is not None:
            kwargs["dimensions"] = dimensions
        response = await self._client.embeddings.create(**kwargs)
        data = sorted(getattr(response, "data", None) or (), key=lambda d: d.index)
        if len(data) != len(texts):
            raise ProviderFailure(
                ErrorKind.MALFORMED_RESPONSE, f"{len(data)} embeddings for {len(texts)} inputs"
            )
        try:
            vectors = [_vector(d.embedding) for d in data]
        except (TypeError, ValueError, binascii.Error) as exc:
            raise ProviderFailure(
                ErrorKind.MALFORMED_RESPONSE, f"undecodable embedding ({type(exc).__name__})"
            ) from None
        if any(not v or len(v) != len(vectors[0]) for v in vectors):
            raise ProviderFailure(ErrorKind.MALFORMED_RESPONSE, "embeddings of unequal length")
        return vectors, _usage(getattr(response, "usage", None))

    async def _call(
        self, request: ChatRequest, model: str, attempt_timeout: float
    ) -> tuple[tuple[str, tuple[ToolCall, ...], str], Usage]:
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "timeout": attempt_timeout,
        }
        if request.tools:
            kwargs["tools"] = request.tools
        if request.stream:
            return await self._call_streamed(kwargs)
        response = await self._client.chat.completions.create(**kwargs)
        choices = getattr(response, "choices", None)
        if not choices:
            raise ProviderFailure(ErrorKind.MALFORMED_RESPONSE, "response has no choices")
        message = choices[0].message
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in (message.tool_calls or ())
            if getattr(c, "function", None) is not None
        )
        text = message.content or ""
        if not text and not calls:
            raise ProviderFailure(ErrorKind.MALFORMED_RESPONSE, "response has no content")
        return (text, calls, choices[0].finish_reason or "stop"), _usage(response.usage)

    async def _call_streamed(
        self, kwargs: dict[str, Any]
    ) -> tuple[tuple[str, tuple[ToolCall, ...], str], Usage]:
        stream = await self._client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs
        )
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish = ""
        usage = Usage()
        chunks = 0
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices or ():
                    delta = choice.delta
                    if delta.content:
                        parts.append(delta.content)
                        chunks += 1
                    for tc in delta.tool_calls or ():
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function is not None:
                            slot["name"] += tc.function.name or ""
                            slot["arguments"] += tc.function.arguments or ""
                    if choice.finish_reason:
                        finish = choice.finish_reason
        tool_calls = tuple(
            ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"])
            for _, c in sorted(calls.items())
        )
        text = "".join(parts)
        if not text and not tool_calls:
            raise ProviderFailure(ErrorKind.MALFORMED_RESPONSE, "stream ended without content")
        if not finish:
            # The connection closed cleanly before the last event: what arrived is a part,
            # never to be presented as the whole answer.
            raise ProviderFailure(
                ErrorKind.MALFORMED_RESPONSE, "stream ended before its finish reason"
            )
        if usage == Usage() and chunks:
            # Some servers (llama.cpp) send no usage in streams: one content delta is one
            # token there, so count them rather than record a free call.
            logger.debug("stream without usage: counted %d completion chunks", chunks)
            usage = Usage(completion_tokens=chunks)
        return (text, tool_calls, finish), usage
