"""Spans: one tree per LSP request, and the few calls the request path makes to grow it.

Everything here is a no-op until `export.configure` installs a tracer: `span()`
then yields `NO_SPAN` without touching OpenTelemetry (not even importing it), so a
server without an exporter pays one function call per span and nothing else. The
tracer is ours, not OpenTelemetry's global one, so a settings change can swap it.

Span parents follow the OpenTelemetry context (a `contextvars` value), which asyncio
copies into every task a request starts: tool calls run in a `TaskGroup` and the
provider attempt several awaits down still hang under the right parent.

Names and attributes: a request's root is named after its LSP method (kind SERVER);
a provider attempt is ``chat {model}`` (kind CLIENT) with the GenAI semantic
conventions (`provider_attributes`); a tool call is ``execute_tool {name}``; our own
attributes are under ``llm_lsp.``. A cancelled span ends with status ERROR,
``error.type = "cancelled"``, ``llm_lsp.cancelled = true`` and a ``cancelled``
event; a failed one with ``error.type`` (the failure's kind, or the exception's
class). Exception messages are never recorded (they could quote a prompt).

Prompt and answer text are recorded only when `record_content` is on (an opt-in
setting); the caller scrubs secrets before handing text over (`llm.errors.redact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger(__name__)

AttrValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]
Attrs = Mapping[str, AttrValue | None]

CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class _State:
    tracer: Tracer
    record_content: bool


_state: _State | None = None
_totals: contextvars.ContextVar[dict[str, AttrValue] | None] = contextvars.ContextVar(
    "llm_lsp_request_totals", default=None
)
_tags: contextvars.ContextVar[Mapping[str, AttrValue] | None] = contextvars.ContextVar(
    "llm_lsp_span_tags", default=None
)


def install(tracer: Tracer | None, *, record_content: bool = False) -> None:
    """Trace with ``tracer`` from now on; None turns tracing off (`export.configure`)."""
    global _state
    _state = None if tracer is None else _State(tracer, record_content)


def enabled() -> bool:
    """Whether spans are recorded (an exporter is configured)."""
    return _state is not None


def record_content() -> bool:
    """Whether prompt and answer text may be put on spans (the user opted in)."""
    return _state is not None and _state.record_content


class SpanHandle:
    """What code inside a span may do with it; `NO_SPAN` does nothing."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    @property
    def recording(self) -> bool:
        """Whether attributes set here go anywhere (compute costly ones only then)."""
        return self._span is not None

    def set(self, key: str, value: AttrValue | None) -> None:
        """One attribute; None values are left out."""
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def update(self, attrs: Attrs) -> None:
        """Several attributes; None values are left out."""
        if self._span is not None:
            self._span.set_attributes({k: v for k, v in attrs.items() if v is not None})

    def event(self, name: str, attrs: Attrs | None = None) -> None:
        """A point in time inside the span (e.g. a skipped tier)."""
        if self._span is not None:
            clean = {k: v for k, v in (attrs or {}).items() if v is not None}
            self._span.add_event(name, clean)

    def fail(self, error_type: str, description: str = "") -> None:
        """Mark the span failed without an exception (e.g. a fallback answer)."""
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, description or error_type))

    def rename(self, name: str) -> None:
        """Change the span's name (e.g. once the model is known)."""
        if self._span is not None:
            self._span.update_name(name)


NO_SPAN = SpanHandle(None)


def _clean(attrs: Attrs | None) -> dict[str, AttrValue]:
    return {k: v for k, v in (attrs or {}).items() if v is not None}


@contextlib.contextmanager
def span(name: str, attrs: Attrs | None = None, *, kind: str = "internal") -> Iterator[SpanHandle]:
    """A child of the current span (or a new trace's root) around the ``with`` body.

    ``kind``: "internal", "server" or "client". Cancellation and exceptions end the
    span marked as such and propagate untouched.
    """
    state = _state
    if state is None:
        yield NO_SPAN
        return
    from opentelemetry.trace import SpanKind

    span_kind = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}.get(kind, SpanKind.INTERNAL)
    with state.tracer.start_as_current_span(
        name,
        kind=span_kind,
        attributes=_clean(attrs),
        record_exception=False,
        set_status_on_exception=False,
    ) as live:
        handle = SpanHandle(live)
        try:
            yield handle
        except asyncio.CancelledError:
            handle.set("llm_lsp.cancelled", True)
            handle.event(CANCELLED)
            handle.fail(CANCELLED)
            raise
        except BaseException as exc:
            kind_value = getattr(getattr(exc, "kind", None), "value", None)
            handle.fail(kind_value if isinstance(kind_value, str) else type(exc).__qualname__)
            raise


@contextlib.contextmanager
def request_span(method: str, attrs: Attrs | None = None) -> Iterator[SpanHandle]:
    """The root span of one LSP request, named after its method (kind SERVER).

    When it ends it carries the request's totals (`add_to_request`): the cost and
    tokens of every provider attempt below it, and the answer cache's outcome.
    """
    if _state is None:
        yield NO_SPAN
        return
    totals: dict[str, AttrValue] = {}
    token = _totals.set(totals)
    try:
        rpc = {"rpc.system": "jsonrpc", "rpc.method": method}
        with span(method, {**rpc, **(attrs or {})}, kind="server") as handle:
            try:
                yield handle
            finally:
                handle.update(totals)
    finally:
        _totals.reset(token)


def add_to_request(key: str, value: AttrValue) -> None:
    """Add ``value`` to the request's total ``key`` (numbers add up; anything else is
    replaced); it goes on the root span when the request ends."""
    totals = _totals.get() if _state is not None else None
    if totals is None:
        return
    current_value = totals.get(key)
    both_numbers = isinstance(value, int | float) and isinstance(current_value, int | float)
    totals[key] = current_value + value if both_numbers else value  # type: ignore[operator]


def current() -> SpanHandle:
    """The span the caller runs in (`NO_SPAN` when tracing is off or none is open)."""
    if _state is None:
        return NO_SPAN
    from opentelemetry import trace

    live = trace.get_current_span()
    return SpanHandle(live) if live.is_recording() else NO_SPAN


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), for usage records; None when not tracing."""
    if _state is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


@contextlib.contextmanager
def tagged(attrs: Mapping[str, AttrValue]) -> Iterator[None]:
    """Attributes for spans opened below (read with `tags()`), e.g. a breaker's state
    known to the tier and wanted on the provider span the client opens."""
    if _state is None:
        yield
        return
    token = _tags.set({**(_tags.get() or {}), **attrs})
    try:
        yield
    finally:
        _tags.reset(token)


def tags() -> Mapping[str, AttrValue]:
    """The attributes set by the enclosing `tagged` blocks."""
    return (_tags.get() or {}) if _state is not None else {}


class Steps:
    """Consecutive sibling spans inside a loop, one per step, without re-indenting it.

    ``with Steps() as steps:`` then ``steps.begin(name, attrs)`` at the top of each
    step: the previous step's span ends and the new one becomes the current span.
    Leaving the ``with`` ends the last one, marked cancelled or failed as `span` does.
    """

    def __init__(self) -> None:
        self._open: contextlib.ExitStack | None = None

    def begin(self, name: str, attrs: Attrs | None = None) -> SpanHandle:
        """End the current step's span and start the next."""
        self._end(None)
        if _state is None:
            return NO_SPAN
        stack = contextlib.ExitStack()
        handle = stack.enter_context(span(name, attrs))
        self._open = stack
        return handle

    def _end(self, exc: BaseException | None) -> None:
        stack, self._open = self._open, None
        if stack is not None:
            if exc is None:
                stack.close()
            else:
                stack.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._end(exc)
